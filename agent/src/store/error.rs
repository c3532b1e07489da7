//! The store's one error type.
//!
//! Every variant maps to a stable API error `code()` and to one of three
//! classes the API turns into a status: the request was bad (nothing was
//! stored and retrying the same request cannot help), it conflicts with what
//! is stored, or the store cannot serve it right now.

use std::path::PathBuf;

/// How the caller should treat a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is invalid (400/422): fix it.
    BadRequest,
    /// It names something that does not exist (404).
    NotFound,
    /// It conflicts with stored state (409): same id, other content, or a
    /// return beyond what remains, or a refused redemption.
    Conflict,
    /// The store cannot take it now (503/507): retry later or alert.
    Unavailable,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // --- opening -----------------------------------------------------------
    #[error("{path}: not an SQLite database (refusing to touch it)")]
    NotSqlite { path: PathBuf },
    #[error("{path}: the database is corrupted ({detail}); it was left untouched")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path}: this SQLite database belongs to another application ({detail}); it was left untouched"
    )]
    Foreign { path: PathBuf, detail: String },
    #[error(
        "{path}: schema version {found} is newer than this pos-agent supports ({supported}); upgrade pos-agent"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "{path}: the database belongs to terminal {stored:?}, but the config says {configured:?}"
    )]
    TerminalMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },

    // --- bad requests ------------------------------------------------------
    /// A field of the request is invalid; `field` is its path.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("member: unknown member id {0:?}")]
    UnknownMember(String),
    #[error("redeem: program {0:?} is not in the rules bundle")]
    UnknownProgram(String),
    #[error("redeem: a sale without a member cannot redeem points")]
    MemberRequired,
    #[error("rules: invalid rules bundle: {0}")]
    InvalidRules(String),
    /// A bundle without a signature offered to a register with `[central]`.
    #[error(
        "rules: version {0} is not signed: with [central] configured only bundles signed by central are accepted (a file written by pos-central export-rules)"
    )]
    RulesUnsigned(u64),
    /// A signed bundle whose signature does not verify with the configured key.
    #[error("rules: {0}")]
    BadSignature(String),

    // --- not found ---------------------------------------------------------
    #[error("no rules bundle is cached yet: import one or let sync download it")]
    NoRules,
    #[error("unknown sale {0:?}")]
    UnknownSale(String),
    #[error("lines[{index}].line: sale {sale_id:?} has no line {line}")]
    UnknownLine {
        sale_id: String,
        index: usize,
        line: u32,
    },
    #[error("unknown member or card {0:?}")]
    MemberNotFound(String),

    // --- conflicts ---------------------------------------------------------
    #[error("{what} {id:?} was already committed with different content")]
    Conflict { what: &'static str, id: String },
    #[error("lines[{index}].qty: returning {qty} of line {line}, but only {remaining} remain")]
    ExceedsRemaining {
        index: usize,
        line: u32,
        qty: String,
        remaining: String,
    },
    /// A redemption refused with a points-spec §6 code.
    #[error("redeem[{index}] ({program}, {points} points): {code}: {message}")]
    Refused {
        index: usize,
        program: String,
        points: i64,
        code: &'static str,
        message: String,
    },
    #[error("rules: version {offered} is older than the cached version {newest}")]
    RulesOutdated { offered: u64, newest: u64 },
    #[error("rules: version {0} is already cached with different content")]
    RulesConflict(u64),

    // --- unavailable -------------------------------------------------------
    /// The bundle a sale or quote needs cannot be used: no signature, or one
    /// that does not verify with `rules_public_key` (a tampered file).
    #[error(
        "rules version {version} is not used: {reason}; sales resume once central's signed bundle is downloaded or imported"
    )]
    RulesUnverified { version: u64, reason: String },
    #[error("storage full: the database cannot grow; nothing was stored")]
    StorageFull,
    #[error("the store is shut down or its writer stopped")]
    Closed,
    #[error("storage error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("store file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Data read back from the database does not parse: a broken invariant
    /// (or a tampered file), reported, never a panic.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
}

