//! The embedded SQLite backend of [`Storage`], one file per concern:
//! `schema` (migrations, pragmas), `intake` (the loads and stores of an
//! upload batch), `holds`, `members` (downloads and balances),
//! `import` (snapshots), `bundles` and `admin` (terminals, listings).
//! The sync rules themselves are in [`crate::apply`]: this backend only
//! loads and stores.
//!
//! One connection behind a mutex: central's writes are serialised anyway
//! (SQLite has one writer), a batch of 1,000 entries is applied in one
//! transaction in milliseconds, and a single connection keeps the prepared
//! statement cache warm. The PostgreSQL backend ([`crate::postgres`]) pools
//! instead.

mod adjust;
mod admin;
mod bundles;
mod channel;
mod holds;
mod import;
mod intake;
mod members;
mod schema;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use pos_sync::Digest32;
use pos_sync::protocol::{
    CatalogChanges, HoldAnswer, HoldRelease, HoldRequest, MemberChanges, ProgramBalance,
    ReceivedBatch, SignedBundle, UploadAnswer,
};
use rusqlite::{Connection, Transaction, TransactionBehavior};
use uuid::Uuid;

use crate::apply;
use crate::apply::adjust::Adjustment;
use crate::apply::channel::{OrderRequest, Recorded, ReturnRequest, Via};
pub use crate::apply::hold::{HOLD_KEPT_SECS, HOLD_TTL_SECS};
use crate::error::CentralError;
use crate::fleet::FleetReport;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};
use crate::storage::{
    Conflict, ConflictFilter, LedgerFilter, NewBundle, Storage, StoredEntry, TerminalInfo,
};

/// Prepared statements kept per connection: more than the some 30 distinct
/// ones one upload batch runs, so none is parsed again per entry.
const STATEMENT_CACHE_CAPACITY: usize = 128;

pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

fn u64_of(v: i64, what: &str) -> Result<u64, CentralError> {
    u64::try_from(v).map_err(|_| CentralError::Corrupt(format!("{what} is negative: {v}")))
}

fn i64_of(v: u64, what: &str) -> Result<i64, CentralError> {
    i64::try_from(v).map_err(|_| CentralError::Invalid(format!("{what} {v} is too large")))
}

fn digest_of(bytes: Vec<u8>, what: &str) -> Result<Digest32, CentralError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| CentralError::Corrupt(format!("{what} is not 32 bytes")))?;
    Ok(Digest32(arr))
}

fn uuid_of(bytes: Vec<u8>) -> Result<Uuid, CentralError> {
    Uuid::from_slice(&bytes).map_err(|_| CentralError::Corrupt("entry_id is not 16 bytes".into()))
}

/// The next value of the change counter that member and product download
/// cursors follow.
fn next_rev(tx: &Transaction<'_>) -> Result<i64, CentralError> {
    // Cached: a batch takes one revision per member it touches.
    Ok(tx
        .prepare_cached("UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value")?
        .query_row([], |r| r.get(0))?)
}

impl SqliteStorage {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStorage, CentralError> {
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<SqliteStorage, CentralError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStorage, CentralError> {
        schema::prepare(&mut conn)?;
        // One batch runs some 30 distinct cached statements (chain, intake,
        // verification facts, writes); rusqlite's default cache of 16 would
        // evict and re-parse them for every entry.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        Ok(SqliteStorage {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one write transaction, committed when it returns `Ok`
    /// and rolled back otherwise.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, CentralError>,
    ) -> Result<T, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

impl Storage for SqliteStorage {
    fn add_terminal(&self, terminal_id: &str, token_hash: [u8; 32]) -> Result<(), CentralError> {
        self.write(|tx| admin::add_terminal(tx, terminal_id, token_hash))
    }

    fn authenticate(
        &self,
        token_hash: [u8; 32],
        now: jiff::Timestamp,
    ) -> Result<String, CentralError> {
        admin::authenticate(&self.conn(), token_hash, now)
    }

