//! `[storage]`: where the SQLite database lives.

use std::path::PathBuf;

use crate::env::Env;
use crate::reader::{Ctx, Table};
use crate::values::path;

pub(crate) const KEYS: &[&str] = &["path"];

/// File name of the database inside `$STATE_DIRECTORY`.
pub const DEFAULT_DB_FILE: &str = "agent.db";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The SQLite database: the ledger, outbox and caches.
    pub path: PathBuf,
}

/// `table` is `None` when the file has no `[storage]`.
pub(crate) fn read(ctx: &mut Ctx<'_>, table: Option<Table<'_, '_>>, env: &Env) -> Option<Storage> {
    let mut header = None;
    let mut configured = None;
    // A `path` that is present but bad was reported already; it must not
    // also read as "no storage path".
    let mut present = false;
    if let Some(table) = table {
        header = table.header();
        if let Some(field) = table.field("path") {
            present = true;
            configured = path(ctx, &field);
        }
        table.finish(ctx);
    }
    let path = configured.or_else(|| {
        env.state_directory
            .as_ref()
            .map(|dir| dir.join(DEFAULT_DB_FILE))
    });
    if path.is_none() && !present {
        ctx.report(
            header,
            Some("[storage] path".to_string()),
            "no storage path: set [storage] path or STATE_DIRECTORY",
        );
    }
    Some(Storage { path: path? })
}
