//! The member and catalog caches, and balances as the register sees them
//! (sync spec §4).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension};
use rust_decimal::Decimal;

use crate::model::{
    Freshness, MemberBalances, MemberData, MemberProgramData, Product, ProgramBalance,
};
use crate::store::error::{StoreError, StoreResult};
use crate::store::{ID_BYTES_MAX, Shared, sync, validate_id};

/// Card tokens one member may hold at most.
pub const MEMBER_CARDS_MAX: usize = 32;
/// Programs one member may be enrolled in at most.
pub const MEMBER_PROGRAMS_MAX: usize = 64;
/// Longest product name kept, in bytes.
pub const PRODUCT_NAME_BYTES_MAX: usize = 256;

/// A member as the cache knows it.
#[derive(Clone, Debug)]
pub(crate) struct CachedMember {
    pub id: String,
    pub birthday: Option<String>,
    pub blocked: bool,
    pub programs: BTreeMap<String, MemberProgramData>,
}

/// Who a basket's points go to: the member id, or the card token of a card
/// the cache does not know (`cached` is then `None`).
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub key: String,
    pub cached: Option<CachedMember>,
}

/// The cached member with this id.
pub(crate) fn by_id(conn: &Connection, id: &str) -> StoreResult<Option<CachedMember>> {
    let row: Option<(Option<String>, i64)> = conn
        .prepare_cached("SELECT birthday, blocked FROM members WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((birthday, blocked)) = row else {
        return Ok(None);
    };
    let mut programs = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT program, tier, available, pending FROM member_programs WHERE member_id = ?1",
    )?;
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        programs.insert(
            row.get::<_, String>(0)?,
            MemberProgramData {
                tier: row.get(1)?,
                available: row.get(2)?,
                pending: row.get(3)?,
            },
        );
    }
    Ok(Some(CachedMember {
        id: id.to_string(),
        birthday,
        blocked: blocked != 0,
        programs,
    }))
}

/// The member id a card token belongs to.
pub(crate) fn id_of_card(conn: &Connection, card: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT member_id FROM member_cards WHERE card = ?1")?
        .query_row([card], |r| r.get(0))
        .optional()?)
}

/// Sum of this register's unsynced entries for `key` in `program`.
pub(crate) fn unsynced_points(conn: &Connection, key: &str, program: &str) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE member = ?1 AND program = ?2 AND status = 0",
        )?
        .query_row([key, program], |r| r.get(0))?)
}

/// Balance of `resolved` in `program` (sync spec §4): central's available
/// from the cache plus this register's unsynced entries (earns, redemptions
/// and their returns alike: v1 programs have no pending period).
pub(crate) fn balance(
    conn: &Connection,
    resolved: &Resolved,
    program: &str,
) -> StoreResult<ProgramBalance> {
    let cached = resolved
        .cached
        .as_ref()
        .and_then(|m| m.programs.get(program));
    let unsynced = unsynced_points(conn, &resolved.key, program)?;
    let (available, pending) = cached.map(|p| (p.available, p.pending)).unwrap_or((0, 0));
    Ok(ProgramBalance {
        available: available.saturating_add(unsynced),
        pending,
        unsynced,
    })
}

