//! The parts of the process environment that supply defaults.
//!
//! Kept as a plain struct so that [`crate::Config::parse`] stays pure and
//! tests can give any environment without touching the real one.

use std::ffi::OsString;
use std::path::PathBuf;

/// Directories systemd hands the service (`StateDirectory=`,
/// `RuntimeDirectory=`, `LoadCredential=`); `None` when unset or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `$STATE_DIRECTORY`: default home of the database (`agent.db`).
    pub state_directory: Option<PathBuf>,
    /// `$RUNTIME_DIRECTORY`: default home of the API socket (`api.sock`).
    pub runtime_directory: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY`: where `[central] credential` is read from.
    pub credentials_directory: Option<PathBuf>,
}

impl Env {
    /// Reads the three variables from this process's environment.
    pub fn from_process() -> Env {
        Env {
            state_directory: first_directory(std::env::var_os("STATE_DIRECTORY")),
            runtime_directory: first_directory(std::env::var_os("RUNTIME_DIRECTORY")),
            credentials_directory: first_directory(std::env::var_os("CREDENTIALS_DIRECTORY")),
        }
    }
}

/// systemd joins several directories with `:` when a unit lists more than
/// one (`StateDirectory=a b`); the first is the unit's own, so it is used.
fn first_directory(value: Option<OsString>) -> Option<PathBuf> {
    let value = value?;
    let text = value.to_string_lossy();
    let first = text.split(':').next().unwrap_or_default();
    if first.is_empty() {
        None
    } else if first.len() == text.len() {
        // Not split: keep the exact bytes, even if they are not UTF-8.
        Some(PathBuf::from(value))
    } else {
        Some(PathBuf::from(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_directories_take_the_first() {
        assert_eq!(
            first_directory(Some("/var/lib/a:/var/lib/b".into())),
            Some(PathBuf::from("/var/lib/a"))
        );
    }

    #[test]
    fn empty_is_unset() {
        assert_eq!(first_directory(Some("".into())), None);
        assert_eq!(first_directory(None), None);
    }
}
