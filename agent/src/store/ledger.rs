//! The ledger table: appending chained entries, reading them back, and
//! verifying the whole chain (sync spec §1).

use std::collections::BTreeMap;

use pos_sync::{ChainVerifier, Digest32, EntryKind, LedgerEntry};
use rusqlite::{Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::model::{Credited, EntryStatus, LedgerRow, VerifyReport};
use crate::store::Shared;
use crate::store::error::{StoreError, StoreResult};
use crate::store::schema;

/// `status` column values.
pub(crate) const STATUS_UNSYNCED: i64 = 0;
pub(crate) const STATUS_SYNCED: i64 = 1;
pub(crate) const STATUS_DEAD: i64 = 2;

/// An entry to append: everything but the chain fields, which `append`
/// computes.
pub(crate) struct NewEntry<'a> {
    pub kind: EntryKind,
    pub program: &'a str,
    pub member: &'a str,
    pub points: i64,
    pub sale_id: Option<&'a str>,
    pub return_id: Option<&'a str>,
    pub rules_version: u64,
    /// RFC 3339 with offset; its first 10 characters are the local date.
    pub occurred_at: &'a str,
    pub detail: String,
}

pub(crate) const ENTRY_COLUMNS: &str = "seq, entry_id, terminal_id, prev_hash, hash, kind, program, member, points, sale_id, return_id, rules_version, occurred_at, detail, status";

/// The last entry's (seq, hash), or (0, ZERO) for an empty ledger.
pub(crate) fn head(conn: &Connection) -> StoreResult<(u64, Digest32)> {
    let row: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match row {
        None => Ok((0, Digest32::ZERO)),
        Some((seq, hash)) => Ok((to_u64(seq, "seq")?, digest(&hash)?)),
    }
}

/// Appends one entry after the current head, inside the caller's
/// transaction: a fresh UUIDv7, the next seq, and the chain hash.
pub(crate) fn append(
    conn: &Connection,
    shared: &Shared,
    new: NewEntry<'_>,
) -> StoreResult<LedgerEntry> {
    let (last_seq, last_hash) = head(conn)?;
    let local_date = new
        .occurred_at
        .get(..10)
        .ok_or_else(|| StoreError::invalid("time", "not an RFC 3339 date-time"))?
        .to_string();
    let mut entry = LedgerEntry {
        entry_id: Uuid::now_v7(),
        terminal_id: shared.options.terminal_id.clone(),
        seq: last_seq + 1,
        prev_hash: Digest32::ZERO,
        hash: Digest32::ZERO,
        kind: new.kind,
        program: new.program.to_string(),
        member: new.member.to_string(),
        points: new.points,
        sale_id: new.sale_id.map(str::to_string),
        return_id: new.return_id.map(str::to_string),
        rules_version: new.rules_version,
        occurred_at: new.occurred_at.to_string(),
        detail: new.detail,
    };
    entry.chain_after(last_hash);
    insert(conn, &entry, &local_date, shared.now_unix_ms())?;
    Ok(entry)
}

/// Inserts `entry` as unsynced.
pub(crate) fn insert(
    conn: &Connection,
    entry: &LedgerEntry,
    local_date: &str,
    created_unix_ms: i64,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO ledger (seq, entry_id, terminal_id, prev_hash, hash, kind, program, member, \
         points, sale_id, return_id, rules_version, occurred_at, detail, local_date, created_unix_ms, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 0)",
    )?
    .execute(rusqlite::params![
        to_i64(entry.seq)?,
        entry.entry_id.to_string(),
        entry.terminal_id,
        entry.prev_hash.0.as_slice(),
        entry.hash.0.as_slice(),
        entry.kind.as_str(),
        entry.program,
        entry.member,
        entry.points,
        entry.sale_id,
        entry.return_id,
        to_i64(entry.rules_version)?,
        entry.occurred_at,
        entry.detail,
        local_date,
        created_unix_ms,
    ])?;
    Ok(())
}

pub(crate) fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Damaged(format!("{v} does not fit in i64")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Damaged(format!("negative {what} {v}")))
}

fn digest(bytes: &[u8]) -> StoreResult<Digest32> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Damaged(format!("hash of {} bytes", bytes.len())))?;
    Ok(Digest32(arr))
}