    fn revoke_terminal(
        &self,
        terminal_id: &str,
        at: jiff::Timestamp,
    ) -> Result<bool, CentralError> {
        self.write(|tx| admin::revoke_terminal(tx, terminal_id, at))
    }

    fn rotate_terminal(
        &self,
        terminal_id: &str,
        token_hash: [u8; 32],
        grace_ms: i64,
        at: jiff::Timestamp,
    ) -> Result<(), CentralError> {
        self.write(|tx| admin::rotate_terminal(tx, terminal_id, token_hash, grace_ms, at))
    }

    fn store_report(&self, terminal_id: &str, report: &FleetReport) -> Result<(), CentralError> {
        self.write(|tx| admin::store_report(tx, terminal_id, report))
    }

    fn terminals(&self) -> Result<Vec<TerminalInfo>, CentralError> {
        admin::terminals(&self.conn())
    }

    fn apply_batch_with(
        &self,
        batch: &ReceivedBatch,
        received_at: jiff::Timestamp,
        refusals: apply::Refusals,
    ) -> Result<UploadAnswer, CentralError> {
        self.write(|tx| apply::apply_batch(tx, batch, received_at, refusals))
    }

    fn publish_bundle(&self, bundle: NewBundle, at: jiff::Timestamp) -> Result<(), CentralError> {
        self.write(|tx| bundles::publish(tx, bundle, at))
    }

    fn newest_bundle(&self, after: Option<u64>) -> Result<Option<SignedBundle>, CentralError> {
        bundles::newest(&self.conn(), after)
    }

    fn bundle(&self, version: u64) -> Result<Option<SignedBundle>, CentralError> {
        bundles::by_version(&self.conn(), version)
    }

    fn current_bundle_version(&self) -> Result<Option<u64>, CentralError> {
        bundles::current_version(&self.conn())
    }

    fn import_members(&self, snapshot: &MembersSnapshot) -> Result<usize, CentralError> {
        self.write(|tx| import::members(tx, snapshot))
    }

    fn import_catalog(&self, snapshot: &CatalogSnapshot) -> Result<usize, CentralError> {
        self.write(|tx| import::catalog(tx, snapshot))
    }

    fn member_changes(&self, cursor: u64, limit: usize) -> Result<MemberChanges, CentralError> {
        members::member_changes(&self.conn(), cursor, limit)
    }

    fn catalog_changes(&self, cursor: u64, limit: usize) -> Result<CatalogChanges, CentralError> {
        members::catalog_changes(&self.conn(), cursor, limit)
    }

    fn member_balances(
        &self,
        member_or_card: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<(String, Vec<ProgramBalance>)>, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        members::member_balances(&tx, member_or_card, now)
    }

    fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<StoredEntry>, CentralError> {
        admin::ledger(&self.conn(), filter)
    }

    fn conflict_page(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, CentralError> {
        admin::conflict_page(&self.conn(), filter)
    }

    fn adjust(
        &self,
        adjustment: &Adjustment,
        at: jiff::Timestamp,
    ) -> Result<StoredEntry, CentralError> {
        self.write(|tx| adjust::adjust(tx, adjustment, at))
    }

    fn channel_order(
        &self,
        terminal: &str,
        order: &OrderRequest,
        now: jiff::Timestamp,
        via: Via,
    ) -> Result<Recorded, CentralError> {
        self.write(|tx| apply::channel::order_via(tx, terminal, order, now, via))
    }

    fn channel_return(
        &self,
        terminal: &str,
        request: &ReturnRequest,
        now: jiff::Timestamp,
    ) -> Result<String, CentralError> {
        self.write(|tx| apply::channel::order_return(tx, terminal, request, now))
    }

    fn place_hold(
        &self,
        request: &HoldRequest,
        now: jiff::Timestamp,
    ) -> Result<HoldAnswer, CentralError> {
        // Out-of-range points are refused before taking the write lock.
        apply::hold::check_points(request.points)?;
        self.write(|tx| apply::hold::place_hold(tx, request, now))
    }

    fn release_hold(&self, release: &HoldRelease) -> Result<bool, CentralError> {
        self.write(|tx| holds::release(tx, release))
    }
}
