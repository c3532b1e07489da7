//! End-to-end sync: real `pos-agent` registers and a real `pos-central` on
//! loopback, one test per acceptance point of issue 4 (sync worker):
//!
//! 1. central down for the whole morning, then the backlog drains;
//! 2. answers lost after central applied the batch, repeatedly;
//! 3. two offline registers overdraw the same member;
//! 4. a rejected entry becomes a dead letter, the rest still syncs;
//! 5. a register restored from an old database backup (seq_reused);
//! 6. an entry altered in the register's database after the fact;
//! 7. rules published while a register is offline (and a badly signed
//!    bundle refused);
//! 8. TLS with the development CA, and a wrong token fixed later;
//!
//! and three more: online redemption holds (sync spec §4) stopping an
//! overdraft while central is reachable, a central restored from a backup
//! (`gap`: the register resends what central lost), and kill -9 of the
//! register during sync (every entry applied exactly once).
//!
//! With `POS_E2E_CENTRAL=pair` every test here runs against two central
//! instances on one PostgreSQL database behind a round-robin balancer
//! (issue 11; `.ci/run` does so after the normal run): the registers'
//! requests alternate between the instances, an outage stops both.
//!
//! Sync intervals are 1 s (config) and every wait polls with a deadline;
//! `POST /v1/sync/now` cuts backoff waits short after an outage ends.

mod channels;
mod fleet_view;
mod honest_context;
mod migrate;
mod signed_rules;
mod support;
mod two_instances;
mod verified_intake;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use pos_testkit::agent_proc::AgentDir;
use pos_testkit::proxy::{Mode, Proxy};
use serde_json::{Value, json};
use support::*;

const REG_1: &str = "store-1-reg-1";
const REG_2: &str = "store-1-reg-2";

fn points_sum(entries: &[Value]) -> i64 {
    entries.iter().filter_map(|e| e["points"].as_i64()).sum()
}

