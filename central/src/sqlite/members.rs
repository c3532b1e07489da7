//! What registers download (member and catalog changes since a cursor)
//! and the balances central answers with.

use std::collections::BTreeMap;

use pos_sync::protocol::{
    CHANGES_PAGE_MAX, CatalogChanges, MemberChange, MemberChanges, MemberProgramState,
    ProductChange, ProgramBalance,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{i64_of, u64_of};
use crate::error::CentralError;

/// Who a name a register or the admin used stands for: the card's member,
/// or the name itself.
pub(super) fn resolve_member(tx: &Transaction<'_>, name: &str) -> Result<String, CentralError> {
    let member: Option<String> = tx
        .prepare_cached("SELECT member FROM cards WHERE card = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    Ok(member.unwrap_or_else(|| name.to_string()))
}

/// The balances of every program a member has, for answers and the admin API.
/// Each balance is one column kept within bounds by Rust; what holds reserve
/// is summed here, in Rust, so no SQL expression over points can overflow.
pub(super) fn member_programs(
    conn: &Connection,
    member: &str,
    now_secs: i64,
) -> Result<Vec<ProgramBalance>, CentralError> {
    let mut stmt = conn.prepare_cached(
        "SELECT program, balance FROM balances WHERE member = ?1 ORDER BY program",
    )?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([member], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (program, balance) in rows {
        let held = held(conn, member, &program, now_secs)?;
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
/// program, summed with saturation in Rust rather than by SQL's `SUM`.
pub(super) fn held(
    conn: &Connection,
    member: &str,
    program: &str,
    now_secs: i64,
) -> Result<i64, CentralError> {
    let mut stmt = conn.prepare_cached(
        "SELECT points FROM holds
         WHERE member = ?1 AND program = ?2 AND state = 'open' AND expires_at > ?3",
    )?;
    let mut rows = stmt.query(params![member, program, now_secs])?;
    let mut held: i64 = 0;
    while let Some(row) = rows.next()? {
        held = held.saturating_add(row.get(0)?);
    }
    Ok(held)
}

/// Whether central knows `member`: imported, or holding points.
pub(super) fn is_known(tx: &Transaction<'_>, member: &str) -> Result<bool, CentralError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM members WHERE id = ?1)
             OR EXISTS (SELECT 1 FROM balances WHERE member = ?1)",
        [member],
        |r| r.get(0),
    )?)
}

pub(super) fn member_balances(
    tx: &Transaction<'_>,
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
    conn: &Connection,
    cursor: u64,
    limit: usize,
) -> Result<MemberChanges, CentralError> {
    let limit = limit.clamp(1, CHANGES_PAGE_MAX);
    let now_secs = jiff::Timestamp::now().as_second();
    let mut stmt = conn.prepare_cached(
        "SELECT id, birthday, blocked, tiers, rev FROM members
         WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![i64_of(cursor, "cursor")?, limit as i64 + 1], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
    drop(stmt);
    let more = rows.len() > limit;
    let mut changes = Vec::with_capacity(limit.min(rows.len()));
    for (id, birthday, blocked, tiers, rev) in rows.into_iter().take(limit) {
        let tiers: BTreeMap<String, Option<String>> = serde_json::from_str(&tiers)
            .map_err(|e| CentralError::Corrupt(format!("member {id:?} tiers: {e}")))?;
        let cards: Vec<String> = conn
            .prepare_cached("SELECT card FROM cards WHERE member = ?1 ORDER BY card")?
            .query_map([&id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut programs: BTreeMap<String, MemberProgramState> = tiers
            .into_iter()
            .map(|(p, tier)| {
                (
                    p,
                    MemberProgramState {
                        tier,
                        available: 0,
                        pending: 0,
                    },
                )
            })
            .collect();
        for b in member_programs(conn, &id, now_secs)? {
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
            id,
            cards,
            birthday,
            blocked,
            programs,
            rev: u64_of(rev, "rev")?,
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
    conn: &Connection,
    cursor: u64,
    limit: usize,
) -> Result<CatalogChanges, CentralError> {
    let limit = limit.clamp(1, CHANGES_PAGE_MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT sku, name, category, price, rev FROM products
         WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![i64_of(cursor, "cursor")?, limit as i64 + 1], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
    let more = rows.len() > limit;
    let mut changes = Vec::new();
    for (sku, name, category, price, rev) in rows.into_iter().take(limit) {
        let price = price
            .parse()
            .map_err(|e| CentralError::Corrupt(format!("product {sku:?} price: {e}")))?;
        changes.push(ProductChange {
            sku,
            name,
            category,
            price,
            rev: u64_of(rev, "rev")?,
        });
    }
    let next_cursor = changes.last().map(|c| c.rev).unwrap_or(cursor);
    Ok(CatalogChanges {
        changes,
        next_cursor,
        more,
    })
}
