//! Orders and returns from other channels (issue 12): a web shop or an app
//! posts an order, central quotes it with `pos-points` under the current
//! bundle and records it in its ledger (`docs/channels.md`).
//!
//! Why a channel is a pseudo-terminal, `@channel/<name>` in `terminals`:
//! its orders then become entries of a hash chain like a register's and go
//! through [`super::apply_batch`], the verified intake every register
//! upload goes through. So a web order is checked, counted and chained by
//! the same code as a sale (a web order and a register basket with the same
//! lines and context get the same points by construction, not by a second
//! implementation kept in step), its entries appear in the admin ledger,
//! balances and the member download, and a return of it is bounded by what
//! central credited. The token lifecycle (revoke, rotate) is the
//! terminals'; scoping keeps a channel token off the sync routes and a
//! register token off the channel routes ([`crate::tokens::Scope`]).
//!
//! What differs from a register: central builds the entries itself, from
//! its own member context (tier, birthday, points earned that day), so a
//! channel cannot claim a tier; a redemption is checked against the
//! member's available points (an open hold of the order included) and
//! refused when they do not cover it, since central is online by
//! definition and need not accept an overdraft; and an order is idempotent
//! by (channel, order id): the same request again gets the stored answer,
//! another request under a used id a 409.
//!
//! Pure except for [`ChannelTx`], which a backend implements on the same
//! transaction as its [`SyncTx`]: everything here happens in one
//! transaction, and an `Err` rolls all of it back.

use std::collections::{BTreeMap, BTreeSet};

use pos_points::{Basket, Bundle, Member, MemberProgram, redeem, returns};
use pos_sync::protocol::{
    BatchOutcome, Document, EntryResult, LineQty, ProgramBalance, ProgramPoints, ReceivedBatch,
    ReceivedEntry, ReturnDocument, SaleDocument,
};
use pos_sync::{EntryKind, LedgerEntry};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::hold::HoldTx;
use super::{Refusals, SyncTx, apply_batch, decide::CLOCK_SKEW_SECS_MAX, verify};
use crate::error::CentralError;
use crate::guard::is_payment_card;

/// Most lines of one order (the register's bound for a sale).
pub const ORDER_LINES_MAX: usize = 500;
/// Most redemptions of one order: one per program.
pub const ORDER_REDEMPTIONS_MAX: usize = 16;
/// How far ahead of central's clock an order's time may be: a channel's
/// clock a little fast, not a date in the future.
pub const ORDER_AHEAD_SECS_MAX: i64 = 300;
/// How old an order may be when posted: the clock-skew bound of a
/// register's entry (`decide::CLOCK_SKEW_SECS_MAX`). Older orders are a
/// batch import's business ([`Via::Import`]).
pub const ORDER_AGE_SECS_MAX: i64 = CLOCK_SKEW_SECS_MAX;

/// `POST /v1/channel/orders` as sent. The channel is the token's.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub order_id: String,
    /// Member id or card.
    pub member: String,
    /// RFC 3339 with offset: when the order was placed, on the channel's
    /// local clock (time rules use its wall clock, as a register's do).
    pub time: String,
    /// Basket lines as in points spec §2 (`sku`, `category`, `qty`,
    /// `unit_price`, `discount`, `line`), checked by `pos-points`.
    pub lines: Vec<serde_json::Value>,
    /// Points paying for the order, per program.
    #[serde(default)]
    pub redeem: Vec<ProgramPoints>,
}

/// `POST /v1/channel/returns` as sent.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub return_id: String,
    pub order_id: String,
    /// When the return was made (RFC 3339 with offset), bounded as an
    /// order's time.
    pub time: String,
    /// What is taken back: line numbers of the order and quantities.
    pub lines: Vec<LineQty>,
}

/// One program of an order's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderProgram {
    pub program: String,
    pub earned: i64,
    pub redeemed: i64,
}

/// Central's answer to an order; stored, and given again byte for byte
/// when the same order is sent again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAnswer {
    pub channel: String,
    pub order_id: String,
    /// The member credited (a card resolved to its member).
    pub member: String,
    pub rules_version: u64,
    pub programs: Vec<OrderProgram>,
    /// The member's balances after the order.
    pub balances: Vec<ProgramBalance>,
}

