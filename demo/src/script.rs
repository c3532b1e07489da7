//! The scripted store day: set-up, an online morning (one sale scanned on
//! reg-1's pty scanner), an outage (reg-2's redemption scanned on its own)
//! during which both registers keep
//! trading and both let the same member redeem more than the balance, the
//! recovery, and the summary.
//!
//! Every figure the story prints comes from an answer of a register or of
//! central; the script chooses only baskets and the redemption size, and
//! that size from what the register reports (see `data::redemption_points`).

use pos_sync::protocol::BundleFormat;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::at_central::{
    central_available, central_balance, central_entry_count, overdrafts_at_central,
};
use crate::data::{
    BANANAS, CAR_WASH, CATALOG_JSON, CHOCOLATE, COFFEE, MEMBERS_JSON, OTHER_MEMBER,
    OVERDRAWN_MEMBER, OVERDRAWN_MEMBER_CARD, PROGRAM, RULES_JSON, RedeemRules, SHOE, WATER,
    basket_amount, program_ids, redemption_points, sale,
};
use crate::narrator::Narrator;
use crate::summary::{self, Outcome};
use crate::world::{Register, World, wait_for};
use crate::{DemoError, DemoOptions, Pace};
use pos_agent::model::{Freshness, MemberBalances, ReturnAnswer, SaleAnswer};
use pos_agent::sync_worker::SyncPhase;

/// What the outage left for the recovery and the summary to check.
pub struct Overdraw {
    /// Central's balance of the member when the link was cut.
    pub balance_at_cut: i64,
    /// Points redeemed offline, per register.
    pub redeemed: Vec<(String, i64)>,
}

pub async fn play(
    world: &mut World,
    n: &Narrator,
    pace: Pace,
    options: &DemoOptions,
) -> Result<Outcome, DemoError> {
    set_up(world, n, pace, options).await?;
    pace.act().await;
    morning(world, n, pace).await?;
    pace.act().await;
    let overdraw = outage(world, n, pace).await?;
    pace.act().await;
    recovery(world, n, pace).await?;
    pace.act().await;
    summary::compute(world, n, &overdraw).await
}

// --- 1. set-up -------------------------------------------------------------------

async fn set_up(
    world: &mut World,
    n: &Narrator,
    pace: Pace,
    options: &DemoOptions,
) -> Result<(), DemoError> {
    n.act("1. Set-up: one central, one store, two registers");
    n.say(&format!(
        "State in {} ({}).",
        world.dir.display(),
        if options.dir_is_temporary {
            "a temporary directory, removed at the end; keep it with --dir"
        } else {
            "kept after the demo"
        }
    ));
    n.say(&format!("Logs: {}.", options.logs));
    start_central(world, n).await?;
    pace.step().await;
    start_registers(world, n).await?;
    first_syncs(world, n, pace).await?;
    scanners_up(world, n).await
}

/// Central with the example rules, members and catalog, and the link in
/// front of it.
async fn start_central(world: &mut World, n: &Narrator) -> Result<(), DemoError> {
    let central =
        pos_central::embedded::start(&world.dir.join("central"), loopback_any_port(), true).await?;
    n.say(&format!(
        "Central initialised (signing key, admin token, development TLS CA) and serving {}.",
        central.url
    ));
    let version = central.publish_rules(RULES_JSON.as_bytes().to_vec(), BundleFormat::Json)?;
    n.say(&format!(
        "Rules v{version} published, signed with central's Ed25519 key: programs {}.",
        program_ids(RULES_JSON)?.join(", ")
    ));
    let members = central.import_members(MEMBERS_JSON)?;
    let products = central.import_catalog(CATALOG_JSON)?;
    n.say(&format!(
        "{members} members and {products} products imported."
    ));
    let upstream = central.addr;
    world.central = Some(central);
    world.link = Some(crate::link::Link::start(upstream).await?);
    n.say(&format!(
        "Network link up: the registers reach central through {} (the demo can cut it).",
        world.link()?.addr()
    ));
    Ok(())
}

/// Both registers, each with a scanner on a pseudo-terminal.
async fn start_registers(world: &mut World, n: &Narrator) -> Result<(), DemoError> {
    for (name, scanner) in [("reg-1", true), ("reg-2", true)] {
        let register = world.start_register(name, scanner).await?;
        let device = match &register.scanner {
            Some(s) => format!(", scanner {:?} on a pseudo-terminal", s.lock().await.device),
            None => String::new(),
        };
        n.say(&format!(
            "{name} ({}) started: terminal added at central, API on {}{device}.",
            register.id,
            register.socket.display()
        ));
    }
    Ok(())
}

