//! Attacks on the register through the real `pos-agent` binary (issue 10):
//! each test attacks one defence and fails if that defence is removed.

mod health;
mod local_api;
mod sync_client;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pos_testkit::agent_proc::AgentDir;
use serde_json::{Value, json};

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
