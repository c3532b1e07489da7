//! The register's durable store: an SQLite file holding the rules bundles
//! ever cached, the member and catalog caches, sales and returns, the
//! hash-chained ledger (sync spec §1), sync state and dead letters.
//!
//! Shape: [`Store`] is a cheap-to-clone handle. Writes go to ONE writer
//! thread over a bounded queue ([`writer::WRITER_QUEUE_COMMANDS_MAX`]);
//! reads run on a small pool of reader connections in `spawn_blocking`
//! (WAL lets them run beside the writer).
//!
//! Invariants (checked where they are made):
//! - a sale or return and all its ledger entries commit in one transaction
//!   before the call returns; a refused request stores nothing;
//! - ledger `seq` is gapless from 1, each entry's `prev_hash` is the hash of
//!   the entry before (or of the server's entry after a rebase, recorded in
//!   `rebases`), and `hash` is `LedgerEntry::compute_hash`;
//! - entries are never changed, except their sync status and, on a rebase,
//!   their seq/prev_hash/hash (old versions kept in `ledger_superseded`);
//! - an answer is stored with its sale/return and replayed byte for byte.

mod documents;
pub mod error;
mod ledger;
mod members;
mod reader;
mod rules;
mod sales;
pub mod schema;
pub mod sync;
pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pos_points::{Bundle, Quote};
use pos_sync::protocol::{Document, DocumentKey};
use pos_sync::{Digest32, LedgerEntry};

pub use error::{ErrorClass, StoreError, StoreResult};
pub use members::{MEMBER_CARDS_MAX, MEMBER_PROGRAMS_MAX};
pub use rules::RulesInput;
pub use sales::{RETURN_LINES_MAX, SALE_LINES_MAX, SALE_REDEMPTIONS_MAX};
pub use writer::{WRITER_QUEUE_COMMANDS_MAX, WriterHealth};

use crate::model::{
    CatalogSnapshot, ImportSummary, LedgerRow, MemberBalances, MemberData, MembersSnapshot,
    Product, QuoteRequest, ReturnAnswer, ReturnRequest, SaleAnswer, SaleRecord, SaleRequest,
    StoreStats, VerifyReport,
};

/// Most ledger rows one `ledger()` / `unsynced()` call returns, whatever
/// the caller asks (a sync batch is at most 1,000 entries too).
pub const LEDGER_PAGE_ENTRIES_MAX: u32 = 1_000;
/// Default `member_fresh_secs` (sync spec §4).
pub const MEMBER_FRESH_SECS_DEFAULT: u64 = 300;

/// The wall clock the store reads: replaceable so tests can make member
/// data stale without sleeping.
pub type Clock = Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(jiff::Timestamp::now)
}

/// How to open a store.
#[derive(Clone)]
pub struct StoreOptions {
    /// The database file (created when absent).
    pub path: PathBuf,
    /// `[terminal] id`: stamped on every entry; the file remembers it and
    /// refuses another.
    pub terminal_id: String,
    /// `[terminal] timezone`: the wall clock of return entries.
    pub time_zone: jiff::tz::TimeZone,
    /// Member data younger than this is fresh (sync spec §4).
    pub member_fresh_secs: u64,
    /// Cap on the database size in pages (4 KiB each); `None`: no cap.
    pub max_page_count: Option<u64>,
    /// `[central] rules_public_key`: when set, only bundles whose signature
    /// verifies with it are stored or used (`docs/signed-rules.md`); `None`
    /// (a standalone register): unsigned bundles as well.
    pub rules_key: Option<[u8; 32]>,
    pub clock: Clock,
}

impl StoreOptions {
    pub fn new(path: impl Into<PathBuf>, terminal_id: &str, time_zone: jiff::tz::TimeZone) -> Self {
        StoreOptions {
            path: path.into(),
            terminal_id: terminal_id.to_string(),
            time_zone,
            member_fresh_secs: MEMBER_FRESH_SECS_DEFAULT,
            max_page_count: None,
            rules_key: None,
            clock: system_clock(),
        }
    }

