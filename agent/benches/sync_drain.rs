//! Catch-up after a long outage: 100,000 queued ledger entries drained by
//! the sync worker's upload path to a loopback central, in entries per
//! second, beside a bare SQLite insert of the same rows at central in the
//! same run (the floor: what central's database alone costs).
//!
//! - `drain`: `sync_worker::upload::drain` — reading unsynced entries in
//!   batches of 1,000, postcard over HTTP to an in-process `pos-central`
//!   (its real router and SQLite storage: chain check, dedup, balances,
//!   one transaction per batch), and settling every answer in the register's
//!   store (one transaction per batch, balances into the member cache).
//! - `bare_sqlite`: the same 100,000 rows inserted into a table shaped like
//!   central's `entries`, 1,000 per transaction, WAL + synchronous=FULL.
//!
//! - `sale commits`: latency of `Store::commit_sale` while the register is
//!   idle and while the drain runs (sync must never delay a sale beyond
//!   sharing the store's single writer with it).
//!
//! The issue's goal: the whole catch-up within 20 s on a 2-core machine.
//!
//! Run: `cargo bench -p pos-agent --bench sync_drain` (one run of each,
//! printed; `SYNC_DRAIN_ENTRIES=N` changes the count). Not criterion: one
//! catch-up takes seconds and mutates its databases, so repeated samples
//! would measure something else (an ever larger central).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pos_agent::model::{MembersSnapshot, SaleRequest};
use pos_agent::store::{Store, StoreOptions};
use pos_agent::sync_worker::holds::OwnHolds;
use pos_agent::sync_worker::upload;
use pos_central::Storage;
use pos_central::server::{AppState, SYNC_EDGE, serve, sync_router};
use pos_central::snapshot::CheckedSnapshot;
use pos_points::{Bundle, Format};
use pos_sync::protocol::BundleFormat;
use pos_sync::{ClientConfig, Digest32, EntryKind, LedgerEntry, SyncClient, Token};

const TERMINAL: &str = "store-1-reg-1";
const TOKEN: &str = "bench-terminal-token";
const ENTRIES_DEFAULT: u64 = 100_000;
const MEMBERS_COUNT: u64 = 500;
const GOAL_SECS: u64 = 20;
const BUNDLE: &str =
    r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;
/// A quote breakdown of typical size, as the store keeps in `detail`.
const DETAIL: &str = r#"{"program":"main","base":12,"tier_bonus":6,"rules":[{"id":"double-shoes","points":12,"capped":false}],"subtotal":30,"total":30,"limited_by":[]}"#;

fn members_json() -> serde_json::Value {
    let members: Vec<_> = (0..MEMBERS_COUNT)
        .map(|i| {
            serde_json::json!({"id": format!("M-{i}"), "cards": [],
                "programs": {"main": {"available": 1000, "pending": 0}}})
        })
        .collect();
    serde_json::json!({ "members": members })
}

/// How long ago the queued sales were made: a morning's outage. Stamped
/// relative to now (not a fixed date), so central sees what it would after
/// such an outage, whatever day the bench runs: no clock-skew conflicts,
/// which a fixed date would add to every entry once it is a day old.
const OUTAGE_HOURS: i64 = 3;

/// The queued entries: a valid chain, as the register would have written.
fn entries(count: u64) -> Vec<(LedgerEntry, String)> {
    let sold_at = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(OUTAGE_HOURS);
    let occurred_at = sold_at.to_string();
    let local_date = occurred_at[..10].to_string();
    let mut prev = Digest32::ZERO;
    let mut out = Vec::with_capacity(count as usize);
    for seq in 1..=count {
        let mut e = LedgerEntry {
            entry_id: pos_sync::uuid::Uuid::now_v7(),
            terminal_id: TERMINAL.into(),
            seq,
            prev_hash: Digest32::ZERO,
            hash: Digest32::ZERO,
            kind: EntryKind::Earn,
            program: "main".into(),
            member: format!("M-{}", seq % MEMBERS_COUNT),
            points: 30,
            sale_id: Some(format!("S-{seq}")),
            return_id: None,
            rules_version: 1,
            occurred_at: occurred_at.clone(),
            detail: DETAIL.into(),
        };
        e.chain_after(prev);
        prev = e.hash;
        out.push((e, local_date.clone()));
    }
    out
}

/// The basket sale `e` was quoted from: one 30-euro line, which
/// [`BUNDLE`] gives 30 points (the entry's), so central's recomputation
/// (`docs/sync-v2.md` §3) credits every entry as written.
fn basket(e: &LedgerEntry) -> String {
    serde_json::json!({
        "sale_id": e.sale_id,
        "time": e.occurred_at,
        "member": {"id": e.member, "programs": {"main": {}}},
        "earned_today": {},
        "lines": [{"line": 1, "sku": "4006381333931", "qty": "1", "unit_price": "30.00"}],
    })
    .to_string()
}

