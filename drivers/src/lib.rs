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
    DecodeSettings, Decoded, Reading, decode_barcode, decode_track, unescape_cli_data,
};
pub use device::{
    DeviceEvent, DeviceKind, DeviceSettings, DeviceStatus, Parity, Role, ScanRole, SerialLine,
    run_device,
};
pub use error::{Error, Result};
pub use framing::{DiscardReason, Suffix};
pub use variable_measure::{Measure, VariableMeasure, VariableMeasureLayout};
pub use wedge::KeyboardLayout;