    /// From a validated config: storage path, terminal id and time zone,
    /// `member_fresh_secs` and `rules_public_key` from `[central]` (the
    /// default and no key without it).
    pub fn from_config(config: &pos_config::Config) -> Self {
        let mut options = StoreOptions::new(
            config.storage.path.clone(),
            &config.terminal.id,
            config.terminal.timezone.clone(),
        );
        if let Some(central) = &config.central {
            options.member_fresh_secs = central.member_fresh_secs;
            options.rules_key = Some(central.rules_public_key);
        }
        options
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("path", &self.path)
            .field("terminal_id", &self.terminal_id)
            .field("member_fresh_secs", &self.member_fresh_secs)
            .field("max_page_count", &self.max_page_count)
            .field("rules_key", &self.rules_key.is_some())
            .finish_non_exhaustive()
    }
}

/// State shared by the writer thread and the readers.
pub(crate) struct Shared {
    pub(crate) options: StoreOptions,
    pub(crate) rules: rules::RulesCache,
    /// Set by `close()`: the writer stops after the current command.
    pub(crate) closing: AtomicBool,
}

impl Shared {
    pub(crate) fn now(&self) -> jiff::Timestamp {
        (self.options.clock)()
    }

    pub(crate) fn now_unix_ms(&self) -> i64 {
        self.now().as_millisecond()
    }