impl StoreError {
    /// The stable error code for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotSqlite { .. } => "not_sqlite",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Foreign { .. } => "foreign_database",
            StoreError::NewerSchema { .. } => "newer_schema",
            StoreError::TerminalMismatch { .. } => "terminal_mismatch",
            StoreError::Invalid { .. } => "invalid_request",
            StoreError::UnknownMember(_) => "unknown_member",
            StoreError::UnknownProgram(_) => "unknown_program",
            StoreError::MemberRequired => "member_required",
            StoreError::InvalidRules(_) => "invalid_rules",
            StoreError::RulesUnsigned(_) => "rules_unsigned",
            StoreError::BadSignature(_) => "bad_signature",
            StoreError::RulesUnverified { .. } => "rules_unverified",
            StoreError::NoRules => "no_rules",
            StoreError::UnknownSale(_) => "unknown_sale",
            StoreError::UnknownLine { .. } => "unknown_line",
            StoreError::MemberNotFound(_) => "unknown_member",
            StoreError::Conflict { .. } => "conflict",
            StoreError::ExceedsRemaining { .. } => "exceeds_remaining",
            StoreError::Refused { code, .. } => code,
            StoreError::RulesOutdated { .. } => "rules_outdated",
            StoreError::RulesConflict(_) => "rules_conflict",
            StoreError::StorageFull => "storage_full",
            StoreError::Closed => "unavailable",
            StoreError::Sqlite(_) | StoreError::Io { .. } => "storage_error",
            StoreError::Damaged(_) => "storage_damaged",
        }
    }

    /// Which kind of failure this is.
    pub fn class(&self) -> ErrorClass {
        match self {
            StoreError::Invalid { .. }
            | StoreError::UnknownMember(_)
            | StoreError::UnknownProgram(_)
            | StoreError::MemberRequired
            | StoreError::InvalidRules(_)
            | StoreError::RulesUnsigned(_)
            | StoreError::BadSignature(_)
            | StoreError::UnknownLine { .. } => ErrorClass::BadRequest,
            StoreError::NoRules | StoreError::UnknownSale(_) | StoreError::MemberNotFound(_) => {
                ErrorClass::NotFound
            }
            StoreError::Conflict { .. }
            | StoreError::ExceedsRemaining { .. }
            | StoreError::Refused { .. }
            | StoreError::RulesOutdated { .. }
            | StoreError::RulesConflict(_) => ErrorClass::Conflict,
            StoreError::NotSqlite { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Foreign { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::TerminalMismatch { .. }
            | StoreError::RulesUnverified { .. }
            | StoreError::StorageFull
            | StoreError::Closed
            | StoreError::Sqlite(_)
            | StoreError::Io { .. }
            | StoreError::Damaged(_) => ErrorClass::Unavailable,
        }
    }

    /// The request itself is wrong (400/422).
    pub fn is_bad_request(&self) -> bool {
        self.class() == ErrorClass::BadRequest
    }

    /// It names a sale, line or member that does not exist (404).
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    /// It conflicts with stored state (409).
    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    /// The store cannot serve it now (503, or 507 for `storage_full`).
    pub fn is_unavailable(&self) -> bool {
        self.class() == ErrorClass::Unavailable
    }

    /// Shorthand for an [`StoreError::Invalid`].
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Turns SQLITE_FULL into [`StoreError::StorageFull`], keeping other
    /// SQLite errors as they are.
    pub(crate) fn from_sqlite(error: rusqlite::Error) -> StoreError {
        if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::StorageFull
        } else {
            StoreError::Sqlite(error)
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    /// Every SQLite error goes through here so SQLITE_FULL is always
    /// reported as `storage_full`, whichever statement hit it.
    fn from(error: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(error)
    }
}

/// Result alias for the store.
pub type StoreResult<T> = Result<T, StoreError>;