/// One program of a return's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnProgram {
    pub program: String,
    /// Earned points taken back, >= 0.
    pub reversed: i64,
    /// Redeemed points given back, >= 0.
    pub given_back: i64,
}

/// Central's answer to a return, stored like an order's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnAnswer {
    pub channel: String,
    pub return_id: String,
    pub order_id: String,
    pub member: String,
    pub programs: Vec<ReturnProgram>,
    pub balances: Vec<ProgramBalance>,
}

/// A stored order: what idempotency compares and what returns need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredOrder {
    pub request_hash: [u8; 32],
    /// The answer as JSON text.
    pub answer: String,
    /// The member credited.
    pub member: String,
    /// The sale document the order's entries carried.
    pub sale: SaleDocument,
    /// What returns of the order took so far.
    pub state: ReturnState,
}

/// What earlier returns of an order took back, kept with the order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnState {
    /// Quantity taken back per line number.
    pub returned: BTreeMap<u32, Decimal>,
    /// Redeemed points given back per program.
    pub given_back: BTreeMap<String, i64>,
}

/// A stored return, for idempotency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReturn {
    pub request_hash: [u8; 32],
    pub answer: String,
}

impl StoredOrder {
    /// The order from its stored columns (both backends store the same).
    pub fn from_columns(
        hash: &[u8],
        answer: String,
        member: String,
        sale: &str,
        state: &str,
    ) -> Result<StoredOrder, CentralError> {
        Ok(StoredOrder {
            request_hash: hash_of(hash)?,
            answer,
            member,
            sale: serde_json::from_str(sale)
                .map_err(|e| CentralError::Corrupt(format!("channel_orders.sale: {e}")))?,
            state: serde_json::from_str(state)
                .map_err(|e| CentralError::Corrupt(format!("channel_orders.state: {e}")))?,
        })
    }

    /// The `sale` and `state` columns.
    pub fn json_columns(&self) -> Result<(String, String), CentralError> {
        Ok((
            serde_json::to_string(&self.sale).map_err(json_error)?,
            self.state.to_json()?,
        ))
    }
}

impl ReturnState {
    pub fn to_json(&self) -> Result<String, CentralError> {
        serde_json::to_string(self).map_err(json_error)
    }
}

impl StoredReturn {
    pub fn from_columns(hash: &[u8], answer: String) -> Result<StoredReturn, CentralError> {
        Ok(StoredReturn {
            request_hash: hash_of(hash)?,
            answer,
        })
    }
}

fn hash_of(bytes: &[u8]) -> Result<[u8; 32], CentralError> {
    bytes
        .try_into()
        .map_err(|_| CentralError::Corrupt(format!("request hash of {} bytes", bytes.len())))
}

/// The loads and stores of orders, on the transaction of a [`SyncTx`].
pub trait ChannelTx: SyncTx + HoldTx {
    /// Takes what guards the balances of these member and card names
    /// (PostgreSQL: their `account_locks` rows, after the terminal's row
    /// and in byte order; SQLite's one writer needs nothing).
    fn lock_accounts(&self, names: &[&str]) -> Result<(), CentralError>;
    fn stored_order(
        &self,
        terminal: &str,
        order_id: &str,
    ) -> Result<Option<StoredOrder>, CentralError>;
    fn store_order(
        &self,
        terminal: &str,
        order_id: &str,
        order: &StoredOrder,
        at: &str,
    ) -> Result<(), CentralError>;
    /// Replaces the return state of a stored order.
    fn store_return_state(
        &self,
        terminal: &str,
        order_id: &str,
        state: &ReturnState,
    ) -> Result<(), CentralError>;
    fn stored_return(
        &self,
        terminal: &str,
        return_id: &str,
    ) -> Result<Option<StoredReturn>, CentralError>;
    fn store_return(
        &self,
        terminal: &str,
        return_id: &str,
        order_id: &str,
        stored: &StoredReturn,
        at: &str,
    ) -> Result<(), CentralError>;
}

/// Records an order of the channel whose pseudo-terminal is `terminal`;
/// its answer as JSON text (the stored one for a repeat).
pub fn order(
    tx: &impl ChannelTx,
    terminal: &str,
    request: &OrderRequest,
    now: jiff::Timestamp,
) -> Result<String, CentralError> {
    order_via(tx, terminal, request, now, Via::Api).map(|r| r.answer)
}

