//! The one error type of `pos-sync`, with the predicates the sync worker
//! needs to decide what to do next (retry soon, retry slowly, report).

use std::time::Duration;

/// Everything that can go wrong talking to central or checking what it sent.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The client configuration is unusable (bad URL, `http://` to a remote
    /// host, unreadable CA file, bad public key). Not retried: fix the config.
    #[error("sync configuration: {0}")]
    Config(String),

    /// Could not connect, the connection broke, or the answer did not
    /// arrive in time. Retried with backoff.
    #[error("network error talking to central: {0}")]
    Network(String),

    /// Central answered with a non-success HTTP status.
    #[error("central answered HTTP {status} ({code}): {message}")]
    Status {
        status: u16,
        /// The `error.code` of central's JSON error body, or `"unknown"`.
        code: String,
        /// The `error.message`, or the raw body (truncated) when not JSON.
        message: String,
        /// The `Retry-After` header, when present and in seconds.
        retry_after: Option<Duration>,
    },

    /// A message on the wire could not be encoded or decoded, or broke a
    /// protocol limit.
    #[error("sync protocol: {0}")]
    Protocol(String),

    /// A rules bundle was refused: unsigned, badly signed, or not newer.
    #[error("rules bundle refused: {0}")]
    Bundle(String),
}

impl SyncError {
    /// Whether the failure is transient: network errors, timeouts, 408,
    /// 429 and 5xx (sync spec §2). These are retried with exponential
    /// backoff; everything else is retried slowly (see [`crate::retry`]).
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Network(_) => true,
            SyncError::Status { status, .. } => {
                *status == 408 || *status == 429 || (500..=599).contains(status)
            }
            SyncError::Config(_) | SyncError::Protocol(_) | SyncError::Bundle(_) => false,
        }
    }

    /// Whether central refused our credentials (401/403): shown in health as
    /// an auth failure and retried slowly.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            SyncError::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// A 4xx other than 401/403/408/429: a bug on one side, to be logged with
    /// the body and retried slowly.
    pub fn is_bug_report(&self) -> bool {
        match self {
            SyncError::Status { status, .. } => {
                (400..=499).contains(status) && !self.is_auth() && !self.is_retryable()
            }
            _ => false,
        }
    }

    /// The wait central asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> SyncError {
        SyncError::Status {
            status,
            code: "x".into(),
            message: "y".into(),
            retry_after: None,
        }
    }

    #[test]
    fn classification_follows_the_spec_table() {
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(status(s).is_retryable(), "{s} should be retryable");
            assert!(!status(s).is_auth());
            assert!(!status(s).is_bug_report());
        }
        for s in [401, 403] {
            assert!(status(s).is_auth());
            assert!(!status(s).is_retryable());
            assert!(!status(s).is_bug_report());
        }
        for s in [400, 404, 409, 413, 422] {
            assert!(status(s).is_bug_report(), "{s} should be a bug report");
            assert!(!status(s).is_retryable());
        }
        assert!(SyncError::Network("reset".into()).is_retryable());
        assert!(!SyncError::Config("bad".into()).is_retryable());
    }

    #[test]
    fn retry_after_is_exposed() {
        let e = SyncError::Status {
            status: 429,
            code: "busy".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(status(429).retry_after(), None);
    }
}