/// Reads a row selected with [`ENTRY_COLUMNS`]: the entry and its status.
pub(crate) fn from_row(row: &Row<'_>) -> StoreResult<(LedgerEntry, i64)> {
    let seq: i64 = row.get(0)?;
    let entry_id: String = row.get(1)?;
    let kind: String = row.get(5)?;
    let rules_version: i64 = row.get(11)?;
    let entry = LedgerEntry {
        entry_id: Uuid::parse_str(&entry_id)
            .map_err(|e| StoreError::Damaged(format!("entry seq {seq}: entry_id: {e}")))?,
        terminal_id: row.get(2)?,
        seq: to_u64(seq, "seq")?,
        prev_hash: digest(&row.get::<_, Vec<u8>>(3)?)?,
        hash: digest(&row.get::<_, Vec<u8>>(4)?)?,
        kind: EntryKind::parse(&kind).ok_or_else(|| {
            StoreError::Damaged(format!("entry seq {seq}: unknown kind {kind:?}"))
        })?,
        program: row.get(6)?,
        member: row.get(7)?,
        points: row.get(8)?,
        sale_id: row.get(9)?,
        return_id: row.get(10)?,
        rules_version: to_u64(rules_version, "rules_version")?,
        occurred_at: row.get(12)?,
        detail: row.get(13)?,
    };
    Ok((entry, row.get(14)?))
}

fn status(code: i64) -> StoreResult<EntryStatus> {
    match code {
        STATUS_UNSYNCED => Ok(EntryStatus::Unsynced),
        STATUS_SYNCED => Ok(EntryStatus::Synced),
        STATUS_DEAD => Ok(EntryStatus::Dead),
        other => Err(StoreError::Damaged(format!("entry status {other}"))),
    }
}

/// Rows with `seq >= from_seq`, at most `limit`.
pub(crate) fn rows(conn: &Connection, from_seq: u64, limit: u32) -> StoreResult<Vec<LedgerRow>> {
    // Central's correction, if any, after the entry's own columns.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS}, \
           (SELECT c.credited FROM ledger_credited c WHERE c.entry_id = ledger.entry_id), \
           (SELECT c.reason FROM ledger_credited c WHERE c.entry_id = ledger.entry_id) \
         FROM ledger WHERE seq >= ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let mut rows = stmt.query(rusqlite::params![to_i64(from_seq)?, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (entry, code) = from_row(row)?;
        let credited: Option<i64> = row.get(15)?;
        let reason: Option<String> = row.get(16)?;
        out.push(LedgerRow {
            entry,
            status: status(code)?,
            credited: credited
                .zip(reason)
                .map(|(points, reason)| Credited { points, reason }),
        });
    }
    Ok(out)
}

/// Unsynced entries in seq order, at most `limit`.
pub(crate) fn unsynced(conn: &Connection, limit: u32) -> StoreResult<Vec<LedgerEntry>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE status = 0 ORDER BY seq LIMIT ?1"
    ))?;
    let mut rows = stmt.query([limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?.0);
    }
    Ok(out)
}

/// Entries of one sale, in seq order.
pub(crate) fn of_sale(conn: &Connection, sale_id: &str) -> StoreResult<Vec<LedgerEntry>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger WHERE sale_id = ?1 ORDER BY seq"
    ))?;
    let mut rows = stmt.query([sale_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(from_row(row)?.0);
    }
    Ok(out)
}

/// Integrity check plus the whole chain, resuming after each recorded
/// rebase at the server's entry it continues from.
pub(crate) fn verify(conn: &Connection) -> StoreResult<VerifyReport> {
    let messages = schema::integrity_check(conn)?;
    let integrity_ok = messages.len() == 1 && messages[0] == "ok";

    // after_seq -> (server_high, server_hash) of the latest rebase there.
    let mut rebases: BTreeMap<u64, (u64, Digest32)> = BTreeMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT after_seq, server_high, server_hash FROM rebases ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let after = to_u64(row.get(0)?, "after_seq")?;
            let high = to_u64(row.get(1)?, "server_high")?;
            let hash = digest(&row.get::<_, Vec<u8>>(2)?)?;
            rebases.insert(after, (high, hash));
        }
    }

    let mut verifier = ChainVerifier::default();
    let mut last_seq = 0u64;
    let mut entries = 0u64;
    let mut chain_break = None;
    let mut stmt = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM ledger ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let entry = match from_row(row) {
            Ok((entry, _)) => entry,
            Err(e) => {
                chain_break = Some(format!("entry after seq {last_seq}: unreadable: {e}"));
                break;
            }
        };
        if let Some(&(high, hash)) = rebases.get(&last_seq)
            && entry.seq == high + 1
        {
            verifier = ChainVerifier::resume(high, hash);
        }
        if let Err(b) = verifier.push(&entry) {
            chain_break = Some(format!("{b} (entry_id {})", entry.entry_id));
            break;
        }
        last_seq = entry.seq;
        entries += 1;
    }
    Ok(VerifyReport {
        integrity_ok,
        integrity_messages: if integrity_ok { Vec::new() } else { messages },
        entries,
        chain_break,
    })
}
