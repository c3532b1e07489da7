//! An administrator's adjustment, stored as the next `adjust` entry of
//! central's pseudo-terminal (why: [`crate::apply::adjust`]). The
//! pseudo-terminal's row is locked first, the member's account name next,
//! as for a register's batch.

use pos_sync::{Digest32, EntryKind, LedgerEntry};
use uuid::Uuid;

use super::locks::{self, RevKind};
use super::{PgTx, admin, i64_of, members};
use crate::apply::adjust::{Adjustment, balance_after};
use crate::apply::{EntryStatus, SyncTx};
use crate::error::CentralError;
use crate::storage::StoredEntry;
use crate::tokens::CENTRAL_TERMINAL;

/// Adjustments name no rules bundle: their `rules_version` is 0.
const NO_RULES_VERSION: u64 = 0;

pub(super) fn adjust(
    tx: &PgTx<'_>,
    adjustment: &Adjustment,
    at: jiff::Timestamp,
) -> Result<StoredEntry, CentralError> {
    let head = tx
        .chain_head(CENTRAL_TERMINAL)?
        .ok_or_else(|| CentralError::Corrupt(format!("no terminal {CENTRAL_TERMINAL}")))?;
    let owner = tx.card_owner(&adjustment.member)?;
    locks::lock_names(
        tx,
        [Some(adjustment.member.clone()), owner]
            .into_iter()
            .flatten(),
    )?;
    let member = members::resolve_member(tx, &adjustment.member)?;
    if !members::is_known(tx, &member)? {
        return Err(CentralError::NotFound(format!(
            "member: no member or card {:?}",
            adjustment.member
        )));
    }
    let program = adjustment.program.as_str();
    let published: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM programs WHERE id = $1)",
            &[&program],
        )?
        .try_get(0)?;
    if !published {
        return Err(CentralError::Invalid(format!(
            "program: {program:?} is in no published bundle"
        )));
    }
    let balance = tx.account(&member, program, at.as_second())?.balance;
    let balance = balance_after(balance, adjustment.points)?;
    let seq = head
        .seq
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
        member: member.clone(),
        points: adjustment.points,
        sale_id: None,
        return_id: None,
        rules_version: NO_RULES_VERSION,
        occurred_at: at.to_string(),
        detail: adjustment.detail(),
    };
    entry.chain_after(head.hash);
    store(tx, &entry, &member, balance, &at.to_string())
}

/// Writes the adjustment's entry, the balance and the new chain head, and
/// reads the entry back as the admin API shows it.
fn store(
    tx: &PgTx<'_>,
    e: &LedgerEntry,
    member: &str,
    balance: i64,
    at: &str,
) -> Result<StoredEntry, CentralError> {
    let seq = i64_of(e.seq, "seq")?;
    tx.execute(
        "INSERT INTO entries (terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
            credited_member, points, rules_version, occurred_at, detail, status, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12, $13, $11)",
        &[
            &e.terminal_id,
            &seq,
            &e.entry_id.as_bytes().as_slice(),
            &e.hash.0.as_slice(),
            &e.prev_hash.0.as_slice(),
            &e.kind.as_str(),
            &e.program,
            &member,
            &e.points,
            &i64_of(e.rules_version, "rules_version")?,
            &at,
            &e.detail,
            &EntryStatus::Applied.as_str(),
        ],
    )?;
    tx.execute(
        "INSERT INTO balances (member, program, opening, balance) VALUES ($1, $2, 0, $3)
         ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
        &[&member, &e.program, &balance],
    )?;
    tx.execute(
        "UPDATE terminals SET last_seq = $1, last_hash = $2 WHERE id = $3",
        &[&seq, &e.hash.0.as_slice(), &CENTRAL_TERMINAL],
    )?;
    // The members download carries the new balance.
    tx.changed(member, RevKind::Upsert);
    let row = tx.query_one(
        "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                credited_member, points, sale_id, return_id, rules_version, occurred_at,
                detail, status, reason, received_at, credited
         FROM entries WHERE terminal_id = $1 AND seq = $2",
        &[&CENTRAL_TERMINAL, &seq],
    )?;
    admin::stored_entry(&row)
}
