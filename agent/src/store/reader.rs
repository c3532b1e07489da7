//! Reader connections: a few kept open and reused, more opened on demand.
//!
//! WAL lets any number of readers run beside the writer, each seeing the
//! last committed state. Keeping a handful open avoids re-opening (and
//! re-applying pragmas) on every read; the cap bounds idle file handles.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::store::error::StoreResult;
use crate::store::schema;

/// Idle reader connections kept for reuse at most.
pub const READERS_IDLE_MAX: usize = 4;

pub(crate) struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    pub(crate) fn new(path: PathBuf) -> ReaderPool {
        ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a reader connection (blocking).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match reused {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < READERS_IDLE_MAX
        {
            idle.push(conn);
        }
        result
    }

    /// Drops the idle connections (on close).
    pub(crate) fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}