/// How an order reached central, which bounds how old it may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `POST /v1/channel/orders`: at most [`ORDER_AGE_SECS_MAX`] old.
    Api,
    /// `pos-central import-orders`: at most [`IMPORT_AGE_SECS_MAX`] old.
    Import,
}

/// How old an imported order may be: a year, a program's usual horizon
/// (older orders are a migration's business, not a points import's).
pub const IMPORT_AGE_SECS_MAX: i64 = 366 * 24 * 3_600;

/// The request's own fields (ids, the time's syntax), apart from any
/// clock or database: what a file import checks of every order first.
pub fn check_request_fields(request: &OrderRequest) -> Result<(), CentralError> {
    check_id("order_id", &request.order_id)?;
    check_id("member", &request.member)?;
    request.time.parse::<jiff::Timestamp>().map_err(|e| {
        invalid(
            "time",
            format!("{:?}: not an RFC 3339 date-time: {e}", request.time),
        )
    })?;
    Ok(())
}

/// An order's answer (JSON text), and whether this request recorded it
/// (false: the same order was recorded before, this is its stored answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub answer: String,
    pub new: bool,
}

/// [`order`], for an order that came `via` the API or a file.
pub fn order_via(
    tx: &impl ChannelTx,
    terminal: &str,
    request: &OrderRequest,
    now: jiff::Timestamp,
    via: Via,
) -> Result<Recorded, CentralError> {
    check_request_fields(request)?;
    let age_max = match via {
        Via::Api => ORDER_AGE_SECS_MAX,
        Via::Import => IMPORT_AGE_SECS_MAX,
    };
    let time = check_time_within(&request.time, now, age_max)?;
    let hash = request_hash(request)?;
    // The terminal first: on PostgreSQL this locks its row, so a second
    // instance handed the same order waits here and then finds it stored.
    let head = tx
        .chain_head(terminal)?
        .ok_or_else(|| CentralError::NotFound(format!("unknown channel {terminal:?}")))?;
    if let Some(stored) = tx.stored_order(terminal, &request.order_id)? {
        let answer = repeat(
            stored.request_hash,
            hash,
            stored.answer,
            "order",
            &request.order_id,
        )?;
        return Ok(Recorded { answer, new: false });
    }
    let member = known_member(tx, &request.member)?;
    tx.lock_accounts(&[&request.member, &member])?;
    let bundle = tx
        .newest_rules()?
        .ok_or_else(|| refused("no_rules", "no rules are published yet".into()))?;
    let version = bundle.version;
    let paid = paid_with_points(&bundle, &request.redeem)?;
    let basket = order_basket(tx, &bundle, request, &member, &time, paid)?;
    let quote = pos_points::quote(&bundle, &basket).map_err(|e| invalid("lines", e))?;
    check_redemptions(tx, terminal, &bundle, request, &member, &basket, now)?;
    let sale = SaleDocument {
        sale_id: request.order_id.clone(),
        rules_version: version,
        basket: serde_json::to_string(&basket).map_err(json_error)?,
        redeemed: request.redeem.clone(),
    };
    let mut entries = Vec::new();
    let mut programs = Vec::new();
    for pq in &quote.programs {
        let redeemed = redeemed_in(&request.redeem, &pq.program);
        if pq.total > 0 {
            let detail = serde_json::to_string(pq).map_err(json_error)?;
            entries.push(draft(EntryKind::Earn, &pq.program, pq.total, detail));
        }
        programs.push(OrderProgram {
            program: pq.program.clone(),
            earned: pq.total,
            redeemed,
        });
    }
    for r in &request.redeem {
        let detail = serde_json::json!({"points": r.points}).to_string();
        entries.push(draft(EntryKind::Redeem, &r.program, -r.points, detail));
        if !programs.iter().any(|p| p.program == r.program) {
            programs.push(OrderProgram {
                program: r.program.clone(),
                earned: 0,
                redeemed: r.points,
            });
        }
    }
    let context = EntryContext {
        terminal,
        member: &member,
        sale_id: &request.order_id,
        return_id: None,
        rules_version: version,
        occurred_at: &request.time,
    };
    let document = Document::Sale(sale.clone());
    apply_entries(tx, &context, head, entries, document, now)?;
    let answer = OrderAnswer {
        channel: channel_name(terminal).to_string(),
        order_id: request.order_id.clone(),
        member: member.clone(),
        rules_version: version,
        programs,
        balances: tx.member_programs(&member, now.as_second())?,
    };
    let text = serde_json::to_string(&answer).map_err(json_error)?;
    let stored = StoredOrder {
        request_hash: hash,
        answer: text.clone(),
        member,
        sale,
        state: ReturnState::default(),
    };
    tx.store_order(terminal, &request.order_id, &stored, &now.to_string())?;
    Ok(Recorded {
        answer: text,
        new: true,
    })
}

