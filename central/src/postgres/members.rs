//! What registers download (member and catalog changes since a cursor)
//! and the balances central answers with, as in [`crate::sqlite`].

use std::collections::BTreeMap;

use pos_sync::protocol::{
    CHANGES_PAGE_MAX, CatalogChanges, MemberChange, MemberChanges, MemberProgramState,
    ProductChange, ProgramBalance,
};

use super::{PgTx, i64_of, u64_of};
use crate::error::CentralError;

/// Who a name a register or the admin used stands for: the card's member,
/// or the name itself.
pub(super) fn resolve_member(tx: &PgTx<'_>, name: &str) -> Result<String, CentralError> {
    let row = tx.query_opt("SELECT member FROM cards WHERE card = $1", &[&name])?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => name.to_string(),
    })
}

/// The balances of every program a member has; what holds reserve is
/// summed in Rust, with saturation.
pub(super) fn member_programs(
    tx: &PgTx<'_>,
    member: &str,
    now_secs: i64,
) -> Result<Vec<ProgramBalance>, CentralError> {
    let rows = tx.query(
        "SELECT program, balance FROM balances WHERE member = $1 ORDER BY program COLLATE \"C\"",
        &[&member],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let program: String = r.try_get(0)?;
        let balance: i64 = r.try_get(1)?;
        let held = held(tx, member, &program, now_secs)?;
        out.push(ProgramBalance {
            program,
            balance,
            available: balance.saturating_sub(held),
            pending: 0,
        });
    }
    Ok(out)
}

/// What the member's open holds unexpired at `now_secs` reserve in a
/// program.
pub(super) fn held(
    tx: &PgTx<'_>,
    member: &str,
    program: &str,
    now_secs: i64,
) -> Result<i64, CentralError> {
    let rows = tx.query(
        "SELECT points FROM holds
         WHERE member = $1 AND program = $2 AND state = 'open' AND expires_at > $3",
        &[&member, &program, &now_secs],
    )?;
    let mut held: i64 = 0;
    for r in rows {
        held = held.saturating_add(r.try_get(0)?);
    }
    Ok(held)
}

/// Whether central knows `member`: imported, or holding points.
pub(super) fn is_known(tx: &PgTx<'_>, member: &str) -> Result<bool, CentralError> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM members WHERE id = $1)
                 OR EXISTS (SELECT 1 FROM balances WHERE member = $1)",
            &[&member],
        )?
        .try_get(0)?)
}

pub(super) fn member_balances(
    tx: &PgTx<'_>,
    member_or_card: &str,
    now: jiff::Timestamp,
) -> Result<Option<(String, Vec<ProgramBalance>)>, CentralError> {
    let member = resolve_member(tx, member_or_card)?;
    if !is_known(tx, &member)? {
        return Ok(None);
    }
    let programs = member_programs(tx, &member, now.as_second())?;
    Ok(Some((member, programs)))
}

pub(super) fn member_changes(
    tx: &PgTx<'_>,
    cursor: u64,
    limit: usize,
) -> Result<MemberChanges, CentralError> {
    let limit = limit.clamp(1, CHANGES_PAGE_MAX);
    let now_secs = jiff::Timestamp::now().as_second();
    let rows = tx.query(
        "SELECT id, birthday, blocked, tiers, rev FROM members
         WHERE rev > $1 ORDER BY rev LIMIT $2",
        &[&i64_of(cursor, "cursor")?, &(limit as i64 + 1)],
    )?;
    let more = rows.len() > limit;
    let mut changes = Vec::with_capacity(limit.min(rows.len()));
    for r in rows.into_iter().take(limit) {
        let id: String = r.try_get(0)?;
        let tiers: String = r.try_get(3)?;
        let tiers: BTreeMap<String, Option<String>> = serde_json::from_str(&tiers)
            .map_err(|e| CentralError::Corrupt(format!("member {id:?} tiers: {e}")))?;
        let cards = tx
            .query(
                "SELECT card FROM cards WHERE member = $1 ORDER BY card COLLATE \"C\"",
                &[&id],
            )?
            .iter()
            .map(|c| c.try_get(0))
            .collect::<Result<Vec<String>, _>>()?;
        let mut programs: BTreeMap<String, MemberProgramState> = tiers
            .into_iter()
            .map(|(p, tier)| {
                let state = MemberProgramState {
                    tier,
                    available: 0,
                    pending: 0,
                };
                (p, state)
            })
            .collect();
        for b in member_programs(tx, &id, now_secs)? {
            programs
                .entry(b.program)
                .or_insert(MemberProgramState {
                    tier: None,
                    available: 0,
                    pending: 0,
                })
                .available = b.available;
        }
        changes.push(MemberChange {
            birthday: r.try_get(1)?,
            blocked: r.try_get(2)?,
            rev: u64_of(r.try_get(4)?, "rev")?,
            id,
            cards,
            programs,
        });
    }
    let next_cursor = changes.last().map(|c| c.rev).unwrap_or(cursor);
    Ok(MemberChanges {
        changes,
        next_cursor,
        more,
    })
}

pub(super) fn catalog_changes(
    tx: &PgTx<'_>,
    cursor: u64,
    limit: usize,
) -> Result<CatalogChanges, CentralError> {
    let limit = limit.clamp(1, CHANGES_PAGE_MAX);
    let rows = tx.query(
        "SELECT sku, name, category, price, rev FROM products
         WHERE rev > $1 ORDER BY rev LIMIT $2",
        &[&i64_of(cursor, "cursor")?, &(limit as i64 + 1)],
    )?;
    let more = rows.len() > limit;
    let mut changes = Vec::new();
    for r in rows.into_iter().take(limit) {
        let sku: String = r.try_get(0)?;
        let price: String = r.try_get(3)?;
        let price = price
            .parse()
            .map_err(|e| CentralError::Corrupt(format!("product {sku:?} price: {e}")))?;
        changes.push(ProductChange {
            name: r.try_get(1)?,
            category: r.try_get(2)?,
            rev: u64_of(r.try_get(4)?, "rev")?,
            sku,
            price,
        });
    }
    let next_cursor = changes.last().map(|c| c.rev).unwrap_or(cursor);
    Ok(CatalogChanges {
        changes,
        next_cursor,
        more,
    })
}
