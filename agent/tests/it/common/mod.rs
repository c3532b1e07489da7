//! Shared helpers of the API tests: a register directory with its config,
//! provisioning through the store library, the REAL `pos-agent run`
//! binary, and an HTTP/1.1 client over its Unix socket.
//!
//! (A small copy of the idea of `tests/src/agent_proc.rs`, kept here so the
//! agent package's tests can send raw requests with any content type. The
//! binary is another package's, `pos-agent-cli`: [`bin`] builds and finds
//! it.)

#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pos_agent::model::{CatalogSnapshot, MembersSnapshot};
use pos_agent::store::{Store, StoreOptions};
use serde_json::{Value, json};

/// The `pos-agent` binary (package `pos-agent-cli`), built once per test process.
pub fn bin() -> PathBuf {
    pos_tests::bins::path("pos-agent")
}
/// Generous: debug builds on a loaded 2-core machine start slowly.
pub const START_TIMEOUT_MS: u64 = 30_000;
pub const STOP_TIMEOUT_MS: u64 = 20_000;
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;

/// A rules bundle with a redeemable program (`main`) and one without
/// redemption (`plain`).
pub fn bundle_json() -> Value {
    json!({
        "version": 3,
        "programs": [
            {"id": "main", "currency": "EUR", "base_rate": "1", "rounding": "floor",
             "exclude_categories": ["gift_card"],
             "tiers": [{"id": "gold", "multiplier": "1.5"}],
             "rules": [{"id": "double-shoes", "kind": "multiplier", "value": "2",
                        "match": {"categories": ["shoes"]}}],
             "redeem": {"points_per_unit": 100, "min_points": 500, "step": 100,
                        "max_share": "0.5", "offline_allowance": 2000}},
            {"id": "plain", "currency": "EUR", "base_rate": "2", "rounding": "floor"}
        ]
    })
}

pub fn members_json() -> Value {
    json!({"members": [
        {"id": "M-1001", "cards": ["9990000010013"], "birthday": "1990-11-03", "blocked": false,
         "programs": {"main": {"tier": "gold", "available": 1500, "pending": 0},
                      "plain": {"available": 300, "pending": 0}}},
        {"id": "M-2002", "cards": ["9990000020029"], "blocked": true,
         "programs": {"main": {"available": 5000, "pending": 0}}},
        {"id": "M-3003", "blocked": false,
         "programs": {"main": {"available": 600, "pending": 0}}},
        {"id": "M-4004", "blocked": false,
         "programs": {"main": {"available": 9000, "pending": 0}}}
    ]})
}

pub fn catalog_json() -> Value {
    json!({"products": [
        {"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"},
        {"sku": "GROC-1", "name": "Oat milk", "category": "groceries", "price": "2.50"},
        {"sku": "GIFT-25", "name": "Gift card 25", "category": "gift_card", "price": "25.00"}
    ]})
}

/// A register's directory: config, database and socket in a tempdir.
pub struct Register {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
    pub socket: PathBuf,
}

impl Register {
    /// A standalone register; `api_extra` is appended to its `[api]` table.
    pub fn new(api_extra: &str) -> Register {
        let dir = tempfile::Builder::new()
            .prefix("pos-api-test-")
            .tempdir()
            .expect("create tempdir");
        let config = dir.path().join("agent.toml");
        let db = dir.path().join("agent.db");
        let socket = dir.path().join("api.sock");
        let text = format!(
            "[terminal]\nid = \"store-1-reg-1\"\nstore_id = \"store-1\"\ntimezone = \"Europe/Berlin\"\n\n\
             [storage]\npath = {db:?}\n\n[api]\nsocket = {socket:?}\n{api_extra}\n",
            db = db.display().to_string(),
            socket = socket.display().to_string(),
        );
        std::fs::write(&config, text).expect("write config");
        Register {
            dir,
            config,
            db,
            socket,
        }
    }

