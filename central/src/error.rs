//! The one error type of `pos-central`'s library. The HTTP layer maps each
//! variant to a status and a JSON `{"error": {"code", "message"}}` body.

use pos_sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    /// The request or file is wrong; the message names what and where.
    #[error("{0}")]
    Invalid(String),
    /// The request contradicts stored state (e.g. a bundle version that is
    /// not newer than the current one).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// A request refused for a reason the caller acts on (409 with `code`,
    /// e.g. `insufficient_points`): a channel's order or return.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// A request body over its limit.
    #[error("{0}")]
    TooLarge(String),
    /// A request body that did not arrive within its time bounds.
    #[error("{0}")]
    Timeout(String),
    /// Missing or unknown bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// A sync request of another protocol version than this central speaks
    /// (`docs/sync-v2.md` §1): HTTP 426, so an old register shows it.
    #[error("{0}")]
    ProtocolVersion(String),
    /// A valid token that may not do this (a terminal uploading for another).
    #[error("{0}")]
    Forbidden(String),
    /// The database failed or holds something it never should.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// PostgreSQL failed (the backend of [`crate::postgres`]).
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database cannot be reached (its URL named, without a password),
    /// or no connection of the pool came free in time: HTTP 503, the
    /// register retries later.
    #[error("{0}")]
    Unavailable(String),
    /// A stored value broke an invariant (a corrupt row), named.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
}

impl CentralError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> CentralError {
        CentralError::Io {
            what: what.into(),
            source,
        }
    }

    /// The HTTP status and the stable `error.code` for this error.
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            CentralError::Invalid(_) => (400, "invalid"),
            CentralError::Conflict(_) => (409, "conflict"),
            CentralError::Refused { code, .. } => (409, code),
            CentralError::NotFound(_) => (404, "not_found"),
            CentralError::TooLarge(_) => (413, "too_large"),
            CentralError::Timeout(_) => (408, "timeout"),
            CentralError::Unauthorized(_) => (401, "unauthorized"),
            CentralError::Forbidden(_) => (403, "forbidden"),
            CentralError::ProtocolVersion(_) => (426, "protocol_version"),
            CentralError::Sync(SyncError::Protocol(_)) => (400, "protocol"),
            CentralError::Sync(SyncError::Bundle(_)) => (400, "bundle"),
            CentralError::Sync(_) => (500, "internal"),
            CentralError::Unavailable(_) => (503, "unavailable"),
            CentralError::Database(_)
            | CentralError::Postgres(_)
            | CentralError::Corrupt(_)
            | CentralError::Io { .. }
            | CentralError::Tls(_) => (500, "internal"),
        }
    }
}
