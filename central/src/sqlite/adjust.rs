//! An administrator's adjustment, stored as the next `adjust` entry of
//! central's pseudo-terminal (why: [`crate::apply::adjust`]).

use pos_sync::{Digest32, EntryKind, LedgerEntry};
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::{admin, digest_of, i64_of, members, next_rev, u64_of};
use crate::apply::EntryStatus;
use crate::apply::adjust::{Adjustment, balance_after};
use crate::error::CentralError;
use crate::storage::StoredEntry;
use crate::tokens::CENTRAL_TERMINAL;

/// Adjustments name no rules bundle: their `rules_version` is 0.
const NO_RULES_VERSION: u64 = 0;

pub(super) fn adjust(
    tx: &Transaction<'_>,
    adjustment: &Adjustment,
    at: jiff::Timestamp,
) -> Result<StoredEntry, CentralError> {
    let member = members::resolve_member(tx, &adjustment.member)?;
    if !members::is_known(tx, &member)? {
        return Err(CentralError::NotFound(format!(
            "member: no member or card {:?}",
            adjustment.member
        )));
    }
    let program = adjustment.program.as_str();
    let published: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM programs WHERE id = ?1)",
        [program],
        |r| r.get(0),
    )?;
    if !published {
        return Err(CentralError::Invalid(format!(
            "program: {program:?} is in no published bundle"
        )));
    }
    let balance: i64 = tx
        .query_row(
            "SELECT balance FROM balances WHERE member = ?1 AND program = ?2",
            [&member, program],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let balance = balance_after(balance, adjustment.points)?;
    let entry = next_entry(tx, adjustment, &member, at)?;
    insert(tx, &entry, &member, &at.to_string())?;
    tx.execute(
        "INSERT INTO balances (member, program, opening, balance) VALUES (?1, ?2, 0, ?3)
         ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
        params![member, program, balance],
    )?;
    tx.execute(
        "UPDATE terminals SET last_seq = ?1, last_hash = ?2 WHERE id = ?3",
        params![
            i64_of(entry.seq, "seq")?,
            entry.hash.0.as_slice(),
            CENTRAL_TERMINAL
        ],
    )?;
    // The members download carries the new balance.
    let rev = next_rev(tx)?;
    tx.execute(
        "INSERT INTO members (id, rev) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
        params![member, rev],
    )?;
    stored(tx, entry.seq)
}

/// The adjustment as the entry after the pseudo-terminal's chain head.
fn next_entry(
    tx: &Transaction<'_>,
    adjustment: &Adjustment,
    member: &str,
    at: jiff::Timestamp,
) -> Result<LedgerEntry, CentralError> {
    let (last_seq, last_hash): (i64, Vec<u8>) = tx
        .query_row(
            "SELECT last_seq, last_hash FROM terminals WHERE id = ?1",
            [CENTRAL_TERMINAL],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| CentralError::Corrupt(format!("no terminal {CENTRAL_TERMINAL}")))?;
    let seq = u64_of(last_seq, "last_seq")?
        .checked_add(1)
        .ok_or_else(|| CentralError::Corrupt("adjustment seq overflows".into()))?;
    let mut entry = LedgerEntry {
        entry_id: Uuid::now_v7(),
        terminal_id: CENTRAL_TERMINAL.into(),
        seq,
        prev_hash: Digest32::ZERO,
        hash: Digest32::ZERO,
        kind: EntryKind::Adjust,
        program: adjustment.program.clone(),
        member: member.to_string(),
        points: adjustment.points,
        sale_id: None,
        return_id: None,
        rules_version: NO_RULES_VERSION,
        occurred_at: at.to_string(),
        detail: adjustment.detail(),
    };
    entry.chain_after(digest_of(last_hash, "last_hash")?);
    Ok(entry)
}

fn insert(
    tx: &Transaction<'_>,
    e: &LedgerEntry,
    member: &str,
    at: &str,
) -> Result<(), CentralError> {
    tx.execute(
        "INSERT INTO entries (terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
            credited_member, points, rules_version, occurred_at, detail, status, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11, ?12, ?13, ?11)",
        params![
            e.terminal_id,
            i64_of(e.seq, "seq")?,
            e.entry_id.as_bytes().as_slice(),
            e.hash.0.as_slice(),
            e.prev_hash.0.as_slice(),
            e.kind.as_str(),
            e.program,
            member,
            e.points,
            i64_of(e.rules_version, "rules_version")?,
            at,
            e.detail,
            EntryStatus::Applied.as_str(),
        ],
    )?;
    Ok(())
}

fn stored(tx: &Transaction<'_>, seq: u64) -> Result<StoredEntry, CentralError> {
    let mut stmt = tx.prepare_cached(
        "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                credited_member, points, sale_id, return_id, rules_version, occurred_at,
                detail, status, reason, received_at, credited
         FROM entries WHERE terminal_id = ?1 AND seq = ?2",
    )?;
    let mut rows = stmt.query(params![CENTRAL_TERMINAL, i64_of(seq, "seq")?])?;
    let row = rows
        .next()?
        .ok_or_else(|| CentralError::Corrupt("the adjustment just stored is gone".into()))?;
    admin::stored_entry(row)
}