fn status_of(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// 1. Sales keep committing while central is down; when it starts, the
/// backlog drains and central's ledger equals the register's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_of_a_morning_without_central_drains_entry_for_entry() -> Result<()> {
    let mut world = World::new()?;
    let url = world.url();
    world.stop_central();
    let dir = world.register(REG_1, &url)?;
    let agent = dir.start().await?;

    let sales = 40;
    for i in 0..sales {
        sell(&agent, &sale(&format!("S-{i:03}"), 10 + i, None)).await?;
    }
    let h = eventually("sync failing while central is down", || async {
        let h = health(&agent).await?;
        Ok((h["sync"]["worker"]["phase"] == "retrying").then_some(h))
    })
    .await?;
    assert_eq!(h["outbox_depth"], sales, "{h}");
    assert!(h["sync"]["worker"]["last_error"].is_string(), "{h}");

    world.start_central()?;
    sync_now(&agent).await?;
    let h = synced(&agent).await?;
    assert_eq!(h["sync"]["worker"]["entries_synced"], sales, "{h}");

    let register = agent_ledger(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    assert_eq!(register.len(), sales as usize);
    assert_same_ledger(&register, &central);
    assert!(status_of(&central).iter().all(|s| s == "applied"));
    assert!(status_of(&register).iter().all(|s| s == "synced"));
    assert_eq!(world.balance("M-1")?, 1_000 + points_sum(&register));
    Ok(())
}

/// 2. Central applies each batch but the answer never arrives, again and
/// again; every entry is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_apply_every_entry_exactly_once() -> Result<()> {
    let world = World::insecure()?;
    let proxy = Proxy::start(world.addr()).await?;
    proxy.set_mode(Mode::LoseAnswer);
    let url = format!("http://{}", proxy.addr());
    let dir = world.register(REG_1, &url)?;
    let agent = dir.start().await?;

    let mut sold = 0;
    while proxy.answers_lost() < 4 {
        sell(&agent, &sale(&format!("S-{sold:03}"), 5 + sold, None)).await?;
        sold += 1;
        sync_now(&agent).await?;
        let lost = proxy.answers_lost();
        eventually("another lost answer", || async {
            Ok((proxy.answers_lost() > lost || sold > 40).then_some(()))
        })
        .await?;
        ensure!(sold <= 40, "the proxy did not lose answers");
    }
    // Central has applied entries whose answers the register never saw.
    let applied = world.central_ledger(REG_1)?;
    let h = health(&agent).await?;
    assert!(!applied.is_empty());
    assert!(h["outbox_depth"].as_u64() > Some(0), "{h}");

    proxy.set_mode(Mode::Pass);
    sync_now(&agent).await?;
    synced(&agent).await?;
    let register = agent_ledger(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    assert_same_ledger(&register, &central);
    let ids: BTreeSet<_> = central.iter().map(|e| e["entry_id"].to_string()).collect();
    assert_eq!(ids.len(), central.len(), "an entry id stored twice");
    assert!(status_of(&central).iter().all(|s| s == "applied"));
    assert_eq!(world.balance("M-1")?, 1_000 + points_sum(&register));
    Ok(())
}

/// 3. Two offline registers redeem the same member's points beyond the
/// balance: both sales stand, central goes negative and lists the
/// overdraft, and both registers show central's balance afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_overdraft_by_two_registers_is_kept_and_reported() -> Result<()> {
    let world = World::new()?;
    let proxy_1 = Proxy::start(world.addr()).await?;
    let proxy_2 = Proxy::start(world.addr()).await?;
    proxy_1.set_mode(Mode::Drop);
    proxy_2.set_mode(Mode::Drop);
    let dir_1 = world.register(REG_1, &world.url_via(proxy_1.addr()))?;
    let dir_2 = world.register(REG_2, &world.url_via(proxy_2.addr()))?;
    let (agent_1, agent_2) = (dir_1.start().await?, dir_2.start().await?);

    // 1,000 points at central; each register redeems 800 of them offline.
    sell(&agent_1, &sale("S-A", 20, Some(800))).await?;
    sell(&agent_2, &sale("S-B", 20, Some(800))).await?;

    proxy_1.set_mode(Mode::Pass);
    sync_now(&agent_1).await?;
    synced(&agent_1).await?;
    proxy_2.set_mode(Mode::Pass);
    sync_now(&agent_2).await?;
    let h2 = synced(&agent_2).await?;

    let both: Vec<Value> = [agent_ledger(&agent_1).await?, agent_ledger(&agent_2).await?].concat();
    let balance = world.balance("M-1")?;
    assert_eq!(balance, 1_000 + points_sum(&both));
    assert!(
        balance < 0,
        "central's balance {balance} should be negative"
    );
    let overdrafts = world.conflicts("overdraft")?;
    assert_eq!(overdrafts.len(), 1, "{overdrafts:?}");
    let shortfall = overdrafts[0]["shortfall"].as_i64().context("shortfall")?;
    assert!(shortfall > 0 && shortfall <= 800, "{overdrafts:?}");
    assert_eq!(overdrafts[0]["terminal_id"], REG_2);
    assert_eq!(h2["sync"]["worker"]["overdrafts_total"], 1, "{h2}");
    assert_eq!(
        h2["sync"]["worker"]["overdrafts"][0]["shortfall"],
        shortfall
    );

    let available = world.central.balance("M-1", "main")?["available"].clone();
    for agent in [&agent_1, &agent_2] {
        shows_centrals_balance(agent, &available).await?;
    }
    Ok(())
}

/// Bundle v1 as the register has it: a second program central never
/// published, so its entries are rejected.
const RULES_WITH_PROMO: &str = r#"{"version": 1, "programs": [
  {"id": "main", "currency": "EUR", "base_rate": "1"},
  {"id": "promo", "currency": "EUR", "base_rate": "1"}]}"#;
