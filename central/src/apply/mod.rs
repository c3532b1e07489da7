//! Central's sync rules (sync spec §2, §4, §5), apart from any database.
//!
//! A backend only loads and stores: it implements [`SyncTx`] (and
//! [`hold::HoldTx`]) on one of its
//! transactions, and [`apply_batch`] and [`hold::place_hold`] decide
//! everything else — which seqs are resent, which entries are applied,
//! duplicate, overdrawn or rejected, which conflicts are recorded, which
//! holds settle and which members changed. The SQLite backend and a later
//! PostgreSQL one thus share one implementation of the protocol; the
//! decisions themselves ([`decide`]) are pure functions of loaded state,
//! unit-tested without a database.
//!
//! Statuses and conflict kinds are enums here; they become the strings the
//! admin API and the tables have always used only at the storage boundary
//! ([`EntryStatus::as_str`], [`ConflictKind::as_str`]).

pub mod adjust;
pub mod channel;
pub mod decide;
pub mod hold;
pub mod verify;

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use pos_sync::protocol::{
    BatchOutcome, MemberBalance, ProgramBalance, ReceivedBatch, UploadAnswer,
};
use pos_sync::{Digest32, LedgerEntry};
use uuid::Uuid;

use crate::error::CentralError;

pub use decide::{BatchContext, BatchWrites, Decision, NewEntry, Resent, Verdict};

/// Most points one register entry may carry, either sign (`docs/sync-v2.md`
/// §3, check 3): far above any real sale, far below what could overflow.
pub const ENTRY_POINTS_MAX: i64 = 1_000_000_000;
/// A balance of one (member, program) stays within ±2^53 (`docs/sync-v2.md`
/// §7): exact in a JSON number, and 2^10 times below `i64::MAX`, so no sum
/// of a balance and an entry can overflow. The `balances` table's `CHECK`
/// constraints hold the same bound.
pub const BALANCE_ABS_MAX: i64 = 1 << 53;

/// `balance + points` when it stays within [`BALANCE_ABS_MAX`]: the one
/// place central changes a balance.
pub fn add_points(balance: i64, points: i64) -> Option<i64> {
    balance
        .checked_add(points)
        .filter(|b| b.unsigned_abs() <= BALANCE_ABS_MAX.unsigned_abs())
}

/// What central recorded for one consumed seq (the `entries.status` column,
/// the admin ledger's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryStatus {
    Applied,
    /// Applied although it took the member below zero.
    Overdraft,
    /// Never counted; the seq is consumed all the same.
    Rejected,
    /// An entry id already counted, arriving under a new seq: the seq is
    /// consumed, nothing counted.
    Duplicate,
}

impl EntryStatus {
    pub const ALL: [EntryStatus; 4] = [
        EntryStatus::Applied,
        EntryStatus::Overdraft,
        EntryStatus::Rejected,
        EntryStatus::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Applied => "applied",
            EntryStatus::Overdraft => "overdraft",
            EntryStatus::Rejected => "rejected",
            EntryStatus::Duplicate => "duplicate",
        }
    }

    pub fn parse(text: &str) -> Option<EntryStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the entry's points count in the balance: an entry id with a
    /// counted entry is a duplicate wherever else it arrives.
    pub fn counts(self) -> bool {
        matches!(self, EntryStatus::Applied | EntryStatus::Overdraft)
    }
}

/// What a recorded conflict is about (sync spec §5; the `conflicts.kind`
/// column, the admin API's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    Overdraft,
    Rejected,
    SeqReused,
    ClockSkew,
    /// The entry's points are not what the rules give for its document
    /// (`docs/sync-v2.md` §3, check 5).
    PointsMismatch,
    /// Applied with central's lower figure: the register's member context
    /// differed from central's (check 6), or a return exceeded what central
    /// counted for its sale.
    ContextCorrected,
}

