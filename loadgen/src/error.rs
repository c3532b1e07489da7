//! The one error type of the load generator's library.

/// What can stop a load run before it has a summary.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The plan or the target is unusable (no URL, zero registers, an
    /// unreadable CA file).
    #[error("load plan: {0}")]
    Plan(String),
    /// Setting central up failed: publishing the rules, importing members,
    /// registering terminals.
    #[error("setting central up: {0}")]
    Setup(String),
    /// Central's admin API answered something unexpected.
    #[error("central admin API: {0}")]
    Admin(String),
    /// The register side of the protocol failed outside a batch's retries.
    #[error(transparent)]
    Sync(#[from] pos_sync::SyncError),
    /// The bare PostgreSQL baseline failed.
    #[error("bare PostgreSQL insert: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
