//! Attacks on the real binaries, one file per attack family, each showing
//! the defence held (and written so that it fails if the defence goes).

mod bodies;
mod card_guard;
mod central_edge;
mod central_files;
mod conflict_flood;
mod health;
mod import_stall;
mod local_api;
mod sync_client;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use pos_testkit::agent_proc::AgentDir;
use serde_json::{Value, json};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest a raw exchange in these tests may take before it counts as hung.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer as read off the wire: status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: serde_json::Value,
    /// The body as sent (its size is part of some checks).
    pub raw_body: Vec<u8>,
}

/// Sends `request` (head and body, all of it, before reading anything, as
/// Python's `http.client` does) and reads everything until the server
/// closes. Panics when the exchange fails: a reset is what these tests
/// guard against.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Answer {
    let exchange = async {
        stream
            .write_all(request)
            .await
            .expect("the whole request is accepted, not reset");
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .await
            .expect("the answer is read, not reset");
        bytes
    };
    let bytes = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .expect("answered in time");
    parse(&bytes)
}

/// Splits an HTTP/1.1 answer (with a `content-length` body).
pub fn parse(bytes: &[u8]) -> Answer {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let raw_body = bytes[end + 4..].to_vec();
    let body = serde_json::from_slice(&raw_body).unwrap_or_else(|e| {
        panic!(
            "answer {status} is not JSON ({e}): {head}\r\n\r\n{}",
            String::from_utf8_lossy(&raw_body)
        )
    });
    Answer {
        status,
        head,
        body,
        raw_body,
    }
}

/// A request with `connection: close`, its head lines and body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The `host:port` of a base URL.
pub fn host_port(url: &str) -> &str {
    url.split("://").nth(1).unwrap_or(url)
}

// --- the register's attacks (local API, health, sync client) ---

/// One program, redeemable: 100 points pay 1 EUR.
pub const RULES: &str = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "1", "offline_allowance": 100000}}]}"#;
/// M-1 holds 1,000 points.
pub const MEMBERS: &str = r#"{"members": [{"id": "M-1", "cards": [],
  "programs": {"main": {"available": 1000, "pending": 0}}}]}"#;

/// A standalone register with RULES and MEMBERS imported; `extra` as
/// [`AgentDir::with_extra_toml`].
pub fn sellable(extra: &str) -> Result<AgentDir> {
    let dir = AgentDir::with_extra_toml(extra)?;
    let rules = dir.write_file("rules.json", RULES)?;
    let members = dir.write_file("members.json", MEMBERS)?;
    dir.import(&rules, Some(&members), None)?;
    Ok(dir)
}

/// A sale by M-1 of 10 EUR, paying `redeem` points.
pub fn sale(id: &str, redeem: i64) -> Value {
    let mut body = json!({
        "sale_id": id,
        "time": "2026-11-28T11:05:00+01:00",
        "member": {"id": "M-1"},
        "lines": [{"sku": "SKU-1", "category": "shoes", "qty": "1", "unit_price": "10.00"}]
    });
    if redeem > 0 {
        body["redeem"] = json!([{"program": "main", "points": redeem}]);
    }
    body
}

/// Writes `text` to `path` with `mode`.
pub fn write_mode(path: &Path, text: &str, mode: u32) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("write {}", path.display()))?;
    // The umask may have taken bits away; set exactly what the test means.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(path.to_path_buf())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// M-1's available points in `main`, asked over the Unix socket.
pub async fn points(agent: &pos_testkit::agent_proc::AgentProc) -> Result<i64> {
    let (status, body) = agent.get("/v1/members/M-1").await?;
    anyhow::ensure!(status == 200, "members answered {status}: {body}");
    find_available(&body).with_context(|| format!("no available points in {body}"))
}

fn find_available(body: &Value) -> Option<i64> {
    if let Some(n) = body.get("available").and_then(Value::as_i64) {
        return Some(n);
    }
    match body {
        Value::Object(map) => map.values().find_map(find_available),
        Value::Array(items) => items.iter().find_map(find_available),
        _ => None,
    }
}
