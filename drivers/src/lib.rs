//! Scanner and card-reader drivers for the register agent: the I/O half. The decoding
//! itself is pure and lives in `pos-codes`.
//!
//! * framing of the byte stream ([`framing`]), keyboard-wedge key decoding ([`wedge`]),
//! * the async device loops ([`device`]): open by path, read frames, decode them with
//!   `pos_codes`, send events, reopen with backoff.
//!
//! This crate knows `pos-codes` and no other project crate: it defines its own device
//! settings struct and the agent maps its configuration onto it.
//!
//! # Using it from the agent
//!
//! * Devices: one task per `[[devices]]` entry running [`run_device`] with a bounded
//!   channel ([`device::EVENTS_CHANNEL_CAPACITY`]), a `CancellationToken` for shutdown
//!   and an `Arc<DeviceStatus>` for health and the watchdog
//!   ([`DeviceStatus::since_last_activity`], beaten at least every
//!   [`device::HEARTBEAT_INTERVAL_MS`]). [`DeviceEvent`] serialises with a `"type"` tag
//!   and is ready for SSE.
//! * Settings: [`DeviceSettings::validate`] (and `pos_codes::DecodeSettings::validate`)
//!   at start-up.
//!
//! # Decisions
//!
//! * Payment cards are rejected by the decoder before anything else; the loop then
//!   zeroes the frame and reports only that one was rejected.
//! * CR and CRLF suffixes both end a frame at the CR and swallow one LF after it (see
//!   [`framing`]).

pub mod device;
pub mod error;
pub mod framing;
pub mod wedge;

pub use device::{
    DeviceEvent, DeviceKind, DeviceSettings, DeviceStatus, Parity, Role, ScanRole, SerialLine,
    run_device,
};
pub use error::{Error, Result};
pub use framing::{DiscardReason, Suffix};
pub use wedge::KeyboardLayout;
