//! Terminals and the admin listings (ledger, conflicts).

use crate::fleet::FleetReport;
use pos_sync::Digest32;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{digest_of, u64_of, uuid_of};
use crate::error::CentralError;
use crate::storage::{
    Conflict, ConflictFilter, LISTING_ROWS_MAX, LedgerFilter, StoredEntry, TerminalInfo,
};
use crate::tokens::{self, CENTRAL_TERMINAL, TokenRow, TokenState};

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

pub(super) fn authenticate(
    conn: &Connection,
    token_hash: [u8; 32],
    now: jiff::Timestamp,
) -> Result<String, CentralError> {
    let row = conn
        .prepare_cached(
            "SELECT id, token_hash = ?1, revoked_at, previous_valid_until_ms, last_used_ms
             FROM terminals WHERE token_hash = ?1 OR previous_token_hash = ?1
             ORDER BY token_hash = ?1 DESC LIMIT 1",
        )?
        .query_row([token_hash.as_slice()], |r| {
            Ok(TokenRow {
                terminal_id: r.get(0)?,
                current: r.get(1)?,
                revoked_at: r.get(2)?,
                previous_valid_until_ms: r.get(3)?,
                last_used_ms: r.get(4)?,
            })
        })
        .optional()?
        .ok_or_else(|| CentralError::Unauthorized("unknown terminal token".into()))?;
    let now_ms = now.as_millisecond();
    let terminal = tokens::admit(&row, now_ms)?.to_string();
    if tokens::use_is_news(row.last_used_ms, now_ms) {
        // Bookkeeping only: a register is not locked out because its last
        // use could not be written (a CLI holding the lock past the timeout).
        let written = conn
            .prepare_cached("UPDATE terminals SET last_used_ms = ?1 WHERE id = ?2")
            .and_then(|mut s| s.execute(params![now_ms, terminal]));
        if let Err(error) = written {
            tracing::warn!(message = "Last use not recorded.", terminal, %error);
        }
    }
    Ok(terminal)
}

pub(super) fn terminals(conn: &Connection) -> Result<Vec<TerminalInfo>, CentralError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, last_seq, last_hash, last_contact, created_at, last_used_ms, revoked_at,
                previous_valid_until_ms, r.report
         FROM terminals LEFT JOIN terminal_reports r ON r.terminal_id = terminals.id
         WHERE id NOT LIKE '@%' ORDER BY id LIMIT ?1",
    )?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    // '@' starts the pseudo-terminals (central's own, the channels'): not registers.
    let mut rows = stmt.query(params![LISTING_ROWS_MAX as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let revoked_at: Option<String> = r.get(6)?;
        let last_used_ms: Option<i64> = r.get(5)?;
        let until: Option<i64> = r.get(7)?;
        let state = TokenState::of(revoked_at.is_some(), until, now_ms);
        let report: Option<String> = r.get(8)?;
        out.push(TerminalInfo {
            terminal_id: r.get(0)?,
            last_seq: u64_of(r.get(1)?, "last_seq")?,
            last_hash: digest_of(r.get(2)?, "last_hash")?,
            last_contact: r.get(3)?,
            created_at: r.get(4)?,
            last_used_at: last_used_ms.and_then(tokens::rfc3339_of_ms),
            state,
            revoked_at,
            previous_token_valid_until: until
                .filter(|_| state == TokenState::Rotating)
                .and_then(tokens::rfc3339_of_ms),
            report: report.as_deref().map(FleetReport::from_json).transpose()?,
        });
    }
    Ok(out)
}

/// Keeps `report` as the terminal's newest (replacing the one before).
pub(super) fn store_report(
    tx: &Transaction<'_>,
    terminal_id: &str,
    report: &FleetReport,
) -> Result<(), CentralError> {
    tx.prepare_cached(
        "INSERT INTO terminal_reports (terminal_id, report) VALUES (?1, ?2)
         ON CONFLICT (terminal_id) DO UPDATE SET report = excluded.report",
    )?
    .execute(params![terminal_id, report.to_json()?])?;
    Ok(())
}