const MEMBERS_WITH_PROMO: &str = r#"{"members": [{"id": "M-1", "cards": [],
  "programs": {"main": {"available": 1000, "pending": 0},
               "promo": {"available": 0, "pending": 0}}}]}"#;

/// 4. A rejected entry becomes a dead letter with its reason, shown by
/// `pos-agent status`, and the entries after it still sync.
///
/// The register sold with a bundle central never published while it ran
/// standalone (with `[central]` it takes only central's signed bundles,
/// `docs/signed-rules.md`); once connected, those entries are rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_entry_is_a_dead_letter_and_the_queue_goes_on() -> Result<()> {
    let world = World::new()?;
    // Central knows the member in both programs (member downloads must not
    // take the enrolment away), but never published "promo".
    world
        .central
        .import_members(world.file("members-promo.json", MEMBERS_WITH_PROMO)?)?;
    let token = world.central.add_terminal(REG_1)?;
    let dir = AgentDir::new()?;
    assert_eq!(dir.terminal_id, REG_1);
    let rules = dir.write_file("rules.json", RULES_WITH_PROMO)?;
    let members = dir.write_file("members.json", MEMBERS_WITH_PROMO)?;
    dir.import(&rules, Some(&members), None)?;
    let mut standalone = dir.start().await?;

    // Each sale books main (accepted) then promo (rejected: unknown program).
    for i in 0..3 {
        sell(&standalone, &sale(&format!("S-{i}"), 10, None)).await?;
    }
    standalone.terminate()?;
    let mut config = std::fs::read_to_string(&dir.config)?;
    config.push_str(&world.central_toml(REG_1, &world.url(), &token)?);
    std::fs::write(&dir.config, config)?;
    let agent = dir.start().await?;
    let h = synced(&agent).await?;
    assert_eq!(h["dead_letters"], 3, "{h}");
    let register = agent_ledger(&agent).await?;
    let dead: Vec<&Value> = register.iter().filter(|e| e["status"] == "dead").collect();
    let synced_entries: Vec<&Value> = register
        .iter()
        .filter(|e| e["status"] == "synced")
        .collect();
    assert_eq!(dead.len(), 3);
    assert!(dead.iter().all(|e| e["program"] == "promo"));
    assert_eq!(synced_entries.len(), 3);
    // The last entry synced is after the first dead letter.
    assert!(
        synced_entries.last().map(|e| e["seq"].as_u64()) > dead.first().map(|e| e["seq"].as_u64())
    );

    let central = world.central_ledger(REG_1)?;
    assert_same_ledger(&register, &central);
    for e in &central {
        let expected = if e["program"] == "promo" {
            "rejected"
        } else {
            "applied"
        };
        assert_eq!(e["status"], expected, "{e}");
    }

    let out = dir.run_cli(&[
        "status".into(),
        "--config".into(),
        dir.config.clone().into(),
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("dead letters:  3"), "{text}");
    assert_eq!(
        text.matches("program \"promo\" is not in rules version 1")
            .count(),
        3,
        "{text}"
    );
    Ok(())
}

/// Copies the register's database files (it must be stopped).
fn copy_db(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let src = std::path::PathBuf::from(format!("{}{suffix}", from.display()));
        let dst = std::path::PathBuf::from(format!("{}{suffix}", to.display()));
        if src.exists() {
            std::fs::copy(&src, &dst).with_context(|| format!("copy {}", src.display()))?;
        } else if dst.exists() {
            std::fs::remove_file(&dst).with_context(|| format!("remove {}", dst.display()))?;
        }
    }
    Ok(())
}

