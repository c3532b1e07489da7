//! Issue 9, protocol v2 (`docs/sync-v2.md` §3): central re-derives every
//! point from the sale document. A register's database edited by someone
//! who also re-hashes the chain passes the register's own `db verify`, yet
//! central credits nothing the rules could not have produced.

use anyhow::{Context, Result, ensure};
use pos_sync::{Digest32, EntryKind, LedgerEntry};

use super::support::*;
use super::{REG_1, status_of};

/// Sets the points of entry `seq` and re-hashes the chain from there on, as
/// an attacker with the database file and the hash recipe would.
fn edit_and_rehash(db: &std::path::Path, seq: u64, points: i64) -> Result<()> {
    let conn = rusqlite::Connection::open(db).context("open the register's db")?;
    let mut stmt = conn.prepare(
        "SELECT entry_id, terminal_id, seq, prev_hash, hash, kind, program, member, points,
                sale_id, return_id, rules_version, occurred_at, detail
         FROM ledger ORDER BY seq",
    )?;
    let rows = stmt
        .query_map([], |r| {
            let digest = |b: Vec<u8>| Digest32(b.try_into().unwrap_or([0; 32]));
            Ok(LedgerEntry {
                entry_id: uuid::Uuid::parse_str(&r.get::<_, String>(0)?).unwrap_or_default(),
                terminal_id: r.get(1)?,
                seq: r.get(2)?,
                prev_hash: digest(r.get(3)?),
                hash: digest(r.get(4)?),
                kind: EntryKind::parse(&r.get::<_, String>(5)?).unwrap_or(EntryKind::Adjust),
                program: r.get(6)?,
                member: r.get(7)?,
                points: r.get(8)?,
                sale_id: r.get(9)?,
                return_id: r.get(10)?,
                rules_version: r.get(11)?,
                occurred_at: r.get(12)?,
                detail: r.get(13)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    drop(stmt);
    let mut prev = Digest32::ZERO;
    let mut edited = 0;
    for mut entry in rows {
        if entry.seq == seq {
            entry.points = points;
            edited += 1;
        }
        if entry.seq >= seq {
            entry.chain_after(prev);
            conn.execute(
                "UPDATE ledger SET points = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
                rusqlite::params![
                    entry.points,
                    entry.prev_hash.0.as_slice(),
                    entry.hash.0.as_slice(),
                    entry.seq
                ],
            )?;
        }
        prev = entry.hash;
    }
    ensure!(edited == 1, "entry {seq} not found to edit");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_edited_and_rehashed_is_a_points_mismatch_and_honest_sales_still_sync()
-> Result<()> {
    let mut world = World::new()?;
    let url = world.url();
    world.stop_central();
    let dir = world.register(REG_1, &url)?;
    let mut agent = dir.start().await?;
    for (id, euros) in [("S-0", 10), ("S-1", 73), ("S-2", 20)] {
        sell(&agent, &sale(id, euros, None)).await?;
    }
    ensure!(agent.terminate()?.success(), "agent did not stop cleanly");

    edit_and_rehash(&dir.db, 2, 50_000)?;
    let verify = dir.db_verify()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        verify.status.success(),
        "the re-hashed chain must look whole: {text}"
    );

    world.start_central()?;
    let agent = dir.start().await?;
    sell(&agent, &sale("S-3", 5, None)).await?;
    let h = synced(&agent).await?;
    assert_eq!(h["dead_letters"], 1, "{h}");
    let dead = &h["sync"]["worker"]["dead_letters"][0];
    assert_eq!(dead["seq"], 2, "{h}");
    let reason = dead["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("50000") && reason.contains("give 73"),
        "the reason names both figures: {h}"
    );
    let central = world.central_ledger(REG_1)?;
    assert_eq!(
        status_of(&central),
        ["applied", "rejected", "applied", "applied"]
    );
    let mismatches = world.conflicts("points_mismatch")?;
    assert_eq!(mismatches.len(), 1, "{mismatches:?}");
    let detail = mismatches[0]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("50000") && detail.contains("73"),
        "{detail}"
    );
    // Only the honest sales counted.
    assert_eq!(world.balance("M-1")?, 1_000 + 10 + 20 + 5);
    Ok(())
}