/// The revocation time of a registered terminal (None: not revoked), or
/// `NotFound`.
fn revoked_at(tx: &Transaction<'_>, terminal_id: &str) -> Result<Option<String>, CentralError> {
    tx.query_row(
        "SELECT revoked_at FROM terminals WHERE id = ?1 AND id != ?2",
        params![terminal_id, CENTRAL_TERMINAL],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .ok_or_else(|| CentralError::NotFound(format!("no terminal {terminal_id:?}")))
}

pub(super) fn revoke_terminal(
    tx: &Transaction<'_>,
    terminal_id: &str,
    at: jiff::Timestamp,
) -> Result<bool, CentralError> {
    if revoked_at(tx, terminal_id)?.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE terminals SET revoked_at = ?1, previous_valid_until_ms = NULL WHERE id = ?2",
        params![at.to_string(), terminal_id],
    )?;
    Ok(true)
}

pub(super) fn rotate_terminal(
    tx: &Transaction<'_>,
    terminal_id: &str,
    token_hash: [u8; 32],
    grace_ms: i64,
    at: jiff::Timestamp,
) -> Result<(), CentralError> {
    if let Some(when) = revoked_at(tx, terminal_id)? {
        return Err(CentralError::Conflict(format!(
            "terminal {terminal_id:?} was revoked at {when}: a revoked terminal gets no new token"
        )));
    }
    let until = at.as_millisecond().saturating_add(grace_ms);
    tx.execute(
        "UPDATE terminals SET previous_token_hash = token_hash, token_hash = ?1,
                previous_valid_until_ms = ?2
         WHERE id = ?3",
        params![token_hash.as_slice(), until, terminal_id],
    )?;
    Ok(())
}

pub(super) fn ledger(
    conn: &Connection,
    filter: &LedgerFilter,
) -> Result<Vec<StoredEntry>, CentralError> {
    let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
    let mut stmt = conn.prepare_cached(
        "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                credited_member, points, sale_id, return_id, rules_version, occurred_at,
                detail, status, reason, received_at, credited
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

/// One `entries` row in the column order of [`ledger`]'s query (shared
/// with the adjustments' read-back: keep both queries' columns alike).
pub(super) fn stored_entry(r: &Row<'_>) -> Result<StoredEntry, CentralError> {
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
        credited: r.get(18)?,
    })
}

pub(super) fn conflict_page(
    conn: &Connection,
    filter: &ConflictFilter,
) -> Result<Vec<Conflict>, CentralError> {
    let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
    // julianday: stored times are RFC 3339 with varying fractional digits,
    // which do not sort as text.
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at,
                count, COALESCE(last_at, at)
         FROM conflicts
         WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR terminal_id = ?2)
           AND (?3 IS NULL OR julianday(COALESCE(last_at, at)) >= julianday(?3))
           AND (?4 IS NULL OR julianday(at) <= julianday(?4))
           AND (?5 IS NULL OR id < ?5)
         ORDER BY id DESC LIMIT ?6",
    )?;
    let mut rows = stmt.query(params![
        filter.kind,
        filter.terminal,
        filter.since.map(|t| t.to_string()),
        filter.until.map(|t| t.to_string()),
        filter.before_id,
        limit
    ])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let seq: Option<i64> = r.get(3)?;
        let entry_id: Option<Vec<u8>> = r.get(4)?;
        let at: String = r.get(9)?;
        out.push(Conflict {
            id: r.get(0)?,
            count: r.get(10)?,
            first_at: at.clone(),
            last_at: r.get(11)?,
            kind: r.get(1)?,
            terminal_id: r.get(2)?,
            seq: seq.map(|s| u64_of(s, "seq")).transpose()?,
            entry_id: entry_id.map(uuid_of).transpose()?,
            member: r.get(5)?,
            program: r.get(6)?,
            shortfall: r.get(7)?,
            detail: r.get(8)?,
            at,
        });
    }
    Ok(out)
}