    /// Loads the test bundle, members and catalog through the store
    /// library. `members_age_secs` backdates the member import (stale
    /// member data for offline-allowance tests).
    pub async fn provision(&self, members_age_secs: i64) {
        let mut options = StoreOptions::new(
            &self.db,
            "store-1-reg-1",
            jiff::tz::TimeZone::get("Europe/Berlin").expect("tz"),
        );
        let age = jiff::SignedDuration::from_secs(members_age_secs);
        options.clock = std::sync::Arc::new(move || jiff::Timestamp::now() - age);
        let store = tokio::task::spawn_blocking(move || Store::open(options))
            .await
            .expect("open task")
            .expect("open store");
        let bundle =
            pos_points::Bundle::parse(&bundle_json().to_string(), pos_points::Format::Json)
                .expect("test bundle is valid");
        let members: MembersSnapshot = serde_json::from_value(members_json()).expect("members");
        let catalog: CatalogSnapshot = serde_json::from_value(catalog_json()).expect("catalog");
        store
            .import(Some(bundle), "test", Some(members), Some(catalog))
            .await
            .expect("import");
        store.close().await.expect("close store");
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// Starts `pos-agent run` and waits until `/v1/health` answers 200.
    pub async fn start(&self) -> Agent {
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pos-agent run");
        let mut agent = Agent {
            child,
            socket: self.socket.clone(),
        };
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = agent.child.try_wait().expect("poll child") {
                panic!("pos-agent run exited early ({status}): {}", agent.stderr());
            }
            if agent.socket.exists()
                && let Ok((200, _)) =
                    try_request(&agent.socket, "GET", "/v1/health", None, None).await
            {
                return agent;
            }
            assert!(Instant::now() < deadline, "pos-agent did not start: {}", {
                let _ = agent.child.kill();
                agent.stderr()
            });
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `pos-agent ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pos-agent")
    }
}

/// A running `pos-agent run`; killed on drop.
pub struct Agent {
    pub child: Child,
    pub socket: PathBuf,
}

impl Agent {
    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        text
    }

    /// SIGTERM and wait for the exit (killing after [`STOP_TIMEOUT_MS`]).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM")
    }

    /// Sends `SIG<name>` and waits for the exit (killing after
    /// [`STOP_TIMEOUT_MS`]).
    pub fn signal(&mut self, name: &str) -> ExitStatus {
        let signal: nix::sys::signal::Signal = format!("SIG{name}")
            .parse()
            .unwrap_or_else(|_| panic!("unknown signal {name}"));
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{name}: {e}"));
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pos-agent did not stop within {STOP_TIMEOUT_MS} ms of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Any request; `content_type` `None` sends none.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Vec<u8>) {
        try_request(&self.socket, method, path, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A request whose answer must be JSON; gives status and value.
    pub async fn json(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let ct = body.map(|_| "application/json");
        let (status, answer) = self.raw(method, path, ct, bytes).await;
        let value = serde_json::from_slice(&answer).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: answer {status} is not JSON ({e}): {}",
                String::from_utf8_lossy(&answer)
            )
        });
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.json("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.json("POST", path, Some(body)).await
    }

    /// The whole ledger as JSON rows.
    pub async fn ledger(&self) -> Vec<Value> {
        let (status, page) = self.get("/v1/ledger?from_seq=1&limit=1000").await;
        assert_eq!(status, 200, "{page}");
        page["entries"].as_array().expect("entries").clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Asserts the API error shape and code; gives the message.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!(status, want_status, "status for {body}");
    let error = &body["error"];
    assert_eq!(error["code"], want_code, "code in {body}");
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("message in {body}"));
    assert!(!message.is_empty(), "empty message in {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only `error` in {body}"
    );
    message.to_string()
}

/// One request on a fresh connection (the agent's own client, with the
/// tests' longer timeout).
pub async fn try_request(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>), String> {
    pos_agent::api::client::request_with(
        socket,
        method,
        path,
        content_type,
        body,
        REQUEST_TIMEOUT_MS,
    )
    .await
    .map(|(status, bytes)| (status, bytes.to_vec()))
    .map_err(|e| e.to_string())
}

/// Opens `GET /v1/events` and gives a receiver of raw SSE text chunks.
pub async fn open_events(socket: &Path) -> tokio::sync::mpsc::Receiver<String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .uri("/v1/events")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let answer = sender.send_request(request).await.expect("send");
    assert_eq!(answer.status(), 200);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut body = answer.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx
                    .send(String::from_utf8_lossy(&data).into_owned())
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    rx
}