/// Whether member data is fresh now.
pub(crate) fn freshness(conn: &Connection, shared: &Shared) -> StoreResult<Freshness> {
    let fresh_at = sync::members_fresh_at(conn)?;
    let limit_ms =
        i64::try_from(shared.options.member_fresh_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    Ok(match fresh_at {
        Some(at) if shared.now_unix_ms().saturating_sub(at) < limit_ms => Freshness::Fresh,
        _ => Freshness::Stale,
    })
}

/// `GET /v1/members/{id or card}`.
pub(crate) fn balances_view(
    conn: &Connection,
    shared: &Shared,
    key: &str,
) -> StoreResult<MemberBalances> {
    validate_id("member", key)?;
    let resolved = if let Some(m) = by_id(conn, key)? {
        Resolved {
            key: m.id.clone(),
            cached: Some(m),
        }
    } else if let Some(id) = id_of_card(conn, key)? {
        let cached = by_id(conn, &id)?;
        Resolved { key: id, cached }
    } else {
        Resolved {
            key: key.to_string(),
            cached: None,
        }
    };
    // Programs: enrolment from the cache plus any with entries here.
    let mut names: Vec<String> = resolved
        .cached
        .as_ref()
        .map(|m| m.programs.keys().cloned().collect())
        .unwrap_or_default();
    {
        let mut stmt =
            conn.prepare_cached("SELECT DISTINCT program FROM ledger WHERE member = ?1")?;
        let mut rows = stmt.query([&resolved.key])?;
        while let Some(row) = rows.next()? {
            names.push(row.get(0)?);
        }
    }
    if resolved.cached.is_none() && names.is_empty() {
        return Err(StoreError::MemberNotFound(key.to_string()));
    }
    names.sort();
    names.dedup();
    let mut programs = BTreeMap::new();
    for name in names {
        let b = balance(conn, &resolved, &name)?;
        programs.insert(name, b);
    }
    Ok(MemberBalances {
        member: resolved.key.clone(),
        known: resolved.cached.is_some(),
        blocked: resolved.cached.as_ref().is_some_and(|m| m.blocked),
        freshness: freshness(conn, shared)?,
        programs,
    })
}

/// Validates one member of a snapshot or download; `at` names it.
fn validate_member(m: &MemberData, at: &str) -> StoreResult<()> {
    validate_id(&format!("{at}.id"), &m.id)?;
    if m.cards.len() > MEMBER_CARDS_MAX {
        return Err(StoreError::invalid(
            format!("{at}.cards"),
            format!("at most {MEMBER_CARDS_MAX} cards, got {}", m.cards.len()),
        ));
    }
    for (i, card) in m.cards.iter().enumerate() {
        validate_id(&format!("{at}.cards[{i}]"), card)?;
    }
    if let Some(b) = &m.birthday
        && b.parse::<jiff::civil::Date>().is_err()
    {
        return Err(StoreError::invalid(
            format!("{at}.birthday"),
            format!("must be YYYY-MM-DD, got {b:?}"),
        ));
    }
    if m.programs.len() > MEMBER_PROGRAMS_MAX {
        return Err(StoreError::invalid(
            format!("{at}.programs"),
            format!("at most {MEMBER_PROGRAMS_MAX} programs"),
        ));
    }
    for name in m.programs.keys() {
        validate_id(&format!("{at}.programs"), name)?;
    }
    Ok(())
}

/// Replaces each listed member's cached data (cards, programs), inside the
/// caller's transaction. Members not listed are kept.
pub(crate) fn upsert(
    conn: &Connection,
    shared: &Shared,
    members: &[MemberData],
) -> StoreResult<()> {
    for (i, m) in members.iter().enumerate() {
        validate_member(m, &format!("members[{i}]"))?;
    }
    let now = shared.now_rfc3339();
    for m in members {
        conn.prepare_cached(
            "INSERT INTO members (id, birthday, blocked, fetched_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (id) DO UPDATE SET birthday = excluded.birthday, \
             blocked = excluded.blocked, fetched_at = excluded.fetched_at",
        )?
        .execute(rusqlite::params![
            m.id,
            m.birthday,
            i64::from(m.blocked),
            now
        ])?;
        conn.prepare_cached("DELETE FROM member_cards WHERE member_id = ?1")?
            .execute([&m.id])?;
        conn.prepare_cached("DELETE FROM member_programs WHERE member_id = ?1")?
            .execute([&m.id])?;
        for card in &m.cards {
            // A card moves to the member the newest data says it belongs to.
            conn.prepare_cached(
                "INSERT INTO member_cards (card, member_id) VALUES (?1, ?2) \
                 ON CONFLICT (card) DO UPDATE SET member_id = excluded.member_id",
            )?
            .execute([card, &m.id])?;
        }
        for (program, p) in &m.programs {
            conn.prepare_cached(
                "INSERT INTO member_programs (member_id, program, tier, available, pending) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(rusqlite::params![
                m.id,
                program,
                p.tier,
                p.available,
                p.pending
            ])?;
        }
    }
    Ok(())
}

/// Upserts catalog products inside the caller's transaction.
pub(crate) fn upsert_products(
    conn: &Connection,
    shared: &Shared,
    products: &[Product],
) -> StoreResult<()> {
    for (i, p) in products.iter().enumerate() {
        if p.sku.is_empty() || p.sku.len() > ID_BYTES_MAX {
            return Err(StoreError::invalid(
                format!("products[{i}].sku"),
                format!("must be 1 to {ID_BYTES_MAX} characters"),
            ));
        }
        if p.name.len() > PRODUCT_NAME_BYTES_MAX {
            return Err(StoreError::invalid(
                format!("products[{i}].name"),
                format!("longer than {PRODUCT_NAME_BYTES_MAX} bytes"),
            ));
        }
        if p.price < Decimal::ZERO {
            return Err(StoreError::invalid(
                format!("products[{i}].price"),
                format!("must be >= 0, got {}", p.price),
            ));
        }
    }
    let now = shared.now_rfc3339();
    for p in products {
        conn.prepare_cached(
            "INSERT INTO catalog (sku, name, category, price, fetched_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (sku) DO UPDATE SET name = excluded.name, category = excluded.category, \
             price = excluded.price, fetched_at = excluded.fetched_at",
        )?
        .execute(rusqlite::params![p.sku, p.name, p.category, p.price.to_string(), now])?;
    }
    Ok(())
}

/// A product by sku.
pub(crate) fn product(conn: &Connection, sku: &str) -> StoreResult<Option<Product>> {
    let row: Option<(String, Option<String>, String)> = conn
        .prepare_cached("SELECT name, category, price FROM catalog WHERE sku = ?1")?
        .query_row([sku], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(name, category, price)| {
        Ok(Product {
            sku: sku.to_string(),
            name,
            category,
            price: price
                .parse()
                .map_err(|_| StoreError::Damaged(format!("catalog {sku}: price {price:?}")))?,
        })
    })
    .transpose()
}
