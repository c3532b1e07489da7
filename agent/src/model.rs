//! The request and answer bodies of the local API (agent spec §3) and the
//! snapshot files of `pos-agent import` (agent spec §2).
//!
//! These are the shapes the POS application sees, so every request type
//! refuses unknown fields (`deny_unknown_fields`): a misspelt field is an
//! error, never silently ignored. Money and quantities are decimal strings
//! (`"12.34"`), points are JSON integers, exactly as in the points spec.
//!
//! The store fills what the POS must not send: the member's tier, birthday
//! and enrolment come from the member cache, `earned_today` from the ledger,
//! and `paid_with_points` from `redeem`.

use std::collections::BTreeMap;

use pos_points::Quote;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How the POS names the member on a basket: `{"id": "M-1001"}` or
/// `{"card": "9990000010013"}`, exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MemberRef {
    /// A member id known to the member cache; an unknown id is refused
    /// (`unknown_member`).
    Id(String),
    /// A card token as scanned. A card the cache does not know earns as a
    /// member with no tier in every program, under the card token, until
    /// central links it.
    Card(String),
}

/// One basket line (points spec §2): `qty × unit_price − discount` is its
/// amount. Decimals are JSON strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasketLine {
    /// Line number; defaults to the 1-based position; unique in the basket.
    #[serde(default)]
    pub line: Option<u32>,
    pub sku: String,
    #[serde(default)]
    pub category: Option<String>,
    /// > 0; weighted items have decimals.
    #[serde(deserialize_with = "pos_points::deserialize_decimal")]
    pub qty: Decimal,
    /// >= 0.
    #[serde(deserialize_with = "pos_points::deserialize_decimal")]
    pub unit_price: Decimal,
    /// On the whole line, >= 0; default 0.
    #[serde(default, deserialize_with = "pos_points::deserialize_decimal")]
    pub discount: Decimal,
}

impl BasketLine {
    /// The points engine's line (validated there, with the basket).
    pub fn to_points(&self) -> pos_points::Line {
        pos_points::Line {
            line: self.line,
            sku: self.sku.clone(),
            category: self.category.clone(),
            qty: self.qty,
            unit_price: self.unit_price,
            discount: self.discount,
        }
    }
}

impl From<pos_points::Line> for BasketLine {
    fn from(line: pos_points::Line) -> BasketLine {
        BasketLine {
            line: line.line,
            sku: line.sku,
            category: line.category,
            qty: line.qty,
            unit_price: line.unit_price,
            discount: line.discount,
        }
    }
}

/// `POST /v1/quote` body: a points-spec §2 basket where `member` is a
/// [`MemberRef`] and `earned_today` / `paid_with_points` are not accepted.
///
/// ```json
/// {"sale_id": "S-1", "time": "2026-11-28T11:05:00+01:00",
///  "member": {"card": "9990000010013"},
///  "lines": [{"line": 1, "sku": "4006381333931", "category": "shoes",
///             "qty": "1", "unit_price": "59.99", "discount": "5.00"}]}
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// Echoed in the quote; optional for a quote.
    #[serde(default)]
    pub sale_id: Option<String>,
    /// RFC 3339 with offset; time conditions use the wall clock as written.
    pub time: String,
    /// Absent: the quote shows what a member would earn in every program.
    #[serde(default)]
    pub member: Option<MemberRef>,
    pub lines: Vec<BasketLine>,
}

/// One redemption on a sale: pay `points` of `program` (points spec §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redemption {
    pub program: String,
    pub points: i64,
}

/// `POST /v1/sales` body: a [`QuoteRequest`] with a required `sale_id` and
/// optional redemptions (at most one per program).
///
/// ```json
/// {"sale_id": "S-1", "time": "2026-11-28T11:05:00+01:00",
///  "member": {"id": "M-1001"},
///  "lines": [{"sku": "4006381333931", "qty": "1", "unit_price": "59.99"}],
///  "redeem": [{"program": "main", "points": 500}]}
/// ```
///
/// Idempotent by `sale_id`: the same body again gives the first answer byte
/// for byte; a different body with the same `sale_id` is a conflict (409).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    pub sale_id: String,
    pub time: String,
    #[serde(default)]
    pub member: Option<MemberRef>,
    pub lines: Vec<BasketLine>,
    #[serde(default)]
    pub redeem: Vec<Redemption>,
}

impl SaleRequest {
    /// The quote part of the sale.
    pub fn quote_request(&self) -> QuoteRequest {
        QuoteRequest {
            sale_id: Some(self.sale_id.clone()),
            time: self.time.clone(),
            member: self.member.clone(),
            lines: self.lines.clone(),
        }
    }
}

/// A member's balance in one program, as the register sees it (sync spec §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramBalance {
    /// Central's `available` from the last member download (0 for a card
    /// central has not linked yet) plus this register's unsynced entries.
    pub available: i64,
    /// Central's `pending` from the last member download.
    pub pending: i64,
    /// Sum of this register's entries for the member not yet synced
    /// (already included in `available`).
    pub unsynced: i64,
}

/// Whether the member cache can be trusted for redemptions (sync spec §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// The last member download/import is younger than `member_fresh_secs`.
    Fresh,
    /// Older, or never: redemptions are bounded by the offline allowance.
    Stale,
}

/// `POST /v1/sales` answer.
///
/// ```json
/// {"sale_id": "S-1", "quote": {...points spec §4...},
///  "redeemed": [{"program": "main", "points": 500}],
///  "balances": {"main": {"available": 1135, "pending": 0, "unsynced": -365}}}
/// ```
/// `balances` is empty for a sale without member. It is the balance right
/// after the sale and is not updated when the same sale is replayed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaleAnswer {
    pub sale_id: String,
    /// The booked quote (with `paid_with_points` from the redemptions).
    pub quote: Quote,
    pub redeemed: Vec<Redemption>,
    pub balances: BTreeMap<String, ProgramBalance>,
}

