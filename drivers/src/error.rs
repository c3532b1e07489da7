//! The crate's one error type.
//!
//! Decoding errors never come out of here: a bad scan is a reading with `"valid": false`
//! (see `pos_codes::decode`). What can fail is a setting, checked before a device loop
//! starts, and opening a device.

use std::path::PathBuf;

/// Everything that can go wrong in the drivers crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A device setting that cannot work (checked before any device starts).
    #[error("setting `{setting}`: {message}")]
    Settings { setting: String, message: String },
    /// A decode setting that cannot work (member prefixes, variable-measure layouts).
    #[error(transparent)]
    Decode(#[from] pos_codes::Error),
    /// A device could not be opened or read.
    #[error("device {device} at {path}: {source}")]
    Device {
        device: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
