//! The central token in memory: wiped on drop, never printed.

use std::fmt;

use zeroize::Zeroizing;

/// A secret read at run time (the central bearer token). `Debug` prints
/// `Secret(<redacted>)`; there is no `Display`, so it cannot slip into a
/// log line or an error by formatting.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub(crate) fn new(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }

    /// The secret text, for the one place that must send it
    /// (the `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_text() {
        let secret = Secret::new("tok-abc123".to_string());
        assert!(!format!("{secret:?}").contains("abc123"));
        assert_eq!(secret.expose(), "tok-abc123");
    }
}