/// Records a return of an order of the same channel; its answer as JSON
/// text (the stored one for a repeat).
pub fn order_return(
    tx: &impl ChannelTx,
    terminal: &str,
    request: &ReturnRequest,
    now: jiff::Timestamp,
) -> Result<String, CentralError> {
    check_id("return_id", &request.return_id)?;
    check_id("order_id", &request.order_id)?;
    check_time(&request.time, now)?;
    if request.lines.is_empty() || request.lines.len() > ORDER_LINES_MAX {
        return Err(invalid(
            "lines",
            format!("give 1 to {ORDER_LINES_MAX} lines"),
        ));
    }
    for (i, l) in request.lines.iter().enumerate() {
        if l.qty <= Decimal::ZERO {
            return Err(invalid(
                &format!("lines[{i}].qty"),
                format!("{}: must be > 0", l.qty),
            ));
        }
    }
    let hash = request_hash(request)?;
    let head = tx
        .chain_head(terminal)?
        .ok_or_else(|| CentralError::NotFound(format!("unknown channel {terminal:?}")))?;
    if let Some(stored) = tx.stored_return(terminal, &request.return_id)? {
        return repeat(
            stored.request_hash,
            hash,
            stored.answer,
            "return",
            &request.return_id,
        );
    }
    let order = tx
        .stored_order(terminal, &request.order_id)?
        .ok_or_else(|| {
            CentralError::NotFound(format!(
                "order_id: no order {:?} of this channel",
                request.order_id
            ))
        })?;
    tx.lock_accounts(&[&order.member])?;
    let bundle = tx
        .published_bundle(order.sale.rules_version)?
        .ok_or_else(|| {
            CentralError::Corrupt(format!(
                "rules version {} of order {:?} is not stored",
                order.sale.rules_version, request.order_id
            ))
        })?;
    let sale = Basket::parse_json(&order.sale.basket)
        .map_err(|e| CentralError::Corrupt(format!("stored order basket: {e}")))?;
    let lines: Vec<returns::ReturnedLine> = request
        .lines
        .iter()
        .map(|l| returns::ReturnedLine {
            line: l.line,
            qty: l.qty,
        })
        .collect();
    let remaining =
        returns::plan(&sale, &order.state.returned, &lines).map_err(|r| return_refusal(&r))?;
    let reversal = returns::reversal(&bundle, &sale, &remaining.before, &remaining.after)
        .map_err(|e| invalid("lines", e))?;
    let ledger = sale_ledger(&order)?;
    let settled = returns::settle(&reversal, &ledger, &remaining);
    let mut entries = Vec::new();
    for p in &settled {
        if p.reversed > 0 {
            entries.push(draft(
                EntryKind::ReturnEarn,
                &p.program,
                -p.reversed,
                "{}".into(),
            ));
        }
        if p.given_back > 0 {
            entries.push(draft(
                EntryKind::ReturnRedeem,
                &p.program,
                p.given_back,
                "{}".into(),
            ));
        }
    }
    let document = Document::Return(ReturnDocument {
        return_id: request.return_id.clone(),
        sale_id: request.order_id.clone(),
        sale: order.sale.clone(),
        remaining_before: sale
            .lines
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let line = sale.line_number(i);
                LineQty {
                    line,
                    qty: remaining
                        .before
                        .get(&line)
                        .copied()
                        .unwrap_or(Decimal::ZERO),
                }
            })
            .collect(),
        lines: request.lines.clone(),
    });
    let context = EntryContext {
        terminal,
        member: &order.member,
        sale_id: &request.order_id,
        return_id: Some(&request.return_id),
        rules_version: order.sale.rules_version,
        occurred_at: &request.time,
    };
    apply_entries(tx, &context, head, entries, document, now)?;
    let mut state = order.state.clone();
    for l in &lines {
        let taken = state.returned.entry(l.line).or_insert(Decimal::ZERO);
        *taken = taken
            .checked_add(l.qty)
            .ok_or_else(|| invalid("lines", "quantity out of range"))?;
    }
    for p in &settled {
        let back = state.given_back.entry(p.program.clone()).or_insert(0);
        *back = back.saturating_add(p.given_back);
    }
    tx.store_return_state(terminal, &request.order_id, &state)?;
    let answer = ReturnAnswer {
        channel: channel_name(terminal).to_string(),
        return_id: request.return_id.clone(),
        order_id: request.order_id.clone(),
        member: order.member.clone(),
        programs: settled
            .iter()
            .map(|p| ReturnProgram {
                program: p.program.clone(),
                reversed: p.reversed,
                given_back: p.given_back,
            })
            .collect(),
        balances: tx.member_programs(&order.member, now.as_second())?,
    };
    let text = serde_json::to_string(&answer).map_err(json_error)?;
    let stored = StoredReturn {
        request_hash: hash,
        answer: text.clone(),
    };
    tx.store_return(
        terminal,
        &request.return_id,
        &request.order_id,
        &stored,
        &now.to_string(),
    )?;
    Ok(text)
}

