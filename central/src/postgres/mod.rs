//! The PostgreSQL backend of [`Storage`], for a chain: several
//! `pos-central serve` instances on one database, any request reaching any
//! instance. One file per concern, as [`crate::sqlite`]: `schema`
//! (migrations), `pool` (connections), `locks` (the locking scheme),
//! `intake` ([`apply::SyncTx`]), `holds` ([`apply::hold::HoldTx`]),
//! `members`, `import`, `bundles`, `admin`, `adjust`. The sync rules are
//! [`crate::apply`]'s: this backend only loads and stores, so both
//! backends enforce the same rules.
//!
//! # Client crate
//!
//! The blocking `postgres` crate (the facade over `tokio-postgres` that
//! its authors maintain beside it). [`Storage`] is blocking and the HTTP
//! layer calls it from `spawn_blocking`, so a blocking client fits without
//! a second runtime handle threaded through: each connection drives its
//! own small current-thread runtime, which is allowed on a blocking-pool
//! thread and on the CLI's plain thread. What it must never do is run on
//! an async worker thread: opening (the migrations) and closing
//! connections therefore run on a thread of their own (`off_runtime`),
//! as `embedded::start` opens storage from async code. `sqlx` would bring
//! its own pool, macros and runtime glue for what a dozen prepared
//! statements need; `deadpool-postgres` would need a runtime handle in
//! every blocking call. The pool is ours: a bounded vector of connections
//! with a condition variable (`pool`), each keeping its prepared
//! statements.
//!
//! # Concurrency: the locking scheme
//!
//! Transactions run at READ COMMITTED: every statement sees what committed
//! before it, and the locks below make the rows a decision rests on stable
//! from the moment they are read to the commit. Locks are always taken in
//! this order, so two transactions never wait on each other in a cycle:
//!
//! 1. **The terminal's row** (`SELECT … FROM terminals WHERE id = $1 FOR
//!    UPDATE`), first in every upload batch (it is how the chain head is
//!    read), in a hold's placement and release, and in an adjustment (the
//!    pseudo-terminal `@central`). One terminal's batches are therefore
//!    applied one after the other whichever instance receives them: the
//!    second sees the first's chain head, so its resent entries are
//!    answered `duplicate` and every entry is applied exactly once; the
//!    chain never forks. What is read per terminal (counted entry ids, the
//!    sale's earlier entries, its open holds) is covered by this lock.
//! 2. **Account names**, in byte order: a row of `account_locks` per name a
//!    register or an import used (member ids and card tokens), created on
//!    first use and locked `FOR UPDATE`. A batch locks every name its
//!    entries use and their cards' owners, sorted, before anything reads a
//!    balance; a hold, an adjustment and an import likewise. A member's
//!    balance, holds across terminals and daily earnings are therefore
//!    read and written by one transaction at a time. Rows rather than
//!    advisory locks: a catch-up batch of 1,000 customers takes 1,000
//!    locks, which row locks store in the rows and advisory locks would
//!    take from a lock table sized for 64 per connection. A name found
//!    only later (a card an import moved meanwhile) is locked when read,
//!    out of order; the rare deadlock this allows is retried.
//! 3. **The revision counter** (`meta` row `rev`), last, just before the
//!    commit (`PgTx::finish`): see below.
//!
//! A transaction that fails with a serialisation failure (40001) or a
//! detected deadlock (40P01) is rolled back and run again, at most
//! [`ATTEMPTS_MAX`] times; [`PgStorage::retries`] counts the reruns.
//!
//! # Revisions visible in order
//!
//! Registers download member and product changes by cursor: "every row
//! with `rev` above mine". A sequence would hand out revs at once and let
//! them commit in any order: a register paging between a commit of rev 11
//! and one of rev 10 would move its cursor past 10 and never see it. So a
//! transaction collects the members it changed and assigns their revs only
//! at its end, incrementing the counter row, whose lock it then holds to
//! its commit: the next transaction's revs are above, and it can only
//! commit after this one did. Revs become visible in increasing order,
//! for members and products alike (one counter, as on SQLite). The
//! counter is held for the few statements between the assignment and the
//! commit.

mod adjust;
mod admin;
mod bundles;
mod channel;
mod holds;
mod import;
mod intake;
mod locks;
mod members;
mod pool;
mod prefetch;
mod schema;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pos_sync::Digest32;
use pos_sync::protocol::{
    CatalogChanges, HoldAnswer, HoldRelease, HoldRequest, MemberChanges, ProgramBalance,
    ReceivedBatch, SignedBundle, UploadAnswer,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Row, Statement};
