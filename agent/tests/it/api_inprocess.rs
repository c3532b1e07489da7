//! Several agents in one process (as the demo and end-to-end tests host
//! registers beside a central): each `Daemon` owns its store, metrics and
//! socket, nothing is global, and each shuts down on its own.

use std::time::Duration;

use crate::common::Register;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pos_agent::daemon::{Daemon, DaemonOptions};
use serde_json::{Value, json};

/// The TCP API's token in these tests.
const TCP_TOKEN: &str = "test-tcp-token";

async fn tcp_get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect TCP");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .uri(path)
        .header("host", "localhost")
        // Since issue 10 the TCP listener asks for the bearer token.
        .header("authorization", format!("Bearer {TCP_TOKEN}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let answer = sender.send_request(request).await.expect("send");
    let status = answer.status().as_u16();
    let bytes = answer.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON"))
}

fn options(reg: &Register, listen: Option<&str>) -> DaemonOptions {
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz");
    let mut store = pos_agent::store::StoreOptions::new(&reg.db, "store-1-reg-1", tz.clone());
    store.member_fresh_secs = 300;
    DaemonOptions {
        store,
        socket: reg.socket.clone(),
        listen: listen.map(|a| a.parse().expect("addr")),
        tcp_token: listen.map(|_| secrecy::SecretString::from(TCP_TOKEN)),
        tcp_hosts: pos_config::LOOPBACK_HOSTS
            .iter()
            .map(|h| h.to_string())
            .collect(),
        health: pos_config::Health::default(),
        max_body_bytes: 64 * 1024,
        time_zone: tz,
        sync: pos_agent::health::SyncMode::Off,
        central: None,
        devices: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_registers_in_one_process_keep_their_own_state_and_stop_independently() {
    let a = Register::new("");
    let b = Register::new("");
    a.provision(0).await;
    b.provision(0).await;
    let agent_a = Daemon::start(options(&a, Some("127.0.0.1:0")))
        .await
        .expect("start a");
    let agent_b = Daemon::start(options(&b, None)).await.expect("start b");
    let addr = agent_a.tcp_addr().expect("a listens on TCP");
    assert!(agent_b.tcp_addr().is_none());

    let sale = json!({"sale_id": "S-A", "time": "2026-11-28T11:05:00+01:00", "member": {"id": "M-1001"},
                      "lines": [{"sku": "GROC-1", "qty": "4", "unit_price": "2.50"}]});
    let (status, body) = crate::common::try_request(
        agent_a.socket_path(),
        "POST",
        "/v1/sales",
        Some("application/json"),
        Some(sale.to_string().into_bytes()),
    )
    .await
    .expect("request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // The sale is visible on A (also over TCP) and not on B.
    let (status, _) = tcp_get(addr, "/v1/sales/S-A").await;
    assert_eq!(status, 200);
    let (status, _) =
        crate::common::try_request(agent_b.socket_path(), "GET", "/v1/sales/S-A", None, None)
            .await
            .expect("request");
    assert_eq!(status, 404);
    assert!(agent_a.health().await.outbox_depth > 0);
    assert_eq!(agent_b.health().await.outbox_depth, 0);

    // Metrics are per instance: only A counted the sale request.
    let count = |m: &pos_agent::metrics::Metrics| {
        m.render(None)
            .lines()
            .filter(|l| l.starts_with("pos_agent_http_requests_total{route=\"/v1/sales\""))
            .count()
    };
    assert_eq!(count(agent_a.metrics()), 1);
    assert_eq!(count(agent_b.metrics()), 0);

    // Stopping A leaves B serving, and removes only A's socket.
    let socket_a = agent_a.socket_path().to_path_buf();
    tokio::time::timeout(Duration::from_secs(30), agent_a.shutdown())
        .await
        .expect("A stops in time")
        .expect("A stops cleanly");
    assert!(!socket_a.exists());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "A's TCP port is closed"
    );
    let (status, _) =
        crate::common::try_request(agent_b.socket_path(), "GET", "/v1/health", None, None)
            .await
            .expect("B still answers");
    assert_eq!(status, 200);
    agent_b.shutdown().await.expect("B stops cleanly");

    // A's store was closed cleanly and holds the sale.
    let report = pos_agent::store::verify_file(&a.db).expect("verify");
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let reg = Register::new("");
    reg.provision(0).await;
    let daemon = Daemon::start(options(&reg, None)).await.expect("start");
    let mut events = crate::common::open_events(daemon.socket_path()).await;
    let (status, _) = crate::common::try_request(
        daemon.socket_path(),
        "POST",
        "/v1/session/start",
        Some("application/json"),
        Some(b"{}".to_vec()),
    )
    .await
    .expect("request");
    assert_eq!(status, 200);
    let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event")
        .expect("stream open");
    assert!(first.contains("event: session"), "{first}");
    tokio::time::timeout(Duration::from_secs(30), daemon.shutdown())
        .await
        .expect("shutdown is not held up by the stream")
        .expect("clean");
    // The stream ended with the agent.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream did not end at shutdown");
}