/// 5. A register restored from an old backup: central answers seq_reused;
/// nothing central held is lost and nothing is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_restored_from_an_old_backup_loses_nothing() -> Result<()> {
    let world = World::new()?;
    let proxy = Proxy::start(world.addr()).await?;
    let dir = world.register(REG_1, &world.url_via(proxy.addr()))?;
    let backup = dir.path().join("backup.db");

    let mut agent = dir.start().await?;
    for i in 0..3 {
        sell(&agent, &sale(&format!("S-{i}"), 10, None)).await?;
    }
    synced(&agent).await?;
    // Two sales central has not seen yet when the backup is taken.
    proxy.set_mode(Mode::Drop);
    for i in 3..5 {
        sell(&agent, &sale(&format!("S-{i}"), 10, None)).await?;
    }
    ensure!(agent.terminate()?.success(), "agent did not stop cleanly");
    copy_db(&dir.db, &backup)?;

    // Life goes on: the two sync, five more sales sync.
    proxy.set_mode(Mode::Pass);
    let mut agent = dir.start().await?;
    for i in 5..10 {
        sell(&agent, &sale(&format!("S-{i}"), 10 + i, None)).await?;
    }
    synced(&agent).await?;
    let before = world.central_ledger(REG_1)?;
    assert_eq!(before.len(), 10);
    ensure!(agent.terminate()?.success(), "agent did not stop cleanly");

    // The disk dies; the register comes back from the backup and sells
    // (offline at first, so the old and the new entries go up together).
    copy_db(&backup, &dir.db)?;
    proxy.set_mode(Mode::Drop);
    let agent = dir.start().await?;
    for i in 0..3 {
        sell(&agent, &sale(&format!("R-{i}"), 30 + i, None)).await?;
    }
    proxy.set_mode(Mode::Pass);
    sync_now(&agent).await?;
    let h = synced(&agent).await?;
    assert_eq!(h["sync"]["worker"]["rebases"], 1, "{h}");
    assert_eq!(world.conflicts("seq_reused")?.len(), 1);

    let after = world.central_ledger(REG_1)?;
    // Nothing central held is lost or changed.
    assert_eq!(&after[..10], &before[..]);
    // Counted once: the two backed-up entries came again as duplicates
    // (seq consumed, nothing counted), the three new ones were applied.
    let statuses = status_of(&after[10..]);
    assert_eq!(
        statuses,
        ["duplicate", "duplicate", "applied", "applied", "applied"]
    );
    let counted: Vec<Value> = after
        .iter()
        .filter(|e| e["status"] == "applied")
        .cloned()
        .collect();
    let ids: BTreeSet<_> = counted.iter().map(|e| e["entry_id"].to_string()).collect();
    assert_eq!(ids.len(), 13);
    assert_eq!(world.balance("M-1")?, 1_000 + points_sum(&counted));
    let register = agent_ledger(&agent).await?;
    let register_ids: BTreeSet<_> = register.iter().map(|e| e["entry_id"].to_string()).collect();
    assert!(register_ids.is_subset(&ids));

    let verify = dir.db_verify()?;
    assert!(
        verify.status.success(),
        "db verify after the rebase: {} {}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    Ok(())
}

/// 6. An entry altered in the register's database after the fact: `db
/// verify` detects the break and central rejects that entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_entry_is_detected_locally_and_rejected_by_central() -> Result<()> {
    let mut world = World::new()?;
    let url = world.url();
    world.stop_central();
    let dir = world.register(REG_1, &url)?;
    let mut agent = dir.start().await?;
    for i in 0..3 {
        sell(&agent, &sale(&format!("S-{i}"), 10, None)).await?;
    }
    ensure!(agent.terminate()?.success(), "agent did not stop cleanly");

    // Tamper the way an attacker with the file would: straight through SQLite
    // (rusqlite, so the test needs no sqlite3 command on the machine).
    let db = rusqlite::Connection::open(&dir.db).context("open the register's db")?;
    let changed = db
        .execute("UPDATE ledger SET points = points * 100 WHERE seq = 2", [])
        .context("alter entry 2")?;
    ensure!(changed == 1, "entry 2 not found to alter");
    drop(db);

    let verify = dir.db_verify()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        !verify.status.success(),
        "db verify missed the change: {text}"
    );
    assert!(text.contains("seq 2"), "{text}");

    world.start_central()?;
    let agent = dir.start().await?;
    let h = synced(&agent).await?;
    assert_eq!(h["dead_letters"], 1, "{h}");
    let dead = &h["sync"]["worker"]["dead_letters"][0];
    assert_eq!(dead["seq"], 2, "{h}");
    assert!(
        dead["reason"]
            .as_str()
            .unwrap_or("")
            .contains("hash mismatch"),
        "{h}"
    );
    let central = world.central_ledger(REG_1)?;
    assert_eq!(status_of(&central), ["applied", "rejected", "applied"]);
    // The altered points never counted.
    assert_eq!(world.balance("M-1")?, 1_000 + 20);
    Ok(())
}

