//! Member and catalog snapshots imported by the admin (upserts), as in
//! [`crate::sqlite`]. A members import first locks the account name of
//! every member and card it names and of every card's present owner, in
//! order, as a batch does; a catalog import only takes revisions.

use std::collections::{BTreeMap, BTreeSet};

use super::PgTx;
use super::locks::{self, RevKind};
use crate::apply::{BALANCE_ABS_MAX, add_points};
use crate::error::CentralError;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};

/// Where tier history begins: a tier known from the first import on.
const HISTORY_START: &str = "1970-01-01T00:00:00Z";

pub(super) fn members(tx: &PgTx<'_>, snapshot: &MembersSnapshot) -> Result<usize, CentralError> {
    lock_snapshot_names(tx, snapshot)?;
    // The moment central learned of a tier is when the snapshot arrived.
    let at = jiff::Timestamp::now().to_string();
    for (i, m) in snapshot.members.iter().enumerate() {
        let tiers: BTreeMap<&String, &Option<String>> =
            m.programs.iter().map(|(p, s)| (p, &s.tier)).collect();
        let tiers = serde_json::to_string(&tiers)
            .map_err(|e| CentralError::Invalid(format!("members[{i}]: {e}")))?;
        // rev 0 until the end of the transaction assigns the real one.
        tx.execute(
            "INSERT INTO members (id, birthday, blocked, tiers, rev) VALUES ($1, $2, $3, $4, 0)
             ON CONFLICT (id) DO UPDATE SET birthday = excluded.birthday,
                blocked = excluded.blocked, tiers = excluded.tiers",
            &[&m.id, &m.birthday, &m.blocked, &tiers],
        )?;
        tx.changed(&m.id, RevKind::Update);
        tx.execute("DELETE FROM cards WHERE member = $1", &[&m.id])?;
        for card in &m.cards {
            // The snapshot is the truth: a card listed here moves to this
            // member, and its previous owner shows up as changed.
            if let Some(owner) = tx.card_owner_of(card)?.filter(|o| *o != m.id) {
                tx.changed(&owner, RevKind::Update);
            }
            tx.execute(
                "INSERT INTO cards (card, member) VALUES ($1, $2)
                 ON CONFLICT (card) DO UPDATE SET member = excluded.member",
                &[card, &m.id],
            )?;
            link_card_points(tx, card, &m.id)?;
        }
        for (program, state) in &m.programs {
            record_tier(tx, &m.id, program, state.tier.as_deref(), &at)?;
            set_opening(tx, &m.id, program, state.available)?;
        }
    }
    Ok(snapshot.members.len())
}

impl PgTx<'_> {
    fn card_owner_of(&self, card: &str) -> Result<Option<String>, CentralError> {
        let row = self.query_opt("SELECT member FROM cards WHERE card = $1", &[&card])?;
        row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
    }
}

/// Every name the import reads or writes the points of, locked in order.
fn lock_snapshot_names(tx: &PgTx<'_>, snapshot: &MembersSnapshot) -> Result<(), CentralError> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for m in &snapshot.members {
        names.insert(m.id.clone());
        names.extend(m.cards.iter().cloned());
    }
    let cards: Vec<String> = snapshot
        .members
        .iter()
        .flat_map(|m| m.cards.iter().cloned())
        .collect();
    for r in tx.query(
        "SELECT DISTINCT member FROM cards WHERE card = ANY($1)",
        &[&cards],
    )? {
        names.insert(r.try_get(0)?);
    }
    locks::lock_names(tx, names)
}

