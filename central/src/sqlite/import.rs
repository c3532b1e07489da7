//! Member and catalog snapshots imported by the admin (upserts).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};

use super::next_rev;
use crate::apply::{BALANCE_ABS_MAX, add_points};
use crate::error::CentralError;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};

pub(super) fn members(
    tx: &Transaction<'_>,
    snapshot: &MembersSnapshot,
) -> Result<usize, CentralError> {
    // The moment central learned of a tier is when the snapshot arrived:
    // a register cannot have known it earlier.
    let at = jiff::Timestamp::now().to_string();
    for (i, m) in snapshot.members.iter().enumerate() {
        let rev = next_rev(tx)?;
        let tiers: BTreeMap<&String, &Option<String>> =
            m.programs.iter().map(|(p, s)| (p, &s.tier)).collect();
        let tiers = serde_json::to_string(&tiers)
            .map_err(|e| CentralError::Invalid(format!("members[{i}]: {e}")))?;
        tx.prepare_cached(
            "INSERT INTO members (id, birthday, blocked, tiers, rev) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (id) DO UPDATE SET birthday = excluded.birthday,
                blocked = excluded.blocked, tiers = excluded.tiers, rev = excluded.rev",
        )?
        .execute(params![m.id, m.birthday, m.blocked, tiers, rev])?;
        tx.prepare_cached("DELETE FROM cards WHERE member = ?1")?
            .execute([&m.id])?;
        for card in &m.cards {
            // The snapshot is the truth: a card listed here moves to this
            // member, and its previous owner shows up as changed.
            let owner: Option<String> = tx
                .prepare_cached("SELECT member FROM cards WHERE card = ?1")?
                .query_row([card], |r| r.get(0))
                .optional()?;
            if let Some(owner) = owner.filter(|o| *o != m.id) {
                let rev = next_rev(tx)?;
                tx.prepare_cached("UPDATE members SET rev = ?1 WHERE id = ?2")?
                    .execute(params![rev, owner])?;
            }
            tx.prepare_cached(
                "INSERT INTO cards (card, member) VALUES (?1, ?2)
                 ON CONFLICT (card) DO UPDATE SET member = excluded.member",
            )?
            .execute([card, &m.id])?;
            link_card_points(tx, card, &m.id)?;
        }
        for (program, state) in &m.programs {
            record_tier(tx, &m.id, program, state.tier.as_deref(), &at)?;
            set_opening(tx, &m.id, program, state.available)?;
        }
    }
    Ok(snapshot.members.len())
}

/// Where tier history begins: a tier known from the first import on.
const HISTORY_START: &str = "1970-01-01T00:00:00Z";

/// Appends a tier change to `tier_history` when the snapshot's tier differs
/// from the last one recorded (`docs/sync-v2.md` §3, "Whose context").
fn record_tier(
    tx: &Transaction<'_>,
    member: &str,
    program: &str,
    tier: Option<&str>,
    at: &str,
) -> Result<(), CentralError> {
    let last: Option<Option<String>> = tx
        .prepare_cached(
            "SELECT tier FROM tier_history WHERE member = ?1 AND program = ?2
             ORDER BY since DESC, rowid DESC LIMIT 1",
        )?
        .query_row([member, program], |r| r.get(0))
        .optional()?;
    if last.as_ref().map(Option::as_deref) == Some(tier) || (last.is_none() && tier.is_none()) {
        return Ok(());
    }
    // The first tier central learns of a member is taken as held from the
    // start, as migration 4 does for the tiers it found: central cannot know
    // since when, and a sale quoted a moment before the import (times
    // written to the second) must not lose the tier the cashier saw.
    let since = if last.is_none() { HISTORY_START } else { at };
    tx.prepare_cached(
        "INSERT INTO tier_history (member, program, tier, since) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![member, program, tier, since])?;
    Ok(())
}

/// Replaces the imported opening balance of (member, program), keeping
/// what the ledger counted on top of the old one: the balance moves by the
/// difference, checked like any other change of a balance.
fn set_opening(
    tx: &Transaction<'_>,
    member: &str,
    program: &str,
    opening: i64,
) -> Result<(), CentralError> {
    let (old_opening, balance): (i64, i64) = tx
        .prepare_cached("SELECT opening, balance FROM balances WHERE member = ?1 AND program = ?2")?
        .query_row([member, program], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let balance = add_points(opening, 0)
        .and_then(|_| balance.checked_sub(old_opening))
        .and_then(|counted| add_points(counted, opening))
        .ok_or_else(|| {
            CentralError::Invalid(format!(
                "member {member:?} program {program:?}: an opening balance of {opening} \
                 would take the balance beyond ±{BALANCE_ABS_MAX}"
            ))
        })?;
    tx.prepare_cached(
        "INSERT INTO balances (member, program, opening, balance) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (member, program) DO UPDATE SET opening = excluded.opening,
            balance = excluded.balance",
    )?
    .execute(params![member, program, opening, balance])?;
    Ok(())
}

pub(super) fn catalog(
    tx: &Transaction<'_>,
    snapshot: &CatalogSnapshot,
) -> Result<usize, CentralError> {
    for p in &snapshot.products {
        let rev = next_rev(tx)?;
        tx.prepare_cached(
            "INSERT INTO products (sku, name, category, price, rev) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name,
                category = excluded.category, price = excluded.price, rev = excluded.rev",
        )?
        .execute(params![p.sku, p.name, p.category, p.price.to_string(), rev])?;
    }
    Ok(snapshot.products.len())
}

/// A register earns under a card token central does not know yet (agent
/// spec §3) until central links the card to a member: then the points (and
/// any open holds) kept under the token move to the member. Stored entries
/// are not rewritten: they keep the token as `credited_member`.
fn link_card_points(tx: &Transaction<'_>, card: &str, member: &str) -> Result<(), CentralError> {
    if card == member {
        return Ok(());
    }
    let rows: Vec<(String, i64)> = tx
        .prepare_cached("SELECT program, balance FROM balances WHERE member = ?1")?
        .query_map([card], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    for (program, points) in rows {
        let balance: i64 = tx
            .prepare_cached("SELECT balance FROM balances WHERE member = ?1 AND program = ?2")?
            .query_row([member, &program], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let balance = add_points(balance, points).ok_or_else(|| {
            CentralError::Invalid(format!(
                "card {card:?}: moving its {points} points in {program:?} to member \
                 {member:?} would take the balance beyond ±{BALANCE_ABS_MAX}"
            ))
        })?;
        tx.prepare_cached(
            "INSERT INTO balances (member, program, opening, balance) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
        )?
        .execute(params![member, program, balance])?;
    }
    tx.prepare_cached("DELETE FROM balances WHERE member = ?1")?
        .execute([card])?;
    tx.prepare_cached("UPDATE holds SET member = ?1 WHERE member = ?2")?
        .execute([member, card])?;
    // The token's own row (if a register saw it as a member) changes too:
    // it no longer holds points.
    let rev = next_rev(tx)?;
    tx.prepare_cached("UPDATE members SET rev = ?1 WHERE id = ?2")?
        .execute(params![rev, card])?;
    Ok(())
}
