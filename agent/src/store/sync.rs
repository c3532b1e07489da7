//! Sync state: imports and downloads into the caches, sync status of
//! entries, dead letters, rebases after `seq_reused`, cursors, and the
//! figures for health.

use pos_sync::{Digest32, LedgerEntry};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::model::{CatalogSnapshot, ImportSummary, MemberData, MembersSnapshot, StoreStats};
use crate::store::error::{StoreError, StoreResult};
use crate::store::ledger::{self, ENTRY_COLUMNS, to_i64, to_u64};
use crate::store::rules::RulesInput;
use crate::store::{Shared, members, rules};

/// `sync_state` key: Unix ms of the last successful member download or
/// import (freshness, sync spec §4).
pub const MEMBERS_FRESH_AT: &str = "members_fresh_at_unix_ms";
/// `sync_state` key: the member download cursor.
pub const MEMBERS_CURSOR: &str = "members_cursor";
/// `sync_state` key: the catalog download cursor.
pub const CATALOG_CURSOR: &str = "catalog_cursor";
/// `sync_state` key: central's newest published rules version as its last
/// rules answer named it (`docs/sync-v2.md` §6; 0: none published), for
/// the drift shown in health.
pub const CENTRAL_RULES_NEWEST: &str = "central_rules_newest";

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
    bundle: Option<&RulesInput>,
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
    let moving = unsynced(&tx)?;
    let Some(first) = moving.first() else {
        return Ok(0);
    };
    let after_seq = rebase_point(&tx, first.0.seq, server_high)?;
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
    rechain(&tx, rebase_id, &moving, server_high, server_hash)?;
    tx.commit()?;
    Ok(moving.len() as u64)
}

/// An unsynced entry with its stored `local_date` and `created_unix_ms`.
type Unsynced = (LedgerEntry, String, i64);

/// Every unsynced entry, in seq order.
fn unsynced(conn: &Connection) -> StoreResult<Vec<Unsynced>> {
    let mut moving = Vec::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT {ENTRY_COLUMNS}, local_date, created_unix_ms FROM ledger WHERE status = 0 ORDER BY seq"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (entry, _) = ledger::from_row(row)?;
        let local_date: String = row.get(15)?;
        let created: i64 = row.get(16)?;
        moving.push((entry, local_date, created));
    }
    Ok(moving)
}

/// The last synced seq, checked: the unsynced entries (from `first_seq`)
/// are a suffix of the ledger, and the server holds at least up to it.
fn rebase_point(conn: &Connection, first_seq: u64, server_high: u64) -> StoreResult<u64> {
    let after_seq = first_seq - 1;
    let settled_max: Option<i64> = conn
        .prepare_cached("SELECT MAX(seq) FROM ledger WHERE status != 0")?
        .query_row([], |r| r.get(0))?;
    if let Some(settled) = settled_max
        && to_u64(settled, "seq")? > after_seq
    {
        return Err(StoreError::Damaged(format!(
            "unsynced entries are not a suffix of the ledger (settled entry {settled} after unsynced {first_seq})"
        )));
    }
    if server_high < after_seq {
        return Err(StoreError::invalid(
            "server_high",
            format!("{server_high} is below the last synced entry {after_seq}"),
        ));
    }
    Ok(after_seq)
}

/// Re-numbers `moving` from `server_high + 1`, chained after
/// `server_hash`, recording each old seq and hash under `rebase_id`.
fn rechain(
    conn: &Connection,
    rebase_id: i64,
    moving: &[Unsynced],
    server_high: u64,
    server_hash: Digest32,
) -> StoreResult<()> {
    let mut prev = server_hash;
    let mut seq = server_high;
    for (mut entry, local_date, created) in moving.iter().cloned() {
        seq += 1;
        let old_seq = entry.seq;
        let old_hash = entry.hash;
        entry.seq = seq;
        entry.chain_after(prev);
        prev = entry.hash;
        conn.prepare_cached(
            "INSERT INTO ledger_superseded (rebase_id, old_seq, new_seq, entry_id, old_hash) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(rusqlite::params![
            rebase_id,
            to_i64(old_seq)?,
            to_i64(seq)?,
            entry.entry_id.to_string(),
            old_hash.0.as_slice()
        ])?;
        ledger::insert(conn, &entry, &local_date, created)?;
    }
    Ok(())
}

/// Central's newest rules version as last heard (`None`: never asked, or
/// none published).
fn central_rules_newest(conn: &Connection) -> StoreResult<Option<u64>> {
    let Some(text) = get_state(conn, CENTRAL_RULES_NEWEST)? else {
        return Ok(None);
    };
    let v: u64 = text
        .parse()
        .map_err(|_| StoreError::Damaged(format!("{CENTRAL_RULES_NEWEST} = {text:?}")))?;
    Ok((v > 0).then_some(v))
}