/// Appends a tier change to `tier_history` when the snapshot's tier differs
/// from the last one recorded (`docs/sync-v2.md` §3, "Whose context").
fn record_tier(
    tx: &PgTx<'_>,
    member: &str,
    program: &str,
    tier: Option<&str>,
    at: &str,
) -> Result<(), CentralError> {
    let last: Option<Option<String>> = tx
        .query_opt(
            "SELECT tier FROM tier_history WHERE member = $1 AND program = $2
             ORDER BY since DESC, id DESC LIMIT 1",
            &[&member, &program],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    if last.as_ref().map(Option::as_deref) == Some(tier) || (last.is_none() && tier.is_none()) {
        return Ok(());
    }
    // The first tier central learns of is taken as held from the start
    // (why: crate::sqlite's import).
    let since = if last.is_none() { HISTORY_START } else { at };
    tx.execute(
        "INSERT INTO tier_history (member, program, tier, since) VALUES ($1, $2, $3, $4)",
        &[&member, &program, &tier, &since],
    )?;
    Ok(())
}

fn balance_row(tx: &PgTx<'_>, member: &str, program: &str) -> Result<(i64, i64), CentralError> {
    Ok(tx
        .query_opt(
            "SELECT opening, balance FROM balances WHERE member = $1 AND program = $2",
            &[&member, &program],
        )?
        .map(|r| Ok::<_, postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?
        .unwrap_or((0, 0)))
}

/// Replaces the imported opening balance of (member, program), keeping
/// what the ledger counted on top of the old one.
fn set_opening(
    tx: &PgTx<'_>,
    member: &str,
    program: &str,
    opening: i64,
) -> Result<(), CentralError> {
    let (old_opening, balance) = balance_row(tx, member, program)?;
    let balance = add_points(opening, 0)
        .and_then(|_| balance.checked_sub(old_opening))
        .and_then(|counted| add_points(counted, opening))
        .ok_or_else(|| {
            CentralError::Invalid(format!(
                "member {member:?} program {program:?}: an opening balance of {opening} \
                 would take the balance beyond ±{BALANCE_ABS_MAX}"
            ))
        })?;
    tx.execute(
        "INSERT INTO balances (member, program, opening, balance) VALUES ($1, $2, $3, $4)
         ON CONFLICT (member, program) DO UPDATE SET opening = excluded.opening,
            balance = excluded.balance",
        &[&member, &program, &opening, &balance],
    )?;
    Ok(())
}

pub(super) fn catalog(tx: &PgTx<'_>, snapshot: &CatalogSnapshot) -> Result<usize, CentralError> {
    let n = i64::try_from(snapshot.products.len())
        .map_err(|_| CentralError::Invalid("too many products".into()))?;
    if n == 0 {
        return Ok(0);
    }
    // The only lock a catalog import takes, so taking it first is in order.
    let first = locks::next_revs(tx, n)?;
    for (i, p) in snapshot.products.iter().enumerate() {
        let rev = first + i as i64;
        tx.execute(
            "INSERT INTO products (sku, name, category, price, rev) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name,
                category = excluded.category, price = excluded.price, rev = excluded.rev",
            &[&p.sku, &p.name, &p.category, &p.price.to_string(), &rev],
        )?;
    }
    Ok(snapshot.products.len())
}

/// A register earns under a card token central does not know yet until
/// central links the card to a member: then the points (and any open
/// holds) kept under the token move to the member.
fn link_card_points(tx: &PgTx<'_>, card: &str, member: &str) -> Result<(), CentralError> {
    if card == member {
        return Ok(());
    }
    let rows = tx.query(
        "SELECT program, balance FROM balances WHERE member = $1",
        &[&card],
    )?;
    if rows.is_empty() {
        return Ok(());
    }
    for r in rows {
        let program: String = r.try_get(0)?;
        let points: i64 = r.try_get(1)?;
        let (_, balance) = balance_row(tx, member, &program)?;
        let balance = add_points(balance, points).ok_or_else(|| {
            CentralError::Invalid(format!(
                "card {card:?}: moving its {points} points in {program:?} to member \
                 {member:?} would take the balance beyond ±{BALANCE_ABS_MAX}"
            ))
        })?;
        tx.execute(
            "INSERT INTO balances (member, program, opening, balance) VALUES ($1, $2, 0, $3)
             ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
            &[&member, &program, &balance],
        )?;
    }
    tx.execute("DELETE FROM balances WHERE member = $1", &[&card])?;
    tx.execute(
        "UPDATE holds SET member = $1 WHERE member = $2",
        &[&member, &card],
    )?;
    // The token's own row (if a register saw it as a member) changes too.
    tx.changed(card, RevKind::Update);
    Ok(())
}