/// The channel's name in its pseudo-terminal id.
pub fn channel_name(terminal: &str) -> &str {
    terminal
        .strip_prefix(crate::tokens::CHANNEL_PREFIX)
        .unwrap_or(terminal)
}

/// An entry before it is numbered and chained.
struct Draft {
    kind: EntryKind,
    program: String,
    points: i64,
    detail: String,
}

fn draft(kind: EntryKind, program: &str, points: i64, detail: String) -> Draft {
    Draft {
        kind,
        program: program.to_string(),
        points,
        detail,
    }
}

/// What every entry of one order or return shares.
struct EntryContext<'a> {
    terminal: &'a str,
    member: &'a str,
    sale_id: &'a str,
    return_id: Option<&'a str>,
    rules_version: u64,
    occurred_at: &'a str,
}

/// Chains `drafts` after `head` and applies them as one batch of the
/// channel's pseudo-terminal, through the verified intake. Anything but
/// `applied` for every entry is an error (and rolls back): central built
/// them, so any other verdict means central disagrees with itself.
fn apply_entries(
    tx: &impl ChannelTx,
    context: &EntryContext<'_>,
    head: super::ChainHead,
    drafts: Vec<Draft>,
    document: Document,
    now: jiff::Timestamp,
) -> Result<(), CentralError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let mut prev = head.hash;
    let mut seq = head.seq;
    let mut received = Vec::with_capacity(drafts.len());
    for d in drafts {
        seq = seq
            .checked_add(1)
            .ok_or_else(|| CentralError::Corrupt("channel seq overflows".into()))?;
        let mut entry = LedgerEntry {
            entry_id: Uuid::now_v7(),
            terminal_id: context.terminal.to_string(),
            seq,
            prev_hash: pos_sync::Digest32::ZERO,
            hash: pos_sync::Digest32::ZERO,
            kind: d.kind,
            program: d.program,
            member: context.member.to_string(),
            points: d.points,
            sale_id: Some(context.sale_id.to_string()),
            return_id: context.return_id.map(str::to_string),
            rules_version: context.rules_version,
            occurred_at: context.occurred_at.to_string(),
            detail: d.detail,
        };
        entry.chain_after(prev);
        prev = entry.hash;
        received.push(ReceivedEntry {
            seq,
            entry_id: entry.entry_id,
            hash: entry.hash,
            entry: Ok(entry),
        });
    }
    let batch = ReceivedBatch {
        terminal_id: context.terminal.to_string(),
        first_seq: head.seq + 1,
        entries: received,
        documents: BTreeMap::from([(document.key(), document)]),
    };
    let answer = apply_batch(tx, &batch, now, Refusals::Record)?;
    let BatchOutcome::Entries(results) = answer.outcome else {
        return Err(CentralError::Corrupt(format!(
            "the chain of {} moved while an order was recorded",
            context.terminal
        )));
    };
    for result in results {
        match result {
            EntryResult::Applied => {}
            EntryResult::Overdraft { shortfall } => {
                return Err(refused(
                    "insufficient_points",
                    format!("{shortfall} points short"),
                ));
            }
            other => {
                return Err(CentralError::Corrupt(format!(
                    "central's own entry for {} was not applied: {other:?}",
                    context.sale_id
                )));
            }
        }
    }
    Ok(())
}