impl ConflictKind {
    pub const ALL: [ConflictKind; 6] = [
        ConflictKind::Overdraft,
        ConflictKind::Rejected,
        ConflictKind::SeqReused,
        ConflictKind::ClockSkew,
        ConflictKind::PointsMismatch,
        ConflictKind::ContextCorrected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Overdraft => "overdraft",
            ConflictKind::Rejected => "rejected",
            ConflictKind::SeqReused => "seq_reused",
            ConflictKind::ClockSkew => "clock_skew",
            ConflictKind::PointsMismatch => "points_mismatch",
            ConflictKind::ContextCorrected => "context_corrected",
        }
    }

    pub fn parse(text: &str) -> Option<ConflictKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A conflict to record (sync spec §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConflict {
    pub kind: ConflictKind,
    pub seq: Option<u64>,
    pub entry_id: Option<Uuid>,
    pub member: Option<String>,
    pub program: Option<String>,
    pub shortfall: Option<i64>,
    pub detail: String,
}

/// The last seq central holds of a terminal and the hash its next entry
/// must chain onto.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Digest32,
}

/// A seq central already holds, as a resent batch is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSeq {
    pub hash: Digest32,
    /// Null for a malformed entry.
    pub credited_member: Option<String>,
}

/// One member-and-program's points as loaded: the balance (the imported
/// opening balance and every counted entry, kept in one column by
/// [`add_points`]), and what open holds reserve.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: i64,
    pub held: i64,
}

impl Account {
    pub fn available(&self) -> i64 {
        self.balance.saturating_sub(self.held)
    }
}

/// (member, program): whose points in which program.
pub type AccountKey = (String, String);

/// An open, unexpired hold as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenHold {
    pub member: String,
    pub points: i64,
}

/// The loads and stores of one database transaction that the sync rules
/// need. Every method only reads or writes what it names: no method decides
/// anything. Times are Unix seconds (`now_secs`) or RFC 3339 text (`at`),
/// as the caller computed them once per request.
pub trait SyncTx {
    fn chain_head(&self, terminal: &str) -> Result<Option<ChainHead>, CentralError>;
    fn record_contact(&self, terminal: &str, at: &str) -> Result<(), CentralError>;
    /// The stored seqs of `terminal` within `seqs`.
    fn stored_seqs(
        &self,
        terminal: &str,
        seqs: RangeInclusive<u64>,
    ) -> Result<HashMap<u64, StoredSeq>, CentralError>;
    /// The program ids of published bundle `version`; None when central
    /// never published it.
    fn bundle_programs(&self, version: u64) -> Result<Option<BTreeSet<String>>, CentralError>;
    /// The member a card token belongs to, if central knows the card.
    fn card_owner(&self, card: &str) -> Result<Option<String>, CentralError>;
    /// Whether `terminal` has an entry with this id stored with a status
    /// that counts (another terminal's entry id is another entry).
    fn is_counted(&self, terminal: &str, entry_id: Uuid) -> Result<bool, CentralError>;
    /// A member's points in a program, holds unexpired at `now_secs` included.
    fn account(&self, member: &str, program: &str, now_secs: i64) -> Result<Account, CentralError>;
    /// The open hold of (terminal, sale, program) unexpired at `now_secs`.
    fn open_hold(
        &self,
        terminal: &str,
        sale_id: &str,
        program: &str,
        now_secs: i64,
    ) -> Result<Option<OpenHold>, CentralError>;
    /// Writes a decided batch: its entry rows, settled holds, the new chain
    /// head, balances, member revisions and conflicts.
    fn store_batch(
        &self,
        terminal: &str,
        writes: &BatchWrites<'_>,
        at: &str,
        now_secs: i64,
    ) -> Result<(), CentralError>;
    fn store_conflicts(
        &self,
        terminal: &str,
        conflicts: &[NewConflict],
        at: &str,
    ) -> Result<(), CentralError>;
    /// The published bundle of `version`, parsed; None when never
    /// published.
    fn published_bundle(&self, version: u64) -> Result<Option<pos_points::Bundle>, CentralError>;
    /// Central's birthday and tier history of a member (None: central has
    /// no member of that id).
    fn member_facts(&self, member: &str) -> Result<Option<verify::MemberFacts>, CentralError>;
    /// Points counted for earns and return_earns of the member in the
    /// program whose `occurred_at` has local date `date`, every terminal.
    fn earned_on(&self, member: &str, program: &str, date: &str) -> Result<i64, CentralError>;
    /// What central counted for a sale and program of `terminal`.
    fn sale_record(
        &self,
        terminal: &str,
        sale_id: &str,
        program: &str,
    ) -> Result<verify::SaleRecord, CentralError>;
    /// The balances of every program a member has.
    fn member_programs(
        &self,
        member: &str,
        now_secs: i64,
    ) -> Result<Vec<ProgramBalance>, CentralError>;
}

