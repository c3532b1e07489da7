//! `pos-agent status --config PATH`: a human summary from the running
//! daemon, asked over its socket: sync state, outbox depth, dead letters,
//! devices, rules version. Shows no secrets (health carries none).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, anyhow};
use pos_agent::api::client;
use pos_agent::health::{Health, SyncMode};
use pos_config::Config;

use crate::commands::{Failure, bad_input, other};

pub fn run(config_path: &Path) -> Result<(), Failure> {
    let config = Config::load(config_path).map_err(|e| bad_input(anyhow!("{e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(other)?;
    let socket = config.api.socket.clone();
    let (status, body) = runtime
        .block_on(client::request(&socket, "GET", "/v1/health", None))
        .map_err(|e| other(anyhow!("{e}")))?;
    if status != 200 {
        return Err(other(anyhow!(
            "the agent answered {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let health: Health = serde_json::from_slice(&body)
        .context("the agent's health answer is not what this pos-agent expects")
        .map_err(other)?;
    print!("{}", summary(&health, &socket));
    Ok(())
}

/// The summary text, one fact per line.
fn summary(h: &Health, socket: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pos-agent {} on terminal {} ({})",
        h.version,
        h.terminal_id,
        socket.display()
    );
    let _ = writeln!(
        out,
        "status:        {} (up {})",
        h.status,
        uptime(h.uptime_secs)
    );
    problem_lines(&mut out, h);
    let sync = match h.sync.state {
        SyncMode::Off => "off",
        SyncMode::On => "on",
    };
    let _ = writeln!(out, "sync:          {sync}: {}", h.sync.detail);
    let _ = writeln!(out, "outbox:        {} unsynced entries", h.outbox_depth);
    let _ = writeln!(out, "dead letters:  {}", h.dead_letters);
    if let Some(worker) = &h.sync.worker {
        sync_worker_lines(&mut out, worker);
    }
    rules_lines(&mut out, h);
    if h.devices.is_empty() {
        let _ = writeln!(out, "devices:       none");
    } else {
        let _ = writeln!(out, "devices:");
        for d in &h.devices {
            let stuck = if d.loop_alive { "" } else { ", LOOP NOT ALIVE" };
            let _ = writeln!(
                out,
                "  {:<20} {} ({} scans, {} payment cards rejected, {} frames discarded, {} events dropped{stuck})",
                d.name,
                d.state,
                d.scans,
                d.payment_cards_rejected,
                d.frames_discarded,
                d.events_dropped
            );
        }
    }
    let writer = if h.store.writer_alive {
        "alive"
    } else {
        "NOT ALIVE"
    };
    let _ = writeln!(out, "store writer:  {writer}");
    if let Some(error) = &h.store.error {
        let _ = writeln!(out, "store error:   {error}");
    }
    out
}

/// Why health is degraded, and the figures behind the time-based reasons.
fn problem_lines(out: &mut String, h: &Health) {
    if !h.problems.is_empty() {
        let _ = writeln!(*out, "problems:      {}", h.problems.join(", "));
    }
    if h.has_problem("storage_full") {
        let ago = h.storage_full_secs_ago.unwrap_or(0);
        let _ = writeln!(
            *out,
            "STORAGE FULL:  a write failed with storage_full {ago} s ago; free disk space"
        );
    }
    if let (true, Some(secs)) = (h.has_problem("sync_failing"), h.sync_failing_secs) {
        let _ = writeln!(*out, "SYNC FAILING:  no successful sync for {secs} s");
    }
    if h.has_problem("members_stale") {
        match h.members_age_secs {
            Some(secs) => {
                let _ = writeln!(*out, "MEMBERS STALE: member data is {secs} s old");
            }
            None => {
                let _ = writeln!(*out, "MEMBERS STALE: no member data yet");
            }
        }
    }
}

/// The rules version sales use, central's newest, and why they are not
/// used or differ, when they are not or do.
fn rules_lines(out: &mut String, h: &Health) {
    let rules = h.rules_version.map_or_else(
        || "none (import a bundle or sync)".to_string(),
        |v| v.to_string(),
    );
    let _ = writeln!(out, "rules version: {rules}");
    let central = h
        .central_rules_version
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    if h.sync.state == SyncMode::On {
        let _ = writeln!(out, "central rules: {central} (newest published)");
    }
    if let Some(why) = &h.rules_unverified {
        let _ = writeln!(out, "RULES UNVERIFIED: {why}");
    }
    if let Some(why) = &h.rules_drift {
        let _ = writeln!(out, "RULES DRIFT:   {why}");
    }
}

/// The sync worker's details: auth failures, refused rules, overdrafts and
/// every listed dead letter with central's reason.
fn sync_worker_lines(out: &mut String, w: &pos_agent::sync_worker::SyncReport) {
    let _ = writeln!(
        out,
        "last sync:     {} (synced {} entries, rejected {} since start)",
        w.last_success_at.as_deref().unwrap_or("never"),
        w.entries_synced,
        w.entries_rejected
    );
    if w.entries_corrected > 0 {
        let _ = writeln!(
            out,
            "corrected:     {} entries credited by central with another figure since start (GET /v1/ledger shows central's)",
            w.entries_corrected
        );
    }
    if w.auth_failure {
        let _ = writeln!(
            out,
            "AUTH FAILURE:  central refused this register's token; fix the token file, then POST /v1/sync/now"
        );
    }
    if let Some(error) = &w.last_error {
        let _ = writeln!(out, "last error:    {error}");
    }
    if let Some(reason) = &w.rules_refused {
        let _ = writeln!(out, "rules refused: {reason}");
    }
    if w.overdrafts_total > 0 {
        let _ = writeln!(
            out,
            "overdrafts:    {} (central's balance went negative)",
            w.overdrafts_total
        );
        for o in &w.overdrafts {
            let _ = writeln!(
                out,
                "  seq {:<8} member {} program {} shortfall {}",
                o.seq, o.member, o.program, o.shortfall
            );
        }
    }
    for d in &w.dead_letters {
        let _ = writeln!(
            out,
            "  dead letter seq {:<8} {} ({})",
            d.seq, d.reason, d.at
        );
    }
}

fn uptime(secs: u64) -> String {
    format!("{}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
}
