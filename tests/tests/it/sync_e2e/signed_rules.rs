//! Issue 9, "rules on the register stay signed" (`docs/signed-rules.md`),
//! attacked through the real binaries:
//!
//! - `pos-agent import --rules evil.json` (version 9999, `base_rate` 100) on
//!   a register with `[central]`: refused, nothing stored, the next sale
//!   uses central's rules; a badly signed file likewise;
//! - `pos-central export-rules` → `pos-agent import` round trip;
//! - a bundle row edited in the SQLite file is not used after a restart
//!   (sales answer `rules_unverified`, health says why) until central's
//!   signed bytes repair it;
//! - bundles cached before signatures were kept are completed from
//!   central, so old sales can be returned again;
//! - a version central never published (an unsigned row, as an import
//!   before this change left it) does not hold back central's newer
//!   versions, and a signed-looking one shows as drift in health and status.

use anyhow::{Context, Result, ensure};
use pos_testkit::agent_proc::{AgentDir, AgentProc};
use serde_json::Value;

use super::support::*;

const REG: &str = "store-1-reg-1";

/// The attacker's bundle of the issue.
const EVIL: &str = r#"{"version": 9999, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "100"}]}"#;

fn import_args(dir: &AgentDir, rules: &std::path::Path) -> Vec<std::ffi::OsString> {
    vec![
        "import".into(),
        "--rules".into(),
        rules.into(),
        "--config".into(),
        dir.config.clone().into(),
    ]
}

/// Rules versions stored in the register's database, in order.
fn stored_versions(dir: &AgentDir) -> Result<Vec<i64>> {
    let conn = rusqlite::Connection::open(&dir.db)?;
    let mut stmt = conn.prepare("SELECT version FROM rules ORDER BY version")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn sql(dir: &AgentDir, statement: &str) -> Result<usize> {
    let conn = rusqlite::Connection::open(&dir.db)?;
    Ok(conn.execute(statement, [])?)
}

/// A sale of `euros` for M-1; gives the points earned in `main`.
async fn earned(agent: &AgentProc, id: &str, euros: u32) -> Result<i64> {
    let answer = sell(agent, &sale(id, euros, None)).await?;
    answer["quote"]["programs"][0]["total"]
        .as_i64()
        .or_else(|| answer["quote"]["total"].as_i64())
        .with_context(|| format!("no points in {answer}"))
}

fn status_text(dir: &AgentDir) -> Result<String> {
    let out = dir.run_cli(&[
        "status".into(),
        "--config".into(),
        dir.config.clone().into(),
    ])?;
    ensure!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_or_badly_signed_import_is_refused_and_nothing_is_stored() -> Result<()> {
    let world = World::new()?;
    // The register is provisioned by the round trip export-rules → import.
    let dir = world.register(REG, &world.url())?;
    assert_eq!(stored_versions(&dir)?, vec![1]);

    let evil = dir.write_file("evil.json", EVIL)?;
    let out = dir.run_cli(&import_args(&dir, &evil))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("evil.json"), "{stderr}");
    assert!(stderr.contains("not a signed rules file"), "{stderr}");
    assert!(stderr.contains("nothing stored"), "{stderr}");

    // Central's signed file with the bundle changed: the signature fails.
    let signed = world.signed_rules(&dir, RULES_V1)?;
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&signed)?)?;
    let forged = RULES_V1.replace(r#""base_rate": "1""#, r#""base_rate": "100""#);
    ensure!(forged != RULES_V1, "the forgery changed nothing");
    file["bundle"] = forged.into();
    let forged_path = dir.write_file("forged.json", &file.to_string())?;
    let out = dir.run_cli(&import_args(&dir, &forged_path))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("forged.json"), "{stderr}");
    assert!(stderr.contains("signature does not verify"), "{stderr}");
    assert_eq!(stored_versions(&dir)?, vec![1], "nothing stored");

    // A version central never published cannot be exported either.
    let out = world.central.cli(&["export-rules", "9999"])?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never published"), "{stderr}");

    let agent = dir.start().await?;
    assert_eq!(
        earned(&agent, "S-1", 10).await?,
        10,
        "central's base_rate 1"
    );
    let h = synced(&agent).await?;
    assert_eq!(h["rules_version"], 1, "{h}");
    assert_eq!(h["central_rules_version"], 1, "{h}");
    assert!(
        h["rules_drift"].is_null() && h["rules_unverified"].is_null(),
        "{h}"
    );
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(world.balance("M-1")?, 1_000 + 10);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_edited_in_the_database_is_not_used_until_central_repairs_it() -> Result<()> {
    let mut world = World::new()?;
    let dir = world.register(REG, &world.url())?;
    // The signed bytes edited in place, the signature left as it was.
    let changed = sql(
        &dir,
        r#"UPDATE rules SET signed_bytes = CAST(replace(CAST(signed_bytes AS TEXT),
           '"base_rate": "1"', '"base_rate": "100"') AS BLOB),
           bundle = replace(bundle, '"base_rate":"1"', '"base_rate":"100"')"#,
    )?;
    assert_eq!(changed, 1);
    world.stop_central();
    let agent = dir.start().await?;

    let (status, answer) = agent.post("/v1/sales", &sale("S-1", 10, None)).await?;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "rules_unverified", "{answer}");
    let h = health(&agent).await?;
    assert_eq!(h["status"], "degraded", "{h}");
    let why = h["rules_unverified"].as_str().unwrap_or_default();
    assert!(why.contains("signature does not verify"), "{h}");
    assert!(status_text(&dir)?.contains("RULES UNVERIFIED"));

    // Central back: the download asks after the newest version that
    // verifies (none) and central's signed bytes replace the edited row.
    world.start_central()?;
    sync_now(&agent).await?;
    eventually("edited rules repaired from central", || async {
        let h = health(&agent).await?;
        Ok(h["rules_unverified"].is_null().then_some(()))
    })
    .await?;
    assert_eq!(earned(&agent, "S-2", 10).await?, 10);
    let h = synced(&agent).await?;
    assert_eq!(h["status"], "ok", "{h}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_central_never_published_neither_holds_back_its_rules_nor_hides() -> Result<()> {
    let world = World::new()?;
    let dir = world.register(REG, &world.url())?;
    // What `import --rules evil.json` left before signatures were kept.
    sql(
        &dir,
        &format!(
            "INSERT INTO rules (version, bundle, source, received_at) \
             VALUES (9999, '{}', 'import:evil.json', '2026-01-01T00:00:00+00:00')",
            EVIL.replace('\n', " ")
        ),
    )?;
    let mut agent = dir.start().await?;
    assert_eq!(earned(&agent, "S-1", 10).await?, 10, "9999 is never used");
    world
        .central
        .publish_rules(world.file("rules-v2.json", RULES_V2)?)?;
    sync_now(&agent).await?;
    let h = eventually("central's v2 taken despite 9999", || async {
        let h = health(&agent).await?;
        Ok((h["rules_version"] == 2 && h["central_rules_version"] == 2).then_some(h))
    })
    .await?;
    assert!(h["rules_drift"].is_null(), "{h}");
    assert_eq!(earned(&agent, "S-2", 10).await?, 20, "v2's base_rate 2");
    synced(&agent).await?;

    // The same version with a signature that central never made: not used,
    // and health and status name both versions.
    agent.terminate()?;
    sql(
        &dir,
        "UPDATE rules SET signed_bytes = CAST(bundle AS BLOB), signed_format = 'json', \
         signature = zeroblob(64) WHERE version = 9999",
    )?;
    let agent = dir.start().await?;
    let (status, answer) = agent.post("/v1/quote", &sale("Q-1", 10, None)).await?;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &"rules_unverified".into()),
        "{answer}"
    );
    let h = eventually("drift reported", || async {
        let h = health(&agent).await?;
        Ok(h["rules_drift"].is_string().then_some(h))
    })
    .await?;
    assert_eq!(h["status"], "degraded", "{h}");
    let drift = h["rules_drift"].as_str().unwrap_or_default();
    assert!(drift.contains("9999") && drift.contains("version 2"), "{h}");
    let text = status_text(&dir)?;
    assert!(
        text.contains("RULES DRIFT") && text.contains("9999"),
        "{text}"
    );
    assert!(text.contains("central rules: 2"), "{text}");
    Ok(())
}

