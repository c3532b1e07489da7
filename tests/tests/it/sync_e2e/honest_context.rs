//! Issue 9, protocol v2 (`docs/sync-v2.md` §3, "Whose context"): an honest
//! register selling offline on what it last knew. A tier the member held a
//! moment ago is credited as the cashier saw it; a daily cap another
//! register already filled is credited as the rules allow with central's
//! knowledge, recorded as a conflict, and the register shows central's
//! balance. Real processes: central, registers, the fault proxy.

use anyhow::{Context, Result, ensure};
use pos_testkit::proxy::{Mode, Proxy};

use super::support::*;
use super::{REG_1, REG_2, status_of};

/// Version 2: gold earns 1.5 points per euro; at most 100 points a day.
const RULES_TIERED: &str = r#"{"version": 2, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "tiers": [{"id": "gold", "multiplier": "1.5"}],
  "limits": {"member_daily_cap": 100},
  "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "1", "offline_allowance": 100000}}]}"#;

fn members(tier: Option<&str>) -> String {
    let tier = tier.map_or("null".to_string(), |t| format!("{t:?}"));
    format!(
        r#"{{"members": [{{"id": "M-1", "cards": [],
          "programs": {{"main": {{"tier": {tier}, "available": 1000, "pending": 0}}}}}}]}}"#
    )
}

/// A world whose newest bundle is [`RULES_TIERED`], M-1 gold.
fn tiered_world() -> Result<World> {
    let world = World::new()?;
    world
        .central
        .publish_rules(world.file("rules-v2.json", RULES_TIERED)?)?;
    world
        .central
        .import_members(world.file("members-gold.json", &members(Some("gold")))?)?;
    Ok(world)
}

/// The points of a sale's answer in program `main`.
fn earned(answer: &serde_json::Value) -> Result<i64> {
    answer["quote"]["programs"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["program"] == "main"))
        .and_then(|p| p["total"].as_i64())
        .with_context(|| format!("no main total in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_sale_with_a_stale_tier_is_credited_as_the_cashier_saw_it() -> Result<()> {
    let world = tiered_world()?;
    let proxy = Proxy::start(world.addr()).await?;
    let dir = world.register(REG_1, &world.url_via(proxy.addr()))?;
    let agent = dir.start().await?;
    synced(&agent).await?;
    eventually("the register knows rules v2", || async {
        Ok((health(&agent).await?["rules_version"] == 2).then_some(()))
    })
    .await?;

    // The WAN goes down; meanwhile central demotes the member.
    proxy.set_mode(Mode::Drop);
    world
        .central
        .import_members(world.file("members-plain.json", &members(None))?)?;
    let answer = sell(&agent, &sale("S-GOLD", 40, None)).await?;
    assert_eq!(earned(&answer)?, 60, "gold as last known: {answer}");

    proxy.set_mode(Mode::Pass);
    sync_now(&agent).await?;
    synced(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    assert_eq!(status_of(&central), ["applied"], "{central:?}");
    assert!(central[0]["credited"].is_null(), "{central:?}");
    assert_eq!(world.balance("M-1")?, 1_060);
    assert!(world.conflicts("context_corrected")?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_filled_at_another_register_is_corrected_and_the_register_shows_centrals_balance()
-> Result<()> {
    let world = tiered_world()?;
    world
        .central
        .import_members(world.file("members-plain.json", &members(None))?)?;
    let (proxy_1, proxy_2) = (
        Proxy::start(world.addr()).await?,
        Proxy::start(world.addr()).await?,
    );
    let dir_1 = world.register(REG_1, &world.url_via(proxy_1.addr()))?;
    let dir_2 = world.register(REG_2, &world.url_via(proxy_2.addr()))?;
    let (agent_1, agent_2) = (dir_1.start().await?, dir_2.start().await?);
    for agent in [&agent_1, &agent_2] {
        synced(agent).await?;
        eventually("the register knows rules v2", || async {
            Ok((health(agent).await?["rules_version"] == 2).then_some(()))
        })
        .await?;
    }

    // Both offline; each sees nothing earned today and credits 80.
    proxy_1.set_mode(Mode::Drop);
    proxy_2.set_mode(Mode::Drop);
    for (agent, id) in [(&agent_1, "S-A"), (&agent_2, "S-B")] {
        let answer = sell(agent, &sale(id, 80, None)).await?;
        assert_eq!(earned(&answer)?, 80, "{answer}");
    }

    proxy_1.set_mode(Mode::Pass);
    sync_now(&agent_1).await?;
    synced(&agent_1).await?;
    proxy_2.set_mode(Mode::Pass);
    sync_now(&agent_2).await?;
    synced(&agent_2).await?;

    // The second sale is a good-faith receipt: not rejected, credited
    // what the cap leaves (20), and the cause recorded.
    let second = world.central_ledger(REG_2)?;
    assert_eq!(status_of(&second), ["applied"], "{second:?}");
    assert_eq!(second[0]["points"], 80, "{second:?}");
    assert_eq!(second[0]["credited"], 20, "{second:?}");
    assert_eq!(world.balance("M-1")?, 1_100);
    let corrected = world.conflicts("context_corrected")?;
    ensure!(corrected.len() == 1, "{corrected:?}");
    assert_eq!(corrected[0]["terminal_id"], REG_2);
    let detail = corrected[0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("credited as 20") && detail.contains("earned_today"),
        "{detail}"
    );

    // The register keeps its receipt's 80 and shows central's 20 beside it.
    let ledger = agent_ledger(&agent_2).await?;
    assert_eq!(ledger[0]["points"], 80, "{ledger:?}");
    assert_eq!(ledger[0]["credited"]["points"], 20, "{ledger:?}");
    let reason = ledger[0]["credited"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("earned_today"), "{reason}");
    assert!(agent_ledger(&agent_1).await?[0].get("credited").is_none());
    let h = health(&agent_2).await?;
    assert_eq!(h["sync"]["worker"]["entries_corrected"], 1, "{h}");
    let out = dir_2.run_cli(&[
        "status".into(),
        "--config".into(),
        dir_2.config.clone().into(),
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("corrected:     1 entries credited by central"),
        "{text}"
    );

    let available = world.central.balance("M-1", "main")?["available"].clone();
    assert_eq!(available, 1_100);
    for agent in [&agent_1, &agent_2] {
        shows_centrals_balance(agent, &available).await?;
    }
    Ok(())
}
