//! `pos-agent db verify [--db PATH] [--config PATH]` (agent spec §1): the
//! SQLite integrity check and the whole ledger hash chain.
//!
//! Prints `ok` with the entry count, or names the first broken entry and
//! exits 1. Works beside a running daemon (WAL readers do not block it) and
//! refuses, untouched, a file that is not a pos-agent store.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::commands::{Failure, bad_input, other};

pub fn verify(db: Option<&Path>, config: &Path) -> Result<(), Failure> {
    let path: PathBuf = match db {
        Some(path) => path.to_path_buf(),
        None => {
            pos_config::Config::load(config)
                .map_err(|e| bad_input(anyhow!("{e}")))?
                .storage
                .path
        }
    };
    let report = pos_agent::store::verify_file(&path).map_err(other)?;
    if report.is_ok() {
        println!(
            "ok: {}: integrity ok, {} ledger entries chained",
            path.display(),
            report.entries
        );
        return Ok(());
    }
    let mut problems = Vec::new();
    if !report.integrity_ok {
        problems.push(format!(
            "integrity_check: {}",
            report.integrity_messages.join("; ")
        ));
    }
    if let Some(broken) = &report.chain_break {
        problems.push(format!(
            "ledger chain broken at {broken} ({} entries verified before it)",
            report.entries
        ));
    }
    Err(other(anyhow!(
        "{}: {}",
        path.display(),
        problems.join("; ")
    )))
}
