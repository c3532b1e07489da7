//! `pos-central`: the reference central loyalty platform (sync spec §5).
//!
//! It applies register ledgers exactly once ([`sqlite`] embedded, or
//! [`postgres`] for several instances, behind the [`storage::Storage`]
//! trait), keeps balances per (member, program), records
//! conflicts, signs and serves rules bundles ([`rules`]), and serves members
//! and catalog changes and online holds ([`server`]). The binary adds the
//! command line, key and certificate files ([`files`]).

pub mod apply;
pub mod embedded;
pub mod error;
pub mod files;
pub mod fleet;
pub mod guard;
pub mod migrate;
pub mod orders_file;
pub mod postgres;
pub mod rules;
pub mod server;
pub mod snapshot;
pub mod snapshot_csv;
pub mod sqlite;
pub mod storage;
pub mod tokens;

pub use error::CentralError;
pub use postgres::PgStorage;
pub use sqlite::SqliteStorage;
pub use storage::Storage;
