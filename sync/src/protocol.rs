//! The messages of the register <-> central protocol (sync spec §2–§4), as
//! Rust values. [`crate::wire`] turns them into versioned postcard bytes.
//!
//! Ledger entries travel as [`crate::wire`]'s private `WireEntry` and are
//! converted to and from the domain [`LedgerEntry`] at the edge; the other
//! messages exist only for the protocol, so they are their own wire form
//! (changing a field here is a protocol change: bump
//! [`crate::wire::PROTOCOL_VERSION`]).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entry::{Digest32, EntryKind, LedgerEntry};

/// Most entries in one upload batch (sync spec §2).
pub const BATCH_ENTRIES_MAX: usize = 1_000;
/// Most bytes of one encoded upload batch, documents included: 4 MiB
/// (protocol v2, `docs/sync-v2.md` §2; v1 had 1 MiB of entries alone).
pub const BATCH_BYTES_MAX: usize = 4 * 1_048_576;
/// Most bytes of one encoded document (sale or return), so one entry and
/// its document always fit in a batch: 512 KiB.
pub const DOCUMENT_BYTES_MAX: usize = 512 * 1_024;
/// Most documents in one batch: one per entry at most.
pub const DOCUMENTS_MAX: usize = BATCH_ENTRIES_MAX;
/// Most programs a sale document says it redeemed in.
pub const REDEEMED_PROGRAMS_MAX: usize = pos_points::limits::PROGRAMS_MAX;
/// Most `{line, qty}` items in a return document's lists.
pub const RETURN_LINES_MAX: usize = pos_points::limits::LINES_MAX;
/// Most changes in one members or catalog download page.
pub const CHANGES_PAGE_MAX: usize = 1_000;
/// Largest encoded download page or answer the client accepts: 8 MiB.
pub const ANSWER_BYTES_MAX: usize = 8 * 1_048_576;

/// Longest terminal id, program id and member id / card token accepted.
pub const ID_BYTES_MAX: usize = 128;
/// Longest `sale_id` / `return_id`.
pub const DOCUMENT_ID_BYTES_MAX: usize = 128;
/// Longest `occurred_at` text.
pub const TIME_BYTES_MAX: usize = 64;
/// Longest `detail` (the quote breakdown as JSON text): 64 KiB.
pub const DETAIL_BYTES_MAX: usize = 65_536;

/// What a register uploads: consecutive entries of one terminal from
/// `first_seq`, with the documents they belong to (protocol v2: every
/// `earn`/`redeem` names a sale document of the batch, every
/// `return_earn`/`return_redeem` a return document).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadBatch {
    pub terminal_id: String,
    pub first_seq: u64,
    pub entries: Vec<LedgerEntry>,
    pub documents: Vec<Document>,
}

/// Points of one program, > 0: what a sale paid with points in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramPoints {
    pub program: String,
    pub points: i64,
}

/// A quantity of one basket line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineQty {
    pub line: u32,
    pub qty: Decimal,
}

/// The sale an `earn` or `redeem` entry belongs to, as the register quoted
/// it: enough for central to re-derive its points (`docs/sync-v2.md` §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleDocument {
    pub sale_id: String,
    pub rules_version: u64,
    /// The points basket exactly as quoted (points spec §2), JSON text:
    /// `time`, `member` with the context the register used,
    /// `earned_today`, `paid_with_points`, `lines`.
    pub basket: String,
    /// What the sale paid with points, per program.
    pub redeemed: Vec<ProgramPoints>,
}

/// The return a `return_earn` or `return_redeem` entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnDocument {
    pub return_id: String,
    pub sale_id: String,
    /// The sale returned, self-contained (central may hold the sale from
    /// protocol v1, without its document).
    pub sale: SaleDocument,
    /// For every line of the sale, the quantity not yet returned before
    /// this return.
    pub remaining_before: Vec<LineQty>,
    /// What this return takes back.
    pub lines: Vec<LineQty>,
}

/// A document of an upload batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Document {
    Sale(SaleDocument),
    Return(ReturnDocument),
}

/// What names a document: entries point at one by it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DocumentKey {
    Sale(String),
    Return(String),
}

impl std::fmt::Display for DocumentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentKey::Sale(id) => write!(f, "sale {id}"),
            DocumentKey::Return(id) => write!(f, "return {id}"),
        }
    }
}