/// 7. Rules published while a register is offline: sales before the
/// download keep their rules version, sales after use the new one. A
/// register with the wrong public key refuses the bundle and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_published_while_offline_apply_only_after_the_download() -> Result<()> {
    let world = World::new()?;
    let proxy = Proxy::start(world.addr()).await?;
    let dir = world.register(REG_1, &world.url_via(proxy.addr()))?;
    let agent = dir.start().await?;
    synced(&agent).await?;

    proxy.set_mode(Mode::Drop);
    sell(&agent, &sale("S-before", 10, None)).await?;
    world
        .central
        .publish_rules(world.file("rules-v2.json", RULES_V2)?)?;
    sell(&agent, &sale("S-offline", 10, None)).await?;

    proxy.set_mode(Mode::Pass);
    sync_now(&agent).await?;
    eventually("rules v2 downloaded", || async {
        let h = health(&agent).await?;
        Ok((h["rules_version"] == 2).then_some(()))
    })
    .await?;
    sell(&agent, &sale("S-after", 10, None)).await?;
    synced(&agent).await?;

    let register = agent_ledger(&agent).await?;
    let by_sale = |id: &str| {
        register
            .iter()
            .find(|e| e["sale_id"] == id)
            .map(|e| (e["rules_version"].as_u64(), e["points"].as_i64()))
    };
    assert_eq!(by_sale("S-before"), Some((Some(1), Some(10))));
    assert_eq!(by_sale("S-offline"), Some((Some(1), Some(10))));
    assert_eq!(by_sale("S-after"), Some((Some(2), Some(20))));
    assert_same_ledger(&register, &world.central_ledger(REG_1)?);

    // A register whose configured key is not central's refuses the bundle.
    let token = world.central.add_terminal(REG_2)?;
    let other = world.register_with_token(REG_2, &world.url(), &token)?;
    let text = std::fs::read_to_string(&other.config)?;
    let key = world.central.public_key()?;
    // RFC 8032 test key 1: a valid Ed25519 key that signed nothing here.
    let text = text.replace(&key, "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
    std::fs::write(&other.config, text)?;
    let agent_2 = other.start().await?;
    let h = eventually("bundle refused", || async {
        let h = health(&agent_2).await?;
        Ok(h["sync"]["worker"]["rules_refused"]
            .is_string()
            .then_some(h))
    })
    .await?;
    assert!(
        h["sync"]["worker"]["rules_refused"]
            .as_str()
            .unwrap_or("")
            .contains("signature does not verify"),
        "{h}"
    );
    assert_eq!(h["rules_version"], 1, "{h}");
    assert!(
        h["sync"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("rules bundle refused"),
        "{h}"
    );
    Ok(())
}

/// 8. TLS with the development CA; a wrong token shows as an auth failure
/// in health, sales go on, and nothing is lost once the token is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_an_auth_failure_and_nothing_is_lost_once_fixed() -> Result<()> {
    let world = World::new()?;
    // TLS with the development CA (in pair mode the balancer speaks HTTP).
    assert!(world.paired() || world.url().starts_with("https://"));
    let token = world.central.add_terminal(REG_1)?;
    let dir = world.register_with_token(REG_1, &world.url(), "not-the-token")?;
    let agent = dir.start().await?;
    for i in 0..5 {
        sell(&agent, &sale(&format!("S-{i}"), 10 + i, None)).await?;
    }
    let h = eventually("auth failure in health", || async {
        let h = health(&agent).await?;
        Ok((h["sync"]["worker"]["phase"] == "auth_failed").then_some(h))
    })
    .await?;
    assert_eq!(h["sync"]["worker"]["auth_failure"], true, "{h}");
    assert!(
        h["sync"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("AUTH FAILURE"),
        "{h}"
    );
    assert!(
        !h.to_string().contains("not-the-token"),
        "the token leaked: {h}"
    );
    assert_eq!(h["outbox_depth"], 5);

    world.file(&format!("token-{REG_1}"), &token)?;
    sync_now(&agent).await?;
    let h = synced(&agent).await?;
    assert_eq!(h["sync"]["worker"]["auth_failure"], false, "{h}");
    assert_same_ledger(&agent_ledger(&agent).await?, &world.central_ledger(REG_1)?);
    assert_eq!(world.central_ledger(REG_1)?.len(), 5);
    Ok(())
}

/// Online redemption holds: while member data is fresh and central is
/// reachable, central authorises each redemption, so a register whose
/// cache does not yet know another register spent the points is refused
/// instead of overdrawing; a granted hold is settled by the redeem entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_holds_stop_an_overdraft_while_central_is_reachable() -> Result<()> {
    let world = World::new()?;
    let dir_a = world.register(REG_1, &world.url())?;
    // Register A syncs once at start, then not for an hour: its member
    // cache stays fresh but does not learn of B's redemption.
    let text = std::fs::read_to_string(&dir_a.config)?;
    std::fs::write(
        &dir_a.config,
        text.replace("sync_interval_secs = 1\n", "sync_interval_secs = 3600\n"),
    )?;
    let dir_b = world.register(REG_2, &world.url())?;
    // The catalog comes from central's catalog download.
    world.central.import_catalog(world.file(
        "catalog.json",
        r#"{"products": [{"sku": "4006381333931", "name": "Trail shoe",
            "category": "shoes", "price": "20.00"}]}"#,
    )?)?;
    let agent_a = dir_a.start().await?;
    synced(&agent_a).await?;
    let agent_b = dir_b.start().await?;
    sell(&agent_b, &sale("S-B", 20, Some(800))).await?;
    synced(&agent_b).await?;
    let central_available = world.central.balance("M-1", "main")?["available"]
        .as_i64()
        .context("available")?;
    assert!(central_available < 800, "{central_available}");

    let (status, m) = agent_a.get("/v1/members/M-1").await?;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["freshness"], "fresh");
    assert_eq!(
        m["programs"]["main"]["available"], 1_000,
        "A's cache is behind: {m}"
    );
    let (status, answer) = agent_a
        .post("/v1/sales", &sale("S-A", 20, Some(800)))
        .await?;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "insufficient_points", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("central holds only {central_available}")),
        "{answer}"
    );
    let (status, _) = agent_a.get("/v1/sales/S-A").await?;
    assert_eq!(status, 404, "a refused sale stores nothing");

    // The checkout session asks for holds the same way.
    for (path, body) in [
        ("/v1/session/start", json!({"sale_id": "S-SESSION"})),
        ("/v1/session/member", json!({"member": {"id": "M-1"}})),
        ("/v1/session/add", json!({"sku": "4006381333931"})),
    ] {
        let (status, answer) = agent_a.post(path, &body).await?;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    let (status, answer) = agent_a
        .post(
            "/v1/session/commit",
            &json!({"redeem": [{"program": "main", "points": 800}]}),
        )
        .await?;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "insufficient_points", "{answer}");
    let (status, answer) = agent_a.post("/v1/session/clear", &json!({})).await?;
    assert_eq!(status, 200, "{answer}");

    // Within what central holds: granted, committed, and settled on sync.
    sell(&agent_a, &sale("S-A2", 20, Some(100))).await?;
    sync_now(&agent_a).await?;
    synced(&agent_a).await?;
    let both: Vec<Value> = [agent_ledger(&agent_a).await?, agent_ledger(&agent_b).await?].concat();
    let b = world.central.balance("M-1", "main")?;
    assert_eq!(b["balance"], 1_000 + points_sum(&both), "{b}");
    assert_eq!(b["available"], b["balance"], "the hold was settled: {b}");
    assert!(world.conflicts("overdraft")?.is_empty());
    Ok(())
}

