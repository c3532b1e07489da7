//! Shared helpers of the API tests: the test data, provisioning through the
//! store library, and a panicking face on `pos_testkit::agent_proc` (the
//! one harness for the REAL `pos-agent run` binary), so a test reads as
//! its assertions.

#![allow(dead_code)] // each test file uses a different part of this module

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use pos_agent::model::{CatalogSnapshot, MembersSnapshot};
use pos_agent::store::{Store, StoreOptions};
use pos_testkit::agent_proc::{AgentDir, AgentProc};
use serde_json::{Value, json};

pub use pos_testkit::agent_proc::request_with as try_request;

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

/// A register's directory: config, database and socket in a tempdir
/// (`pos_testkit`'s [`AgentDir`], whose fields it shows).
pub struct Register {
    pub dir: AgentDir,
}

impl Deref for Register {
    type Target = AgentDir;
    fn deref(&self) -> &AgentDir {
        &self.dir
    }
}

impl Register {
    /// A standalone register; `api_extra` is appended to its `[api]` table.
    pub fn new(api_extra: &str) -> Register {
        Register {
            dir: AgentDir::with_extra_toml(api_extra).expect("create the register's directory"),
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
        self.dir.write_file(name, text).expect("write file")
    }

    /// Starts `pos-agent run` and waits until `/v1/health` answers 200.
    pub async fn start(&self) -> Agent {
        let proc = self.dir.start().await.unwrap_or_else(|e| panic!("{e:#}"));
        Agent { proc }
    }

    /// Runs `pos-agent ARGS` to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        self.dir.run_cli(&args).expect("run pos-agent")
    }
}

/// A running `pos-agent run` (`pos_testkit`'s [`AgentProc`]); killed on drop.
pub struct Agent {
    proc: AgentProc,
}

impl Deref for Agent {
    type Target = AgentProc;
    fn deref(&self) -> &AgentProc {
        &self.proc
    }
}

impl Agent {
    pub fn stderr(&mut self) -> String {
        self.proc.take_stderr()
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM")
    }

    /// Sends `SIG<name>` and waits for the exit.
    pub fn signal(&mut self, name: &str) -> ExitStatus {
        let signal: nix::sys::signal::Signal = format!("SIG{name}")
            .parse()
            .unwrap_or_else(|_| panic!("unknown signal {name}"));
        self.proc.signal(signal).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Any request; `content_type` `None` sends none.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, Vec<u8>) {
        try_request(self.socket(), method, path, content_type, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
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

/// Opens `GET /v1/events` and gives a receiver of raw SSE text chunks.
pub async fn open_events(socket: &Path) -> tokio::sync::mpsc::Receiver<String> {
    pos_testkit::agent_proc::open_events(socket)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}
