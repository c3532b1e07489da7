//! Terminals and the admin listings (ledger, conflicts).

use pos_sync::Digest32;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{digest_of, u64_of, uuid_of};
use crate::error::CentralError;
use crate::storage::{Conflict, LISTING_ROWS_MAX, LedgerFilter, StoredEntry, TerminalInfo};

pub(super) fn add_terminal(
    tx: &Transaction<'_>,
    terminal_id: &str,
    token_hash: [u8; 32],
) -> Result<(), CentralError> {
    let exists: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM terminals WHERE id = ?1)",
        [terminal_id],
        |r| r.get(0),
    )?;
    if exists {
        return Err(CentralError::Conflict(format!(
            "terminal {terminal_id:?} already exists"
        )));
    }
    tx.execute(
        "INSERT INTO terminals (id, token_hash, last_seq, last_hash, created_at)
         VALUES (?1, ?2, 0, ?3, ?4)",
        params![
            terminal_id,
            token_hash.as_slice(),
            Digest32::ZERO.0.as_slice(),
            jiff::Timestamp::now().to_string()
        ],
    )?;
    Ok(())
}

pub(super) fn terminal_for_token(
    conn: &Connection,
    token_hash: [u8; 32],
) -> Result<Option<String>, CentralError> {
    Ok(conn
        .prepare_cached("SELECT id FROM terminals WHERE token_hash = ?1")?
        .query_row([token_hash.as_slice()], |r| r.get(0))
        .optional()?)
}

pub(super) fn terminals(conn: &Connection) -> Result<Vec<TerminalInfo>, CentralError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, last_seq, last_hash, last_contact FROM terminals ORDER BY id LIMIT ?1",
    )?;
    let rows = stmt.query_map([LISTING_ROWS_MAX as i64], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (terminal_id, last_seq, last_hash, last_contact) = row?;
        out.push(TerminalInfo {
            terminal_id,
            last_seq: u64_of(last_seq, "last_seq")?,
            last_hash: digest_of(last_hash, "last_hash")?,
            last_contact,
        });
    }
    Ok(out)
}

pub(super) fn ledger(
    conn: &Connection,
    filter: &LedgerFilter,
) -> Result<Vec<StoredEntry>, CentralError> {
    let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                credited_member, points, sale_id, return_id, rules_version, occurred_at,
                detail, status, reason, received_at
         FROM entries
         WHERE (?1 IS NULL OR terminal_id = ?1)
           AND (?2 IS NULL OR credited_member = ?2 OR member = ?2)
         ORDER BY terminal_id, seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![filter.terminal, filter.member, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(stored_entry(row)?);
    }
    Ok(out)
}

/// One `entries` row in the column order of [`ledger`]'s query.
fn stored_entry(r: &Row<'_>) -> Result<StoredEntry, CentralError> {
    let prev_hash: Option<Vec<u8>> = r.get(4)?;
    let rules_version: Option<i64> = r.get(12)?;
    Ok(StoredEntry {
        terminal_id: r.get(0)?,
        seq: u64_of(r.get(1)?, "seq")?,
        entry_id: uuid_of(r.get(2)?)?,
        hash: digest_of(r.get(3)?, "hash")?,
        prev_hash: prev_hash.map(|h| digest_of(h, "prev_hash")).transpose()?,
        kind: r.get(5)?,
        program: r.get(6)?,
        member: r.get(7)?,
        credited_member: r.get(8)?,
        points: r.get(9)?,
        sale_id: r.get(10)?,
        return_id: r.get(11)?,
        rules_version: rules_version
            .map(|v| u64_of(v, "rules_version"))
            .transpose()?,
        occurred_at: r.get(13)?,
        detail: r.get(14)?,
        status: r.get(15)?,
        reason: r.get(16)?,
        received_at: r.get(17)?,
    })
}

pub(super) fn conflicts(conn: &Connection, limit: usize) -> Result<Vec<Conflict>, CentralError> {
    let limit = limit.clamp(1, LISTING_ROWS_MAX) as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at
         FROM conflicts ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<Vec<u8>>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<String>>(6)?,
            r.get::<_, Option<i64>>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, String>(9)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at) = row?;
        out.push(Conflict {
            id,
            kind,
            terminal_id,
            seq: seq.map(|s| u64_of(s, "seq")).transpose()?,
            entry_id: entry_id.map(uuid_of).transpose()?,
            member,
            program,
            shortfall,
            detail,
            at,
        });
    }
    Ok(out)
}