/// The member a member id or card names, known to central.
fn known_member(tx: &impl ChannelTx, member_or_card: &str) -> Result<String, CentralError> {
    let member = tx
        .card_owner(member_or_card)?
        .unwrap_or_else(|| member_or_card.to_string());
    if tx.member_facts(&member)?.is_none() {
        return Err(CentralError::NotFound(format!(
            "member: no member or card {member_or_card:?}"
        )));
    }
    Ok(member)
}

/// The order as a points basket, with central's member context: the
/// programs the member download lists, the tier held at the order's time,
/// the birthday, and the points central credited that local day.
fn order_basket(
    tx: &impl ChannelTx,
    bundle: &Bundle,
    request: &OrderRequest,
    member: &str,
    time: &str,
    paid_with_points: Decimal,
) -> Result<Basket, CentralError> {
    if request.lines.is_empty() || request.lines.len() > ORDER_LINES_MAX {
        return Err(invalid(
            "lines",
            format!("give 1 to {ORDER_LINES_MAX} lines"),
        ));
    }
    let facts = tx.member_facts(member)?;
    let mut programs: BTreeSet<String> = facts
        .iter()
        .flat_map(|f| f.tiers.iter().map(|s| s.program.clone()))
        .collect();
    for b in tx.member_programs(member, 0)? {
        programs.insert(b.program);
    }
    let date = time.get(..10).unwrap_or(time);
    let mut earned_today = BTreeMap::new();
    let mut member_programs = BTreeMap::new();
    for program in programs {
        if bundle.program(&program).is_none() {
            continue;
        }
        let tier = verify::tier_at(facts.as_ref(), &program, time);
        let earned = tx.earned_on(member, &program, date)?;
        if earned != 0 {
            earned_today.insert(program.clone(), earned.max(0));
        }
        member_programs.insert(program, MemberProgram { tier });
    }
    // The lines go through the points spec's own basket parser, so an
    // order's lines are refused exactly as a register's basket would be,
    // each error naming its line and field.
    let text = serde_json::json!({
        "sale_id": request.order_id,
        "time": time,
        "lines": request.lines,
    })
    .to_string();
    let mut basket = Basket::parse_json(&text).map_err(|e| invalid("lines", e))?;
    basket.member = Some(Member {
        id: member.to_string(),
        birthday: facts.and_then(|f| f.birthday),
        programs: member_programs,
    });
    basket.earned_today = earned_today;
    basket.paid_with_points = paid_with_points;
    basket.validate().map_err(|e| invalid("lines", e))?;
    Ok(basket)
}