/// Central restored from an old backup (the mirror of point 5): it answers
/// `gap`, and the register resends the entries it had already marked
/// synced, so central ends up with the register's whole ledger again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_restored_from_a_backup_gets_the_lost_entries_again() -> Result<()> {
    let mut world = World::new()?;
    if world.paired() {
        // The backup is a copy of central's SQLite file; a PostgreSQL
        // central is restored with the operator's own tools.
        eprintln!("SKIPPED in {CENTRAL_ENV}=pair: restores central's SQLite file");
        return Ok(());
    }
    let dir = world.register(REG_1, &world.url())?;
    let agent = dir.start().await?;
    for i in 0..3 {
        sell(&agent, &sale(&format!("S-{i}"), 10, None)).await?;
    }
    synced(&agent).await?;
    world.stop_central();
    let db = world.central.dir().join("central.db");
    let backup = world.files.path().join("central-backup.db");
    copy_db(&db, &backup)?;

    world.start_central()?;
    for i in 3..6 {
        sell(&agent, &sale(&format!("S-{i}"), 10 + i, None)).await?;
    }
    synced(&agent).await?;
    world.stop_central();
    copy_db(&backup, &db)?;
    world.start_central()?;
    assert_eq!(
        world.central_ledger(REG_1)?.len(),
        3,
        "the restored central"
    );

    sell(&agent, &sale("S-after", 30, None)).await?;
    sync_now(&agent).await?;
    synced(&agent).await?;
    let register = agent_ledger(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    assert_eq!(register.len(), 7);
    assert_same_ledger(&register, &central);
    assert!(status_of(&central).iter().all(|s| s == "applied"));
    assert_eq!(world.balance("M-1")?, 1_000 + points_sum(&register));
    Ok(())
}

