//! Issue 11, `pos-central migrate --to postgres://…`: a pilot's SQLite
//! central grows into a chain's. A register sells (with an online
//! redemption) against central on SQLite; central stops; `migrate` copies
//! it into an empty PostgreSQL database and verifies the copy; `serve` on
//! the same directory now runs on PostgreSQL, and the register goes on
//! where it left off: its chain continues, nothing is applied twice, the
//! balance is the replay, the fleet report and conflicts came along.
//! Migrating twice, or into a database in use, is refused.

use anyhow::{Context, Result, ensure};
use pos_testkit::central_proc::Central;

use super::REG_1;
use super::support::*;
use super::{points_sum, status_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_central_moves_to_postgres_and_its_registers_go_on() -> Result<()> {
    let test = "a_sqlite_central_moves_to_postgres_and_its_registers_go_on";
    let Some(url) = pos_testkit::postgres::fresh_database(test) else {
        return Ok(());
    };
    // A SQLite central (also in POS_E2E_CENTRAL=pair mode): what is migrated.
    let mut world = World::with_central(Central::start()?)?;
    let dir = world.register(REG_1, &world.central.url)?;
    let mut agent = dir.start().await?;
    for i in 0..10u32 {
        let redeem = (i == 7).then_some(200);
        sell(&agent, &sale(&format!("S-{i}"), 10 + i, redeem)).await?;
    }
    synced(&agent).await?;
    eventually("the fleet report", || async {
        let list = world.admin("/v1/admin/terminals")?;
        Ok(list["terminals"][0]["report"].is_object().then_some(()))
    })
    .await?;
    let before_balance = world.balance("M-1")?;
    agent.kill9();

    let addr = world.central.addr.to_string();
    world.central.kill();
    let out = world.central.cli(&["migrate", "--to", &url])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "migrate: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(stdout.contains("verified:"), "{stdout}");
    let entries: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("entries"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no entries line in {stdout}"))?;
    ensure!(entries == 11, "10 earns and a redemption: {stdout}");
    let again = world.central.cli(&["migrate", "--to", &url])?;
    ensure!(
        again.status.code() == Some(2),
        "a second migrate is refused: {again:?}"
    );

    world.central.serve(&addr).context("serve on PostgreSQL")?;
    ensure!(
        world.balance("M-1")? == before_balance,
        "the balance came along"
    );
    let list = world.admin("/v1/admin/terminals")?;
    ensure!(list["terminals"][0]["report"].is_object(), "{list}");

    agent = dir.start().await?;
    for i in 10..15u32 {
        sell(&agent, &sale(&format!("S-{i}"), 10 + i, None)).await?;
    }
    sync_now(&agent).await?;
    synced(&agent).await?;
    let register = agent_ledger(&agent).await?;
    let central = world.central_ledger(REG_1)?;
    ensure!(register.len() >= 15, "{} entries", register.len());
    assert_same_ledger(&register, &central);
    ensure!(
        status_of(&central).iter().all(|s| s == "applied"),
        "{:?}",
        status_of(&central)
    );
    ensure!(world.balance("M-1")? == 1_000 + points_sum(&register));
    Ok(())
}

#[test]
fn migrating_into_a_database_in_use_is_refused() -> Result<()> {
    let test = "migrating_into_a_database_in_use_is_refused";
    let Some(url) = pos_testkit::postgres::fresh_database(test) else {
        return Ok(());
    };
    let in_use = pos_testkit::central_proc::Central::start_on_database(&url)?;
    in_use.add_terminal("store-2-reg-1")?;
    let mut pilot = pos_testkit::central_proc::Central::start()?;
    pilot.add_terminal("store-1-reg-1")?;
    pilot.kill();
    let out = pilot.cli(&["migrate", "--to", &url])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.code() == Some(2), "{stderr}");
    ensure!(stderr.contains("already holds 1 terminals"), "{stderr}");
    Ok(())
}