/// What a refused batch (a `gap` or a `seq_reused` answer: nothing
/// consumed, so a terminal can send it again and again) writes.
///
/// A refusal is answered the same either way, from the chain head read in
/// the same transaction; only what is recorded about it differs. The server
/// chooses per terminal (`server::refusals`, a budget per minute), above
/// the storage trait, so every backend bounds the writes one terminal's
/// refusals cost without code of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Refusals {
    /// The contact time and, for a reused seq, its conflict row.
    #[default]
    Record,
    /// Nothing: the transaction only reads (in SQLite a commit without
    /// writes does not touch the disk), and the refusal is counted in
    /// memory by the caller.
    Quiet,
}

/// Applies an upload batch (sync spec §2) inside the caller's transaction;
/// the caller commits on `Ok` (also for `gap` and `seq_reused`: the contact
/// time and the seq-reuse conflict are kept unless `refusals` is
/// [`Refusals::Quiet`]) and rolls back on `Err`. `received_at` is central's
/// clock, for clock-skew conflicts.
pub fn apply_batch(
    tx: &impl SyncTx,
    batch: &ReceivedBatch,
    received_at: jiff::Timestamp,
    refusals: Refusals,
) -> Result<UploadAnswer, CentralError> {
    let at = received_at.to_string();
    let now_secs = received_at.as_second();
    let terminal = batch.terminal_id.as_str();
    let head = tx
        .chain_head(terminal)?
        .ok_or_else(|| CentralError::NotFound(format!("unknown terminal {terminal:?}")))?;
    let record = refusals == Refusals::Record;
    if let Some(outcome) = decide::gap(head, batch) {
        if record {
            tx.record_contact(terminal, &at)?;
        }
        return Ok(nothing_applied(outcome));
    }
    let stored = match decide::resent_range(head, batch) {
        Some(range) => tx.stored_seqs(terminal, range)?,
        None => HashMap::new(),
    };
    let resent_members = match decide::check_resent(head, batch, &stored)? {
        Resent::Consistent(members) => members,
        Resent::Reused { conflict, outcome } => {
            if record {
                tx.record_contact(terminal, &at)?;
                tx.store_conflicts(terminal, &[conflict], &at)?;
            }
            return Ok(nothing_applied(outcome));
        }
    };
    tx.record_contact(terminal, &at)?;
    let context = load_context(tx, head, batch, now_secs)?;
    let decision = decide::decide(head, batch, &context, received_at, resent_members);
    tx.store_batch(terminal, &decision.writes, &at, now_secs)?;
    let mut balances = Vec::with_capacity(decision.touched.len());
    for member in &decision.touched {
        balances.push(MemberBalance {
            member: member.clone(),
            programs: tx.member_programs(member, now_secs)?,
        });
    }
    Ok(UploadAnswer {
        outcome: BatchOutcome::Entries(decision.results),
        balances,
    })
}

fn nothing_applied(outcome: BatchOutcome) -> UploadAnswer {
    UploadAnswer {
        outcome,
        balances: Vec::new(),
    }
}