    /// The register's wall clock in its time zone, RFC 3339 with offset.
    pub(crate) fn now_rfc3339(&self) -> String {
        self.now()
            .to_zoned(self.options.time_zone.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }
}

/// A committed answer: the value and the exact JSON to send. `replay` is
/// true when the same request had already been committed (the JSON is then
/// byte for byte the first answer).
#[derive(Clone, Debug)]
pub struct Committed<T> {
    pub value: T,
    pub json: String,
    pub replay: bool,
}

/// Handle on the store; clone freely.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    writer: writer::WriterHandle,
    readers: Arc<reader::ReaderPool>,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Store {
    /// Opens (or creates) the store. Refuses, leaving the file untouched, a
    /// non-SQLite file, a corrupted one, a foreign SQLite database, a newer
    /// schema or another terminal's database.
    ///
    /// Blocking (file checks, migrations): call it before serving, or from
    /// `spawn_blocking`. The async methods need a tokio runtime.
    pub fn open(options: StoreOptions) -> StoreResult<Store> {
        validate_id("terminal_id", &options.terminal_id)?;
        let shared = Arc::new(Shared {
            rules: rules::RulesCache::default(),
            closing: AtomicBool::new(false),
            options,
        });
        let conn = schema::open_writer(
            &shared.options.path,
            &shared.options.terminal_id,
            shared.options.max_page_count,
            &shared.now_rfc3339(),
        )?;
        let readers = Arc::new(reader::ReaderPool::new(shared.options.path.clone()));
        let (writer, thread) = writer::WriterHandle::spawn(conn, shared.clone())?;
        Ok(Store {
            shared,
            writer,
            readers,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.options.path
    }

    /// The terminal id entries are stamped with.
    pub fn terminal_id(&self) -> &str {
        &self.shared.options.terminal_id
    }

    /// Liveness of the writer thread, for the watchdog and health.
    pub fn writer_health(&self) -> WriterHealth {
        self.writer.heartbeat.health()
    }

    /// Stops the writer after the commands already queued and waits for it
    /// to close the database. Later calls on any clone fail with `Closed`.
    pub async fn close(&self) -> StoreResult<()> {
        let _ = self
            .writer
            .call(|_, shared| {
                shared.closing.store(true, Ordering::Relaxed);
                Ok(())
            })
            .await;
        let handle = self.thread.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(handle) = handle {
            tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::Closed)?;
        }
        self.readers.clear();
        Ok(())
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection, &Shared) -> StoreResult<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || readers.with(|conn| f(conn, &shared)))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Quotes a basket with the newest rules, filling the member from the
    /// cache and `earned_today` from the ledger. No side effect.
    pub async fn quote(&self, request: &QuoteRequest) -> StoreResult<Quote> {
        let request = request.clone();
        self.read(move |conn, shared| sales::quote(conn, shared, &request))
            .await
    }

    /// The points basket `request` would be quoted with now, as JSON text
    /// (what a hold request carries).
    pub async fn hold_basket(&self, request: &SaleRequest) -> StoreResult<String> {
        let request = request.clone();
        self.read(move |conn, shared| sales::hold_basket(conn, shared, &request))
            .await
    }

    /// Commits a sale durably (sale, lines, ledger entries, answer: one
    /// transaction, fsynced) before returning. Idempotent by `sale_id`.
    pub async fn commit_sale(&self, request: SaleRequest) -> StoreResult<Committed<SaleAnswer>> {
        self.writer
            .call(move |conn, shared| sales::commit_sale(conn, shared, &request))
            .await
    }

    /// Commits a return of lines of a committed sale (points spec §5).
    /// Idempotent by `return_id`.
    pub async fn commit_return(
        &self,
        sale_id: &str,
        request: ReturnRequest,
    ) -> StoreResult<Committed<ReturnAnswer>> {
        let sale_id = sale_id.to_string();
        self.writer
            .call(move |conn, shared| sales::commit_return(conn, shared, &sale_id, &request))
            .await
    }

    /// The committed sale, its booked quote and its returns.
    pub async fn sale(&self, sale_id: &str) -> StoreResult<SaleRecord> {
        let sale_id = sale_id.to_string();
        self.read(move |conn, _| sales::sale_record(conn, &sale_id))
            .await
    }

    /// Ledger rows with `seq >= from_seq`, in seq order, at most
    /// `min(limit, LEDGER_PAGE_ENTRIES_MAX)`.
    pub async fn ledger(&self, from_seq: u64, limit: u32) -> StoreResult<Vec<LedgerRow>> {
        let limit = limit.min(LEDGER_PAGE_ENTRIES_MAX);
        self.read(move |conn, _| ledger::rows(conn, from_seq, limit))
            .await
    }

    /// Balances of a member (by id or card token) per program.
    pub async fn member(&self, id_or_card: &str) -> StoreResult<MemberBalances> {
        let key = id_or_card.to_string();
        self.read(move |conn, shared| members::balances_view(conn, shared, &key))
            .await
    }

    /// A catalog product by sku (for the checkout session).
    pub async fn product(&self, sku: &str) -> StoreResult<Option<Product>> {
        let sku = sku.to_string();
        self.read(move |conn, _| members::product(conn, &sku)).await
    }

    /// Loads a rules bundle and member and catalog snapshots (agent spec §2)
    /// in one transaction. Members and products are upserted; a members
    /// snapshot counts as a successful member download (fresh from now).
    pub async fn import(
        &self,
        bundle: Option<Bundle>,
        source: &str,
        members: Option<MembersSnapshot>,
        catalog: Option<CatalogSnapshot>,
    ) -> StoreResult<ImportSummary> {
        self.import_with(bundle.map(RulesInput::Plain), source, members, catalog)
            .await
    }

    /// [`Store::import`] of a bundle signed or not: with a rules key only a
    /// signed bundle that verifies is taken, and nothing at all otherwise.
    pub async fn import_with(
        &self,
        rules: Option<RulesInput>,
        source: &str,
        members: Option<MembersSnapshot>,
        catalog: Option<CatalogSnapshot>,
    ) -> StoreResult<ImportSummary> {
        let source = source.to_string();
        self.writer
            .call(move |conn, shared| {
                sync::import(conn, shared, rules.as_ref(), &source, members, catalog)
            })
            .await
    }

    /// Figures for health and metrics.
    pub async fn stats(&self) -> StoreResult<StoreStats> {
        self.read(sync::stats).await
    }

    /// `PRAGMA integrity_check` and the whole hash chain.
    pub async fn verify(&self) -> StoreResult<VerifyReport> {
        self.read(|conn, _| ledger::verify(conn)).await
    }

    // --- for the sync worker (issue 4) -------------------------------------

    /// Unsynced entries in seq order, at most
    /// `min(limit, LEDGER_PAGE_ENTRIES_MAX)`.
    pub async fn unsynced(&self, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
        let limit = limit.min(LEDGER_PAGE_ENTRIES_MAX);
        self.read(move |conn, _| ledger::unsynced(conn, limit))
            .await
    }

    /// The sale and return documents `entries` name (protocol v2: they
    /// travel with the entries in an upload batch).
    pub async fn documents_for(
        &self,
        entries: Vec<LedgerEntry>,
    ) -> StoreResult<BTreeMap<DocumentKey, Document>> {
        self.read(move |conn, _| documents::for_entries(conn, &entries))
            .await
    }

    /// Marks every unsynced entry with `seq <= up_to_seq` synced; gives how
    /// many changed.
    pub async fn mark_synced(&self, up_to_seq: u64) -> StoreResult<u64> {
        self.writer
            .call(move |conn, _| sync::mark_synced(conn, up_to_seq))
            .await
    }

    /// Keeps entry `seq` as a dead letter with central's reason.
    pub async fn dead_letter(&self, seq: u64, reason: &str) -> StoreResult<()> {
        let reason = reason.to_string();
        self.writer
            .call(move |conn, shared| sync::dead_letter(conn, shared, seq, &reason))
            .await
    }

    /// `seq_reused`: re-numbers the unsynced entries after `server_high`,
    /// re-chained after `server_hash`, keeping their entry ids; recorded so
    /// `verify` still verifies. Gives how many entries moved.
    pub async fn rebase(&self, server_high: u64, server_hash: Digest32) -> StoreResult<u64> {
        self.writer
            .call(move |conn, shared| sync::rebase(conn, shared, server_high, server_hash))
            .await
    }

    /// Applies a member download (changes since a cursor) and records the
    /// successful download time and the new cursor.
    pub async fn apply_member_download(
        &self,
        members: Vec<MemberData>,
        cursor: Option<String>,
    ) -> StoreResult<()> {
        self.writer
            .call(move |conn, shared| sync::apply_member_download(conn, shared, members, cursor))
            .await
    }

    /// A sync cursor or time by name (`None` when never set); names in
    /// [`sync`].
    pub async fn sync_state(&self, key: &str) -> StoreResult<Option<String>> {
        let key = key.to_string();
        self.read(move |conn, _| sync::get_state(conn, &key)).await
    }

    /// Sets a sync cursor or time.
    pub async fn set_sync_state(&self, key: &str, value: &str) -> StoreResult<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.writer
            .call(move |conn, _| sync::put_state(conn, &key, &value))
            .await
    }

