//! Durable sale commits per second, three ways, in the same run:
//!
//! - `bare_rusqlite`: the floor cost — the same rows a sale writes (sale,
//!   3 lines, 1 ledger entry), inserted and committed with the same pragmas
//!   (WAL, synchronous=FULL) on one connection. Bound by one fsync per commit.
//! - `store`: `Store::commit_sale` — the writer thread, member resolution,
//!   earned_today, the quote, the hash chain, the stored answer.
//! - `api_unix_socket`: `POST /v1/sales` over the Unix socket to an
//!   in-process daemon, one connection per request like a simple POS client;
//!   `api_unix_socket_keepalive`: the same on one kept-alive connection;
//!   `api_roundtrip_no_store`: a request that does not touch the store, the
//!   floor of what HTTP and the hand-offs between threads cost.
//!
//! Run: `cargo bench -p pos-agent --bench commit -- --warm-up-time 1 --measurement-time 5`.
//! Each iteration commits one new sale (fresh sale_id), so the database
//! grows during the run as it does in a shop.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pos_agent::api::client;
use pos_agent::daemon::{Daemon, DaemonOptions};
use pos_agent::model::{BasketLine, MemberRef, MembersSnapshot, SaleRequest};
use pos_agent::store::{Store, StoreOptions, schema};
use pos_points::{Bundle, Format};
use rust_decimal::Decimal;

const BUNDLE: &str = r#"{"version": 1, "programs": [
  {"id": "main", "currency": "EUR", "base_rate": "1",
   "tiers": [{"id": "gold", "multiplier": "1.5"}],
   "rules": [{"id": "double-shoes", "kind": "multiplier", "value": "2",
              "match": {"categories": ["shoes"]}}]}]}"#;

/// Members the sales rotate over: a shop serves many customers, and one
/// member with thousands of entries on one day is not what is measured.
const MEMBERS_COUNT: u64 = 1_000;

fn members() -> MembersSnapshot {
    let members = (0..MEMBERS_COUNT)
        .map(|i| {
            serde_json::from_value(serde_json::json!({
                "id": format!("M-{i}"), "cards": [format!("999{i:010}")],
                "programs": {"main": {"tier": "gold", "available": 1000, "pending": 0}}
            }))
            .expect("member")
        })
        .collect();
    MembersSnapshot { members }
}

fn lines() -> Vec<BasketLine> {
    let line = |n: u32, category: &str, price: &str| BasketLine {
        line: Some(n),
        sku: format!("40063813339{n:02}"),
        category: Some(category.into()),
        qty: Decimal::ONE,
        unit_price: price.parse().expect("price literal"),
        discount: Decimal::ZERO,
    };
    vec![
        line(1, "shoes", "59.99"),
        line(2, "socks", "4.99"),
        line(3, "food", "2.49"),
    ]
}

fn sale(id: u64) -> SaleRequest {
    SaleRequest {
        sale_id: format!("S-{id:012}"),
        time: "2026-11-28T11:05:00+01:00".into(),
        member: Some(MemberRef::Id(format!("M-{}", id % MEMBERS_COUNT))),
        lines: lines(),
        redeem: Vec::new(),
    }
}

fn options(dir: &std::path::Path) -> StoreOptions {
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz database");
    StoreOptions::new(dir.join("agent.db"), "bench-reg-1", tz)
}

async fn provisioned(dir: &std::path::Path) -> Store {
    let store = Store::open(options(dir)).expect("open store");
    store
        .import(
            Some(Bundle::parse(BUNDLE, Format::Json).expect("bundle")),
            "bench",
            Some(members()),
            None,
        )
        .await
        .expect("import");
    store
}

fn bare_rusqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // The real schema, created by the store, then closed: the bare loop
    // writes the same tables with a plain connection.
    rt.block_on(async {
        let store = provisioned(dir.path()).await;
        store.close().await.expect("close");
    });
    let mut conn = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
    schema::apply_pragmas(&conn, None).expect("pragmas");
    let request = serde_json::to_string(&sale(0)).expect("json");
    let answer = "x".repeat(600);
    let hash = [7u8; 32];
    let mut n: i64 = 0;
    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("S-{n:012}");
            let tx = conn.transaction().expect("begin");
            tx.prepare_cached(
                "INSERT INTO sales (sale_id, request, basket, member, rules_version, amount, answer, committed_at) \
                 VALUES (?1, ?2, ?2, 'M-1', 1, '67.47', ?3, '2026-11-28T11:05:00+01:00')",
            )
            .expect("prepare")
            .execute(rusqlite::params![id, request, answer])
            .expect("sale");
            for line in 1..=3 {
                tx.prepare_cached(
                    "INSERT INTO sale_lines (sale_id, line, sku, category, qty, unit_price, discount) \
                     VALUES (?1, ?2, 'sku', 'shoes', '1', '9.99', '0')",
                )
                .expect("prepare")
                .execute(rusqlite::params![id, line])
                .expect("line");
            }
            tx.prepare_cached(
                "INSERT INTO ledger (seq, entry_id, terminal_id, prev_hash, hash, kind, program, member, points, \
                 sale_id, rules_version, occurred_at, detail, local_date, created_unix_ms) \
                 VALUES (?1, ?2, 'bench-reg-1', ?3, ?3, 'earn', 'main', 'M-1', 130, ?4, 1, \
                 '2026-11-28T11:05:00+01:00', '{}', '2026-11-28', 0)",
            )
            .expect("prepare")
            .execute(rusqlite::params![n, uuid::Uuid::now_v7().to_string(), hash.as_slice(), id])
            .expect("entry");
            tx.commit().expect("commit");
        })
    });
    group.finish();
}

