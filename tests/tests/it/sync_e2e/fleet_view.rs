//! Issue 11, the fleet view (`docs/sync-v2.md` §8): a register reports
//! after each sync cycle (agent version, outbox, dead letters, devices,
//! rules, clock offset, last error), central keeps the newest per terminal
//! and filters them for IT, and its Prometheus metrics count what it did.
//! A report is checked like everything else a register sends: another
//! terminal's report, an oversized one and one holding a card number are
//! refused and store nothing.

use anyhow::{Context, Result, ensure};
use pos_sync::protocol::{DeviceReport, TerminalReport};
use pos_sync::{ClientConfig, SyncClient, SyncError, Token};
use serde_json::Value;

use super::REG_1;
use super::support::*;

/// Registered, never synced: silent, and on no rules.
const SILENT: &str = "store-1-reg-9";

fn terminal<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["terminals"]
        .as_array()?
        .iter()
        .find(|t| t["terminal_id"] == id)
}

fn ids(list: &Value) -> Vec<String> {
    list["terminals"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["terminal_id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_keeps_each_registers_report_and_filters_the_fleet() -> Result<()> {
    let world = World::new()?;
    world.central.add_terminal(SILENT)?;
    let dir = world.register(REG_1, &world.url())?;
    let agent = dir.start().await?;
    sell(&agent, &sale("S-1", 20, None)).await?;
    synced(&agent).await?;

    let report = eventually("the register's report at central", || async {
        let list = world.admin("/v1/admin/terminals")?;
        Ok(terminal(&list, REG_1).and_then(|t| {
            let r = &t["report"];
            (r["outbox_depth"] == 0 && r["rules_version"] == 1).then(|| r.clone())
        }))
    })
    .await?;
    ensure!(
        report["agent_version"] == env!("CARGO_PKG_VERSION"),
        "{report}"
    );
    ensure!(report["health"].is_string(), "{report}");
    ensure!(report["dead_letters"] == 0, "{report}");
    // Same machine, same clock: the offset is the transit time, well
    // within a minute either way.
    let offset = report["clock_offset_ms"].as_i64().context("clock offset")?;
    ensure!(offset.abs() < 60_000, "{report}");

    let silent = world.admin("/v1/admin/terminals?silent_mins=5")?;
    ensure!(ids(&silent) == [SILENT], "{silent}");
    let behind = world.admin("/v1/admin/terminals?rules_behind=true")?;
    ensure!(ids(&behind) == [SILENT], "{behind}");
    let backlog = world.admin("/v1/admin/terminals?backlog_above=0")?;
    ensure!(ids(&backlog).is_empty(), "{backlog}");
    let all = world.admin("/v1/admin/terminals")?;
    ensure!(ids(&all).len() == 2, "{all}");

    let out = world.central.cli(&["admin-get", "/v1/admin/metrics"])?;
    ensure!(out.status.success(), "{out:?}");
    let metrics = String::from_utf8(out.stdout)?;
    for line in [
        "pos_central_terminals 2",
        "pos_central_terminals_silent 1",
        "pos_central_terminals_rules_behind 1",
        "pos_central_backlog_entries 0",
        "pos_central_entries_total{result=\"applied\"} 1",
        "pos_central_batches_total{outcome=\"entries\"} 1",
        "pos_central_batch_apply_seconds_count 1",
    ] {
        ensure!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    ensure!(
        metrics.contains(
            "pos_central_http_requests_total{api=\"sync\",route=\"/v1/sync/upload\",status=\"200\"}"
        ),
        "{metrics}"
    );
    ensure!(
        !metrics.contains(REG_1) && !metrics.contains("M-1"),
        "no per-terminal or per-member labels: {metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_is_checked_before_it_is_kept() -> Result<()> {
    let world = World::new()?;
    let token = world.central.add_terminal(REG_1)?;
    let mut config = ClientConfig::new(world.url(), Token::new(&token)?);
    if world.central.tls {
        config.ca_file = Some(world.central.ca_path());
    }
    let client = SyncClient::new(&config)?;
    let honest = TerminalReport {
        terminal_id: REG_1.into(),
        agent_version: "0.1.0".into(),
        sent_at: now_rfc3339(),
        health: "ok".into(),
        outbox_depth: 7,
        devices: vec![DeviceReport {
            name: "scanner".into(),
            state: "up".into(),
        }],
        ..TerminalReport::default()
    };
    let refused = |result: Result<(), SyncError>, status: u16| match result {
        Err(SyncError::Status {
            status: s, message, ..
        }) if s == status => Ok(message),
        other => Err(anyhow::anyhow!("wanted {status}, got {other:?}")),
    };

    let mut other = honest.clone();
    other.terminal_id = "store-1-reg-2".into();
    refused(client.report(&other).await, 403)?;
    let mut card = honest.clone();
    card.devices[0].name = "4111-1111-1111-1111".into();
    let message = refused(client.report(&card).await, 400)?;
    ensure!(!message.contains("4111"), "{message}");
    let mut huge = honest.clone();
    huge.last_error = Some("x".repeat(100_000));
    refused(client.report(&huge).await, 413)?;
    let list = world.admin("/v1/admin/terminals")?;
    ensure!(
        terminal(&list, REG_1).is_some_and(|t| t["report"].is_null()),
        "nothing stored: {list}"
    );

    client.report(&honest).await?;
    let list = world.admin("/v1/admin/terminals?backlog_above=6")?;
    ensure!(ids(&list) == [REG_1], "{list}");
    Ok(())
}
