//! Sync state: imports and downloads into the caches, sync status of
//! entries, dead letters, rebases after `seq_reused`, cursors, and the
//! figures for health.

use pos_points::Bundle;
use pos_sync::Digest32;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::model::{CatalogSnapshot, ImportSummary, MemberData, MembersSnapshot, StoreStats};
use crate::store::error::{StoreError, StoreResult};
use crate::store::ledger::{self, ENTRY_COLUMNS, to_i64, to_u64};
use crate::store::{Shared, members, rules};

/// `sync_state` key: Unix ms of the last successful member download or
/// import (freshness, sync spec §4).
pub const MEMBERS_FRESH_AT: &str = "members_fresh_at_unix_ms";
/// `sync_state` key: the member download cursor.
pub const MEMBERS_CURSOR: &str = "members_cursor";
/// `sync_state` key: the catalog download cursor.
pub const CATALOG_CURSOR: &str = "catalog_cursor";

/// Longest sync-state value kept, in bytes.
pub const STATE_VALUE_BYTES_MAX: usize = 4_096;
/// Longest dead-letter reason kept, in characters (longer is cut).
pub const DEAD_LETTER_REASON_CHARS_MAX: usize = 1_024;

pub(crate) fn get_state(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM sync_state WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn put_state(conn: &Connection, key: &str, value: &str) -> StoreResult<()> {
    if value.len() > STATE_VALUE_BYTES_MAX {
        return Err(StoreError::invalid(
            key,
            format!("longer than {STATE_VALUE_BYTES_MAX} bytes"),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO sync_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
    Ok(())
}

/// Unix ms of the last successful member download/import.
pub(crate) fn members_fresh_at(conn: &Connection) -> StoreResult<Option<i64>> {
    get_state(conn, MEMBERS_FRESH_AT)?
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| StoreError::Damaged(format!("{MEMBERS_FRESH_AT} = {v:?}")))
        })
        .transpose()
}

/// `pos-agent import`: all of it in one transaction, or nothing.
pub(crate) fn import(
    conn: &mut Connection,
    shared: &Shared,
    bundle: Option<&Bundle>,
    source: &str,
    members: Option<MembersSnapshot>,
    catalog: Option<CatalogSnapshot>,
) -> StoreResult<ImportSummary> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut summary = ImportSummary::default();
    if let Some(bundle) = bundle {
        summary.rules_version = rules::store(&tx, shared, bundle, source)?;
    }
    if let Some(snapshot) = members {
        members::upsert(&tx, shared, &snapshot.members)?;
        put_state(&tx, MEMBERS_FRESH_AT, &shared.now_unix_ms().to_string())?;
        summary.members = snapshot.members.len();
    }
    if let Some(snapshot) = catalog {
        members::upsert_products(&tx, shared, &snapshot.products)?;
        summary.products = snapshot.products.len();
    }
    tx.commit()?;
    Ok(summary)
}