use uuid::Uuid;

use crate::apply;
use crate::apply::adjust::Adjustment;
use crate::apply::channel::{OrderRequest, Recorded, ReturnRequest, Via};
use crate::error::CentralError;
use crate::fleet::FleetReport;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};
use crate::storage::{
    Conflict, ConflictFilter, LedgerFilter, NewBundle, Storage, StoredEntry, TerminalInfo,
};

pub use pool::{POOL_SIZE_DEFAULT, redacted};

/// Most runs of one transaction that failed to serialise or deadlocked.
pub const ATTEMPTS_MAX: u32 = 8;

/// A central on PostgreSQL; cheap to share, safe from many threads and
/// beside other instances on the same database.
pub struct PgStorage {
    pool: pool::Pool,
    retries: AtomicU64,
}

/// One transaction on a pooled connection, with the connection's
/// statement cache, the account names it locked and the members whose
/// revisions it owes (the `&self` methods of [`apply::SyncTx`] need the
/// interior mutability).
pub(crate) struct PgTx<'c> {
    tx: RefCell<postgres::Transaction<'c>>,
    statements: RefCell<&'c mut HashMap<&'static str, Statement>>,
    locked: RefCell<HashSet<String>>,
    revs: RefCell<locks::PendingRevs>,
    /// An upload batch's loads (`prefetch`), and whether it stored.
    prefetch: RefCell<Option<prefetch::Prefetch>>,
    stored: std::cell::Cell<bool>,
}

impl<'c> PgTx<'c> {
    fn statement(&self, sql: &'static str) -> Result<Statement, CentralError> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.borrow_mut().prepare(sql)?;
        self.statements.borrow_mut().insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, CentralError> {
        let s = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query(&s, params)?)
    }

    pub(crate) fn query_opt(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, CentralError> {
        let s = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query_opt(&s, params)?)
    }

    pub(crate) fn query_one(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, CentralError> {
        let s = self.statement(sql)?;
        Ok(self.tx.borrow_mut().query_one(&s, params)?)
    }

    pub(crate) fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, CentralError> {
        let s = self.statement(sql)?;
        Ok(self.tx.borrow_mut().execute(&s, params)?)
    }

    /// Assigns the revisions owed (taking the counter last) and commits.
    fn finish(self) -> Result<(), CentralError> {
        locks::assign_revs(&self)?;
        self.tx.into_inner().commit()?;
        Ok(())
    }
}

/// Whether a failed transaction may succeed when run again.
fn retryable(error: &CentralError) -> bool {
    matches!(error, CentralError::Postgres(e)
        if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            || e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED))
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

/// Runs `f` on a thread outside any async runtime (the blocking client's
/// own runtime may not start inside one) and waits for it.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

impl PgStorage {
    /// Connects to `url` (a `postgres://` URL or `key=value` string),
    /// migrates the schema, and keeps at most `pool_size` connections.
    /// A URL that does not parse is `Invalid`, an unreachable database
    /// `Unavailable`; both name the URL without its password.
    pub fn open(url: &str, pool_size: usize) -> Result<PgStorage, CentralError> {
        PgStorage::open_with_password(url, None, pool_size)
    }

    /// [`PgStorage::open`] with the password from elsewhere than the URL
    /// (`[storage] password_file` of central.toml).
    pub fn open_with_password(
        url: &str,
        password: Option<&str>,
        pool_size: usize,
    ) -> Result<PgStorage, CentralError> {
        let pool = pool::Pool::new(url, pool_size, password)?;
        let storage = PgStorage {
            pool,
            retries: AtomicU64::new(0),
        };
        off_runtime(|| {
            let mut conn = storage.pool.get()?;
            schema::migrate(&mut conn.client)
        })?;
        Ok(storage)
    }

