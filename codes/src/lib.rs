//! What a scan or swipe says, for the register agent and central: pure decoders, no I/O,
//! no clock, no async runtime.
//!
//! AIM identifiers ([`aim`]), GTINs ([`gtin`]) and their check digits ([`check_digit`]),
//! GS1 element strings ([`gs1`]), variable-measure codes ([`variable_measure`]),
//! ISO/IEC 7813 tracks ([`track`]), the payment-card guard ([`payment_card`]), all joined
//! in [`decode`] (agent spec §4).
//!
//! This crate knows no other project crate. The device loops (`pos-drivers`) feed it
//! frames; the config (`pos-config`) and central use its rules directly, so a limit or
//! a rule of the decode settings has one definition.
//!
//! # Using it
//!
//! * [`decode_barcode`] and [`decode_track`] turn one scan or swipe into a [`Decoded`],
//!   whose JSON is what `pos-agent decode` prints and scan events carry:
//!   `{"symbology": "ean13", "aim": "]E0", "gtin": "04006381333931", "valid": true}`,
//!   `"ais": {"01": …, "17": …}` for GS1 element strings, `"member_card": "…"` for a
//!   loyalty card, exactly `{"payment_card": true}` for a payment card, and
//!   `"valid": false, "error": "…"` for a bad scan.
//! * Settings: [`DecodeSettings::validate`] at start-up.
//! * Central and the agent's API screen member fields with [`payment_card`].
//!
//! # Decisions
//!
//! * Payment cards are rejected before anything else, whatever the loyalty prefix.
//!   The one exemption is a whole scan that is a GTIN (see [`payment_card`]).

pub mod aim;
pub mod check_digit;
pub mod decode;
pub mod error;
pub mod gs1;
pub mod gtin;
pub mod payment_card;
pub mod track;
pub mod variable_measure;

pub use aim::Symbology;
pub use decode::{DecodeSettings, Decoded, Reading, decode_barcode, decode_track};
pub use error::{Error, Result};
pub use variable_measure::{Measure, VariableMeasure, VariableMeasureLayout};