fn store_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(provisioned(dir.path()));
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("store", |b| {
        b.iter(|| {
            let id = next.fetch_add(1, Ordering::Relaxed);
            rt.block_on(store.commit_sale(sale(id))).expect("commit")
        })
    });
    // Throughput through the store: several callers at once, as the API's
    // connections and the session would be.
    group.bench_function(format!("store_{CLIENTS}_callers"), |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            rt.block_on(async {
                let callers: Vec<_> = shares(iters)
                    .map(|share| {
                        let (store, next) = (store.clone(), &next);
                        let first = next.fetch_add(share, Ordering::Relaxed);
                        tokio::spawn(async move {
                            for id in first..first + share {
                                store.commit_sale(sale(id)).await.expect("commit");
                            }
                        })
                    })
                    .collect();
                for caller in callers {
                    caller.await.expect("caller");
                }
            });
            started.elapsed()
        })
    });
    group.finish();
    rt.block_on(store.close()).expect("close");
}

fn api_unix_socket(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // The daemon on the runtime `pos-agent run` uses.
    let rt = pos_agent::daemon::runtime().expect("runtime");
    rt.block_on(async {
        let store = provisioned(dir.path()).await;
        store.close().await.expect("close");
    });
    let config_text = format!(
        "[terminal]\nid = \"bench-reg-1\"\nstore_id = \"bench\"\ntimezone = \"Europe/Berlin\"\n\n\
         [storage]\npath = {:?}\n\n[api]\nsocket = {:?}\n",
        dir.path().join("agent.db").display().to_string(),
        dir.path().join("api.sock").display().to_string(),
    );
    let config = pos_config::Config::parse(
        &config_text,
        &dir.path().join("agent.toml"),
        &pos_config::Env::default(),
    )
    .expect("bench config");
    let daemon = rt
        .block_on(Daemon::start(DaemonOptions::from_config(&config)))
        .expect("daemon starts");
    let socket = daemon.socket_path().to_path_buf();
    // The client gets its own single-thread runtime, as a POS application in
    // its own process would: sharing the daemon's runtime would add the
    // client's own task hand-offs to what is measured.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let next = AtomicU64::new(0);
    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(1));
    group.bench_function("api_unix_socket", |b| {
        b.iter(|| {
            let id = next.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::to_vec(&sale(id)).expect("json");
            let (status, answer) = client_rt
                .block_on(client::request(&socket, "POST", "/v1/sales", Some(body)))
                .expect("request");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        })
    });
    // The same, on one kept-alive connection, as a POS client that holds its
    // connection open would do: what remains is the HTTP and JSON cost only.
    let mut sender = client_rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .expect("connect");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(connection);
        sender
    });
    group.bench_function("api_unix_socket_keepalive", |b| {
        b.iter(|| {
            let id = next.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::to_vec(&sale(id)).expect("json");
            let request = hyper::Request::post("/v1/sales")
                .header(hyper::header::HOST, "localhost")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
                .expect("request");
            client_rt.block_on(async {
                sender.ready().await.expect("connection ready");
                let answer = sender.send_request(request).await.expect("send");
                let status = answer.status();
                let bytes = http_body_util::BodyExt::collect(answer.into_body())
                    .await
                    .expect("answer body")
                    .to_bytes();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            })
        })
    });
    // Not a commit: one request that touches no store (`GET /v1/session`),
    // the HTTP and thread wake-up cost that the API path adds to `store`.
    group.bench_function("api_roundtrip_no_store", |b| {
        b.iter(|| {
            let (status, _) = client_rt
                .block_on(client::request(&socket, "GET", "/v1/session", None))
                .expect("request");
            assert_eq!(status, 200);
        })
    });
    // Throughput: several clients at once, each committing sales one after
    // another on its own connection. The writer then always has the next
    // sale queued, so what is measured is the rate the agent sustains, not
    // one client's round-trip latency.
    group.bench_function(format!("api_unix_socket_{CLIENTS}_clients"), |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            std::thread::scope(|scope| {
                for share in shares(iters) {
                    let (socket, next) = (&socket, &next);
                    scope.spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("client runtime");
                        for _ in 0..share {
                            let id = next.fetch_add(1, Ordering::Relaxed);
                            let body = serde_json::to_vec(&sale(id)).expect("json");
                            let (status, answer) = rt
                                .block_on(client::request(socket, "POST", "/v1/sales", Some(body)))
                                .expect("request");
                            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    group.finish();
    drop(sender);
    rt.block_on(daemon.shutdown()).expect("shutdown");
}

/// Clients committing at once in the throughput rows: enough that one is
/// always waiting while the writer commits another's sale.
const CLIENTS: u64 = 4;

/// `iters` sales split between the [`CLIENTS`].
fn shares(iters: u64) -> impl Iterator<Item = u64> {
    (0..CLIENTS).map(move |i| iters / CLIENTS + u64::from(i < iters % CLIENTS))
}

criterion_group!(benches, bare_rusqlite, store_commit, api_unix_socket);
criterion_main!(benches);
