//! Issue 12, orders from other channels (`docs/channels.md`), with real
//! processes: a member earns in the web shop the night before, redeems
//! those points at a register whose WAN is down, and returns part of the
//! web order online; central's ledger, the register's and the member's
//! balance agree to the point. And the batch intake: an order file sent
//! twice is applied once; a file with one bad line applies nothing and
//! names the line.

use anyhow::{Context, Result, ensure};
use pos_testkit::central_proc::post_json;
use pos_testkit::proxy::{Mode, Proxy};
use serde_json::{Value, json};

use super::REG_1;
use super::support::*;

const WEB: &str = "@channel/web";

/// M-1's web order: 30 € of shoes and two 10 € bags: 50 points under
/// RULES_V1 (1 point per euro).
fn web_order(id: &str) -> Value {
    json!({"order_id": id, "member": "M-1", "time": now_rfc3339(), "lines": [
        {"line": 1, "sku": "4006381333931", "category": "shoes", "qty": "1", "unit_price": "30.00"},
        {"line": 2, "sku": "BAG", "category": "home", "qty": "2", "unit_price": "10.00"}
    ]})
}

fn points(entries: &[Value]) -> Vec<(String, i64)> {
    entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["points"].as_i64().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earned_online_redeemed_offline_returned_online_all_agree() -> Result<()> {
    let mut world = World::insecure()?;
    let token = world.central.add_channel("web")?;
    let proxy = Proxy::start(world.addr()).await?;
    let dir = world.register(REG_1, &world.url_via(proxy.addr()))?;
    let agent = dir.start().await?;
    synced(&agent).await?;

    // The evening before: a web order.
    let (status, order) = post_json(
        world.addr(),
        "/v1/channel/orders",
        &token,
        &web_order("W-1"),
    )
    .await?;
    ensure!(status == 200, "order answered {status}: {order}");
    assert_eq!(order["programs"][0]["earned"], 50, "{order}");
    assert_eq!(world.balance("M-1")?, 1_050);
    // The register learns it with its member download.
    shows_centrals_balance(&agent, &json!(1_050)).await?;

    // The store's WAN goes down; the member spends the web points there.
    proxy.set_mode(Mode::Drop);
    let sale = sell(&agent, &sale("S-1", 20, Some(1_000))).await?;
    let earned_in_store = sale["quote"]["programs"][0]["total"]
        .as_i64()
        .context("the sale's points")?;

    // Meanwhile, online, one bag goes back to the web shop.
    let ret = json!({"return_id": "WR-1", "order_id": "W-1", "time": now_rfc3339(),
                     "lines": [{"line": 2, "qty": "1"}]});
    let (status, returned) = post_json(world.addr(), "/v1/channel/returns", &token, &ret).await?;
    ensure!(status == 200, "return answered {status}: {returned}");
    assert_eq!(returned["programs"][0]["reversed"], 10, "{returned}");

    // The WAN is back; everything meets at central.
    proxy.set_mode(Mode::Pass);
    sync_now(&agent).await?;
    synced(&agent).await?;
    assert_same_ledger(&agent_ledger(&agent).await?, &world.central_ledger(REG_1)?);
    let web = world.central_ledger(WEB)?;
    assert_eq!(
        points(&web),
        [("earn".to_string(), 50), ("return_earn".to_string(), -10)]
    );
    let expected = 1_000 + 50 - 1_000 + earned_in_store - 10;
    assert_eq!(world.balance("M-1")?, expected);
    // The register shows central's balance, to the point.
    shows_centrals_balance(&agent, &json!(expected)).await?;

    // A web order resent after a lost answer counts once; a central
    // restart changes nothing of it.
    world.stop_central();
    world.start_central()?;
    let (status, again) = post_json(world.addr(), "/v1/channel/orders", &token, &json!({
        "order_id": "W-1", "member": "M-1", "time": order_time(&web)?, "lines": web_order("W-1")["lines"]
    })).await?;
    ensure!(status == 200, "resent order answered {status}: {again}");
    assert_eq!(again, order, "the stored answer");
    assert_eq!(world.balance("M-1")?, expected);
    assert!(world.conflicts("clock_skew")?.is_empty());
    Ok(())
}

/// The web order's time as central stored it (its entries' `occurred_at`).
fn order_time(web: &[Value]) -> Result<String> {
    web.first()
        .and_then(|e| e["occurred_at"].as_str())
        .map(str::to_string)
        .context("no web entry")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_file_counts_once_and_a_bad_line_stops_all_of_it() -> Result<()> {
    let world = World::insecure()?;
    world.central.add_channel("web")?;
    let line = |id: &str, euros: u32| {
        json!({"order_id": id, "member": "M-1", "time": "2026-12-01T19:30:00+01:00",
               "lines": [{"sku": "A", "qty": "1", "unit_price": format!("{euros}.00")}]})
        .to_string()
    };
    let good = world.file(
        "orders.jsonl",
        &format!("{}\n{}\n", line("W-10", 40), line("W-11", 25)),
    )?;
    let good = good.to_str().context("path")?;
    let out = world
        .central
        .cli(&["import-orders", good, "--channel", "web"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 orders in"), "{stdout}");
    assert!(
        stdout.contains("2 recorded, 0 already recorded; 65 points earned"),
        "{stdout}"
    );
    assert_eq!(world.balance("M-1")?, 1_065);

    // The same file again: nothing twice.
    let out = world
        .central
        .cli(&["import-orders", good, "--channel", "web"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0 recorded, 2 already recorded"),
        "{stdout}"
    );
    assert_eq!(world.balance("M-1")?, 1_065);
    assert_eq!(world.central_ledger(WEB)?.len(), 2);

    // One bad line among good ones: nothing recorded, the line named.
    let bad = world.file(
        "bad.jsonl",
        &format!(
            "{}\n{}\n{}\n",
            line("W-12", 10),
            line("W-13", 10).replace("\"qty\":\"1\"", "\"qty\":\"-1\""),
            line("W-14", 10)
        ),
    )?;
    let out = world.central.cli(&[
        "import-orders",
        bad.to_str().context("path")?,
        "--channel",
        "web",
    ])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "bad input: {stderr}");
    assert!(stderr.contains("line 2: "), "{stderr}");
    assert!(stderr.contains("qty"), "{stderr}");
    assert!(stderr.contains("nothing was recorded"), "{stderr}");
    assert_eq!(world.balance("M-1")?, 1_065);
    assert_eq!(world.central_ledger(WEB)?.len(), 2);
    // A CSV of the same orders is the same orders: already recorded.
    let csv = world.file(
        "orders.csv",
        "order_id,member,time,sku,qty,unit_price\n\
         W-10,M-1,2026-12-01T19:30:00+01:00,A,1,40.00\n\
         W-11,M-1,2026-12-01T19:30:00+01:00,A,1,25.00\n",
    )?;
    let out = world.central.cli(&[
        "import-orders",
        csv.to_str().context("path")?,
        "--channel",
        "web",
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("0 recorded, 2 already recorded"),
        "{stdout}"
    );
    Ok(())
}