    /// How many transactions were run again after a serialisation failure
    /// or a deadlock, since this storage was opened.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Runs `f` in one transaction, committed when it returns `Ok`, rolled
    /// back otherwise, and run again (bounded) when it failed to
    /// serialise.
    fn write<T>(
        &self,
        f: impl Fn(&PgTx<'_>) -> Result<T, CentralError>,
    ) -> Result<T, CentralError> {
        let mut conn = self.pool.get()?;
        let mut attempt = 1;
        loop {
            let result = conn.transaction(|tx| {
                let out = f(&tx)?;
                tx.finish()?;
                Ok(out)
            });
            match result {
                Err(e) if retryable(&e) && attempt < ATTEMPTS_MAX => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(message = "Transaction run again.", attempt, error = %e);
                    // A little apart, so two rerun transactions do not meet again.
                    std::thread::sleep(Duration::from_millis(
                        u64::from(attempt) * 5 + u64::from(rand::random::<u8>() % 10),
                    ));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Runs a read in one transaction (one snapshot is not needed: each
    /// read is one statement or tolerates READ COMMITTED).
    fn read<T>(&self, f: impl Fn(&PgTx<'_>) -> Result<T, CentralError>) -> Result<T, CentralError> {
        self.write(f)
    }
}

impl Storage for PgStorage {
    fn add_terminal(&self, terminal_id: &str, token_hash: [u8; 32]) -> Result<(), CentralError> {
        self.write(|tx| admin::add_terminal(tx, terminal_id, token_hash))
    }

    fn authenticate(
        &self,
        token_hash: [u8; 32],
        now: jiff::Timestamp,
    ) -> Result<String, CentralError> {
        self.write(|tx| admin::authenticate(tx, token_hash, now))
    }

    fn terminals(&self) -> Result<Vec<TerminalInfo>, CentralError> {
        self.read(admin::terminals)
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

    fn apply_batch_with(
        &self,
        batch: &ReceivedBatch,
        received_at: jiff::Timestamp,
        refusals: apply::Refusals,
    ) -> Result<UploadAnswer, CentralError> {
        self.write(|tx| {
            // Lock order: the terminal, then the batch's account names.
            use apply::SyncTx;
            if tx.chain_head(&batch.terminal_id)?.is_some() {
                let owners = locks::lock_batch_names(tx, batch)?;
                let loaded = prefetch::load(tx, batch, owners, received_at.as_second())?;
                *tx.prefetch.borrow_mut() = Some(loaded);
            }
            apply::apply_batch(tx, batch, received_at, refusals)
        })
    }

    fn store_report(&self, terminal_id: &str, report: &FleetReport) -> Result<(), CentralError> {
        self.write(|tx| admin::store_report(tx, terminal_id, report))
    }

    fn publish_bundle(&self, bundle: NewBundle, at: jiff::Timestamp) -> Result<(), CentralError> {
        self.write(|tx| bundles::publish(tx, &bundle, at))
    }

    fn newest_bundle(&self, after: Option<u64>) -> Result<Option<SignedBundle>, CentralError> {
        self.read(|tx| bundles::newest(tx, after))
    }

    fn bundle(&self, version: u64) -> Result<Option<SignedBundle>, CentralError> {
        self.read(|tx| bundles::by_version(tx, version))
    }

    fn current_bundle_version(&self) -> Result<Option<u64>, CentralError> {
        self.read(bundles::current_version)
    }

    fn import_members(&self, snapshot: &MembersSnapshot) -> Result<usize, CentralError> {
        self.write(|tx| import::members(tx, snapshot))
    }

    fn import_catalog(&self, snapshot: &CatalogSnapshot) -> Result<usize, CentralError> {
        self.write(|tx| import::catalog(tx, snapshot))
    }

    fn member_changes(&self, cursor: u64, limit: usize) -> Result<MemberChanges, CentralError> {
        self.read(|tx| members::member_changes(tx, cursor, limit))
    }

    fn catalog_changes(&self, cursor: u64, limit: usize) -> Result<CatalogChanges, CentralError> {
        self.read(|tx| members::catalog_changes(tx, cursor, limit))
    }

    fn member_balances(
        &self,
        member_or_card: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<(String, Vec<ProgramBalance>)>, CentralError> {
        self.read(|tx| members::member_balances(tx, member_or_card, now))
    }

    fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<StoredEntry>, CentralError> {
        self.read(|tx| admin::ledger(tx, filter))
    }

    fn conflict_page(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, CentralError> {
        self.read(|tx| admin::conflict_page(tx, filter))
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
        // Out-of-range points are refused before any lock is taken.
        apply::hold::check_points(request.points)?;
        self.write(|tx| {
            use apply::SyncTx;
            tx.chain_head(&request.terminal_id)?;
            let owner = tx.card_owner(&request.member)?;
            locks::lock_names(
                tx,
                [Some(request.member.clone()), owner].into_iter().flatten(),
            )?;
            apply::hold::place_hold(tx, request, now)
        })
    }

    fn release_hold(&self, release: &HoldRelease) -> Result<bool, CentralError> {
        self.write(|tx| holds::release(tx, release))
    }
}