/// Writes the entries and their sales straight into the register's tables
/// (the morning's sales, without 100,000 fsyncs of set-up): the sale rows
/// are what the upload's documents are read from.
fn queue(db: &std::path::Path, entries: &[(LedgerEntry, String)]) {
    let mut conn = rusqlite::Connection::open(db).expect("open register db");
    let tx = conn.transaction().expect("transaction");
    {
        let mut sale = tx
            .prepare(
                "INSERT INTO sales (sale_id, request, basket, member, rules_version, amount, \
                 answer, committed_at) VALUES (?1, '{}', ?2, ?3, ?4, '30.00', '{}', ?5)",
            )
            .expect("prepare sale");
        for (e, _) in entries {
            sale.execute(rusqlite::params![
                e.sale_id,
                basket(e),
                e.member,
                e.rules_version as i64,
                e.occurred_at,
            ])
            .expect("insert sale");
        }
        let mut stmt = tx
            .prepare(
                "INSERT INTO ledger (seq, entry_id, terminal_id, prev_hash, hash, kind, program, \
                 member, points, sale_id, return_id, rules_version, occurred_at, detail, \
                 local_date, created_unix_ms, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?14, NULL, ?10, ?11, ?12, ?13, 0, 0)",
            )
            .expect("prepare");
        for (e, date) in entries {
            stmt.execute(rusqlite::params![
                e.seq as i64,
                e.entry_id.to_string(),
                e.terminal_id,
                e.prev_hash.0.as_slice(),
                e.hash.0.as_slice(),
                e.kind.as_str(),
                e.program,
                e.member,
                e.points,
                e.rules_version as i64,
                e.occurred_at,
                e.detail,
                date,
                e.sale_id,
            ])
            .expect("insert entry");
        }
    }
    tx.commit().expect("commit");
}

/// The floor: the same rows into a central-shaped table, 1,000 per
/// transaction, WAL + synchronous=FULL.
fn bare_sqlite(dir: &std::path::Path, entries: &[(LedgerEntry, String)]) -> Duration {
    let conn = rusqlite::Connection::open(dir.join("bare.db")).expect("open bare db");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("full");
    conn.execute_batch(
        "CREATE TABLE entries (terminal_id TEXT NOT NULL, seq INTEGER NOT NULL, \
         entry_id BLOB NOT NULL, hash BLOB NOT NULL, prev_hash BLOB, kind TEXT, program TEXT, \
         member TEXT, credited_member TEXT, points INTEGER, sale_id TEXT, return_id TEXT, \
         rules_version INTEGER, occurred_at TEXT, detail TEXT, status TEXT NOT NULL, \
         reason TEXT, received_at TEXT NOT NULL, PRIMARY KEY (terminal_id, seq)); \
         CREATE INDEX entries_entry_id ON entries (entry_id); \
         CREATE INDEX entries_credited_member ON entries (credited_member);",
    )
    .expect("schema");
    let started = Instant::now();
    let mut conn = conn;
    for chunk in entries.chunks(1_000) {
        let tx = conn.transaction().expect("transaction");
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, \
                     NULL, ?11, ?12, ?13, 'applied', NULL, ?14)",
                )
                .expect("prepare");
            for (e, _) in chunk {
                stmt.execute(rusqlite::params![
                    e.terminal_id,
                    e.seq as i64,
                    e.entry_id.as_bytes().as_slice(),
                    e.hash.0.as_slice(),
                    e.prev_hash.0.as_slice(),
                    e.kind.as_str(),
                    e.program,
                    e.member,
                    e.member,
                    e.points,
                    e.rules_version as i64,
                    e.occurred_at,
                    e.detail,
                    "2026-11-28T12:00:00Z",
                ])
                .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    started.elapsed()
}

/// Sales committed idle before the drain, to compare with during it.
const IDLE_SALES: usize = 200;
/// A sale every 50 ms while the drain runs: 20 sales/s, far busier than
/// one register (a sale every few seconds at best), so the figure is an
/// upper bound on what sync does to a till.
const SALE_INTERVAL_MS: u64 = 50;

fn sale(n: usize) -> SaleRequest {
    serde_json::from_value(serde_json::json!({
        "sale_id": format!("BENCH-{n}"),
        "time": "2026-11-28T11:05:00+01:00",
        "member": {"id": format!("M-{}", n as u64 % MEMBERS_COUNT)},
        "lines": [{"sku": "4006381333931", "category": "shoes", "qty": "1", "unit_price": "12.34"}]
    }))
    .expect("sale request")
}

async fn timed_sale(store: &Store, n: usize) -> Duration {
    let started = Instant::now();
    store.commit_sale(sale(n)).await.expect("commit sale");
    started.elapsed()
}

/// "p50 / p99 / max" in microseconds (integers: no floats in this code base).
fn percentiles(mut samples: Vec<Duration>) -> String {
    if samples.is_empty() {
        return "no sales".to_string();
    }
    samples.sort();
    let at = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_micros();
    format!(
        "p50 {:>7} us  p99 {:>7} us  max {:>7} us  ({} sales)",
        at(50),
        at(99),
        samples[samples.len() - 1].as_micros(),
        samples.len()
    )
}