impl Document {
    pub fn key(&self) -> DocumentKey {
        match self {
            Document::Sale(d) => DocumentKey::Sale(d.sale_id.clone()),
            Document::Return(d) => DocumentKey::Return(d.return_id.clone()),
        }
    }
}

impl DocumentKey {
    /// The document an entry must travel with: its sale for `earn` and
    /// `redeem`, its return for `return_earn` and `return_redeem`, none for
    /// `adjust` (or an entry missing the id, which central rejects).
    pub fn of(entry: &LedgerEntry) -> Option<DocumentKey> {
        match entry.kind {
            EntryKind::Earn | EntryKind::Redeem => entry.sale_id.clone().map(DocumentKey::Sale),
            EntryKind::ReturnEarn | EntryKind::ReturnRedeem => {
                entry.return_id.clone().map(DocumentKey::Return)
            }
            EntryKind::Adjust => None,
        }
    }
}

/// One entry as central received it: the parts needed to keep the chain
/// going (seq, claimed hash, entry id) even when the rest is malformed, so a
/// malformed entry is `rejected` and consumes its seq instead of failing the
/// whole batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedEntry {
    pub seq: u64,
    pub entry_id: Uuid,
    pub hash: Digest32,
    /// The entry, or why it is malformed.
    pub entry: Result<LedgerEntry, String>,
}

/// An upload batch as decoded by central. Every document is named by at
/// least one entry and no two share a key ([`crate::wire::decode_upload`]
/// refuses the batch otherwise); whether each entry's document is there is
/// central's per-entry check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedBatch {
    pub terminal_id: String,
    pub first_seq: u64,
    pub entries: Vec<ReceivedEntry>,
    pub documents: BTreeMap<DocumentKey, Document>,
}

/// Central's verdict on one entry (sync spec §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryResult {
    /// New entry, chain intact: stored and counted.
    Applied,
    /// Already stored (same `(terminal, seq)` and hash, or same `entry_id`).
    Duplicate,
    /// A debit took the member's available points below zero; applied anyway.
    /// `shortfall` is the part of the debit that was not covered (> 0).
    Overdraft { shortfall: i64 },
    /// Can never be applied; its seq is consumed all the same.
    Rejected { reason: String },
    /// Applied, but central credited `credited` instead of the entry's
    /// points, because the member context the register quoted with differs
    /// from central's (`docs/sync-v2.md` §3, check 6). `reason` names both
    /// figures and the context that differed.
    Corrected { credited: i64, reason: String },
}

impl EntryResult {
    /// Whether the register may mark the entry synced (everything but `rejected`).
    pub fn is_synced(&self) -> bool {
        !matches!(self, EntryResult::Rejected { .. })
    }
}

/// Central's verdict on the batch as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchOutcome {
    /// One result per uploaded entry, in batch order.
    Entries(Vec<EntryResult>),
    /// `first_seq` is past the next seq central expects: resend from `expected`.
    Gap { expected: u64 },
    /// A seq central holds arrived with a different hash. Nothing was applied.
    /// The register re-numbers its unsynced entries after `server_high` and
    /// re-chains them onto `server_high_hash` (an addition to the spec's
    /// `seq_reused {server_high}`: without it the register cannot build a
    /// chain central accepts).
    SeqReused {
        server_high: u64,
        server_high_hash: Digest32,
    },
}

/// A member's points in one program, as central counts them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramBalance {
    pub program: String,
    /// Σ of applied points.
    pub balance: i64,
    /// `balance` − open holds.
    pub available: i64,
    /// Always 0 in v1: bundles have no pending period.
    pub pending: i64,
}

/// The authoritative balances of one member the batch touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberBalance {
    /// The member id the points were credited to (a card token central knows
    /// is resolved to its member).
    pub member: String,
    pub programs: Vec<ProgramBalance>,
}

/// Central's answer to an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadAnswer {
    pub outcome: BatchOutcome,
    pub balances: Vec<MemberBalance>,
}

/// How the bundle bytes are written (points spec §1: JSON or TOML).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BundleFormat {
    Json,
    Toml,
}

/// Central's answer to a rules download (`docs/sync-v2.md` §6): its newest
/// published version always, and that bundle when it is newer than the
/// version asked `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesAnswer {
    /// Central's newest published version (0: none published yet).
    pub newest: u64,
    pub bundle: Option<SignedBundle>,
}