/// One line of a return: give back `qty` of sale line `line`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnLine {
    pub line: u32,
    #[serde(deserialize_with = "pos_points::deserialize_decimal")]
    pub qty: Decimal,
}

/// `POST /v1/sales/{sale_id}/returns` body.
///
/// ```json
/// {"return_id": "R-1", "lines": [{"line": 1, "qty": "1"}]}
/// ```
/// Idempotent by `return_id` like sales.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequest {
    pub return_id: String,
    pub lines: Vec<ReturnLine>,
}

/// What a return did in one program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnProgram {
    pub program: String,
    /// Earned points taken back (the `return_earn` entry is `-reversed`).
    pub reversed: i64,
    /// Redeemed points given back (the `return_redeem` entry is `+given_back`).
    pub given_back: i64,
}

/// `POST /v1/sales/{sale_id}/returns` answer.
///
/// ```json
/// {"return_id": "R-1", "sale_id": "S-1",
///  "programs": [{"program": "main", "reversed": 54, "given_back": 250}]}
/// ```
/// `programs` lists, in program id order, every program the sale earned or
/// redeemed in (zeros included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnAnswer {
    pub return_id: String,
    pub sale_id: String,
    pub programs: Vec<ReturnProgram>,
}

/// A committed return as shown by `GET /v1/sales/{sale_id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReturnRecord {
    pub return_id: String,
    /// Register clock at commit, RFC 3339.
    pub committed_at: String,
    pub lines: Vec<ReturnLine>,
    pub answer: ReturnAnswer,
}

/// `GET /v1/sales/{sale_id}` answer: the sale as committed, its booked quote
/// and its returns in commit order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SaleRecord {
    pub sale_id: String,
    /// Register clock at commit, RFC 3339.
    pub committed_at: String,
    /// The member id or card token the points went to; `null` for a guest.
    pub member: Option<String>,
    pub rules_version: u64,
    /// The request as received (after parsing).
    pub request: SaleRequest,
    /// The answer given at commit (and on every replay).
    pub answer: SaleAnswer,
    pub returns: Vec<ReturnRecord>,
}

/// Sync status of a ledger entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Not yet accepted by central.
    Unsynced,
    /// Central answered `applied`, `duplicate` or `overdraft`.
    Synced,
    /// Central answered `rejected`: kept as a dead letter with its reason.
    Dead,
}

/// One row of `GET /v1/ledger`: the entry (sync spec §1) and its sync status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    #[serde(flatten)]
    pub entry: pos_sync::LedgerEntry,
    pub status: EntryStatus,
    /// What central credited instead of `points`, when it corrected the
    /// register's figure (`docs/sync-v2.md` §3, "Whose context"); absent
    /// when central counted the entry as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credited: Option<Credited>,
}

/// Central's figure for an entry it corrected, and why.
///
/// ```json
/// {"points": 20, "reason": "earn of 80 for sale S-B in program main credited as 20: ..."}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credited {
    pub points: i64,
    pub reason: String,
}

/// `GET /v1/members/{id or card}` answer.
///
/// ```json
/// {"member": "M-1001", "known": true, "blocked": false, "freshness": "fresh",
///  "programs": {"main": {"available": 1500, "pending": 0, "unsynced": 0}}}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBalances {
    /// The member id, or the card token for a card central has not linked.
    pub member: String,
    /// Whether the member cache knows this member.
    pub known: bool,
    pub blocked: bool,
    pub freshness: Freshness,
    pub programs: BTreeMap<String, ProgramBalance>,
}

pub use pos_sync::snapshot::{
    CatalogSnapshot, MemberData, MemberProgramData, MembersSnapshot, Product,
};

/// What `import` loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// The bundle version stored, or `None` when it was already cached.
    pub rules_version: Option<u64>,
    pub members: usize,
    pub products: usize,
}

/// Figures for health, status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    pub sales: u64,
    pub returns: u64,
    /// Sum of `earn` entries.
    pub points_earned: i64,
    /// Sum of `redeem` entries, as a positive number.
    pub points_redeemed: i64,
    pub ledger_entries: u64,
    pub unsynced_entries: u64,
    pub dead_letters: u64,
    /// The rules version sales are quoted with: the newest cached, or with
    /// `[central]` the newest signed one.
    pub rules_version: Option<u64>,
    /// Why that bundle cannot be used (no signature, or one that does not
    /// verify): sales and quotes answer `rules_unverified` meanwhile.
    #[serde(default)]
    pub rules_unverified: Option<String>,
    /// Central's newest published version as its last rules answer named it.
    #[serde(default)]
    pub central_rules_version: Option<u64>,
    /// Unix milliseconds of the last successful member download/import.
    pub members_fresh_at_unix_ms: Option<i64>,
    /// How old that member data is by the register's clock (never
    /// negative); `None` when there is none.
    #[serde(default)]
    pub members_age_ms: Option<u64>,
}

/// `verify()` result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// `PRAGMA integrity_check` said `ok`.
    pub integrity_ok: bool,
    /// The first lines of `integrity_check` when it did not say `ok`.
    pub integrity_messages: Vec<String>,
    /// Entries checked in the chain.
    pub entries: u64,
    /// The first broken entry, named, or `None` when the chain holds.
    pub chain_break: Option<String>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.integrity_ok && self.chain_break.is_none()
    }
}