fn rate(count: u64, took: Duration) -> u64 {
    let micros = took.as_micros().max(1);
    u64::try_from(u128::from(count) * 1_000_000 / micros).unwrap_or(u64::MAX)
}

fn main() {
    let count = std::env::var("SYNC_DRAIN_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ENTRIES_DEFAULT);
    // `cargo bench` passes `--bench`; listing mode must not run anything.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Central: its real storage and router on loopback.
    let storage = Arc::new(
        pos_central::SqliteStorage::open(&dir.path().join("central.db")).expect("central db"),
    );
    let signing_key = SigningKey::from_bytes(&[7; 32]);
    storage
        .add_terminal(TERMINAL, pos_central::files::token_hash(TOKEN))
        .expect("terminal");
    let bundle =
        pos_central::rules::prepare(BUNDLE.as_bytes().to_vec(), BundleFormat::Json, &signing_key)
            .expect("bundle");
    storage
        .publish_bundle(bundle, jiff::Timestamp::now())
        .expect("publish");
    let snapshot = MembersSnapshot::parse(&members_json().to_string()).expect("members snapshot");
    storage.import_members(&snapshot).expect("members");
    let state = Arc::new(AppState::new(
        storage,
        signing_key,
        pos_central::files::token_hash("bench-admin"),
    ));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(serve(
        listener,
        SYNC_EDGE,
        sync_router(state),
        None,
        async {
            let _ = stop_rx.await;
        },
    ));

    // The register: rules and members imported, then the queued morning.
    let db = dir.path().join("agent.db");
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz");
    let store = Store::open(StoreOptions::new(&db, TERMINAL, tz.clone())).expect("store");
    let members: MembersSnapshot = serde_json::from_value(members_json()).expect("members");
    runtime
        .block_on(store.import(
            Some(Bundle::parse(BUNDLE, Format::Json).expect("bundle")),
            "bench",
            Some(members),
            None,
        ))
        .expect("import");
    runtime.block_on(store.close()).expect("close");
    let queued = entries(count);
    queue(&db, &queued);
    let store = Store::open(StoreOptions::new(&db, TERMINAL, tz)).expect("reopen store");

    let client = SyncClient::new(&ClientConfig::new(
        format!("http://{addr}"),
        Token::new(TOKEN).expect("token"),
    ))
    .expect("client");
    let mut idle = Vec::with_capacity(IDLE_SALES);
    for n in 0..IDLE_SALES {
        idle.push(runtime.block_on(timed_sale(&store, n)));
    }

    // Sales keep coming while the backlog drains.
    let selling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let seller = {
        let (store, selling) = (store.clone(), selling.clone());
        runtime.spawn(async move {
            let mut during = Vec::new();
            let mut n = IDLE_SALES;
            while selling.load(std::sync::atomic::Ordering::Relaxed) {
                during.push(timed_sale(&store, n).await);
                n += 1;
                tokio::time::sleep(Duration::from_millis(SALE_INTERVAL_MS)).await;
            }
            during
        })
    };
    let started = Instant::now();
    let mut synced = 0;
    loop {
        let summary = runtime
            .block_on(upload::drain(
                &store,
                &client,
                TERMINAL,
                &OwnHolds::default(),
            ))
            .expect("drain");
        synced += summary.synced;
        assert_eq!(summary.rejected, 0, "central verified every entry");
        if !summary.more {
            break;
        }
    }
    let drain_took = started.elapsed();
    selling.store(false, std::sync::atomic::Ordering::Relaxed);
    let during = runtime.block_on(seller).expect("seller task");
    // The sales made during the drain go up too.
    synced += runtime
        .block_on(upload::drain(
            &store,
            &client,
            TERMINAL,
            &OwnHolds::default(),
        ))
        .expect("final drain")
        .synced;
    let stats = runtime.block_on(store.stats()).expect("stats");
    assert_eq!(stats.unsynced_entries, 0, "entries left unsynced");
    assert_eq!(synced, stats.ledger_entries, "every entry synced once");

    let bare_took = bare_sqlite(dir.path(), &queued);
    println!(
        "sync_drain: {count} entries, batches of 1,000, loopback central (in-process, SQLite)"
    );
    println!(
        "  drain (register -> central, settled): {:>8.2} s  {:>8} entries/s",
        drain_took.as_secs_f64(),
        rate(count, drain_took)
    );
    println!(
        "  bare SQLite insert at central:        {:>8.2} s  {:>8} entries/s",
        bare_took.as_secs_f64(),
        rate(count, bare_took)
    );
    println!("  sale commits, idle:         {}", percentiles(idle));
    println!("  sale commits, during drain: {}", percentiles(during));
    println!(
        "  goal: catch-up within {GOAL_SECS} s: {}",
        if drain_took <= Duration::from_secs(GOAL_SECS) {
            "met"
        } else {
            "MISSED"
        }
    );

    let _ = stop_tx.send(());
    let _ = runtime.block_on(server);
    runtime.block_on(store.close()).expect("close store");
}