pub(crate) fn stats(conn: &Connection, shared: &Shared) -> StoreResult<StoreStats> {
    let count = |sql: &str| -> StoreResult<u64> {
        let n: i64 = conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
        to_u64(n, "count")
    };
    let sum = |sql: &str| -> StoreResult<i64> {
        Ok(conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
    };
    let fresh_at = members_fresh_at(conn)?;
    Ok(StoreStats {
        sales: count("SELECT COUNT(*) FROM sales")?,
        returns: count("SELECT COUNT(*) FROM returns")?,
        points_earned: sum("SELECT COALESCE(SUM(points), 0) FROM ledger WHERE kind = 'earn'")?,
        points_redeemed: sum("SELECT COALESCE(SUM(points), 0) FROM ledger WHERE kind = 'redeem'")?
            .saturating_neg(),
        ledger_entries: count("SELECT COUNT(*) FROM ledger")?,
        unsynced_entries: count("SELECT COUNT(*) FROM ledger WHERE status = 0")?,
        dead_letters: count("SELECT COUNT(*) FROM ledger WHERE status = 2")?,
        rules_version: rules::current_version(conn, shared)?,
        rules_unverified: rules::problem(conn, shared)?,
        central_rules_version: central_rules_newest(conn)?,
        members_fresh_at_unix_ms: fresh_at,
        members_age_ms: fresh_at
            .map(|at| u64::try_from(shared.now_unix_ms().saturating_sub(at)).unwrap_or(0)),
    })
}

// --- operations of the sync worker (issue 4, phase 2) ----------------------

/// Most dead letters one [`crate::store::Store::dead_letters`] call lists.
pub const DEAD_LETTERS_LIST_MAX: u32 = 100;

/// Central's verdict on one uploaded entry, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// `applied`, `duplicate` or `overdraft`: the entry is synced.
    Synced,
    /// `corrected {credited, reason}`: synced, central's figure kept
    /// beside the entry.
    Corrected { credited: i64, reason: String },
    /// `rejected {reason}`: kept as a dead letter with the reason.
    Dead(String),
}

/// One entry of an answered batch: which entry, and what became of it.
/// The entry id is checked too, so a verdict can never land on another
/// entry that took the same seq (after a rebase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryVerdict {
    pub seq: u64,
    pub entry_id: pos_sync::uuid::Uuid,
    pub settlement: Settlement,
}

/// Central's authoritative balance of a member in one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CentralBalance {
    pub member: String,
    pub program: String,
    pub available: i64,
    pub pending: i64,
}

/// What [`Store::settle_upload`](crate::store::Store::settle_upload) changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettleSummary {
    pub synced: u64,
    pub dead: u64,
    /// Verdicts for entries that were no longer unsynced (already settled):
    /// nothing to do, counted for the log.
    pub already_settled: u64,
    /// Cached (member, program) balances replaced by central's.
    pub balances_updated: u64,
}

/// A dead letter as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub entry_id: String,
    pub reason: String,
    /// Register clock when central's rejection was recorded.
    pub at: String,
}