/// A crash at any moment of sync (before send, after send, after central
/// applied but before the answer was recorded) leads, after restart, to
/// every entry applied at central exactly once (sync spec §2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_sync_still_applies_every_entry_exactly_once() -> Result<()> {
    let world = World::new()?;
    let proxy = Proxy::start(world.addr()).await?;
    proxy.set_mode(Mode::Drop);
    let dir = world.register(REG_1, &world.url_via(proxy.addr()))?;
    let mut agent = dir.start().await?;
    for i in 0..300 {
        sell(&agent, &sale(&format!("S-{i:03}"), 1 + i % 50, None)).await?;
    }
    proxy.set_mode(Mode::Pass);
    // Kill at growing delays after waking the worker, so some kills land
    // before an upload, some during, some after central applied.
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        sync_now(&agent).await?;
        tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
        agent.kill9();
        agent = dir.start().await?;
    }
    sync_now(&agent).await?;
    synced(&agent).await?;
    let register = agent_ledger(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    assert_eq!(register.len(), 300);
    assert_same_ledger(&register, &central);
    assert!(status_of(&central).iter().all(|s| s == "applied"));
    assert_eq!(world.balance("M-1")?, 1_000 + points_sum(&register));
    let verify = dir.db_verify()?;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    Ok(())
}
