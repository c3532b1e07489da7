//! Quotes, sales and returns: turning an API request into a points basket
//! (member from the cache, `earned_today` from the ledger), checking
//! redemptions (points spec §6, sync spec §4), and committing a sale or a
//! return with its ledger entries in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use pos_points::returns::{Refusal, ReturnedLine, SaleLedger};
use pos_points::{Basket, Bundle, Member, MemberProgram, Program, ProgramQuote, Quote, Redeem};
use pos_sync::EntryKind;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use rust_decimal::Decimal;

use crate::model::{
    Freshness, MemberRef, QuoteRequest, Redemption, ReturnAnswer, ReturnProgram, ReturnRecord,
    ReturnRequest, SaleAnswer, SaleRecord, SaleRequest,
};
use crate::store::error::{StoreError, StoreResult};
use crate::store::ledger::{self, NewEntry, to_u64};
use crate::store::members::{self, Resolved};
use crate::store::{Committed, Shared, rules, validate_id};

/// Lines one sale may have at most (a very long receipt is ~300).
pub const SALE_LINES_MAX: usize = 1_000;
/// Redemptions one sale may carry at most (one per program).
pub const SALE_REDEMPTIONS_MAX: usize = 16;
/// Lines one return may name at most.
pub const RETURN_LINES_MAX: usize = SALE_LINES_MAX;

/// A request turned into a validated points basket.
struct Prepared {
    basket: Basket,
    member: Option<Resolved>,
}

fn points_error(e: pos_points::Error) -> StoreError {
    StoreError::invalid("basket", e.to_string())
}

fn json_error(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Damaged(format!("{what}: {e}"))
}

/// A request whose id is already stored (sales and returns are idempotent
/// by id): the same request gets the stored answer again, marked as a
/// replay, so a client retrying after a lost answer sees what it would have
/// seen; a different request under the same id is a conflict, never a
/// silent overwrite.
fn replay<T: serde::de::DeserializeOwned>(
    what: &'static str,
    id: &str,
    same_request: bool,
    answer: String,
) -> StoreResult<Committed<T>> {
    if !same_request {
        return Err(StoreError::Conflict {
            what,
            id: id.to_owned(),
        });
    }
    let value = serde_json::from_str(&answer).map_err(|e| json_error("stored answer", e))?;
    Ok(Committed {
        value,
        json: answer,
        replay: true,
    })
}

/// Resolves the member reference against the cache.
fn resolve(conn: &Connection, member: &Option<MemberRef>) -> StoreResult<Option<Resolved>> {
    match member {
        None => Ok(None),
        Some(MemberRef::Id(id)) => {
            validate_id("member.id", id)?;
            let cached =
                members::by_id(conn, id)?.ok_or_else(|| StoreError::UnknownMember(id.clone()))?;
            Ok(Some(Resolved {
                key: id.clone(),
                cached: Some(cached),
            }))
        }
        Some(MemberRef::Card(card)) => {
            validate_id("member.card", card)?;
            if let Some(id) = members::id_of_card(conn, card)?
                && let Some(cached) = members::by_id(conn, &id)?
            {
                return Ok(Some(Resolved {
                    key: id,
                    cached: Some(cached),
                }));
            }
            Ok(Some(Resolved {
                key: card.clone(),
                cached: None,
            }))
        }
    }
}

/// Points the member earned today per program: earn + return_earn entries
/// whose occurred_at local date is `date`. Never below 0: a return of an
/// earlier day's sale must not open room under today's daily cap.
fn earned_today(conn: &Connection, key: &str, date: &str) -> StoreResult<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT program, COALESCE(SUM(points), 0) FROM ledger \
         WHERE member = ?1 AND local_date = ?2 AND kind IN ('earn', 'return_earn') GROUP BY program",
    )?;
    let mut rows = stmt.query([key, date])?;
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let points: i64 = row.get(1)?;
        if points > 0 {
            out.insert(row.get::<_, String>(0)?, points);
        }
    }
    Ok(out)
}

