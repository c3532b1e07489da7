//! Snapshot imports in chunks (issue 10): a 150k-member import in one
//! transaction held the storage for seconds (SQLite has one connection
//! behind a mutex), and every terminal's upload waited behind it.
//!
//! The whole snapshot is parsed and validated first, off the storage (a
//! malformed or inconsistent snapshot is refused before anything is
//! written). Then it is stored in chunks, each its own `spawn_blocking`
//! call and its own transaction (the backend's `import_members` /
//! `import_catalog` on a part of the records), and the storage is free
//! between chunks, so a terminal waits for one chunk at most. Each chunk's
//! size follows from how long the previous one took, aiming at
//! [`CHUNK_TARGET_MS`], within [`CHUNK_RECORDS_MIN`]..=[`CHUNK_RECORDS_MAX`]:
//! the same bound whatever the backend or the machine. This lives above the
//! storage trait, so every backend gets it.
//!
//! The price: an import is no longer all or nothing. A chunk that fails
//! (a balance pushed beyond its bound, a full disk) leaves the chunks
//! before it applied, and the error says how many records were. The import
//! is an upsert keyed by member id (or SKU), so re-sending the same
//! snapshot completes it and changes nothing that is already in.

use std::time::{Duration, Instant};

use super::blocking;
use super::error::ApiResult;
use crate::error::CentralError;
use crate::storage::Storage;

/// What one chunk should take at most, in milliseconds: well inside the
/// 100 ms that a terminal may wait behind an import.
pub const CHUNK_TARGET_MS: u64 = 40;
/// Records of the first chunk, before any has been timed.
pub const CHUNK_RECORDS_FIRST: usize = 500;
/// Fewest records per chunk (a slow chunk never shrinks it below this).
pub const CHUNK_RECORDS_MIN: usize = 50;
/// Most records per chunk.
pub const CHUNK_RECORDS_MAX: usize = 20_000;

/// Stores one chunk of records; how many it stored.
pub type StoreChunk<R> = fn(&dyn Storage, Vec<R>) -> Result<usize, CentralError>;

/// Stores `records` (validated as a whole by the caller) in chunks; how
/// many were stored.
pub async fn in_chunks<R: Send + 'static>(
    storage: &std::sync::Arc<dyn Storage>,
    records: Vec<R>,
    store: StoreChunk<R>,
) -> ApiResult<usize> {
    let total = records.len();
    let mut rest = records.into_iter();
    let mut size = CHUNK_RECORDS_FIRST;
    let mut imported = 0;
    loop {
        let chunk: Vec<R> = rest.by_ref().take(size).collect();
        if chunk.is_empty() {
            return Ok(imported);
        }
        let storage = storage.clone();
        let started = Instant::now();
        let stored = blocking(move || store(storage.as_ref(), chunk))
            .await
            .map_err(|e| super::ApiError(after(e.0, imported, total)))?;
        imported += stored;
        size = next_size(size, started.elapsed());
    }
}

/// The next chunk's size: scaled so that it takes [`CHUNK_TARGET_MS`] at
/// the pace of the last one, at most doubled or halved at a time.
fn next_size(size: usize, took: Duration) -> usize {
    let took_us = took.as_micros().max(1);
    let target_us = u128::from(CHUNK_TARGET_MS) * 1_000;
    let scaled = (size as u128 * target_us / took_us).min(usize::MAX as u128) as usize;
    scaled
        .clamp(size / 2, size.saturating_mul(2))
        .clamp(CHUNK_RECORDS_MIN, CHUNK_RECORDS_MAX)
}

/// A chunk's error, saying what the chunks before it left applied.
fn after(error: CentralError, imported: usize, total: usize) -> CentralError {
    if imported == 0 {
        return error;
    }
    let note = format!(
        "{imported} of {total} records were imported before this failed; \
         re-sending the snapshot completes the import (it is an upsert)"
    );
    tracing::warn!(message = "Snapshot import stopped part way.", imported, total, error = %error);
    match error {
        CentralError::Invalid(m) => CentralError::Invalid(format!("{m} ({note})")),
        CentralError::Conflict(m) => CentralError::Conflict(format!("{m} ({note})")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_when_fast_and_shrink_when_slow_within_bounds() {
        assert_eq!(next_size(500, Duration::from_millis(10)), 1_000);
        assert_eq!(next_size(500, Duration::from_millis(40)), 500);
        assert_eq!(next_size(500, Duration::from_millis(80)), 250);
        assert_eq!(next_size(500, Duration::from_secs(10)), 250);
        assert_eq!(next_size(60, Duration::from_secs(1)), CHUNK_RECORDS_MIN);
        assert_eq!(
            next_size(CHUNK_RECORDS_MAX, Duration::ZERO),
            CHUNK_RECORDS_MAX
        );
    }
}
