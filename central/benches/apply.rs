//! How fast central applies register ledgers (issue 4 goal: a register's
//! catch-up of 100,000 entries, 100 batches of 1,000, in under 20 s on
//! 2 cores).
//!
//! - `apply/batch_1000`: one batch of 1,000 entries through the `Storage`
//!   trait into an on-disk SQLite database (WAL, synchronous=FULL), each
//!   entry's points re-derived from its sale document under the published
//!   bundle (protocol v2, `docs/sync-v2.md` §3).
//! - `apply/batch_1000_postgres`: the same into a fresh database on a
//!   PostgreSQL server the bench starts (pos-testkit, `fsync=on`,
//!   `synchronous_commit=on`: as durable as the SQLite figure); skipped
//!   with a message where PostgreSQL is not installed.
//! - `catch_up/100k_storage`: 100 batches into a fresh database.
//! - `catch_up/100k_https`: the same through the real HTTP stack: the
//!   `pos-sync` client over TLS to an in-process central on loopback,
//!   postcard encoding and decoding included.
//!
//! `cargo bench -p pos-central --bench apply` (add `-- catch_up` for only
//! the 100k runs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use pos_central::files::{CentralDir, token_hash};
use pos_central::server::{self, AppState};
use pos_central::storage::{NewBundle, Storage};
use pos_central::{PgStorage, SqliteStorage};
use pos_sync::protocol::{BatchOutcome, BundleFormat, EntryResult, ReceivedBatch, UploadBatch};
use pos_sync::signing::sign_bundle;
use pos_sync::testing::{Chain, queued_earn, upload_batch};
use pos_sync::{ClientConfig, Digest32, LedgerEntry, SyncClient, Token, wire};
use rand::SeedableRng;

const TERMINAL: &str = "store-1-reg-1";
const BATCH_ENTRIES: usize = 1_000;
const CATCH_UP_BATCHES: usize = 100;
/// Distinct members the entries spread over (a store's regulars).
const MEMBERS: u64 = 5_000;

/// A register's chain, `count` queued earns from `first_seq` after `prev`.
fn chain(first_seq: u64, prev: Digest32, count: usize) -> Vec<LedgerEntry> {
    let mut chain = Chain::new(TERMINAL);
    chain.resume_after(first_seq - 1, prev);
    (0..count)
        .map(|i| {
            let seq = first_seq + i as u64;
            queued_earn(&mut chain, &format!("M-{}", seq * 7919 % MEMBERS))
        })
        .collect()
}

fn batches(count: usize) -> Vec<UploadBatch> {
    let entries = chain(1, Digest32::ZERO, count * BATCH_ENTRIES);
    entries
        .chunks(BATCH_ENTRIES)
        .map(|c| upload_batch(c.to_vec()))
        .collect()
}

fn received(batch: &UploadBatch) -> ReceivedBatch {
    wire::decode_upload(&wire::encode_upload(batch).expect("encode")).expect("decode")
}

fn fresh_storage(dir: &std::path::Path) -> SqliteStorage {
    let s = SqliteStorage::open(&dir.join("central.db")).expect("open");
    provision(&s);
    s
}

/// One terminal and program "main" published.
fn provision(s: &dyn Storage) {
    s.add_terminal(TERMINAL, token_hash("bench-token"))
        .expect("terminal");
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
    s.publish_bundle(
        NewBundle {
            signed: sign_bundle(
                &key,
                1,
                BundleFormat::Json,
                pos_sync::testing::bundle_json(1).into_bytes(),
            ),
            programs: vec!["main".into()],
        },
        jiff::Timestamp::now(),
    )
    .expect("bundle");
}

fn apply_all(storage: &dyn Storage, batches: &[ReceivedBatch]) {
    for b in batches {
        let answer = storage
            .apply_batch(b, jiff::Timestamp::now())
            .expect("apply");
        all_applied(&answer.outcome);
    }
}

/// Every entry applied: the figures are of verified intake, not of
/// rejections (`docs/sync-v2.md` §3 re-derives each entry's points).
fn all_applied(outcome: &BatchOutcome) {
    let BatchOutcome::Entries(results) = outcome else {
        panic!("batch not applied: {outcome:?}");
    };
    assert!(
        results.iter().all(|r| *r == EntryResult::Applied),
        "{:?}",
        results.iter().find(|r| **r != EntryResult::Applied)
    );
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.bench_function("batch_1000", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = fresh_storage(dir.path());
            let batches: Vec<ReceivedBatch> =
                batches(iters as usize).iter().map(received).collect();
            let start = Instant::now();
            apply_all(&storage, &batches);
            start.elapsed()
        })
    });
    match pos_testkit::postgres::PgServer::start(pos_testkit::postgres::Durability::Fsync) {
        Ok(server) => {
            group.bench_function("batch_1000_postgres", |b| {
                b.iter_custom(|iters| {
                    let url = server.create_database("bench").expect("database");
                    let storage = PgStorage::open(&url, 4).expect("open");
                    provision(&storage);
                    let batches: Vec<ReceivedBatch> =
                        batches(iters as usize).iter().map(received).collect();
                    let start = Instant::now();
                    apply_all(&storage, &batches);
                    start.elapsed()
                })
            });
        }
        Err(e) => eprintln!("apply/batch_1000_postgres SKIPPED: {e:#}"),
    }
    group.finish();
}

fn bench_catch_up(c: &mut Criterion) {
    let mut group = c.benchmark_group("catch_up");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    let all = batches(CATCH_UP_BATCHES);

    let decoded: Vec<ReceivedBatch> = all.iter().map(received).collect();
    group.bench_function("100k_storage", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let storage = fresh_storage(dir.path());
                let start = Instant::now();
                apply_all(&storage, &decoded);
                total += start.elapsed();
            }
            total
        })
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    group.bench_function("100k_https", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("tempdir");
                let central = CentralDir::new(dir.path());
                central.init(&[]).expect("init");
                let storage = fresh_storage(dir.path());
                let state = Arc::new(AppState::new(
                    Arc::new(storage),
                    central.signing_key().expect("key"),
                    [0; 32],
                ));
                let tls = central.tls_server_config().expect("tls");
                total += runtime.block_on(async {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let addr = listener.local_addr().expect("addr");
                    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                    let serving = tokio::spawn(server::serve(
                        listener,
                        server::SYNC_EDGE,
                        server::sync_router(state),
                        Some(tls),
                        async {
                            let _ = stopped.await;
                        },
                    ));
                    let mut config = ClientConfig::new(
                        format!("https://{addr}"),
                        Token::new("bench-token").expect("token"),
                    );
                    config.ca_file = Some(central.ca_path());
                    let client = SyncClient::new(&config).expect("client");
                    let start = Instant::now();
                    for batch in &all {
                        let answer = client.upload(batch).await.expect("upload");
                        all_applied(&answer.outcome);
                    }
                    let elapsed = start.elapsed();
                    let _ = stop.send(());
                    let _ = serving.await;
                    elapsed
                });
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench_batch, bench_catch_up);
criterion_main!(benches);