/// Builds and validates the basket for `req`.
fn prepare(
    conn: &Connection,
    bundle: &Bundle,
    req: &QuoteRequest,
    paid_with_points: Decimal,
) -> StoreResult<Prepared> {
    if let Some(id) = &req.sale_id {
        validate_id("sale_id", id)?;
    }
    if req.lines.len() > SALE_LINES_MAX {
        return Err(StoreError::invalid(
            "lines",
            format!("at most {SALE_LINES_MAX} lines, got {}", req.lines.len()),
        ));
    }
    let member = resolve(conn, &req.member)?;
    let basket_member = member.as_ref().map(|r| match &r.cached {
        Some(m) => Member {
            id: r.key.clone(),
            birthday: m.birthday.clone(),
            programs: m
                .programs
                .iter()
                .map(|(p, d)| {
                    (
                        p.clone(),
                        MemberProgram {
                            tier: d.tier.clone(),
                        },
                    )
                })
                .collect(),
        },
        // A card central has not linked: every program, no tier.
        None => Member {
            id: r.key.clone(),
            birthday: None,
            programs: bundle
                .programs
                .iter()
                .map(|p| (p.id.clone(), MemberProgram { tier: None }))
                .collect(),
        },
    });
    let mut basket = Basket {
        sale_id: req.sale_id.clone(),
        time: req.time.clone(),
        member: basket_member,
        earned_today: BTreeMap::new(),
        paid_with_points,
        lines: req.lines.iter().map(|l| l.to_points()).collect(),
    };
    basket.validate().map_err(points_error)?;
    if let Some(r) = &member {
        let date = req
            .time
            .get(..10)
            .ok_or_else(|| StoreError::invalid("time", "not an RFC 3339 date-time"))?;
        basket.earned_today = earned_today(conn, &r.key, date)?;
    }
    Ok(Prepared { basket, member })
}

/// `POST /v1/quote`.
pub(crate) fn quote(conn: &Connection, shared: &Shared, req: &QuoteRequest) -> StoreResult<Quote> {
    let bundle = rules::newest(conn, shared)?;
    let prepared = prepare(conn, &bundle, req, Decimal::ZERO)?;
    pos_points::quote(&bundle, &prepared.basket).map_err(points_error)
}

/// The points basket a sale would be quoted with now, as JSON text: what a
/// hold request carries so central checks the redemption against its rules
/// (`docs/sync-v2.md` §5). Read-only; the sale itself is built again, in
/// its transaction, when it commits.
pub(crate) fn hold_basket(
    conn: &Connection,
    shared: &Shared,
    req: &SaleRequest,
) -> StoreResult<String> {
    let bundle = rules::newest(conn, shared)?;
    let paid = paid_with_points(&bundle, req)?;
    let prepared = prepare(conn, &bundle, &req.quote_request(), paid)?;
    serde_json::to_string(&prepared.basket)
        .map_err(|e| StoreError::invalid("basket", e.to_string()))
}

fn refused(
    index: usize,
    program: &str,
    points: i64,
    code: &'static str,
    message: String,
) -> StoreError {
    StoreError::Refused {
        index,
        program: program.to_string(),
        points,
        code,
        message,
    }
}

/// Sum of this register's `redeem` entries (as a positive number) for the
/// member in the program since `since_unix_ms`.
fn redeemed_since(
    conn: &Connection,
    key: &str,
    program: &str,
    since_unix_ms: i64,
) -> StoreResult<i64> {
    let sum: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE member = ?1 AND program = ?2 \
             AND kind = 'redeem' AND created_unix_ms >= ?3",
        )?
        .query_row(rusqlite::params![key, program, since_unix_ms], |r| r.get(0))?;
    Ok(sum.saturating_neg())
}

