//! Terminals and the admin listings (ledger, conflicts) on PostgreSQL.

use crate::fleet::FleetReport;
use pos_sync::Digest32;
use postgres::Row;

use super::{PgTx, digest_of, u64_of, uuid_of};
use crate::error::CentralError;
use crate::storage::{
    Conflict, ConflictFilter, LISTING_ROWS_MAX, LedgerFilter, StoredEntry, TerminalInfo,
};
use crate::tokens::{self, CENTRAL_TERMINAL, TokenRow, TokenState};

pub(super) fn add_terminal(
    tx: &PgTx<'_>,
    terminal_id: &str,
    token_hash: [u8; 32],
) -> Result<(), CentralError> {
    let added = tx.execute(
        "INSERT INTO terminals (id, token_hash, last_seq, last_hash, created_at)
         VALUES ($1, $2, 0, $3, $4) ON CONFLICT (id) DO NOTHING",
        &[
            &terminal_id,
            &token_hash.as_slice(),
            &Digest32::ZERO.0.as_slice(),
            &jiff::Timestamp::now().to_string(),
        ],
    )?;
    if added == 0 {
        return Err(CentralError::Conflict(format!(
            "terminal {terminal_id:?} already exists"
        )));
    }
    Ok(())
}

pub(super) fn authenticate(
    tx: &PgTx<'_>,
    token_hash: [u8; 32],
    now: jiff::Timestamp,
) -> Result<String, CentralError> {
    let hash = token_hash.as_slice();
    let r = tx
        .query_opt(
            "SELECT id, token_hash = $1, revoked_at, previous_valid_until_ms, last_used_ms
             FROM terminals WHERE token_hash = $1 OR previous_token_hash = $1
             ORDER BY token_hash = $1 DESC LIMIT 1",
            &[&hash],
        )?
        .ok_or_else(|| CentralError::Unauthorized("unknown terminal token".into()))?;
    let row = TokenRow {
        terminal_id: r.try_get(0)?,
        current: r.try_get(1)?,
        revoked_at: r.try_get(2)?,
        previous_valid_until_ms: r.try_get(3)?,
        last_used_ms: r.try_get(4)?,
    };
    let now_ms = now.as_millisecond();
    let terminal = tokens::admit(&row, now_ms)?.to_string();
    if tokens::use_is_news(row.last_used_ms, now_ms) {
        // Bookkeeping only: skipped while a batch of this terminal holds
        // its row (the next request records the use), never waited for.
        tx.execute(
            "UPDATE terminals SET last_used_ms = $1 WHERE id IN
               (SELECT id FROM terminals WHERE id = $2 FOR UPDATE SKIP LOCKED)",
            &[&now_ms, &terminal],
        )?;
    }
    Ok(terminal)
}

pub(super) fn terminals(tx: &PgTx<'_>) -> Result<Vec<TerminalInfo>, CentralError> {
    let rows = tx.query(
        "SELECT id, last_seq, last_hash, last_contact, created_at, last_used_ms, revoked_at,
                previous_valid_until_ms, r.report
         FROM terminals LEFT JOIN terminal_reports r ON r.terminal_id = terminals.id
         WHERE id NOT LIKE '@%' ORDER BY id COLLATE \"C\" LIMIT $1",
        // '@' starts the pseudo-terminals (central's own, the channels'): not registers.
        &[&(LISTING_ROWS_MAX as i64)],
    )?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let revoked_at: Option<String> = r.try_get(6)?;
        let last_used_ms: Option<i64> = r.try_get(5)?;
        let until: Option<i64> = r.try_get(7)?;
        let state = TokenState::of(revoked_at.is_some(), until, now_ms);
        let report: Option<String> = r.try_get(8)?;
        out.push(TerminalInfo {
            terminal_id: r.try_get(0)?,
            last_seq: u64_of(r.try_get(1)?, "last_seq")?,
            last_hash: digest_of(r.try_get(2)?, "last_hash")?,
            last_contact: r.try_get(3)?,
            created_at: r.try_get(4)?,
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
    tx: &PgTx<'_>,
    terminal_id: &str,
    report: &FleetReport,
) -> Result<(), CentralError> {
    tx.execute(
        "INSERT INTO terminal_reports (terminal_id, report) VALUES ($1, $2)
         ON CONFLICT (terminal_id) DO UPDATE SET report = excluded.report",
        &[&terminal_id, &report.to_json()?],
    )?;
    Ok(())
}

/// The revocation time of a registered terminal (None: not revoked), or
/// `NotFound`; its row stays locked to the commit.
fn revoked_at(tx: &PgTx<'_>, terminal_id: &str) -> Result<Option<String>, CentralError> {
    tx.query_opt(
        "SELECT revoked_at FROM terminals WHERE id = $1 AND id != $2 FOR UPDATE",
        &[&terminal_id, &CENTRAL_TERMINAL],
    )?
    .ok_or_else(|| CentralError::NotFound(format!("no terminal {terminal_id:?}")))?
    .try_get(0)
    .map_err(Into::into)
}

pub(super) fn revoke_terminal(
    tx: &PgTx<'_>,
    terminal_id: &str,
    at: jiff::Timestamp,
) -> Result<bool, CentralError> {
    if revoked_at(tx, terminal_id)?.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE terminals SET revoked_at = $1, previous_valid_until_ms = NULL WHERE id = $2",
        &[&at.to_string(), &terminal_id],
    )?;
    Ok(true)
}

pub(super) fn rotate_terminal(
    tx: &PgTx<'_>,
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
        "UPDATE terminals SET previous_token_hash = token_hash, token_hash = $1,
                previous_valid_until_ms = $2
         WHERE id = $3",
        &[&token_hash.as_slice(), &until, &terminal_id],
    )?;
    Ok(())
}