/// Everything [`decide::decide`] reads, for the entries past `head`:
/// the programs of the rules versions named, card owners, the terminal's
/// already counted entry ids, accounts and the holds
/// their redemptions may settle.
fn load_context(
    tx: &impl SyncTx,
    head: ChainHead,
    batch: &ReceivedBatch,
    now_secs: i64,
) -> Result<BatchContext, CentralError> {
    let mut context = BatchContext::default();
    let entries = batch
        .entries
        .iter()
        .filter(|r| r.seq > head.seq)
        .filter_map(|r| r.entry.as_ref().ok());
    for entry in entries {
        if !context.cards.contains_key(&entry.member) {
            let owner = tx.card_owner(&entry.member)?;
            context.cards.insert(entry.member.clone(), owner);
        }
        if let Entry::Vacant(slot) = context.rules.entry(entry.rules_version) {
            let programs = tx.bundle_programs(*slot.key())?;
            slot.insert(programs);
        }
        if tx.is_counted(&batch.terminal_id, entry.entry_id)? {
            context.counted.insert(entry.entry_id);
        }
        let member = context.credited(&entry.member).to_string();
        if let Entry::Vacant(slot) = context.accounts.entry((member, entry.program.clone())) {
            let (member, program) = slot.key();
            let account = tx.account(member, program, now_secs)?;
            slot.insert(account);
        }
        let member = context.credited(&entry.member).to_string();
        load_facts(tx, &mut context.facts, batch, entry, &member)?;
        if let Some(sale) = decide::settles(entry)
            && let Entry::Vacant(slot) = context
                .sale_holds
                .entry((sale.to_string(), entry.program.clone()))
        {
            let (sale, program) = slot.key();
            let hold = tx.open_hold(&batch.terminal_id, sale, program, now_secs)?;
            slot.insert(hold);
        }
    }
    Ok(context)
}

/// What checks 4–6 need for one entry ([`verify::Facts`]): its bundle, its
/// member, the day's earnings and its sale, each loaded once per batch.
fn load_facts(
    tx: &impl SyncTx,
    facts: &mut verify::Facts,
    batch: &ReceivedBatch,
    entry: &LedgerEntry,
    member: &str,
) -> Result<(), CentralError> {
    let version = entry.rules_version;
    if let Entry::Vacant(slot) = facts.bundles.entry(version)
        && let Some(bundle) = tx.published_bundle(version)?
    {
        slot.insert(Arc::new(bundle));
    }
    // Only what can change this program's quote is loaded: the member's
    // tiers and birthday where the program has tiers or birthday rules, the
    // day's earnings where it has a daily cap (two queries per entry saved
    // on the hot path of a catch-up).
    let program = facts
        .bundles
        .get(&version)
        .and_then(|b| b.program(&entry.program));
    let needs_member =
        program.is_some_and(|p| !p.tiers.is_empty() || p.rules.iter().any(|r| r.birthday));
    let needs_day = program.is_some_and(|p| p.limits.member_daily_cap.is_some());
    if needs_member && let Entry::Vacant(slot) = facts.members.entry(member.to_string()) {
        slot.insert(tx.member_facts(member)?);
    }
    let day = verify::day_key(member, &entry.program, &entry.occurred_at);
    if needs_day && let Entry::Vacant(slot) = facts.earned_on.entry(day) {
        let (member, program, date) = slot.key();
        let sum = tx.earned_on(member, program, date)?;
        slot.insert(sum);
    }
    if let Some(sale) = verify::sale_of(entry, &batch.documents)
        && let Entry::Vacant(slot) = facts.sales.entry((sale, entry.program.clone()))
    {
        let (sale, program) = slot.key();
        let record = tx.sale_record(&batch.terminal_id, sale, program)?;
        slot.insert(record);
    }
    Ok(())
}

/// The members whose balances an answer carries, in the order it lists them.
pub type Touched = BTreeSet<String>;