/// Checks every redemption; gives `paid_with_points` for the quote.
fn paid_with_points(bundle: &Bundle, req: &SaleRequest) -> StoreResult<Decimal> {
    if req.redeem.len() > SALE_REDEMPTIONS_MAX {
        return Err(StoreError::invalid(
            "redeem",
            format!("at most {SALE_REDEMPTIONS_MAX} redemptions"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut paid = Decimal::ZERO;
    for (i, r) in req.redeem.iter().enumerate() {
        let program = bundle
            .program(&r.program)
            .ok_or_else(|| StoreError::UnknownProgram(r.program.clone()))?;
        if !seen.insert(r.program.as_str()) {
            return Err(StoreError::invalid(
                format!("redeem[{i}].program"),
                format!("program {:?} appears twice", r.program),
            ));
        }
        if r.points <= 0 {
            return Err(StoreError::invalid(
                format!("redeem[{i}].points"),
                format!("must be > 0, got {}", r.points),
            ));
        }
        let Some(redeem) = program.redeem.as_ref() else {
            return Err(refused(
                i,
                &r.program,
                r.points,
                "not_redeemable",
                "the program has no redeem section".into(),
            ));
        };
        let value = pos_points::redeem::currency_value(program, r.points).ok_or_else(|| {
            StoreError::invalid(
                format!("redeem[{i}].points"),
                format!(
                    "{} points is not an exact currency amount at {} points per unit",
                    r.points, redeem.points_per_unit
                ),
            )
        })?;
        paid = paid
            .checked_add(value)
            .ok_or_else(|| StoreError::invalid(format!("redeem[{i}].points"), "too large"))?;
    }
    Ok(paid)
}

/// Points spec §6 with sync spec §4, for each redemption.
fn check_redemptions(
    conn: &Connection,
    shared: &Shared,
    bundle: &Bundle,
    req: &SaleRequest,
    prepared: &Prepared,
) -> StoreResult<()> {
    if req.redeem.is_empty() {
        return Ok(());
    }
    let member = prepared.member.as_ref().ok_or(StoreError::MemberRequired)?;
    let freshness = members::freshness(conn, shared)?;
    let fresh_at = crate::store::sync::members_fresh_at(conn)?.unwrap_or(i64::MIN);
    let amount = prepared.basket.amount();
    for (i, r) in req.redeem.iter().enumerate() {
        let (program, redeem) = redeemable(bundle, i, r)?;
        if member.cached.as_ref().is_some_and(|m| m.blocked) {
            return Err(refused(
                i,
                &r.program,
                r.points,
                "member_blocked",
                format!("member {:?} is blocked", member.key),
            ));
        }
        pos_points::redeem::check(program, r.points, amount).map_err(|refusal| {
            refused(
                i,
                &r.program,
                r.points,
                refusal.code(),
                format!("refused by the program's redeem rules (basket amount {amount})"),
            )
        })?;
        let balance = members::balance(conn, member, &r.program)?;
        if r.points > balance.available {
            return Err(refused(
                i,
                &r.program,
                r.points,
                "insufficient_points",
                format!("{} points available", balance.available),
            ));
        }
        if freshness == Freshness::Stale {
            check_offline_allowance(conn, member, i, r, redeem, fresh_at)?;
        }
    }
    Ok(())
}

/// The program of redemption `r` and its redeem section, or why not.
fn redeemable<'b>(
    bundle: &'b Bundle,
    i: usize,
    r: &Redemption,
) -> StoreResult<(&'b Program, &'b Redeem)> {
    let program = bundle
        .program(&r.program)
        .ok_or_else(|| StoreError::UnknownProgram(r.program.clone()))?;
    let Some(redeem) = program.redeem.as_ref() else {
        return Err(refused(
            i,
            &r.program,
            r.points,
            "not_redeemable",
            "the program has no redeem section".into(),
        ));
    };
    Ok((program, redeem))
}

/// With stale member data: this register's redemptions for the member
/// since its last fresh data, plus this one, within the allowance.
fn check_offline_allowance(
    conn: &Connection,
    member: &Resolved,
    i: usize,
    r: &Redemption,
    redeem: &Redeem,
    fresh_at: i64,
) -> StoreResult<()> {
    let allowance = redeem.offline_allowance;
    let since = redeemed_since(conn, &member.key, &r.program, fresh_at)?;
    if since.saturating_add(r.points) > allowance {
        return Err(refused(
            i,
            &r.program,
            r.points,
            "offline_allowance_exceeded",
            format!(
                "member data is stale; {since} points already redeemed here since, allowance {allowance}"
            ),
        ));
    }
    Ok(())
}

/// `POST /v1/sales`: one transaction, or nothing stored.
pub(crate) fn commit_sale(
    conn: &mut Connection,
    shared: &Shared,
    req: &SaleRequest,
) -> StoreResult<Committed<SaleAnswer>> {
    validate_id("sale_id", &req.sale_id)?;
    let request_json =
        serde_json::to_string(req).map_err(|e| StoreError::invalid("sale", e.to_string()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<(String, String)> = tx
        .prepare_cached("SELECT request, answer FROM sales WHERE sale_id = ?1")?
        .query_row([&req.sale_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((stored, answer)) = existing {
        return replay("sale", &req.sale_id, stored == request_json, answer);
    }

    let bundle = rules::newest(&tx, shared)?;
    let paid = paid_with_points(&bundle, req)?;
    let prepared = prepare(&tx, &bundle, &req.quote_request(), paid)?;
    check_redemptions(&tx, shared, &bundle, req, &prepared)?;
    let quote = pos_points::quote(&bundle, &prepared.basket).map_err(points_error)?;

    insert_sale(&tx, shared, req, &request_json, &prepared, bundle.version)?;
    let mut balances = BTreeMap::new();
    if let Some(member) = &prepared.member {
        append_sale_entries(&tx, shared, req, &bundle, &quote.programs, &member.key)?;
        let enrolled: BTreeSet<String> = prepared
            .basket
            .member
            .as_ref()
            .map(|m| m.programs.keys().cloned().collect())
            .unwrap_or_default();
        for program in enrolled
            .into_iter()
            .chain(req.redeem.iter().map(|r| r.program.clone()))
        {
            let b = members::balance(&tx, member, &program)?;
            balances.insert(program, b);
        }
    }
    let answer = SaleAnswer {
        sale_id: req.sale_id.clone(),
        quote,
        redeemed: req.redeem.clone(),
        balances,
    };
    let json = serde_json::to_string(&answer).map_err(|e| json_error("answer", e))?;
    tx.prepare_cached("UPDATE sales SET answer = ?1 WHERE sale_id = ?2")?
        .execute([&json, &req.sale_id])?;
    tx.commit()?;
    Ok(Committed {
        value: answer,
        json,
        replay: false,
    })
}

/// The sale row (its answer filled in last), its lines and its redemptions.
fn insert_sale(
    tx: &Connection,
    shared: &Shared,
    req: &SaleRequest,
    request_json: &str,
    prepared: &Prepared,
    rules_version: u64,
) -> StoreResult<()> {
    let basket_json = serde_json::to_string(&prepared.basket)
        .map_err(|e| StoreError::invalid("basket", e.to_string()))?;
    let member_key = prepared.member.as_ref().map(|m| m.key.clone());
    let committed_at = shared.now_rfc3339();
    tx.prepare_cached(
        "INSERT INTO sales (sale_id, request, basket, member, rules_version, amount, answer, committed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7)",
    )?
    .execute(rusqlite::params![
        req.sale_id,
        request_json,
        basket_json,
        member_key,
        ledger::to_i64(rules_version)?,
        prepared.basket.amount().to_string(),
        committed_at
    ])?;
    for (i, line) in prepared.basket.lines.iter().enumerate() {
        tx.prepare_cached(
            "INSERT INTO sale_lines (sale_id, line, sku, category, qty, unit_price, discount) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(rusqlite::params![
            req.sale_id,
            prepared.basket.line_number(i),
            line.sku,
            line.category,
            line.qty.to_string(),
            line.unit_price.to_string(),
            line.discount.to_string()
        ])?;
    }
    for r in &req.redeem {
        tx.prepare_cached(
            "INSERT INTO sale_redemptions (sale_id, program, points) VALUES (?1, ?2, ?3)",
        )?
        .execute(rusqlite::params![req.sale_id, r.program, r.points])?;
    }
    Ok(())
}

/// An `earn` entry per program that earned points, then a `redeem` entry
/// (−points) per redemption.
fn append_sale_entries(
    tx: &Connection,
    shared: &Shared,
    req: &SaleRequest,
    bundle: &Bundle,
    earned: &[ProgramQuote],
    member: &str,
) -> StoreResult<()> {
    let entry = |kind, program, points, detail| NewEntry {
        kind,
        program,
        member,
        points,
        sale_id: Some(&req.sale_id),
        return_id: None,
        rules_version: bundle.version,
        occurred_at: &req.time,
        detail,
    };
    for pq in earned.iter().filter(|pq| pq.total > 0) {
        let detail = serde_json::to_string(pq).map_err(|e| json_error("quote detail", e))?;
        ledger::append(
            tx,
            shared,
            entry(EntryKind::Earn, &pq.program, pq.total, detail),
        )?;
    }
    for r in &req.redeem {
        let value = bundle
            .program(&r.program)
            .and_then(|p| pos_points::redeem::currency_value(p, r.points))
            .unwrap_or_default();
        let detail = serde_json::json!({"points": r.points, "currency_value": value.to_string()})
            .to_string();
        ledger::append(
            tx,
            shared,
            entry(EntryKind::Redeem, &r.program, -r.points, detail),
        )?;
    }
    Ok(())
}

/// A stored sale, as needed by returns.
struct StoredSale {
    basket: Basket,
    member: Option<String>,
    rules_version: u64,
}

fn stored_sale(conn: &Connection, sale_id: &str) -> StoreResult<StoredSale> {
    let row: Option<(String, Option<String>, i64)> = conn
        .prepare_cached("SELECT basket, member, rules_version FROM sales WHERE sale_id = ?1")?
        .query_row([sale_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (basket, member, version) = row.ok_or_else(|| StoreError::UnknownSale(sale_id.into()))?;
    Ok(StoredSale {
        basket: serde_json::from_str(&basket)
            .map_err(|e| json_error(&format!("sale {sale_id} basket"), e))?,
        member,
        rules_version: to_u64(version, "rules_version")?,
    })
}

fn parse_decimal(text: &str, what: &str) -> StoreResult<Decimal> {
    text.parse()
        .map_err(|_| StoreError::Damaged(format!("{what}: {text:?} is not a decimal")))
}

/// Quantity already returned per line of a sale.
fn returned_so_far(conn: &Connection, sale_id: &str) -> StoreResult<BTreeMap<u32, Decimal>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rl.line, rl.qty FROM return_lines rl JOIN returns r ON r.return_id = rl.return_id \
         WHERE r.sale_id = ?1",
    )?;
    let mut rows = stmt.query([sale_id])?;
    let mut out: BTreeMap<u32, Decimal> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let line: u32 = row.get(0)?;
        let qty = parse_decimal(&row.get::<_, String>(1)?, "return qty")?;
        let sum = out.entry(line).or_default();
        *sum = sum
            .checked_add(qty)
            .ok_or_else(|| StoreError::Damaged("returned qty overflows".into()))?;
    }
    Ok(out)
}

/// What the sale's ledger entries say per program, for `returns::settle`.
fn sale_ledger(conn: &Connection, sale_id: &str) -> StoreResult<SaleLedger> {
    let mut ledger = SaleLedger::default();
    for e in &ledger::of_sale(conn, sale_id)? {
        match e.kind {
            EntryKind::Earn => {
                ledger.earned.insert(e.program.clone());
            }
            EntryKind::Redeem => *ledger.redeemed.entry(e.program.clone()).or_default() -= e.points,
            EntryKind::ReturnRedeem => {
                *ledger.given_back.entry(e.program.clone()).or_default() += e.points
            }
            _ => {}
        }
    }
    Ok(ledger)
}

/// The request's lines as the points engine takes them.
fn returned_lines(req: &ReturnRequest) -> Vec<ReturnedLine> {
    req.lines
        .iter()
        .map(|l| ReturnedLine {
            line: l.line,
            qty: l.qty,
        })
        .collect()
}

/// A return the points engine refused to plan, as the store reports it.
fn return_refused(sale_id: &str, refusal: Refusal) -> StoreError {
    match refusal {
        Refusal::SaleLineAmount { line } => {
            StoreError::Damaged(format!("sale {sale_id} line {line} amount"))
        }
        Refusal::SaleLineQty { line } => {
            StoreError::Damaged(format!("sale {sale_id} line {line} qty"))
        }
        Refusal::UnknownLine { index, line } => StoreError::UnknownLine {
            sale_id: sale_id.to_string(),
            index,
            line,
        },
        Refusal::ExceedsRemaining {
            index,
            line,
            qty,
            remaining,
        } => StoreError::ExceedsRemaining {
            index,
            line,
            qty: qty.to_string(),
            remaining: remaining.to_string(),
        },
        Refusal::AmountOverflow { index } => {
            StoreError::invalid(format!("lines[{index}].qty"), "amount overflows")
        }
    }
}

fn validate_return(req: &ReturnRequest) -> StoreResult<()> {
    validate_id("return_id", &req.return_id)?;
    if req.lines.is_empty() || req.lines.len() > RETURN_LINES_MAX {
        return Err(StoreError::invalid(
            "lines",
            format!("1 to {RETURN_LINES_MAX} lines, got {}", req.lines.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, l) in req.lines.iter().enumerate() {
        if l.qty <= Decimal::ZERO {
            return Err(StoreError::invalid(
                format!("lines[{i}].qty"),
                format!("must be > 0, got {}", l.qty),
            ));
        }
        if !seen.insert(l.line) {
            return Err(StoreError::invalid(
                format!("lines[{i}].line"),
                format!("line {} appears twice", l.line),
            ));
        }
    }
    Ok(())
}

/// The sale id, request and answer stored under `return_id`, if any.
fn stored_return(
    conn: &Connection,
    return_id: &str,
) -> StoreResult<Option<(String, String, String)>> {
    Ok(conn
        .prepare_cached("SELECT sale_id, request, answer FROM returns WHERE return_id = ?1")?
        .query_row([return_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

/// The return row (its answer filled in last) and its lines.
fn insert_return(
    tx: &Connection,
    shared: &Shared,
    sale_id: &str,
    req: &ReturnRequest,
    request_json: &str,
) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO returns (return_id, sale_id, request, answer, committed_at) VALUES (?1, ?2, ?3, '', ?4)",
    )?
    .execute(rusqlite::params![
        req.return_id,
        sale_id,
        request_json,
        shared.now_rfc3339()
    ])?;
    for l in &req.lines {
        tx.prepare_cached("INSERT INTO return_lines (return_id, line, qty) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![req.return_id, l.line, l.qty.to_string()])?;
    }
    Ok(())
}

/// What every ledger entry of one return shares.
struct ReturnOrigin<'a> {
    sale_id: &'a str,
    member: &'a str,
    rules_version: u64,
    occurred_at: &'a str,
}

/// The `return_earn` (−reversed) and `return_redeem` (+given_back) entries
/// of one program, each only when not zero.
fn append_return_entries(
    tx: &Connection,
    shared: &Shared,
    origin: &ReturnOrigin<'_>,
    req: &ReturnRequest,
    program: &ReturnProgram,
) -> StoreResult<()> {
    let entry = |kind, points, detail| NewEntry {
        kind,
        program: &program.program,
        member: origin.member,
        points,
        sale_id: Some(origin.sale_id),
        return_id: Some(&req.return_id),
        rules_version: origin.rules_version,
        occurred_at: origin.occurred_at,
        detail,
    };
    let reversed = program.reversed;
    if reversed > 0 {
        let detail = serde_json::json!({"return_id": req.return_id, "lines": req.lines, "reversed": reversed}).to_string();
        ledger::append(tx, shared, entry(EntryKind::ReturnEarn, -reversed, detail))?;
    }
    let given_back = program.given_back;
    if given_back > 0 {
        let detail =
            serde_json::json!({"return_id": req.return_id, "given_back": given_back}).to_string();
        ledger::append(
            tx,
            shared,
            entry(EntryKind::ReturnRedeem, given_back, detail),
        )?;
    }
    Ok(())
}

/// `POST /v1/sales/{sale_id}/returns`: one transaction, or nothing stored.
pub(crate) fn commit_return(
    conn: &mut Connection,
    shared: &Shared,
    sale_id: &str,
    req: &ReturnRequest,
) -> StoreResult<Committed<ReturnAnswer>> {
    validate_id("sale_id", sale_id)?;
    validate_return(req)?;
    let request_json =
        serde_json::to_string(req).map_err(|e| StoreError::invalid("return", e.to_string()))?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some((stored_sale_id, stored, answer)) = stored_return(&tx, &req.return_id)? {
        let same = stored_sale_id == sale_id && stored == request_json;
        return replay("return", &req.return_id, same, answer);
    }

    let sale = stored_sale(&tx, sale_id)?;
    let returned = returned_so_far(&tx, sale_id)?;
    let remaining = pos_points::returns::plan(&sale.basket, &returned, &returned_lines(req))
        .map_err(|refusal| return_refused(sale_id, refusal))?;

    let bundle = rules::bundle(&tx, shared, sale.rules_version)?;
    let reversal =
        pos_points::returns::reversal(&bundle, &sale.basket, &remaining.before, &remaining.after)
            .map_err(points_error)?;

    insert_return(&tx, shared, sale_id, req, &request_json)?;

    let mut programs = Vec::new();
    if let Some(member) = &sale.member {
        let entries = sale_ledger(&tx, sale_id)?;
        let occurred_at = shared.now_rfc3339();
        for settled in pos_points::returns::settle(&reversal, &entries, &remaining) {
            let program = ReturnProgram {
                program: settled.program,
                reversed: settled.reversed,
                given_back: settled.given_back,
            };
            let origin = ReturnOrigin {
                sale_id,
                member,
                rules_version: sale.rules_version,
                occurred_at: &occurred_at,
            };
            append_return_entries(&tx, shared, &origin, req, &program)?;
            programs.push(program);
        }
    }
    let answer = ReturnAnswer {
        return_id: req.return_id.clone(),
        sale_id: sale_id.to_string(),
        programs,
    };
    let json = serde_json::to_string(&answer).map_err(|e| json_error("answer", e))?;
    tx.prepare_cached("UPDATE returns SET answer = ?1 WHERE return_id = ?2")?
        .execute([&json, &req.return_id])?;
    tx.commit()?;
    Ok(Committed {
        value: answer,
        json,
        replay: false,
    })
}

/// `GET /v1/sales/{sale_id}`.
pub(crate) fn sale_record(conn: &Connection, sale_id: &str) -> StoreResult<SaleRecord> {
    validate_id("sale_id", sale_id)?;
    let row: Option<(String, Option<String>, i64, String, String)> = conn
        .prepare_cached(
            "SELECT request, member, rules_version, answer, committed_at FROM sales WHERE sale_id = ?1",
        )?
        .query_row([sale_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let (request, member, version, answer, committed_at) =
        row.ok_or_else(|| StoreError::UnknownSale(sale_id.into()))?;
    let mut returns = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT return_id, request, answer, committed_at FROM returns WHERE sale_id = ?1 ORDER BY rowid",
    )?;
    let mut rows = stmt.query([sale_id])?;
    while let Some(row) = rows.next()? {
        let return_id: String = row.get(0)?;
        let req: ReturnRequest = serde_json::from_str(&row.get::<_, String>(1)?)
            .map_err(|e| json_error(&format!("return {return_id} request"), e))?;
        let answer: ReturnAnswer = serde_json::from_str(&row.get::<_, String>(2)?)
            .map_err(|e| json_error(&format!("return {return_id} answer"), e))?;
        returns.push(ReturnRecord {
            return_id,
            committed_at: row.get(3)?,
            lines: req.lines,
            answer,
        });
    }
    Ok(SaleRecord {
        sale_id: sale_id.to_string(),
        committed_at,
        member,
        rules_version: to_u64(version, "rules_version")?,
        request: serde_json::from_str(&request)
            .map_err(|e| json_error(&format!("sale {sale_id} request"), e))?,
        answer: serde_json::from_str(&answer)
            .map_err(|e| json_error(&format!("sale {sale_id} answer"), e))?,
        returns,
    })
}