/// The currency the redemptions pay: points spec §6's value of each.
fn paid_with_points(bundle: &Bundle, redeem: &[ProgramPoints]) -> Result<Decimal, CentralError> {
    if redeem.len() > ORDER_REDEMPTIONS_MAX {
        return Err(invalid(
            "redeem",
            format!("at most {ORDER_REDEMPTIONS_MAX} redemptions"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut paid = Decimal::ZERO;
    for (i, r) in redeem.iter().enumerate() {
        let field = |name: &str| format!("redeem[{i}].{name}");
        let program = bundle.program(&r.program).ok_or_else(|| {
            invalid(
                &field("program"),
                format!("{:?} is in no published bundle", r.program),
            )
        })?;
        if !seen.insert(r.program.as_str()) {
            return Err(invalid(
                &field("program"),
                format!("{:?} appears twice", r.program),
            ));
        }
        if r.points <= 0 || r.points > super::ENTRY_POINTS_MAX {
            return Err(invalid(
                &field("points"),
                format!("{}: give 1 to {}", r.points, super::ENTRY_POINTS_MAX),
            ));
        }
        if program.redeem.is_none() {
            return Err(refused(
                "not_redeemable",
                format!("program {:?} has no redeem section", r.program),
            ));
        }
        let value = redeem::currency_value(program, r.points).ok_or_else(|| {
            invalid(
                &field("points"),
                format!("{} points is not an exact currency amount", r.points),
            )
        })?;
        paid = paid
            .checked_add(value)
            .ok_or_else(|| invalid(&field("points"), "too large"))?;
    }
    Ok(paid)
}

/// Points spec §6 for each redemption, the member not blocked, and the
/// member's available points (the order's own hold counted back) covering
/// it. 409 naming the refusal otherwise.
fn check_redemptions(
    tx: &impl ChannelTx,
    terminal: &str,
    bundle: &Bundle,
    request: &OrderRequest,
    member: &str,
    basket: &Basket,
    now: jiff::Timestamp,
) -> Result<(), CentralError> {
    if request.redeem.is_empty() {
        return Ok(());
    }
    if tx.member_blocked(member)? {
        return Err(refused(
            "member_blocked",
            format!("member {member:?} is blocked"),
        ));
    }
    for r in &request.redeem {
        let Some(program) = bundle.program(&r.program) else {
            continue;
        };
        redeem::check(program, r.points, basket.amount()).map_err(|refusal| {
            refused(
                refusal.code(),
                format!(
                    "{} points in program {:?}: {}",
                    r.points,
                    r.program,
                    refusal.code()
                ),
            )
        })?;
        let account = tx.account(member, &r.program, now.as_second())?;
        let own_hold = tx
            .open_hold(terminal, &request.order_id, &r.program, now.as_second())?
            .map_or(0, |h| h.points);
        let available = account.available().saturating_add(own_hold);
        if available < r.points {
            return Err(refused(
                "insufficient_points",
                format!(
                    "{} points asked in program {:?}, {available} available",
                    r.points, r.program
                ),
            ));
        }
    }
    Ok(())
}

/// What the order's ledger holds, as `pos_points::returns` needs it.
fn sale_ledger(order: &StoredOrder) -> Result<returns::SaleLedger, CentralError> {
    let answer: OrderAnswer = serde_json::from_str(&order.answer)
        .map_err(|e| CentralError::Corrupt(format!("stored order answer: {e}")))?;
    Ok(returns::SaleLedger {
        earned: answer
            .programs
            .iter()
            .filter(|p| p.earned > 0)
            .map(|p| p.program.clone())
            .collect(),
        redeemed: answer
            .programs
            .iter()
            .filter(|p| p.redeemed > 0)
            .map(|p| (p.program.clone(), p.redeemed))
            .collect(),
        given_back: order.state.given_back.clone(),
    })
}

fn redeemed_in(redeem: &[ProgramPoints], program: &str) -> i64 {
    redeem
        .iter()
        .filter(|r| r.program == program)
        .map(|r| r.points)
        .sum()
}

/// The stored answer for the same request; 409 for another one.
fn repeat(
    stored: [u8; 32],
    hash: [u8; 32],
    answer: String,
    what: &'static str,
    id: &str,
) -> Result<String, CentralError> {
    if stored == hash {
        return Ok(answer);
    }
    let code = if what == "order" {
        "order_id_reused"
    } else {
        "return_id_reused"
    };
    Err(refused(
        code,
        format!("{what} {id:?} was recorded with other content"),
    ))
}

/// SHA-256 of the request's JSON as serde writes it (fields in declaration
/// order, numbers and strings as parsed), so the same request compares
/// equal however it was spaced.
fn request_hash(request: &impl Serialize) -> Result<[u8; 32], CentralError> {
    let bytes = serde_json::to_vec(request).map_err(json_error)?;
    Ok(Sha256::digest(&bytes).into())
}

/// An order's or return's time: RFC 3339 with offset, within
/// [`ORDER_AGE_SECS_MAX`] before and [`ORDER_AHEAD_SECS_MAX`] after `now`.
fn check_time(time: &str, now: jiff::Timestamp) -> Result<String, CentralError> {
    check_time_within(time, now, ORDER_AGE_SECS_MAX)
}

fn check_time_within(
    time: &str,
    now: jiff::Timestamp,
    age_max: i64,
) -> Result<String, CentralError> {
    let at: jiff::Timestamp = time
        .parse()
        .map_err(|e| invalid("time", format!("{time:?}: not an RFC 3339 date-time: {e}")))?;
    let ahead = at.as_second().saturating_sub(now.as_second());
    if ahead > ORDER_AHEAD_SECS_MAX {
        return Err(invalid(
            "time",
            format!("{time}: {ahead} s after central's clock (at most {ORDER_AHEAD_SECS_MAX})"),
        ));
    }
    if -ahead > age_max {
        return Err(invalid(
            "time",
            format!(
                "{time}: older than {} h; post orders when they are placed",
                age_max / 3_600
            ),
        ));
    }
    Ok(time.to_string())
}

fn check_id(field: &str, value: &str) -> Result<(), CentralError> {
    let max = pos_sync::protocol::DOCUMENT_ID_BYTES_MAX;
    if value.is_empty() || value.len() > max || value.trim() != value {
        return Err(invalid(
            field,
            format!("give 1 to {max} bytes without surrounding spaces"),
        ));
    }
    if value.chars().any(char::is_control) || is_payment_card(value) {
        return Err(invalid(
            field,
            "control characters or payment-card data are not allowed",
        ));
    }
    Ok(())
}

fn return_refusal(refusal: &returns::Refusal) -> CentralError {
    use returns::Refusal as R;
    match refusal {
        R::UnknownLine { index, line } => invalid(
            &format!("lines[{index}].line"),
            format!("the order has no line {line}"),
        ),
        R::ExceedsRemaining {
            index,
            line,
            qty,
            remaining,
        } => refused(
            "exceeds_remaining",
            format!("lines[{index}] takes back {qty} of line {line}, {remaining} remain"),
        ),
        R::AmountOverflow { index } => invalid(&format!("lines[{index}]"), "amount out of range"),
        R::SaleLineAmount { line } | R::SaleLineQty { line } => {
            CentralError::Corrupt(format!("stored order line {line} does not add up"))
        }
    }
}

fn refused(code: &'static str, message: String) -> CentralError {
    CentralError::Refused { code, message }
}

fn invalid(field: &str, what: impl std::fmt::Display) -> CentralError {
    CentralError::Invalid(format!("{field}: {what}"))
}

fn json_error(e: serde_json::Error) -> CentralError {
    CentralError::Corrupt(format!("JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_time_is_bounded_by_central_clock() {
        let now: jiff::Timestamp = "2026-12-03T20:00:00Z".parse().unwrap();
        assert!(check_time("2026-12-03T21:04:00+01:00", now).is_ok());
        assert!(check_time("2026-12-02T21:00:01+01:00", now).is_ok());
        let ahead = check_time("2026-12-03T21:05:01+01:00", now).unwrap_err();
        assert!(ahead.to_string().starts_with("time: "), "{ahead}");
        let old = check_time("2026-12-02T20:59:59+01:00", now).unwrap_err();
        assert!(old.to_string().contains("older than 24 h"), "{old}");
        assert!(check_time("yesterday", now).is_err());
    }

    #[test]
    fn ids_refuse_card_numbers_and_control_characters() {
        assert!(check_id("order_id", "W-1001").is_ok());
        for bad in ["", " W-1", "W\n1", "4111111111111111", &"x".repeat(129)] {
            let e = check_id("order_id", bad).unwrap_err().to_string();
            assert!(e.starts_with("order_id: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_repeat_gets_the_stored_answer_and_other_content_a_conflict() {
        assert_eq!(
            repeat([1; 32], [1; 32], "{}".into(), "order", "W-1").unwrap(),
            "{}"
        );
        let e = repeat([1; 32], [2; 32], "{}".into(), "order", "W-1").unwrap_err();
        assert!(matches!(
            e,
            CentralError::Refused {
                code: "order_id_reused",
                ..
            }
        ));
    }

    #[test]
    fn the_request_hash_ignores_spacing_but_not_content() {
        let a: OrderRequest = serde_json::from_str(
            r#"{"order_id":"W-1","member":"M-1","time":"2026-12-03T21:00:00+01:00","lines":[{"sku":"A","qty":"1","unit_price":"2"}]}"#,
        )
        .unwrap();
        let b: OrderRequest = serde_json::from_str(
            r#"{ "order_id" : "W-1", "member": "M-1", "time": "2026-12-03T21:00:00+01:00",
                 "lines": [ { "qty": "1", "sku": "A", "unit_price": "2" } ], "redeem": [] }"#,
        )
        .unwrap();
        assert_eq!(request_hash(&a).unwrap(), request_hash(&b).unwrap());
        let mut c = a.clone();
        c.member = "M-2".into();
        assert_ne!(request_hash(&a).unwrap(), request_hash(&c).unwrap());
    }
}