/// Waits for each register's first sync (rules, members, catalog).
async fn first_syncs(world: &World, n: &Narrator, pace: Pace) -> Result<(), DemoError> {
    for register in &world.registers {
        let health = wait_for(&format!("{}'s first sync", register.name), || async {
            let h = register.daemon.health().await;
            let done = h
                .sync
                .worker
                .as_ref()
                .is_some_and(|w| w.last_success_at.is_some());
            Ok(match (done, h.rules_version) {
                (true, Some(_)) => Ok(h),
                _ => Err(h.sync.detail),
            })
        })
        .await?;
        let (members, catalog) = cache_sizes(register).await?;
        n.say(&format!(
            "{} first sync done: rules v{}, {members} members and {catalog} products downloaded.",
            register.name,
            health.rules_version.unwrap_or_default()
        ));
        pace.step().await;
    }
    Ok(())
}

/// Waits until each register reports its scanner up.
async fn scanners_up(world: &World, n: &Narrator) -> Result<(), DemoError> {
    for register in &world.registers {
        let Some(scanner) = &register.scanner else {
            continue;
        };
        let device = scanner.lock().await.device.clone();
        wait_for("the scanner to be open", || async {
            let h = register.daemon.health().await;
            let state = h
                .devices
                .iter()
                .find(|d| d.name == device)
                .map(|d| d.state.clone());
            Ok(match state.as_deref() {
                Some("up") => Ok(()),
                other => Err(format!("device state {other:?}")),
            })
        })
        .await?;
        n.say(&format!("{}'s scanner {device:?} is up.", register.name));
    }
    Ok(())
}