/// An answered upload batch, in ONE transaction: every verdict recorded
/// (synced, or dead letter with its reason) and central's balances written
/// into the member cache. One transaction because a reader must never see
/// an entry marked synced while the cached balance does not yet include it
/// (it would vanish from `available`), nor the reverse (counted twice).
///
/// Balances only replace programs the member is already enrolled in here:
/// enrolment and tiers come from member downloads, not from uploads.
pub(crate) fn settle_upload(
    conn: &mut Connection,
    shared: &Shared,
    verdicts: &[EntryVerdict],
    balances: &[CentralBalance],
) -> StoreResult<SettleSummary> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut summary = SettleSummary::default();
    let now = shared.now_rfc3339();
    for v in verdicts {
        let seq = to_i64(v.seq)?;
        let id = v.entry_id.to_string();
        match &v.settlement {
            Settlement::Synced | Settlement::Corrected { .. } => {
                let n = tx
                    .prepare_cached(
                        "UPDATE ledger SET status = 1 WHERE seq = ?1 AND entry_id = ?2 AND status = 0",
                    )?
                    .execute(rusqlite::params![seq, id])?;
                if n == 1 {
                    summary.synced += 1;
                } else {
                    summary.already_settled += 1;
                }
                if let Settlement::Corrected { credited, reason } = &v.settlement {
                    let reason: String =
                        reason.chars().take(DEAD_LETTER_REASON_CHARS_MAX).collect();
                    tx.prepare_cached(
                        "INSERT INTO ledger_credited (entry_id, credited, reason, at) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (entry_id) DO NOTHING",
                    )?
                    .execute(rusqlite::params![id, credited, reason, now])?;
                }
            }
            Settlement::Dead(reason) => {
                let reason: String = reason.chars().take(DEAD_LETTER_REASON_CHARS_MAX).collect();
                let n = tx
                    .prepare_cached(
                        "UPDATE ledger SET status = 2 WHERE seq = ?1 AND entry_id = ?2 AND status = 0",
                    )?
                    .execute(rusqlite::params![seq, id])?;
                if n == 1 {
                    tx.prepare_cached(
                        "INSERT INTO dead_letters (seq, reason, at) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (seq) DO UPDATE SET reason = excluded.reason, at = excluded.at",
                    )?
                    .execute(rusqlite::params![seq, reason, now])?;
                    summary.dead += 1;
                } else {
                    summary.already_settled += 1;
                }
            }
        }
    }
    for b in balances {
        let n = tx
            .prepare_cached(
                "UPDATE member_programs SET available = ?1, pending = ?2 \
                 WHERE member_id = ?3 AND program = ?4",
            )?
            .execute(rusqlite::params![
                b.available,
                b.pending,
                b.member,
                b.program
            ])?;
        summary.balances_updated += n as u64;
    }
    tx.commit()?;
    Ok(summary)
}

/// A catalog download page: upsert the products, then record the cursor.
pub(crate) fn apply_catalog_download(
    conn: &mut Connection,
    shared: &Shared,
    products: Vec<crate::model::Product>,
    cursor: &str,
) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    members::upsert_products(&tx, shared, &products)?;
    put_state(&tx, CATALOG_CURSOR, cursor)?;
    tx.commit()?;
    Ok(())
}

/// The newest dead letters first, at most `limit`.
pub(crate) fn dead_letters(conn: &Connection, limit: u32) -> StoreResult<Vec<DeadLetter>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.seq, l.entry_id, d.reason, d.at FROM dead_letters d \
         JOIN ledger l ON l.seq = d.seq WHERE l.status = 2 ORDER BY d.seq DESC LIMIT ?1",
    )?;
    let mut rows = stmt.query([limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(DeadLetter {
            seq: to_u64(row.get(0)?, "seq")?,
            entry_id: row.get(1)?,
            reason: row.get(2)?,
            at: row.get(3)?,
        });
    }
    Ok(out)
}

impl crate::store::Store {
    /// Records central's answer to an upload batch in one transaction
    /// (the function `settle_upload` of this module, run on the writer).
    pub async fn settle_upload(
        &self,
        verdicts: Vec<EntryVerdict>,
        balances: Vec<CentralBalance>,
    ) -> StoreResult<SettleSummary> {
        self.writer
            .call(move |conn, shared| settle_upload(conn, shared, &verdicts, &balances))
            .await
    }

    /// Applies a catalog download page and records the new cursor.
    pub async fn apply_catalog_download(
        &self,
        products: Vec<crate::model::Product>,
        cursor: String,
    ) -> StoreResult<()> {
        self.writer
            .call(move |conn, shared| apply_catalog_download(conn, shared, products, &cursor))
            .await
    }

    /// The newest dead letters (with central's reasons), at most
    /// `min(limit, DEAD_LETTERS_LIST_MAX)`.
    pub async fn dead_letters(&self, limit: u32) -> StoreResult<Vec<DeadLetter>> {
        let limit = limit.min(DEAD_LETTERS_LIST_MAX);
        self.read(move |conn, _| dead_letters(conn, limit)).await
    }
}

impl crate::store::Store {
    /// The newest rules version this register can use (verified, with a
    /// rules key), if any: what the rules download asks for versions after.
    /// An unsigned row or one that does not verify never counts, so a
    /// version central never published cannot hold back its newer ones.
    pub async fn newest_rules_version(&self) -> StoreResult<Option<u64>> {
        self.read(rules::newest_usable_version).await
    }

    /// Versions up to `up_to` held without a signature (cached before
    /// signatures were kept), the newest first, at most `limit`.
    pub async fn unsigned_rules_versions(&self, up_to: u64, limit: u32) -> StoreResult<Vec<u64>> {
        self.read(move |conn, _| rules::unsigned_versions(conn, up_to, limit))
            .await
    }
}

impl crate::store::Store {
    /// The register's wall clock (the store's clock), RFC 3339 with offset:
    /// what the sync worker stamps its report with.
    pub fn clock_rfc3339(&self) -> String {
        self.shared.now_rfc3339()
    }
}