/// A register upgraded from before signatures were kept: its bundles came
/// from central but are unsigned now. The first sync completes the newest
/// and the older ones from central's signed bytes, so an old sale can be
/// returned again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_cached_before_signatures_were_kept_are_completed_from_central() -> Result<()> {
    let mut world = World::new()?;
    let dir = world.register(REG, &world.url())?;
    let mut agent = dir.start().await?;
    assert_eq!(earned(&agent, "S-v1", 10).await?, 10);
    world
        .central
        .publish_rules(world.file("rules-v2.json", RULES_V2)?)?;
    sync_now(&agent).await?;
    eventually("v2 downloaded", || async {
        let h = health(&agent).await?;
        Ok((h["rules_version"] == 2).then_some(()))
    })
    .await?;
    synced(&agent).await?;
    agent.terminate()?;
    // What migration 2 finds in a register that cached both before.
    sql(
        &dir,
        "UPDATE rules SET signed_bytes = NULL, signed_format = NULL, signature = NULL",
    )?;
    world.stop_central();
    let agent = dir.start().await?;
    let (status, answer) = agent
        .post(
            "/v1/sales/S-v1/returns",
            &serde_json::json!({"return_id": "R-1", "lines": [{"line": 1, "qty": "1"}]}),
        )
        .await?;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (503, &"rules_unverified".into()),
        "{answer}"
    );
    world.start_central()?;
    sync_now(&agent).await?;
    eventually("both versions signed again", || async {
        let conn = rusqlite::Connection::open(&dir.db)?;
        let unsigned: i64 = conn.query_row(
            "SELECT COUNT(*) FROM rules WHERE signature IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok((unsigned == 0).then_some(()))
    })
    .await?;
    let (status, answer) = agent
        .post(
            "/v1/sales/S-v1/returns",
            &serde_json::json!({"return_id": "R-1", "lines": [{"line": 1, "qty": "1"}]}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(earned(&agent, "S-v2", 10).await?, 20);
    Ok(())
}