/// A member download: upsert, then record the time and cursor.
pub(crate) fn apply_member_download(
    conn: &mut Connection,
    shared: &Shared,
    data: Vec<MemberData>,
    cursor: Option<String>,
) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    members::upsert(&tx, shared, &data)?;
    put_state(&tx, MEMBERS_FRESH_AT, &shared.now_unix_ms().to_string())?;
    if let Some(cursor) = cursor {
        put_state(&tx, MEMBERS_CURSOR, &cursor)?;
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn mark_synced(conn: &mut Connection, up_to_seq: u64) -> StoreResult<u64> {
    let changed = conn
        .prepare_cached("UPDATE ledger SET status = 1 WHERE status = 0 AND seq <= ?1")?
        .execute([to_i64(up_to_seq)?])?;
    Ok(changed as u64)
}

pub(crate) fn dead_letter(
    conn: &mut Connection,
    shared: &Shared,
    seq: u64,
    reason: &str,
) -> StoreResult<()> {
    let reason: String = reason.chars().take(DEAD_LETTER_REASON_CHARS_MAX).collect();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = tx
        .prepare_cached("UPDATE ledger SET status = 2 WHERE seq = ?1")?
        .execute([to_i64(seq)?])?;
    if changed == 0 {
        return Err(StoreError::invalid("seq", format!("no ledger entry {seq}")));
    }
    tx.prepare_cached(
        "INSERT INTO dead_letters (seq, reason, at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason, at = excluded.at",
    )?
    .execute(rusqlite::params![
        to_i64(seq)?,
        reason,
        shared.now_rfc3339()
    ])?;
    tx.commit()?;
    Ok(())
}

/// `seq_reused {server_high}`: the server holds seqs up to `server_high`,
/// the last with hash `server_hash`. Every unsynced entry is re-numbered
/// from `server_high + 1` and re-chained after `server_hash`, keeping its
/// entry id; the old seq/hash go to `ledger_superseded` and the rebase to
/// `rebases`, so `verify` resumes the chain there.
pub(crate) fn rebase(
    conn: &mut Connection,
    shared: &Shared,
    server_high: u64,
    server_hash: Digest32,
) -> StoreResult<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut moving = Vec::new();
    {
        let mut stmt = tx.prepare(&format!(
            "SELECT {ENTRY_COLUMNS}, local_date, created_unix_ms FROM ledger WHERE status = 0 ORDER BY seq"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (entry, _) = ledger::from_row(row)?;
            let local_date: String = row.get(15)?;
            let created: i64 = row.get(16)?;
            moving.push((entry, local_date, created));
        }
    }
    let Some(first) = moving.first() else {
        return Ok(0);
    };
    let after_seq = first.0.seq - 1;
    let settled_max: Option<i64> = tx
        .prepare_cached("SELECT MAX(seq) FROM ledger WHERE status != 0")?
        .query_row([], |r| r.get(0))?;
    if let Some(settled) = settled_max
        && to_u64(settled, "seq")? > after_seq
    {
        return Err(StoreError::Damaged(format!(
            "unsynced entries are not a suffix of the ledger (settled entry {settled} after unsynced {})",
            first.0.seq
        )));
    }
    if server_high < after_seq {
        return Err(StoreError::invalid(
            "server_high",
            format!("{server_high} is below the last synced entry {after_seq}"),
        ));
    }
    tx.prepare_cached(
        "INSERT INTO rebases (after_seq, server_high, server_hash, moved, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(rusqlite::params![
        to_i64(after_seq)?,
        to_i64(server_high)?,
        server_hash.0.as_slice(),
        moving.len() as i64,
        shared.now_rfc3339()
    ])?;
    let rebase_id = tx.last_insert_rowid();
    tx.prepare_cached("DELETE FROM ledger WHERE status = 0")?
        .execute([])?;
    let mut prev = server_hash;
    let mut seq = server_high;
    for (mut entry, local_date, created) in moving.iter().cloned() {
        seq += 1;
        let old_seq = entry.seq;
        let old_hash = entry.hash;
        entry.seq = seq;
        entry.chain_after(prev);
        prev = entry.hash;
        tx.prepare_cached(
            "INSERT INTO ledger_superseded (rebase_id, old_seq, new_seq, entry_id, old_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(rusqlite::params![
            rebase_id,
            to_i64(old_seq)?,
            to_i64(seq)?,
            entry.entry_id.to_string(),
            old_hash.0.as_slice()
        ])?;
        ledger::insert(&tx, &entry, &local_date, created)?;
    }
    tx.commit()?;
    Ok(moving.len() as u64)
}

pub(crate) fn stats(conn: &Connection) -> StoreResult<StoreStats> {
    let count = |sql: &str| -> StoreResult<u64> {
        let n: i64 = conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
        to_u64(n, "count")
    };
    let sum = |sql: &str| -> StoreResult<i64> {
        Ok(conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
    };
    Ok(StoreStats {
        sales: count("SELECT COUNT(*) FROM sales")?,
        returns: count("SELECT COUNT(*) FROM returns")?,
        points_earned: sum("SELECT COALESCE(SUM(points), 0) FROM ledger WHERE kind = 'earn'")?,
        points_redeemed: sum("SELECT COALESCE(SUM(points), 0) FROM ledger WHERE kind = 'redeem'")?
            .saturating_neg(),
        ledger_entries: count("SELECT COUNT(*) FROM ledger")?,
        unsynced_entries: count("SELECT COUNT(*) FROM ledger WHERE status = 0")?,
        dead_letters: count("SELECT COUNT(*) FROM ledger WHERE status = 2")?,
        rules_version: rules::newest_version(conn)?,
        members_fresh_at_unix_ms: members_fresh_at(conn)?,
    })
}