fn loopback_any_port() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// How many of the members and products imported at central a register
/// can look up (read from its store, as the session and sales do).
async fn cache_sizes(register: &Register) -> Result<(usize, usize), DemoError> {
    let store = register.daemon.store();
    let members: Value = serde_json::from_str(MEMBERS_JSON)
        .map_err(|e| DemoError::Script(format!("examples/members.json: {e}")))?;
    let mut known = 0;
    for id in members["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
    {
        if store.member(id).await.is_ok_and(|m| m.known) {
            known += 1;
        }
    }
    let catalog: Value = serde_json::from_str(CATALOG_JSON)
        .map_err(|e| DemoError::Script(format!("examples/catalog.json: {e}")))?;
    let mut priced = 0;
    for sku in catalog["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["sku"].as_str())
    {
        if store.product(sku).await.is_ok_and(|p| p.is_some()) {
            priced += 1;
        }
    }
    Ok((known, priced))
}

// --- 2. morning ----------------------------------------------------------------

async fn morning(world: &mut World, n: &Narrator, pace: Pace) -> Result<(), DemoError> {
    n.act("2. Morning: online");
    scan_checkout(world, 0, "R1-0001", &[SHOE, COFFEE], n, pace).await?;
    let scanned: SaleAnswer = register(world, 0)?
        .ok("POST", "/v1/session/commit", Some(&json!({})))
        .await?;
    n.say(&format!(
        "reg-1 sale {} (scanned, committed by the POS): {}",
        scanned.sale_id,
        earned(&scanned)
    ));
    pace.step().await;

    let reg2 = register(world, 1)?;
    let a = sell(
        reg2,
        &sale(
            "R2-0001",
            Some(OTHER_MEMBER),
            &[(BANANAS, "2"), (CHOCOLATE, "3")],
            None,
        ),
    )
    .await?;
    n.say(&format!("reg-2 sale {} (POS): {}", a.sale_id, earned(&a)));
    pace.step().await;

    let reg1 = register(world, 0)?;
    let b = sell(
        reg1,
        &sale("R1-0002", Some(OTHER_MEMBER), &[(CAR_WASH, "1")], None),
    )
    .await?;
    n.say(&format!("reg-1 sale {} (POS): {}", b.sale_id, earned(&b)));
    pace.step().await;

    for register in &world.registers {
        synced(register).await?;
    }
    n.say(&format!(
        "Both registers synced: central holds {} entries; unsynced {}.",
        central_entry_count(world)?,
        unsynced_line(world).await
    ));
    Ok(())
}

/// A cashier scans a member card and products on register `index`'s
/// scanner into a checkout the POS opened as `sale_id`; returns the
/// checkout (`GET /v1/session`) for the POS to commit.
async fn scan_checkout(
    world: &World,
    index: usize,
    sale_id: &str,
    codes: &[&str],
    n: &Narrator,
    pace: Pace,
) -> Result<Value, DemoError> {
    let register = register(world, index)?;
    let Some(scanner) = &register.scanner else {
        return Err(DemoError::Script(format!(
            "{} has no scanner",
            register.name
        )));
    };
    let mut scanner = scanner.lock().await;
    let name = register.name.clone();

    let _: Value = register
        .ok(
            "POST",
            "/v1/session/start",
            Some(&json!({"sale_id": sale_id})),
        )
        .await?;
    scanner.scan(OVERDRAWN_MEMBER_CARD).await?;
    let session = wait_for("the member card in the checkout", || async {
        let s: Value = register.ok("GET", "/v1/session", None).await?;
        Ok(if s["checkout"]["member"]["id"] == OVERDRAWN_MEMBER {
            Ok(s)
        } else {
            Err(s.to_string())
        })
    })
    .await?;
    n.say(&format!(
        "{name} scanner: card {OVERDRAWN_MEMBER_CARD} -> member {} attached to checkout {sale_id}.",
        session["checkout"]["member"]["id"].as_str().unwrap_or("?")
    ));
    pace.step().await;
    let mut session = session;
    for (i, code) in codes.iter().enumerate() {
        scanner.scan(code).await?;
        session = wait_for("a scanned product in the checkout", || async {
            let s: Value = register.ok("GET", "/v1/session", None).await?;
            let lines = s["checkout"]["lines"].as_array().map_or(0, Vec::len);
            Ok(if lines > i { Ok(s) } else { Err(s.to_string()) })
        })
        .await?;
        let line = &session["checkout"]["lines"][i];
        n.say(&format!(
            "{name} scanner: EAN {code} -> {} at {} EUR; checkout total {} EUR.",
            line["name"].as_str().unwrap_or("?"),
            line["unit_price"].as_str().unwrap_or("?"),
            session["amount"].as_str().unwrap_or("?")
        ));
        pace.step().await;
    }
    Ok(session)
}

// --- 3. outage -----------------------------------------------------------------

async fn outage(world: &mut World, n: &Narrator, pace: Pace) -> Result<Overdraw, DemoError> {
    n.act("3. Outage: the link to central is cut");
    world.link()?.cut();
    let balance_at_cut = central_balance(world, OVERDRAWN_MEMBER)?;
    n.say(&format!(
        "Link cut. Central keeps running; {OVERDRAWN_MEMBER} has {balance_at_cut} points there."
    ));
    pace.step().await;
    trade_offline(world, n, pace).await?;
    sync_notices_the_outage(world, n).await?;
    let redeem = member_data_goes_stale(world, n, pace).await?;
    let redeemed = overdraw_offline(world, n, pace, &redeem).await?;
    let total: i64 = redeemed.iter().map(|(_, p)| p).sum();
    n.say(&format!(
        "Together the registers let {OVERDRAWN_MEMBER} redeem {total} points, more than the {balance_at_cut} central holds; unsynced {}.",
        unsynced_line(world).await
    ));
    Ok(Overdraw {
        balance_at_cut,
        redeemed,
    })
}

/// Both registers keep trading with the link cut: a sale on each, a
/// return on reg-2.
async fn trade_offline(world: &World, n: &Narrator, pace: Pace) -> Result<(), DemoError> {
    let reg1 = register(world, 0)?;
    let reg2 = register(world, 1)?;
    let a = sell(
        reg1,
        &sale("R1-0003", Some(OTHER_MEMBER), &[(COFFEE, "2")], None),
    )
    .await?;
    n.say(&format!(
        "reg-1 sale {} offline: {}; unsynced {}.",
        a.sale_id,
        earned(&a),
        unsynced_line(world).await
    ));
    pace.step().await;
    let b = sell(
        reg2,
        &sale(
            "R2-0002",
            Some(OVERDRAWN_MEMBER),
            &[(CHOCOLATE, "4"), (WATER, "6")],
            None,
        ),
    )
    .await?;
    n.say(&format!(
        "reg-2 sale {} offline: {}; unsynced {}.",
        b.sale_id,
        earned(&b),
        unsynced_line(world).await
    ));
    pace.step().await;
    let r: ReturnAnswer = reg2
        .ok(
            "POST",
            "/v1/sales/R2-0002/returns",
            Some(&json!({"return_id": "RET-2-0001", "lines": [{"line": 1, "qty": "2"}]})),
        )
        .await?;
    let reversed: i64 = r.programs.iter().map(|p| p.reversed).sum();
    n.say(&format!(
        "reg-2 return {} of 2 chocolate bars from {}: {reversed} points taken back; unsynced {}.",
        r.return_id,
        r.sale_id,
        unsynced_line(world).await
    ));
    pace.step().await;
    Ok(())
}

/// Waits until each register's sync worker is retrying.
async fn sync_notices_the_outage(world: &World, n: &Narrator) -> Result<(), DemoError> {
    for register in [register(world, 0)?, register(world, 1)?] {
        let report = wait_for("sync to notice the outage", || async {
            let h = register.daemon.health().await;
            Ok(match h.sync.worker {
                Some(w) if w.phase == SyncPhase::Retrying => Ok(w),
                _ => Err(h.sync.detail),
            })
        })
        .await?;
        n.say(&format!(
            "{} sync is retrying ({} failure(s) so far): {}.",
            register.name,
            report.consecutive_failures,
            report.last_error.as_deref().unwrap_or("no error text")
        ));
    }
    Ok(())
}

/// Waits until both registers treat the member's data as stale: from then
/// on the offline allowance bounds what each may redeem. Returns the
/// program's redeem rules.
async fn member_data_goes_stale(
    world: &World,
    n: &Narrator,
    pace: Pace,
) -> Result<RedeemRules, DemoError> {
    for register in [register(world, 0)?, register(world, 1)?] {
        wait_for("member data to become stale", || async {
            let m = member(register, OVERDRAWN_MEMBER).await?;
            Ok(if m.freshness == Freshness::Stale {
                Ok(())
            } else {
                Err(format!("{:?}", m.freshness))
            })
        })
        .await?;
    }
    let redeem = RedeemRules::of_program(PROGRAM)?;
    n.say(&format!(
        "Member data on both registers is now stale (older than {} s): each register may redeem at most {} points per member until it hears from central again.",
        crate::world::MEMBER_FRESH_SECS,
        redeem.offline_allowance
    ));
    pace.step().await;
    Ok(redeem)
}

/// Each register lets the member redeem what it sees, within its
/// allowance: reg-1's POS sends the whole sale; on reg-2 the cashier scans
/// the card and the shoe, and the POS commits the checkout with the
/// redemption. Returns the points redeemed per register.
async fn overdraw_offline(
    world: &World,
    n: &Narrator,
    pace: Pace,
    redeem: &RedeemRules,
) -> Result<Vec<(String, i64)>, DemoError> {
    let mut redeemed = Vec::new();
    for (index, sale_id) in [(0, "R1-0004"), (1, "R2-0003")] {
        let checkout = if index == 1 {
            Some(scan_checkout(world, index, sale_id, &[SHOE], n, pace).await?)
        } else {
            None
        };
        let register = register(world, index)?;
        let seen = member(register, OVERDRAWN_MEMBER).await?;
        let available = seen.programs.get(PROGRAM).map_or(0, |b| b.available);
        let answer = redeem_all_seen(register, sale_id, checkout, redeem, available).await?;
        let points: i64 = answer
            .redeemed
            .iter()
            .filter(|r| r.program == PROGRAM)
            .map(|r| r.points)
            .sum();
        n.say(&format!(
            "{} sale {} offline: {OVERDRAWN_MEMBER} pays {points} of the {available} points this register sees ({} EUR, within its allowance); {}.",
            register.name,
            answer.sale_id,
            Decimal::from(points) / Decimal::from(redeem.points_per_unit),
            earned(&answer)
        ));
        redeemed.push((register.name.clone(), points));
        pace.step().await;
    }
    Ok(redeemed)
}

/// One shoe paid with as many of the `available` points as the rules
/// allow: the scanned `checkout` committed with the redemption, or, with
/// none, the whole sale sent by the POS. One shoe: the share limit allows
/// far more than the balance, and the sale's own earn stays small next to
/// the redemption.
async fn redeem_all_seen(
    register: &Register,
    sale_id: &str,
    checkout: Option<Value>,
    redeem: &RedeemRules,
    available: i64,
) -> Result<SaleAnswer, DemoError> {
    let Some(checkout) = checkout else {
        let basket = [(SHOE, "1")];
        let points = redemption_points(redeem, available, basket_amount(&basket)?)?;
        return sell(
            register,
            &sale(sale_id, Some(OVERDRAWN_MEMBER), &basket, Some(points)),
        )
        .await;
    };
    let amount = checkout["amount"]
        .as_str()
        .and_then(|a| a.parse::<Decimal>().ok())
        .ok_or_else(|| DemoError::Script(format!("checkout without an amount: {checkout}")))?;
    let points = redemption_points(redeem, available, amount)?;
    register
        .ok(
            "POST",
            "/v1/session/commit",
            Some(&json!({"redeem": [{"program": PROGRAM, "points": points}]})),
        )
        .await
}

// --- 4. recovery ---------------------------------------------------------------

async fn recovery(world: &mut World, n: &Narrator, pace: Pace) -> Result<(), DemoError> {
    n.act("4. Recovery: the link is back");
    world.link()?.restore();
    n.say("Link restored; POST /v1/sync/now on both registers.");
    let started = std::time::Instant::now();
    for register in &world.registers {
        let (status, answer) = register.call("POST", "/v1/sync/now", None).await?;
        if status != 202 {
            return Err(DemoError::Script(format!(
                "{}: sync/now answered {status}: {answer}",
                register.name
            )));
        }
    }
    for register in &world.registers {
        let h = synced(register).await?;
        let overdrafts = h.sync.worker.as_ref().map_or(0, |w| w.overdrafts_total);
        n.say(&format!(
            "{} has nothing unsynced ({:.1} s after the link came back); overdrafts answered to it: {overdrafts}.",
            register.name,
            started.elapsed().as_secs_f64()
        ));
    }
    pace.step().await;
    for c in overdrafts_at_central(world)? {
        n.say(&format!(
            "Central recorded a conflict: overdraft by {} (seq {}), member {}, program {}, shortfall {} points.",
            c.terminal_id,
            c.seq.map_or("?".into(), |s| s.to_string()),
            c.member.as_deref().unwrap_or("?"),
            c.program.as_deref().unwrap_or("?"),
            c.shortfall.unwrap_or_default()
        ));
    }
    let balance = central_balance(world, OVERDRAWN_MEMBER)?;
    n.say(&format!(
        "{OVERDRAWN_MEMBER}'s balance at central: {balance} points (both sales stand: the goods left the store)."
    ));
    pace.step().await;
    let available = central_available(world, OVERDRAWN_MEMBER)?;
    for register in &world.registers {
        wait_for("the register to show central's balance", || async {
            let m = member(register, OVERDRAWN_MEMBER).await?;
            let shown = m.programs.get(PROGRAM).map(|b| (b.available, b.unsynced));
            Ok(if shown == Some((available, 0)) {
                Ok(())
            } else {
                Err(format!("(available, unsynced) {shown:?}"))
            })
        })
        .await?;
        n.say(&format!(
            "{} shows {OVERDRAWN_MEMBER} at {available} available, central's figure from its last download.",
            register.name
        ));
    }
    Ok(())
}

// --- helpers -------------------------------------------------------------------

pub fn register(world: &World, index: usize) -> Result<&Register, DemoError> {
    world
        .registers
        .get(index)
        .ok_or_else(|| DemoError::Script(format!("register {} is not running", index + 1)))
}

async fn sell(register: &Register, body: &Value) -> Result<SaleAnswer, DemoError> {
    register.ok("POST", "/v1/sales", Some(body)).await
}

async fn member(register: &Register, id: &str) -> Result<MemberBalances, DemoError> {
    register.ok("GET", &format!("/v1/members/{id}"), None).await
}

/// "M-1001 earns 95 points (main), balance 1595" for the story.
fn earned(answer: &SaleAnswer) -> String {
    let member = answer.quote.member.as_deref().unwrap_or("no member");
    let points: Vec<String> = answer
        .quote
        .programs
        .iter()
        .filter(|p| p.total != 0)
        .map(|p| format!("{} {}", p.total, p.program))
        .collect();
    let balance = answer.balances.get(PROGRAM).map_or(String::new(), |b| {
        format!(", {PROGRAM} balance {}", b.available)
    });
    if points.is_empty() {
        format!("{member} earns nothing{balance}")
    } else {
        format!("{member} earns {}{balance}", points.join(" + "))
    }
}

/// "reg-1 3, reg-2 2": entries not yet accepted by central.
async fn unsynced_line(world: &World) -> String {
    let mut parts = Vec::new();
    for register in &world.registers {
        let h = register.daemon.health().await;
        parts.push(format!("{} {}", register.name, h.outbox_depth));
    }
    parts.join(", ")
}

/// Waits until a register's outbox is empty and its worker idle.
pub async fn synced(register: &Register) -> Result<pos_agent::health::Health, DemoError> {
    wait_for(&format!("{} to sync", register.name), || async {
        let h = register.daemon.health().await;
        let idle = h
            .sync
            .worker
            .as_ref()
            .is_some_and(|w| w.phase == SyncPhase::Idle);
        Ok(if idle && h.outbox_depth == 0 {
            Ok(h)
        } else {
            Err(format!("outbox {}, {}", h.outbox_depth, h.sync.detail))
        })
    })
    .await
}
