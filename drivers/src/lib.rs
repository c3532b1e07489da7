//! Scanner and card-reader drivers for the register agent.
//!
//! Two halves:
//! * pure decoders, no I/O: AIM identifiers ([`aim`]), GTINs ([`gtin`]), GS1 element
//!   strings ([`gs1`]), variable-measure codes ([`variable_measure`]), ISO/IEC 7813 tracks
//!   ([`track`]), the payment-card guard ([`payment_card`]), all joined in [`decode`];
//! * device readers: framing of the byte stream ([`framing`]), keyboard-wedge key
//!   decoding ([`wedge`]) and the async device loops ([`device`]).
//!
//! This crate knows no other project crate: it defines its own settings structs and the
//! agent maps its configuration onto them.
//!
//! # Using it from the agent
//!
//! * `pos-agent decode barcode|track DATA`: print
//!   `serde_json::to_string(&decode_command(kind, DATA, &settings))`. Output shapes:
//!   `{"symbology": "ean13", "aim": "]E0", "gtin": "04006381333931", "valid": true}`,
//!   `"ais": {"01": …, "17": …}` for GS1 element strings, `"member_card": "…"` for a
//!   loyalty card, exactly `{"payment_card": true}` for a payment card, and
//!   `"valid": false, "error": "…"` for a bad scan. On the command line GS is written
//!   `\x1d`, `<GS>` or `^]`.
//! * Devices: one task per `[[devices]]` entry running [`run_device`] with a bounded
//!   channel ([`device::EVENTS_CHANNEL_CAPACITY`]), a `CancellationToken` for shutdown
//!   and an `Arc<DeviceStatus>` for health and the watchdog
//!   ([`DeviceStatus::since_last_activity`], beaten at least every
//!   [`device::HEARTBEAT_INTERVAL_MS`]). [`DeviceEvent`] serialises with a `"type"` tag
//!   and is ready for SSE.
//! * Settings: [`DecodeSettings::validate`] and [`DeviceSettings::validate`] at start-up.
//!
//! # Decisions
//!
//! * Payment cards are rejected before anything else, whatever the loyalty prefix.
//!   The one exemption is a whole scan that is a GTIN (see [`payment_card`]).
//! * CR and CRLF suffixes both end a frame at the CR and swallow one LF after it (see
//!   [`framing`]).

pub mod aim;
pub mod check_digit;
pub mod decode;
pub mod device;
pub mod error;
pub mod framing;
pub mod gs1;
pub mod gtin;
pub mod payment_card;
pub mod track;
pub mod variable_measure;
pub mod wedge;

#[cfg(test)]
mod test_support;

pub use aim::Symbology;
pub use decode::{
    DecodeKind, DecodeSettings, Decoded, Reading, decode_barcode, decode_command, decode_track,
    unescape_cli_data,
};
pub use device::{
    DeviceEvent, DeviceKind, DeviceSettings, DeviceStatus, Parity, Role, ScanRole, SerialLine,
    run_device,
};
pub use error::{Error, Result};
pub use framing::{DiscardReason, Suffix};
pub use variable_measure::{Measure, VariableMeasure, VariableMeasureLayout};
pub use wedge::KeyboardLayout;