/// A rules bundle exactly as published, with central's Ed25519 signature over
/// `bytes`. Verify with [`crate::signing::verify_bundle`] before parsing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBundle {
    pub version: u64,
    pub format: BundleFormat,
    pub bytes: Vec<u8>,
    /// 64-byte Ed25519 signature (a Vec because serde has no `[u8; 64]`).
    pub signature: Vec<u8>,
}

/// A member's state in one program, for the register's member cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberProgramState {
    pub tier: Option<String>,
    pub available: i64,
    pub pending: i64,
}

/// One changed member (sync spec §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    pub id: String,
    pub cards: Vec<String>,
    /// `YYYY-MM-DD`.
    pub birthday: Option<String>,
    pub blocked: bool,
    pub programs: BTreeMap<String, MemberProgramState>,
    /// The change's position; `MemberChanges::next_cursor` is the last one.
    pub rev: u64,
}

/// A page of member changes after a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChanges {
    pub changes: Vec<MemberChange>,
    /// Ask again from here; equal to the request's cursor when nothing changed.
    pub next_cursor: u64,
    /// More changes wait after `next_cursor`.
    pub more: bool,
}

/// One changed catalog product (sync spec §3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChange {
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub price: Decimal,
    pub rev: u64,
}

/// A page of catalog changes after a cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogChanges {
    pub changes: Vec<ProductChange>,
    pub next_cursor: u64,
    pub more: bool,
}

/// Ask central to reserve points for an online redemption (sync spec §4).
/// The redeem ledger entry of the same terminal, `sale_id` and `program`
/// settles the hold when it arrives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub terminal_id: String,
    /// Member id or card token.
    pub member: String,
    pub program: String,
    pub sale_id: String,
    /// Points to reserve, > 0.
    pub points: i64,
    /// The sale's points basket as in a [`SaleDocument`] (JSON text), so
    /// central checks the redemption against its rules (points spec §6).
    pub basket: String,
}

/// Central's answer to a hold request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldAnswer {
    /// Reserved; `available` is what is left after the hold.
    Granted { available: i64 },
    /// Not enough points; nothing reserved.
    Insufficient { available: i64 },
    /// The member is blocked; nothing reserved.
    Blocked,
    /// Central will not place this hold: too many open holds for the
    /// terminal or the member, the program not redeemable, the points not
    /// a valid redemption of the basket (`docs/sync-v2.md` §5).
    Refused { reason: String },
}

/// Release a hold whose sale was abandoned before it committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRelease {
    pub terminal_id: String,
    pub sale_id: String,
    pub program: String,
}

/// Most devices one [`TerminalReport`] lists (a register has a handful).
pub const REPORT_DEVICES_MAX: usize = 32;
/// Longest text in a [`TerminalReport`]: versions, names, states, the
/// last error (longer ones are cut by the register, refused by central).
pub const REPORT_TEXT_BYTES_MAX: usize = 256;
/// Most problems one report lists (health's own list is shorter).
pub const REPORT_PROBLEMS_MAX: usize = 16;

/// What a register tells central about itself after each successful sync
/// cycle (`PUT /v1/sync/report`, `docs/sync-v2.md` §8): the fleet view.
/// Central keeps the newest per terminal; nothing in it changes a balance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalReport {
    pub terminal_id: String,
    /// The agent's version (`pos-agent --version`).
    pub agent_version: String,
    /// The register's clock when it sent the report (RFC 3339): central
    /// derives the clock offset from it.
    pub sent_at: String,
    /// `ok` or `degraded`, as its health says.
    pub health: String,
    /// Health's problems (`storage_full`, `device_loop_stuck`, ...).
    pub problems: Vec<String>,
    /// Ledger entries central has not yet acknowledged.
    pub outbox_depth: u64,
    /// Entries central refused for good.
    pub dead_letters: u64,
    /// The rules version the register trades on.
    pub rules_version: Option<u64>,
    pub devices: Vec<DeviceReport>,
    /// The error of the last failed sync cycle, if the register had one
    /// since its last success.
    pub last_error: Option<String>,
}

/// One device of a [`TerminalReport`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    pub name: String,
    /// `up`, `down` or `stuck`.
    pub state: String,
}

/// `text` cut to at most `bytes_max` bytes on a character boundary: what a
/// register does to its own texts before reporting them.
pub fn cut_text(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_string();
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
