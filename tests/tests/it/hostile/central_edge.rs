//! Central's edge under attack, on the real binary: hundreds of slow
//! connections, unauthenticated bodies, a trickled body, the admin API on
//! its own listener.
//!
//! The attackers connect from 127.0.0.2 (any 127/8 address is loopback on
//! Linux), the terminal from 127.0.0.1: two client addresses, as a store
//! and an attacker on the internet would be.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pos_sync::protocol::{BatchOutcome, EntryResult, UploadBatch};
use pos_sync::testing::Chain;
use pos_sync::{ClientConfig, SyncClient, Token};
use pos_testkit::central_proc::Central;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{exchange, host_port, parse, request};

const TERMINAL: &str = "store-1-reg-1";
/// The attacker's address.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Slow connections: more than central's 512 connection slots and its 64
/// shedding ones together, few enough for a 2-core CI machine.
const SLOW_CONNECTIONS: usize = 600;
/// How long the terminal uploads under attack: three header timeouts, so
/// the attackers' connections are closed and reopened meanwhile.
const ATTACK_FOR: Duration = Duration::from_secs(15);
/// The issue's bound on a terminal's upload under attack.
const UPLOAD_ANSWERED_WITHIN: Duration = Duration::from_secs(1);
/// Unauthenticated connections sending big bodies.
const BODY_ATTACKERS: usize = 20;
/// The issue's bound on central's memory growth under that attack.
const RSS_GROWTH_MAX_KIB: u64 = 50 * 1_024;
const RULES: &str =
    r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;

fn addr(url: &str) -> SocketAddr {
    host_port(url).parse().unwrap()
}