pub(super) fn ledger(
    tx: &PgTx<'_>,
    filter: &LedgerFilter,
) -> Result<Vec<StoredEntry>, CentralError> {
    let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
    let rows = tx.query(
        "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                credited_member, points, sale_id, return_id, rules_version, occurred_at,
                detail, status, reason, received_at, credited
         FROM entries
         WHERE ($1::text IS NULL OR terminal_id = $1)
           AND ($2::text IS NULL OR credited_member = $2 OR member = $2)
         ORDER BY terminal_id COLLATE \"C\", seq LIMIT $3",
        &[&filter.terminal, &filter.member, &limit],
    )?;
    rows.iter().map(stored_entry).collect()
}

/// One `entries` row in the column order of [`ledger`]'s query (shared
/// with the adjustments' read-back: keep both queries' columns alike).
pub(super) fn stored_entry(r: &Row) -> Result<StoredEntry, CentralError> {
    let prev_hash: Option<Vec<u8>> = r.try_get(4)?;
    let rules_version: Option<i64> = r.try_get(12)?;
    Ok(StoredEntry {
        terminal_id: r.try_get(0)?,
        seq: u64_of(r.try_get(1)?, "seq")?,
        entry_id: uuid_of(r.try_get(2)?)?,
        hash: digest_of(r.try_get(3)?, "hash")?,
        prev_hash: prev_hash.map(|h| digest_of(h, "prev_hash")).transpose()?,
        kind: r.try_get(5)?,
        program: r.try_get(6)?,
        member: r.try_get(7)?,
        credited_member: r.try_get(8)?,
        points: r.try_get(9)?,
        sale_id: r.try_get(10)?,
        return_id: r.try_get(11)?,
        rules_version: rules_version
            .map(|v| u64_of(v, "rules_version"))
            .transpose()?,
        occurred_at: r.try_get(13)?,
        detail: r.try_get(14)?,
        status: r.try_get(15)?,
        reason: r.try_get(16)?,
        received_at: r.try_get(17)?,
        credited: r.try_get(18)?,
    })
}

pub(super) fn conflict_page(
    tx: &PgTx<'_>,
    filter: &ConflictFilter,
) -> Result<Vec<Conflict>, CentralError> {
    let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
    // Stored times are RFC 3339 with varying fractional digits, which do
    // not sort as text: compared as timestamps.
    let rows = tx.query(
        "SELECT id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at,
                count, COALESCE(last_at, at)
         FROM conflicts
         WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR terminal_id = $2)
           AND ($3::text IS NULL OR COALESCE(last_at, at)::timestamptz >= $3::timestamptz)
           AND ($4::text IS NULL OR at::timestamptz <= $4::timestamptz)
           AND ($5::int8 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6",
        &[
            &filter.kind,
            &filter.terminal,
            &filter.since.map(|t| t.to_string()),
            &filter.until.map(|t| t.to_string()),
            &filter.before_id,
            &limit,
        ],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let seq: Option<i64> = r.try_get(3)?;
        let entry_id: Option<Vec<u8>> = r.try_get(4)?;
        let at: String = r.try_get(9)?;
        out.push(Conflict {
            id: r.try_get(0)?,
            count: r.try_get(10)?,
            first_at: at.clone(),
            last_at: r.try_get(11)?,
            kind: r.try_get(1)?,
            terminal_id: r.try_get(2)?,
            seq: seq.map(|s| u64_of(s, "seq")).transpose()?,
            entry_id: entry_id.map(uuid_of).transpose()?,
            member: r.try_get(5)?,
            program: r.try_get(6)?,
            shortfall: r.try_get(7)?,
            detail: r.try_get(8)?,
            at,
        });
    }
    Ok(out)
}
