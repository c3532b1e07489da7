//! The crate's one error type.
//!
//! Decoding errors end up as the `"error"` text of a [`crate::Decoded`] reading, so every
//! message names what is wrong and where (position, AI, field) — and never repeats the
//! scanned data itself, which could be part of a card number.

/// Everything that can go wrong while decoding a scan or checking decode settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A check digit does not match the digits before it.
    #[error("{what}: check digit is {found}, expected {expected}")]
    CheckDigit {
        what: String,
        expected: u8,
        found: u8,
    },
    /// A field has the wrong number of characters.
    #[error("{what}: {found} characters, expected {expected}")]
    Length {
        what: String,
        expected: String,
        found: usize,
    },
    /// A character that the field does not allow.
    #[error("{what}: character {found:?} at position {position} is not allowed ({allowed})")]
    Character {
        what: String,
        position: usize,
        found: char,
        allowed: &'static str,
    },
    /// A GS1 element string that cannot be split into element strings.
    #[error("GS1 element string at position {position}: {message}")]
    Gs1Syntax { position: usize, message: String },
    /// A GS1 element whose value breaks the rules of its AI.
    #[error("AI ({ai}): {message}")]
    Gs1Value { ai: String, message: String },
    /// Magnetic-stripe data that is not ISO/IEC 7813.
    #[error("track {track}: {message}")]
    Track { track: u8, message: String },
    /// The AIM symbology identifier at the start of a scan is malformed.
    #[error("AIM symbology identifier: {0}")]
    Aim(String),
    /// The scan is longer than any barcode the decoder accepts.
    #[error("scan is {found} bytes long, the limit is {limit} bytes")]
    TooLong { found: usize, limit: usize },
    /// A stored free-text field holds a payment card number
    /// ([`crate::payment_card::screen_field`]): named, never echoed.
    #[error("{field}: holds a payment card number; refused and not stored")]
    PaymentCard { field: String },
    /// A setting that cannot work (checked before any device starts).
    #[error("setting `{setting}`: {message}")]
    Settings { setting: String, message: String },
}

impl Error {
    pub(crate) fn settings(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Settings {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