/// A connection from `from` to `to`.
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// One slow client, until `stop`: opens a connection and sends a request
/// head one byte a second (or, when `silent`, nothing), and when central
/// closes it, opens the next.
async fn slow_client(to: SocketAddr, silent: bool, stop: Arc<AtomicBool>) {
    let head = b"POST /v1/sync/upload HTTP/1.1\r\nhost: central\r\ncontent-length: 100\r\n\r\n";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = connect_from(ATTACKER, to).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        for byte in head {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let sent = if silent {
                // Still notice a close: a read ends when central closes.
                let mut one = [0u8; 1];
                tokio::time::timeout(Duration::from_secs(1), stream.read(&mut one))
                    .await
                    .is_err()
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                stream.write_all(&[*byte]).await.is_ok()
            };
            if !sent {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn terminal_client(central: &Central, token: &str) -> SyncClient {
    let mut config = ClientConfig::new(central.url.clone(), Token::new(token).unwrap());
    config.request_timeout_ms = 10_000;
    SyncClient::new(&config).unwrap()
}

/// Ignored in the parallel run: its bound is the issue's 1 s, and on a
/// 2-core machine sharing the CPU with every other test an honest upload can
/// take longer for reasons that are not central's (1.25 s seen once). `.ci/run`
/// runs it alone, with `--ignored`, right after the whole suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing bound: run alone by .ci/run (cargo test -p pos-tests --test it hostile::central_edge -- --ignored)"]
async fn a_terminals_upload_is_answered_within_a_second_during_a_slow_connection_attack() {
    let central = Central::start_insecure().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let rules = central.dir().join("rules-v1.json");
    std::fs::write(&rules, RULES).unwrap();
    central.publish_rules(&rules).unwrap();
    let target = addr(&central.url);
    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..SLOW_CONNECTIONS)
        .map(|i| tokio::spawn(slow_client(target, i % 2 == 1, stop.clone())))
        .collect();
    // Let the attack take hold before the terminal starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut chain = Chain::new(TERMINAL);
    let mut slowest = Duration::ZERO;
    let mut uploads = 0;
    let started = Instant::now();
    while started.elapsed() < ATTACK_FOR {
        // A fresh client each time: a new connection through the accept
        // queue the attackers crowd, not one kept alive from before.
        let client = terminal_client(&central, &token);
        let entry = chain.earn("M-1", 1);
        let batch = UploadBatch {
            terminal_id: TERMINAL.into(),
            first_seq: entry.seq,
            // The sale it belongs to, as an honest register sends it
            // (protocol v2: central re-derives the point from it).
            documents: pos_sync::testing::documents_for(std::slice::from_ref(&entry)),
            entries: vec![entry],
        };
        let sent = Instant::now();
        let answer = client.upload(&batch).await;
        let took = sent.elapsed();
        let answer =
            answer.unwrap_or_else(|e| panic!("upload {uploads} failed after {took:?}: {e}"));
        assert_eq!(
            answer.outcome,
            BatchOutcome::Entries(vec![EntryResult::Applied])
        );
        assert!(
            took < UPLOAD_ANSWERED_WITHIN,
            "upload {uploads} took {took:?} under attack"
        );
        slowest = slowest.max(took);
        uploads += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for attacker in attackers {
        attacker.abort();
    }
    // The figure for the closing note.
    eprintln!(
        "slow-connection attack ({SLOW_CONNECTIONS} connections): {uploads} uploads, slowest {} ms",
        slowest.as_millis()
    );
}

/// Central's resident memory, from `/proc/PID/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends a `path` request announcing a body just under 64 MiB with a wrong
/// token, as much of the body as central takes, then stalls (keeps the
/// connection open) until dropped.
async fn stalled_big_body(to: SocketAddr, path: &'static str) -> TcpStream {
    let mut stream = connect_from(ATTACKER, to).await.unwrap();
    let size = 64 * 1_048_576 - 1;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: central\r\nauthorization: Bearer not-a-token\r\npos-sync-protocol: 2\r\ncontent-type: text/csv\r\ncontent-length: {size}\r\n\r\n"
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let chunk = vec![b'x'; 1_048_576];
    let mut sent = 0;
    while sent < size {
        let n = chunk.len().min(size - sent);
        match tokio::time::timeout(Duration::from_secs(2), stream.write_all(&chunk[..n])).await {
            Ok(Ok(())) => sent += n,
            // Central stopped reading (or closed): stall here.
            _ => break,
        }
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_do_not_grow_centrals_memory() {
    let central = Central::start_insecure().unwrap();
    let pid = central.pid().unwrap();
    let before = rss_kib(pid);
    let sync = addr(&central.url);
    let admin = addr(&central.admin_url);
    let attacks = (0..BODY_ATTACKERS).map(|i| {
        // Half at the snapshot route (64 MiB limit) of the admin listener,
        // half at the sync listener.
        let (to, path) = if i % 2 == 0 {
            (admin, "/v1/admin/members")
        } else {
            (sync, "/v1/sync/upload")
        };
        tokio::spawn(stalled_big_body(to, path))
    });
    let mut stalled = Vec::new();
    for attack in attacks {
        stalled.push(attack.await.unwrap());
    }
    // Every attacker has sent what central would take and now stalls.
    let during = rss_kib(pid);
    let growth = during.saturating_sub(before);
    eprintln!(
        "unauthenticated-body attack ({BODY_ATTACKERS} connections): VmRSS {before} KiB -> {during} KiB (+{growth} KiB)"
    );
    assert!(
        growth < RSS_GROWTH_MAX_KIB,
        "central grew by {growth} KiB under the attack"
    );
    drop(stalled);
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_with_408() {
    let central = Central::start_insecure().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let mut stream = TcpStream::connect(host_port(&central.url)).await.unwrap();
    let head = format!(
        "POST /v1/sync/upload HTTP/1.1\r\nhost: central\r\nauthorization: Bearer {token}\r\npos-sync-protocol: 2\r\ncontent-type: application/x-postcard\r\ncontent-length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // One byte every half second, far below the minimum rate.
    let trickle = tokio::spawn(async move {
        loop {
            if write.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut bytes = Vec::new();
    let cut_off = tokio::time::timeout(super::EXCHANGE_TIMEOUT, read.read_to_end(&mut bytes)).await;
    trickle.abort();
    assert!(cut_off.is_ok(), "the trickled body was never cut off");
    let answer = parse(&bytes);
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "timeout");
}

#[tokio::test]
async fn the_admin_api_has_its_own_listener() {
    let central = Central::start_insecure().unwrap();
    let admin_token = std::fs::read_to_string(central.dir().join("admin.token")).unwrap();
    let bearer = format!("Bearer {}", admin_token.trim());
    let terminals = request(
        "GET",
        "/v1/admin/terminals",
        &[("authorization", &bearer)],
        b"",
    );
    let on_sync = exchange(
        TcpStream::connect(host_port(&central.url)).await.unwrap(),
        &terminals,
    )
    .await;
    assert_eq!(on_sync.status, 404, "{on_sync:?}");
    let on_admin = exchange(
        TcpStream::connect(host_port(&central.admin_url))
            .await
            .unwrap(),
        &terminals,
    )
    .await;
    assert_eq!(on_admin.status, 200, "{on_admin:?}");
    assert!(on_admin.body["terminals"].is_array());
    assert!(addr(&central.admin_url).ip().is_loopback());
}