    /// Caches a rules bundle from central (verified again with the store's
    /// key). Refuses a version older than the current one; gives the
    /// version when stored, `None` when it was already cached.
    pub async fn store_rules(&self, bundle: RulesInput, source: &str) -> StoreResult<Option<u64>> {
        let source = source.to_string();
        self.writer
            .call(move |conn, shared| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let stored = rules::store(&tx, shared, &bundle, &source)?;
                tx.commit()?;
                Ok(stored)
            })
            .await
    }
}

/// `db verify` without a running daemon: opens the file after the same
/// checks as [`Store::open`] (never creating or migrating) and verifies it.
pub fn verify_file(path: &Path) -> StoreResult<VerifyReport> {
    let conn = schema::open_for_verify(path)?;
    ledger::verify(&conn)
}

/// Longest id (sale, return, member, card, terminal, sku) accepted, in bytes.
pub const ID_BYTES_MAX: usize = 64;

/// Ids are 1..=64 printable ASCII characters without spaces: they go into
/// URLs, logs and the ledger.
pub(crate) fn validate_id(field: &str, id: &str) -> StoreResult<()> {
    if id.is_empty() || id.len() > ID_BYTES_MAX {
        return Err(StoreError::invalid(
            field,
            format!("must be 1 to {ID_BYTES_MAX} characters, got {}", id.len()),
        ));
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(StoreError::invalid(
            field,
            format!("must be printable ASCII without spaces, found {bad:?}"),
        ));
    }
    Ok(())
}
