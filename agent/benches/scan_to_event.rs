//! Scan-to-event latency through the running agent: the time from writing one
//! scan (with its CR) on a pty master to receiving its `scan` event on
//! `GET /v1/events`, with the REAL `pos-agent run` binary reading the pty
//! slave as a `[[devices]]` entry. Each scan is decoded, looked up in the
//! catalog cache, added to the checkout (a `session` event first) and then
//! published: the whole path a POS waits for. Goal: p99 under 5 ms.
//!
//! Run: `cargo bench -p pos-agent --bench scan_to_event` (scans from
//! `SCAN_TO_EVENT_SCANS`, default 2000). Prints median, p99 and max.
//!
//! The binary is package `pos-agent-cli`'s, built (in this bench's profile)
//! and found by `pos_testkit::bins`.
//!
//! A plain `main` (no criterion): criterion reports means and confidence
//! intervals, the goal is a percentile.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

const SCANS_DEFAULT: usize = 2000;
/// Scans before measuring: warms the reader connections and statement caches.
const WARM_UP_SCANS: usize = 50;
/// Upper bound for anything that must happen; only stops a broken run.
const WAIT: Duration = Duration::from_secs(30);

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    sorted[index]
}

fn main() {
    let scans: usize = std::env::var("SCAN_TO_EVENT_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SCANS_DEFAULT)
        .max(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(scans));
}

/// Kills the agent when the bench ends, however it ends.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run(scans: usize) {
    let bin = pos_testkit::bins::path("pos-agent");
    let (mut master, slave) = SerialStream::pair().expect("a pty pair (needs /dev/ptmx)");
    let slave_path = PathBuf::from(slave.name().expect("the slave end has a name"));
    drop(slave);
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("api.sock");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[terminal]\nid = \"bench-reg\"\nstore_id = \"bench\"\ntimezone = \"Europe/Berlin\"\n\n\
             [storage]\npath = {db:?}\n\n[api]\nsocket = {socket:?}\n\n\
             [[devices]]\nname = \"bench\"\nkind = \"serial\"\npath = {slave:?}\n\
             suffix = \"\\r\"\ndedup_window_ms = 0\n\n[log]\nlevel = \"warn\"\n",
            db = dir.path().join("agent.db").display().to_string(),
            socket = socket.display().to_string(),
            slave = slave_path.display().to_string(),
        ),
    )
    .expect("write config");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        r#"{"products": [
            {"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"},
            {"sku": "GROC-1", "name": "Oat milk", "category": "groceries", "price": "2.50"}
        ]}"#,
    )
    .expect("write catalog");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rules.json");
    let import = Command::new(&bin)
        .args(["import", "--rules", rules, "--catalog"])
        .arg(&catalog)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run pos-agent import");
    assert!(
        import.status.success(),
        "import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let _agent = Agent(
        Command::new(&bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pos-agent run"),
    );
    wait_device_up(&socket).await;
    let mut events = Events::open(&socket).await;

    let mut latencies = Vec::with_capacity(scans);
    for i in 0..WARM_UP_SCANS + scans {
        // Alternate an EAN-13 and a Code 128 shelf code: two lookups, two lines.
        let (scan, sku): (&[u8], &str) = if i % 2 == 0 {
            (b"]E04006381333931\r", "4006381333931")
        } else {
            (b"]C0GROC-1\r", "GROC-1")
        };
        let start = Instant::now();
        master.write_all(scan).await.expect("write to the pty");
        let data = events.next_scan().await;
        let elapsed = start.elapsed();
        assert!(
            data.contains("\"line_added\"") && data.contains(&format!("\"sku\":\"{sku}\"")),
            "the scan added a line of {sku}: {data}"
        );
        if i >= WARM_UP_SCANS {
            latencies.push(elapsed);
        }
        // A fresh checkout now and then keeps the line quantities in bounds.
        if i % 1000 == 999 {
            request(&socket, "POST", "/v1/session/clear").await;
        }
    }
    latencies.sort();
    println!(
        "scan_to_event: {scans} scans through pos-agent (pty write -> SSE scan event): \
         median {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 500),
        percentile(&latencies, 990),
        latencies[latencies.len() - 1]
    );
}

async fn wait_device_up(socket: &Path) {
    let deadline = Instant::now() + WAIT;
    loop {
        if socket.exists() {
            let (status, body) = request(socket, "GET", "/v1/health").await;
            if status == 200 && body.contains("\"state\":\"up\"") {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the device did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One request on a fresh connection; status and body text.
async fn request(socket: &Path, method: &str, path: &str) -> (u16, String) {
    let Ok(stream) = tokio::net::UnixStream::connect(socket).await else {
        return (0, String::new());
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let answer = sender.send_request(request).await.expect("an answer");
    let status = answer.status().as_u16();
    let body = answer
        .into_body()
        .collect()
        .await
        .expect("the answer body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// An open `GET /v1/events` stream.
struct Events {
    body: Incoming,
    pending: Vec<u8>,
}

impl Events {
    async fn open(socket: &Path) -> Events {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        let request = hyper::Request::builder()
            .uri("/v1/events")
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let answer = sender.send_request(request).await.expect("an answer");
        assert_eq!(answer.status(), 200);
        Events {
            body: answer.into_body(),
            pending: Vec::new(),
        }
    }

    /// The data of the next `scan` event (other events skipped).
    async fn next_scan(&mut self) -> String {
        loop {
            while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                if text.lines().any(|l| l == "event: scan") {
                    return text
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .collect();
                }
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event in time")
                .expect("the stream is open")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                self.pending.extend_from_slice(&data);
            }
        }
    }
}
