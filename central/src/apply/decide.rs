//! The verdict on every entry of an upload batch, as a pure function of the
//! state [`super::apply_batch`] loaded (sync spec §2, §5).
//!
//! A new check on entries (issue 9: points re-derived, rules version
//! published, corrected credits) is a [`Rejection`] variant and a line in
//! `Run::rejection`, or a [`Verdict`] variant with its [`EntryStatus`]; the
//! storage side stays as it is.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::RangeInclusive;

use pos_sync::protocol::{
    BatchOutcome, Document, DocumentKey, EntryResult, ReceivedBatch, ReceivedEntry,
};
use pos_sync::{Digest32, EntryKind, LedgerEntry};
use uuid::Uuid;

use super::verify::{self, Verifier};
use super::{Account, AccountKey, ChainHead, ConflictKind, EntryStatus, NewConflict, OpenHold};
use super::{BALANCE_ABS_MAX, ENTRY_POINTS_MAX, StoredSeq, Touched, add_points};
use crate::error::CentralError;

/// Receipt this far from `occurred_at` is a clock-skew conflict (sync spec §5): 24 h.
pub const CLOCK_SKEW_SECS_MAX: i64 = 24 * 3_600;

/// Why an entry can never be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The wire decoder could not make an entry of it.
    Malformed(String),
    /// Its `prev_hash` is not the hash of the seq before.
    BrokenChain { seq: u64, last_seq: u64 },
    /// Its hash does not cover its fields.
    HashMismatch { seq: u64 },
    /// A kind registers never produce (check 1): adjustments are an
    /// administrator's.
    NotFromRegisters(EntryKind),
    /// Its `rules_version` names no published bundle (check 2).
    UnpublishedRules(u64),
    /// Its program is not in the bundle it names (check 2).
    ProgramNotInRules { program: String, version: u64 },
    /// Its points are beyond [`ENTRY_POINTS_MAX`] or of the wrong sign for
    /// its kind (check 3).
    PointsOutOfRange { kind: EntryKind, points: i64 },
    /// Its document is missing or disagrees, or its points are not what the
    /// rules give (`docs/sync-v2.md` §3, checks 4 and 5).
    Unverified(verify::Failure),
    /// Counting it would take the balance beyond [`BALANCE_ABS_MAX`]
    /// (check 7).
    BalanceOutOfRange {
        member: String,
        program: String,
        balance: i64,
        points: i64,
    },
}

impl Rejection {
    /// The conflict kind that records it.
    pub fn conflict_kind(&self) -> ConflictKind {
        match self {
            Rejection::Unverified(verify::Failure::Mismatch(_)) => ConflictKind::PointsMismatch,
            _ => ConflictKind::Rejected,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(reason) => f.write_str(reason),
            Rejection::BrokenChain { seq, last_seq } => write!(
                f,
                "broken chain: prev_hash of seq {seq} is not the hash of seq {last_seq}"
            ),
            Rejection::HashMismatch { seq } => {
                write!(f, "hash mismatch: entry altered (seq {seq})")
            }
            Rejection::NotFromRegisters(kind) => write!(
                f,
                "kind {kind} is not accepted from registers: adjustments are an \
                 administrator's, POST /v1/admin/adjustments"
            ),
            Rejection::Unverified(failure) => write!(f, "{failure}"),
            Rejection::UnpublishedRules(version) => {
                write!(f, "rules version {version} was never published")
            }
            Rejection::ProgramNotInRules { program, version } => {
                write!(f, "program {program:?} is not in rules version {version}")
            }
            Rejection::PointsOutOfRange { kind, points } => write!(
                f,
                "{kind} of {points} points: an entry carries at most {ENTRY_POINTS_MAX} \
                 points, {}",
                sign_rule(*kind)
            ),
            Rejection::BalanceOutOfRange {
                member,
                program,
                balance,
                points,
            } => write!(
                f,
                "the balance would leave the allowed range: {balance} + {points} for \
                 {member} in {program} is beyond ±{BALANCE_ABS_MAX}"
            ),
        }
    }
}

/// The kinds registers produce (check 1).
fn from_registers(kind: EntryKind) -> bool {
    match kind {
        EntryKind::Earn | EntryKind::Redeem | EntryKind::ReturnEarn | EntryKind::ReturnRedeem => {
            true
        }
        EntryKind::Adjust => false,
    }
}

/// Whether `points` fit the kind (check 3): in range, and of the sign the
/// kind has.
fn points_fit(kind: EntryKind, points: i64) -> bool {
    let sign_ok = match kind {
        EntryKind::Earn => points >= 0,
        EntryKind::Redeem => points < 0,
        EntryKind::ReturnEarn => points <= 0,
        EntryKind::ReturnRedeem => points > 0,
        EntryKind::Adjust => true,
    };
    sign_ok && points.unsigned_abs() <= ENTRY_POINTS_MAX.unsigned_abs()
}

fn sign_rule(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Earn => "and an earn is never negative",
        EntryKind::Redeem => "and a redeem is negative",
        EntryKind::ReturnEarn => "and a return_earn is never positive",
        EntryKind::ReturnRedeem => "and a return_redeem is positive",
        EntryKind::Adjust => "of either sign",
    }
}

/// Central's verdict on one entry that consumed a seq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// Applied; `shortfall` (> 0) of the debit was not covered.
    Overdraft {
        shortfall: i64,
    },
    /// Its entry id is already counted under another seq.
    Duplicate,
    Rejected(Rejection),
    /// Applied with `credited` points instead of the entry's (check 6, or a
    /// return bounded by what central counted for its sale).
    Corrected {
        credited: i64,
        reason: String,
    },
}

impl Verdict {
    pub fn status(&self) -> EntryStatus {
        match self {
            Verdict::Applied | Verdict::Corrected { .. } => EntryStatus::Applied,
            Verdict::Overdraft { .. } => EntryStatus::Overdraft,
            Verdict::Duplicate => EntryStatus::Duplicate,
            Verdict::Rejected(_) => EntryStatus::Rejected,
        }
    }

    /// The answer the register gets.
    pub fn result(&self) -> EntryResult {
        match self {
            Verdict::Applied => EntryResult::Applied,
            Verdict::Overdraft { shortfall } => EntryResult::Overdraft {
                shortfall: *shortfall,
            },
            Verdict::Duplicate => EntryResult::Duplicate,
            Verdict::Rejected(r) => EntryResult::Rejected {
                reason: r.to_string(),
            },
            Verdict::Corrected { credited, reason } => EntryResult::Corrected {
                credited: *credited,
                reason: reason.clone(),
            },
        }
    }

    /// The stored `reason` column.
    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Rejected(r) => Some(r.to_string()),
            Verdict::Corrected { reason, .. } => Some(reason.clone()),
            _ => None,
        }
    }

    /// The points that moved the balance when they differ from the entry's
    /// (the stored `credited` column).
    pub fn credited(&self) -> Option<i64> {
        match self {
            Verdict::Corrected { credited, .. } => Some(*credited),
            _ => None,
        }
    }
}

/// One consumed seq to store; rows are never updated afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry<'b> {
    pub seq: u64,
    pub entry_id: Uuid,
    pub hash: Digest32,
    /// The entry and the member credited, or None when it was malformed.
    pub entry: Option<(&'b LedgerEntry, String)>,
    pub verdict: Verdict,
}

/// What a decided batch writes, in the order it is to be written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchWrites<'b> {
    pub entries: Vec<NewEntry<'b>>,
    /// (sale, program) of this terminal's holds the batch settled.
    pub settled_holds: Vec<(String, String)>,
    /// The terminal's new chain head (the last consumed seq).
    pub head: Option<ChainHead>,
    /// New balances, by (member, program), each within
    /// [`BALANCE_ABS_MAX`].
    pub balances: BTreeMap<AccountKey, i64>,
    /// Members whose points changed: each gets a new revision, in this order.
    pub changed_members: BTreeSet<String>,
    pub conflicts: Vec<NewConflict>,
}

/// A decided batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'b> {
    /// One per uploaded entry, in batch order.
    pub results: Vec<EntryResult>,
    pub writes: BatchWrites<'b>,
    /// Members whose balances the answer carries.
    pub touched: Touched,
}

/// What the batch's new entries are decided against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchContext {
    /// Every rules version the batch names → the programs of that
    /// published bundle (None: never published).
    pub rules: HashMap<u64, Option<BTreeSet<String>>>,
    /// Name a register used → the card's member (None: not a known card).
    pub cards: HashMap<String, Option<String>>,
    /// Entry ids of the batch the terminal already has stored with a
    /// counting status: duplicates are judged per terminal
    /// (`docs/sync-v2.md` §4), and a batch is one terminal's.
    pub counted: HashSet<Uuid>,
    /// Every (credited member, program) the batch names, before the batch.
    pub accounts: HashMap<AccountKey, Account>,
    /// (sale, program) → the terminal's open hold for it, if any.
    pub sale_holds: HashMap<(String, String), Option<OpenHold>>,
    /// What checks 4–6 verify the entries against.
    pub facts: verify::Facts,
}

impl BatchContext {
    /// Who the points of an entry naming `name` go to.
    pub fn credited<'a>(&'a self, name: &'a str) -> &'a str {
        match self.cards.get(name) {
            Some(Some(member)) => member,
            _ => name,
        }
    }
}

/// A batch whose first seq is past the next one central expects.
pub fn gap(head: ChainHead, batch: &ReceivedBatch) -> Option<BatchOutcome> {
    let expected = head.seq + 1;
    (batch.first_seq > expected).then_some(BatchOutcome::Gap { expected })
}

/// The seqs of the batch central already holds, if any.
pub fn resent_range(head: ChainHead, batch: &ReceivedBatch) -> Option<RangeInclusive<u64>> {
    let held_last = batch_last(batch).min(head.seq);
    (batch.first_seq <= held_last).then_some(batch.first_seq..=held_last)
}

fn batch_last(batch: &ReceivedBatch) -> u64 {
    batch.first_seq + batch.entries.len() as u64 - 1
}

/// What the resent part of a batch says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resent {
    /// Every resent seq carries the hash central holds; their members'
    /// balances go into the answer.
    Consistent(BTreeSet<String>),
    /// A resent seq carries another hash: the register's database was
    /// restored or replaced. Nothing is applied.
    Reused {
        conflict: NewConflict,
        outcome: BatchOutcome,
    },
}

/// Checks the seqs central already holds against `stored` (those of
/// [`resent_range`]).
pub fn check_resent(
    head: ChainHead,
    batch: &ReceivedBatch,
    stored: &HashMap<u64, StoredSeq>,
) -> Result<Resent, CentralError> {
    let mut members = BTreeSet::new();
    let Some(range) = resent_range(head, batch) else {
        return Ok(Resent::Consistent(members));
    };
    for received in batch.entries.iter().filter(|e| range.contains(&e.seq)) {
        let Some(held) = stored.get(&received.seq) else {
            return Err(CentralError::Corrupt(format!(
                "terminal {:?} seq {} is below last_seq {} but not stored",
                batch.terminal_id, received.seq, head.seq
            )));
        };
        if held.hash != received.hash {
            return Ok(seq_reused(head, received, held.hash));
        }
        if let Some(m) = &held.credited_member {
            members.insert(m.clone());
        }
    }
    Ok(Resent::Consistent(members))
}

fn seq_reused(head: ChainHead, received: &ReceivedEntry, held: Digest32) -> Resent {
    let conflict = NewConflict {
        kind: ConflictKind::SeqReused,
        seq: Some(received.seq),
        entry_id: Some(received.entry_id),
        member: None,
        program: None,
        shortfall: None,
        detail: format!(
            "seq {} arrived with hash {} but central holds {}: the register's \
             database was restored or replaced; server_high {}",
            received.seq, received.hash, held, head.seq
        ),
    };
    Resent::Reused {
        conflict,
        outcome: BatchOutcome::SeqReused {
            server_high: head.seq,
            server_high_hash: head.hash,
        },
    }
}

/// The (sale) whose hold a redeem entry settles.
pub fn settles(entry: &LedgerEntry) -> Option<&str> {
    match entry.kind {
        EntryKind::Redeem => entry.sale_id.as_deref(),
        _ => None,
    }
}

/// Decides every entry of a batch that passed [`gap`] and [`check_resent`].
pub fn decide<'b>(
    head: ChainHead,
    batch: &'b ReceivedBatch,
    context: &BatchContext,
    received_at: jiff::Timestamp,
    resent_members: BTreeSet<String>,
) -> Decision<'b> {
    let mut run = Run {
        context,
        documents: &batch.documents,
        verifier: Verifier::new(&context.facts),
        received_at,
        at: received_at.to_string(),
        head,
        accounts: BTreeMap::new(),
        settled: HashSet::new(),
        settled_by_account: HashMap::new(),
        counted: HashSet::new(),
        writes: BatchWrites::default(),
        touched: resent_members,
    };
    let mut results = Vec::with_capacity(batch.entries.len());
    for received in &batch.entries {
        results.push(run.entry(received));
    }
    run.finish(results)
}

/// The state of a batch being decided, entry after entry.
struct Run<'b, 'c> {
    context: &'c BatchContext,
    documents: &'b BTreeMap<DocumentKey, Document>,
    verifier: Verifier<'c>,
    received_at: jiff::Timestamp,
    at: String,
    head: ChainHead,
    /// Accounts the batch applied points to, as they stand now.
    accounts: BTreeMap<AccountKey, Account>,
    /// (sale, program) of holds settled so far.
    settled: HashSet<(String, String)>,
    /// Points of settled holds by the hold's own account: an account first
    /// touched after its hold settled no longer counts it as held.
    settled_by_account: HashMap<AccountKey, i64>,
    /// Entry ids counted by this batch.
    counted: HashSet<Uuid>,
    writes: BatchWrites<'b>,
    touched: BTreeSet<String>,
}

impl<'b> Run<'b, '_> {
    fn entry(&mut self, received: &'b ReceivedEntry) -> EntryResult {
        if received.seq <= self.head.seq {
            return EntryResult::Duplicate;
        }
        let verdict = match &received.entry {
            Err(reason) => self.malformed(received, reason),
            Ok(entry) => self.well_formed(received.seq, entry),
        };
        let result = verdict.result();
        // The seq is consumed whatever the verdict; the claimed hash is
        // what the register's next entry chains onto.
        self.head = ChainHead {
            seq: received.seq,
            hash: match &received.entry {
                Ok(e) => e.hash,
                Err(_) => received.hash,
            },
        };
        result
    }

    fn malformed(&mut self, received: &'b ReceivedEntry, reason: &str) -> Verdict {
        let verdict = Verdict::Rejected(Rejection::Malformed(reason.to_string()));
        self.writes.entries.push(NewEntry {
            seq: received.seq,
            entry_id: received.entry_id,
            hash: received.hash,
            entry: None,
            verdict: verdict.clone(),
        });
        self.writes.conflicts.push(NewConflict {
            kind: ConflictKind::Rejected,
            seq: Some(received.seq),
            entry_id: Some(received.entry_id),
            member: None,
            program: None,
            shortfall: None,
            detail: reason.to_string(),
        });
        verdict
    }

    fn well_formed(&mut self, seq: u64, entry: &'b LedgerEntry) -> Verdict {
        let credited = self.context.credited(&entry.member).to_string();
        let already = self.context.counted.contains(&entry.entry_id)
            || self.counted.contains(&entry.entry_id);
        let verdict = if already {
            self.touched.insert(credited.clone());
            Verdict::Duplicate
        } else {
            match self.count(seq, entry, &credited) {
                Ok(verdict) => verdict,
                Err(rejection) => {
                    let kind = rejection.conflict_kind();
                    let conflict = self.conflict(kind, seq, entry, &credited);
                    self.writes.conflicts.push(NewConflict {
                        detail: rejection.to_string(),
                        ..conflict
                    });
                    Verdict::Rejected(rejection)
                }
            }
        };
        if verdict.status().counts() {
            self.check_clock(seq, entry, &credited);
        }
        self.writes.entries.push(NewEntry {
            seq,
            entry_id: entry.entry_id,
            hash: entry.hash,
            entry: Some((entry, credited)),
            verdict: verdict.clone(),
        });
        verdict
    }

    /// Why a new, not yet counted entry can never be applied, if it cannot.
    fn rejection(&self, seq: u64, entry: &LedgerEntry) -> Option<Rejection> {
        if entry.prev_hash != self.head.hash {
            Some(Rejection::BrokenChain {
                seq,
                last_seq: self.head.seq,
            })
        } else if !entry.hash_is_valid() {
            Some(Rejection::HashMismatch { seq })
        } else if !from_registers(entry.kind) {
            Some(Rejection::NotFromRegisters(entry.kind))
        } else if let Some(rejection) = self.rules_rejection(entry) {
            Some(rejection)
        } else if !points_fit(entry.kind, entry.points) {
            Some(Rejection::PointsOutOfRange {
                kind: entry.kind,
                points: entry.points,
            })
        } else {
            None
        }
    }

    /// Check 2: the rules version is published and has the program.
    fn rules_rejection(&self, entry: &LedgerEntry) -> Option<Rejection> {
        let version = entry.rules_version;
        match self.context.rules.get(&version) {
            Some(Some(programs)) if programs.contains(&entry.program) => None,
            Some(Some(_)) => Some(Rejection::ProgramNotInRules {
                program: entry.program.clone(),
                version,
            }),
            _ => Some(Rejection::UnpublishedRules(version)),
        }
    }

    /// Checks 1–7 in order, then counts what central credits: the entry's
    /// points, or central's figure with a `corrected` verdict.
    fn count(
        &mut self,
        seq: u64,
        entry: &LedgerEntry,
        credited: &str,
    ) -> Result<Verdict, Rejection> {
        let verified = self.verified(seq, entry, credited)?;
        let verdict = self.apply_points(seq, entry, credited, verified.credited)?;
        self.counted.insert(entry.entry_id);
        self.verifier.record(entry, credited, &verified);
        Ok(self
            .corrected(seq, entry, credited, verified)
            .unwrap_or(verdict))
    }

    /// The rejection of [`Run::rejection`], else checks 4–6 ([`verify`]).
    fn verified(
        &self,
        seq: u64,
        entry: &LedgerEntry,
        credited: &str,
    ) -> Result<verify::Verified, Rejection> {
        if let Some(rejection) = self.rejection(seq, entry) {
            return Err(rejection);
        }
        self.verifier
            .check(entry, credited, self.documents)
            .map_err(Rejection::Unverified)
    }

    /// The `corrected` verdict and its conflict, when central counted other
    /// points than the entry's.
    fn corrected(
        &mut self,
        seq: u64,
        entry: &LedgerEntry,
        credited: &str,
        verified: verify::Verified,
    ) -> Option<Verdict> {
        let reason = verified.correction?;
        let conflict = self.conflict(ConflictKind::ContextCorrected, seq, entry, credited);
        self.writes.conflicts.push(NewConflict {
            detail: reason.clone(),
            ..conflict
        });
        Some(Verdict::Corrected {
            credited: verified.credited,
            reason,
        })
    }

    /// Counts `points` (the entry's, or central's figure), settling the
    /// sale's hold first: the redemption spends what the hold reserved.
    /// Refuses (check 7), changing nothing, points that would take the
    /// balance out of range.
    fn apply_points(
        &mut self,
        seq: u64,
        entry: &LedgerEntry,
        credited: &str,
        points: i64,
    ) -> Result<Verdict, Rejection> {
        let key = (credited.to_string(), entry.program.clone());
        let balance = self.account_now(&key).balance;
        let Some(new_balance) = add_points(balance, points) else {
            return Err(Rejection::BalanceOutOfRange {
                member: credited.to_string(),
                program: entry.program.clone(),
                balance,
                points,
            });
        };
        self.touch_account(&key);
        let settled = self.settle_hold(entry);
        let account = self.accounts.entry(key).or_default();
        account.held = account.held.saturating_sub(settled);
        account.balance = new_balance;
        let after = account.available();
        self.touched.insert(credited.to_string());
        if points < 0 && after < 0 {
            let shortfall = after.saturating_neg().min(points.saturating_neg());
            let conflict = self.conflict(ConflictKind::Overdraft, seq, entry, credited);
            self.writes.conflicts.push(NewConflict {
                shortfall: Some(shortfall),
                detail: format!(
                    "{} of {} points not covered; available is now {after}",
                    shortfall, -points
                ),
                ..conflict
            });
            Ok(Verdict::Overdraft { shortfall })
        } else {
            Ok(Verdict::Applied)
        }
    }

    /// An account as it stands now: as the batch left it, or as loaded less
    /// the holds this batch already settled.
    fn account_now(&self, key: &AccountKey) -> Account {
        if let Some(account) = self.accounts.get(key) {
            return *account;
        }
        let mut account = self.context.accounts.get(key).copied().unwrap_or_default();
        let settled = self.settled_by_account.get(key).copied().unwrap_or(0);
        account.held = account.held.saturating_sub(settled);
        account
    }

    /// Brings an account into the batch as it stands in storage now.
    fn touch_account(&mut self, key: &AccountKey) {
        if !self.accounts.contains_key(key) {
            let account = self.account_now(key);
            self.accounts.insert(key.clone(), account);
        }
    }

    /// Settles the open hold of a redemption's sale; the points it held.
    fn settle_hold(&mut self, entry: &LedgerEntry) -> i64 {
        let Some(sale) = settles(entry) else {
            return 0;
        };
        let sale = (sale.to_string(), entry.program.clone());
        if self.settled.contains(&sale) {
            return 0;
        }
        let Some(Some(hold)) = self.context.sale_holds.get(&sale) else {
            return 0;
        };
        let own = (hold.member.clone(), entry.program.clone());
        let by_account = self.settled_by_account.entry(own).or_default();
        *by_account = by_account.saturating_add(hold.points);
        self.settled.insert(sale.clone());
        self.writes.settled_holds.push(sale);
        hold.points
    }

    fn check_clock(&mut self, seq: u64, entry: &LedgerEntry, credited: &str) {
        // A clock-skew conflict flags a register whose clock is wrong.
        // Central's own entries (pseudo-terminals, `@…`) carry the time of
        // the event they record, an order imported a month later included,
        // bounded where central built them (`apply::channel`).
        if entry.terminal_id.starts_with('@') {
            return;
        }
        let Some(skew) = skew_secs(&entry.occurred_at, self.received_at) else {
            return;
        };
        if skew.abs() <= CLOCK_SKEW_SECS_MAX {
            return;
        }
        let conflict = self.conflict(ConflictKind::ClockSkew, seq, entry, credited);
        self.writes.conflicts.push(NewConflict {
            detail: format!(
                "occurred_at {} is {} h {} receipt at {}; applied anyway",
                entry.occurred_at,
                skew.abs() / 3_600,
                if skew > 0 { "before" } else { "after" },
                self.at
            ),
            ..conflict
        });
    }

    /// A conflict about `entry` without shortfall or detail yet.
    fn conflict(
        &self,
        kind: ConflictKind,
        seq: u64,
        entry: &LedgerEntry,
        credited: &str,
    ) -> NewConflict {
        NewConflict {
            kind,
            seq: Some(seq),
            entry_id: Some(entry.entry_id),
            member: Some(credited.to_string()),
            program: Some(entry.program.clone()),
            shortfall: None,
            detail: String::new(),
        }
    }

    fn finish(mut self, results: Vec<EntryResult>) -> Decision<'b> {
        for ((member, program), account) in &self.accounts {
            let key = (member.clone(), program.clone());
            self.writes.balances.insert(key, account.balance);
            self.writes.changed_members.insert(member.clone());
        }
        self.writes.head = Some(self.head);
        Decision {
            results,
            writes: self.writes,
            touched: self.touched,
        }
    }
}

/// Seconds between the entry's own clock and central's receipt, if parseable.
fn skew_secs(occurred_at: &str, received: jiff::Timestamp) -> Option<i64> {
    let ts: jiff::Timestamp = occurred_at.parse().ok()?;
    Some(received.as_second() - ts.as_second())
}

#[cfg(test)]
mod tests {
    use pos_sync::protocol::UploadBatch;
    use pos_sync::testing::{self, Chain};
    use pos_sync::wire;

    use super::*;

    const T: &str = "t-1";

    fn now() -> jiff::Timestamp {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    fn chain() -> Chain {
        Chain::new(T).occurred_at("2026-11-28T11:05:00+01:00")
    }

    fn batch(entries: &[LedgerEntry]) -> ReceivedBatch {
        let b = UploadBatch {
            terminal_id: T.into(),
            first_seq: entries[0].seq,
            entries: entries.to_vec(),
            documents: testing::documents_for(entries),
        };
        wire::decode_upload(&wire::encode_upload(&b).unwrap()).unwrap()
    }

    fn context() -> BatchContext {
        let text = testing::bundle_json(1);
        let bundle = pos_points::Bundle::parse(&text, pos_points::Format::Json).unwrap();
        let main = BTreeSet::from(["main".to_string()]);
        BatchContext {
            rules: HashMap::from([(1, Some(main)), (999, None)]),
            facts: verify::Facts {
                bundles: HashMap::from([(1, std::sync::Arc::new(bundle))]),
                ..verify::Facts::default()
            },
            ..BatchContext::default()
        }
    }

    const START: ChainHead = ChainHead {
        seq: 0,
        hash: Digest32::ZERO,
    };

    fn run<'b>(b: &'b ReceivedBatch, c: &BatchContext) -> Decision<'b> {
        decide(START, b, c, now(), BTreeSet::new())
    }

    fn kinds(d: &Decision<'_>) -> Vec<ConflictKind> {
        d.writes.conflicts.iter().map(|c| c.kind).collect()
    }

    #[test]
    fn new_entries_are_applied_and_their_sums_written() {
        let mut r = chain();
        let b = batch(&[r.earn("M-1", 100), r.earn("M-1", 5)]);
        let d = run(&b, &context());
        assert_eq!(d.results, vec![EntryResult::Applied; 2]);
        let key = ("M-1".to_string(), "main".to_string());
        assert_eq!(d.writes.balances.get(&key), Some(&105));
        assert_eq!(d.writes.head.map(|h| h.seq), Some(2));
        assert!(d.touched.contains("M-1") && d.writes.conflicts.is_empty());
    }

    #[test]
    fn a_debit_past_the_balance_is_an_overdraft_applied_anyway() {
        let mut r = chain();
        let b = batch(&[r.earn("M-1", 10), r.entry(EntryKind::Redeem, "M-1", -30)]);
        let d = run(&b, &context());
        let want = EntryResult::Overdraft { shortfall: 20 };
        assert_eq!(d.results, vec![EntryResult::Applied, want]);
        assert_eq!(kinds(&d), vec![ConflictKind::Overdraft]);
        assert_eq!(d.writes.entries[1].verdict.status(), EntryStatus::Overdraft);
    }

    #[test]
    fn an_entry_id_counted_before_is_a_duplicate_that_consumes_its_seq() {
        let mut r = chain();
        let b = batch(&[r.earn("M-1", 10)]);
        let mut c = context();
        c.counted.insert(b.entries[0].entry_id);
        let d = run(&b, &c);
        assert_eq!(d.results, vec![EntryResult::Duplicate]);
        assert_eq!(d.writes.entries[0].verdict, Verdict::Duplicate);
        assert!(d.writes.balances.is_empty());
    }

    #[test]
    fn rejections_name_their_reason_and_are_conflicts() {
        let mut r = chain();
        let unknown = r.entry_with(|e| {
            e.member = "M-1".into();
            e.program = "other".into();
        });
        let b = batch(&[unknown]);
        let d = run(&b, &context());
        let reason = "program \"other\" is not in rules version 1".to_string();
        assert_eq!(d.results, vec![EntryResult::Rejected { reason }]);
        assert_eq!(kinds(&d), vec![ConflictKind::Rejected]);

        let mut r = chain();
        r.resume_after(0, Digest32([7; 32]));
        let b = batch(&[r.earn("M-1", 1)]);
        let d = run(&b, &context());
        let reason = "broken chain: prev_hash of seq 1 is not the hash of seq 0".to_string();
        assert_eq!(d.results, vec![EntryResult::Rejected { reason }]);
    }

    /// The single entry of `b`'s decision: its result, and the conflicts.
    fn rejected_reason(d: &Decision<'_>) -> String {
        let [EntryResult::Rejected { reason }] = d.results.as_slice() else {
            panic!("expected one rejection, got {:?}", d.results);
        };
        assert_eq!(kinds(d), vec![ConflictKind::Rejected]);
        assert_eq!(d.writes.conflicts[0].detail, *reason);
        assert!(d.writes.balances.is_empty(), "{:?}", d.writes.balances);
        // The seq is consumed all the same.
        assert_eq!(d.writes.head.map(|h| h.seq), Some(1));
        assert_eq!(d.writes.entries[0].verdict.status(), EntryStatus::Rejected);
        reason.clone()
    }

    #[test]
    fn check_1_adjustments_are_not_accepted_from_registers() {
        let mut r = chain();
        let b = batch(&[r.entry(EntryKind::Adjust, "M-1", -1_000_000_000_000)]);
        let reason = rejected_reason(&run(&b, &context()));
        assert_eq!(
            reason,
            "kind adjust is not accepted from registers: adjustments are an \
             administrator's, POST /v1/admin/adjustments"
        );
    }

    #[test]
    fn check_2_the_rules_version_must_be_published_and_have_the_program() {
        let mut r = chain();
        let b = batch(&[r.entry_with(|e| {
            e.member = "M-1".into();
            e.points = 10;
            e.rules_version = 999;
        })]);
        let reason = rejected_reason(&run(&b, &context()));
        assert_eq!(reason, "rules version 999 was never published");

        // A version the context never loaded is never published either.
        let mut r = chain();
        let b = batch(&[r.entry_with(|e| {
            e.member = "M-1".into();
            e.rules_version = u64::MAX;
        })]);
        let reason = rejected_reason(&run(&b, &context()));
        assert!(reason.contains("was never published"), "{reason}");
    }

    #[test]
    fn check_3_points_are_bounded_and_signed_by_kind() {
        let cases = [
            (EntryKind::Earn, ENTRY_POINTS_MAX + 1),
            (EntryKind::Earn, i64::MAX - 40),
            (EntryKind::Redeem, -ENTRY_POINTS_MAX - 1),
            (EntryKind::Redeem, 0),
            (EntryKind::ReturnEarn, i64::MIN),
            (EntryKind::ReturnRedeem, 0),
        ];
        for (kind, points) in cases {
            let mut r = chain();
            let b = batch(&[r.entry(kind, "M-1", points)]);
            let reason = rejected_reason(&run(&b, &context()));
            let want = format!("{kind} of {points} points: an entry carries at most 1000000000");
            assert!(reason.starts_with(&want), "{reason}");
        }
        for points in [ENTRY_POINTS_MAX, 0] {
            let mut r = chain();
            let b = batch(&[r.earn("M-1", points)]);
            assert_eq!(run(&b, &context()).results, vec![EntryResult::Applied]);
        }
        // Returns within the bounds pass check 3 and go on to check 4,
        // which wants the return's document (not sent here).
        for (kind, points) in [(EntryKind::ReturnEarn, 0), (EntryKind::ReturnRedeem, 1)] {
            let mut r = chain();
            let b = batch(&[r.entry(kind, "M-1", points)]);
            let reason = rejected_reason(&run(&b, &context()));
            assert_eq!(
                reason,
                format!("{kind} entry without the return_id it belongs to")
            );
        }
    }

    #[test]
    fn check_7_a_balance_never_leaves_its_range_and_nothing_else_is_touched() {
        let key = ("M-1".to_string(), "main".to_string());
        let mut c = context();
        let near = Account {
            balance: BALANCE_ABS_MAX - 10,
            held: 0,
        };
        c.accounts.insert(key.clone(), near);
        let mut r = chain();
        let b = batch(&[r.earn("M-1", 11)]);
        let reason = rejected_reason(&run(&b, &c));
        assert!(
            reason.starts_with("the balance would leave the allowed range"),
            "{reason}"
        );

        // The same debit side, and the entries after a rejected one go on.
        let mut c = context();
        let low = Account {
            balance: -BALANCE_ABS_MAX + 5,
            held: 0,
        };
        c.accounts.insert(key.clone(), low);
        let mut r = chain();
        let b = batch(&[
            r.entry(EntryKind::Redeem, "M-1", -6),
            r.entry(EntryKind::Redeem, "M-1", -5),
        ]);
        let d = run(&b, &c);
        assert!(matches!(d.results[0], EntryResult::Rejected { .. }));
        assert!(matches!(d.results[1], EntryResult::Overdraft { .. }));
        assert_eq!(d.writes.balances.get(&key), Some(&-BALANCE_ABS_MAX));
        assert_eq!(super::super::add_points(BALANCE_ABS_MAX, 1), None);
        assert_eq!(super::super::add_points(i64::MAX, 1), None);
    }

    #[test]
    fn a_redemption_settles_its_sales_hold_once() {
        let mut r = chain();
        let redeem = |r: &mut Chain, sale: &str| {
            r.entry_with(|e| {
                e.kind = EntryKind::Redeem;
                e.member = "M-1".into();
                e.points = -40;
                e.sale_id = Some(sale.into());
            })
        };
        // A sale redeems once per program (docs/sync-v2.md §3): the second
        // redemption is another sale's, which holds nothing.
        let b = batch(&[redeem(&mut r, "S-1"), redeem(&mut r, "S-2")]);
        let mut c = context();
        let key = ("M-1".to_string(), "main".to_string());
        let account = Account {
            balance: 100,
            held: 40,
        };
        c.accounts.insert(key.clone(), account);
        let hold = OpenHold {
            member: "M-1".into(),
            points: 40,
        };
        c.sale_holds
            .insert(("S-1".into(), "main".into()), Some(hold));
        let d = run(&b, &c);
        // 100 - 40 - 40: the hold's 40 are spent, not counted twice (else
        // the second redemption would overdraw).
        assert_eq!(d.results, vec![EntryResult::Applied; 2]);
        assert_eq!(d.writes.settled_holds, vec![("S-1".into(), "main".into())]);
        assert_eq!(d.writes.balances.get(&key), Some(&20));
    }

    fn batch_with(entries: &[LedgerEntry], documents: Vec<Document>) -> ReceivedBatch {
        let b = UploadBatch {
            terminal_id: T.into(),
            first_seq: entries[0].seq,
            entries: entries.to_vec(),
            documents,
        };
        wire::decode_upload(&wire::encode_upload(&b).unwrap()).unwrap()
    }

    #[test]
    fn points_the_rules_do_not_give_are_a_points_mismatch_that_consumes_the_seq() {
        let mut r = chain();
        let forged = r.earn("M-1", 50_000);
        let honest = r.earn("M-1", 5);
        let mut documents = testing::documents_for(std::slice::from_ref(&honest));
        let sale = forged.sale_id.clone().unwrap();
        let as_sold = testing::sale_document(&sale, &forged, 73, 0);
        documents.push(Document::Sale(as_sold));
        let b = batch_with(&[forged, honest], documents);
        let d = run(&b, &context());
        let reason = "earn of 50000 points for sale S-1 in program main, but rules version 1 give 73 for this sale";
        let rejected = EntryResult::Rejected {
            reason: reason.into(),
        };
        assert_eq!(d.results, vec![rejected, EntryResult::Applied]);
        assert_eq!(kinds(&d), vec![ConflictKind::PointsMismatch]);
        let key = ("M-1".to_string(), "main".to_string());
        assert_eq!(d.writes.balances.get(&key), Some(&5));
        assert_eq!(d.writes.head.map(|h| h.seq), Some(2));
    }

    #[test]
    fn a_corrected_credit_moves_the_balance_by_centrals_figure() {
        let mut r = chain();
        let b = batch(&[r.earn("M-1", 73)]);
        let mut c = context();
        let capped = testing::bundle_json(1).replace(
            "\"base_rate\": \"1\",",
            "\"base_rate\": \"1\", \"limits\": {\"member_daily_cap\": 100},",
        );
        let capped = pos_points::Bundle::parse(&capped, pos_points::Format::Json).unwrap();
        c.facts.bundles.insert(1, std::sync::Arc::new(capped));
        let day = (
            "M-1".to_string(),
            "main".to_string(),
            "2026-11-28".to_string(),
        );
        c.facts.earned_on.insert(day, 80);
        let d = run(&b, &c);
        let EntryResult::Corrected { credited, reason } = &d.results[0] else {
            panic!("expected corrected, got {:?}", d.results);
        };
        assert_eq!(*credited, 20);
        assert!(
            reason.contains("earned_today 0 is below the 80"),
            "{reason}"
        );
        assert_eq!(kinds(&d), vec![ConflictKind::ContextCorrected]);
        let key = ("M-1".to_string(), "main".to_string());
        assert_eq!(d.writes.balances.get(&key), Some(&20));
        assert_eq!(d.writes.entries[0].verdict.credited(), Some(20));
        assert_eq!(d.writes.entries[0].verdict.status(), EntryStatus::Applied);
    }

    #[test]
    fn a_day_of_clock_skew_is_a_conflict_on_an_applied_entry() {
        let mut r = Chain::new(T).occurred_at("2026-11-20T12:00:00Z");
        let b = batch(&[r.earn("M-1", 1)]);
        let d = run(&b, &context());
        assert_eq!(d.results, vec![EntryResult::Applied]);
        assert_eq!(kinds(&d), vec![ConflictKind::ClockSkew]);
    }

    #[test]
    fn a_batch_past_the_head_is_a_gap_and_a_changed_hash_a_seq_reuse() {
        let mut r = chain();
        let entries = [r.earn("M-1", 1), r.earn("M-1", 2)];
        let later = batch(&entries[1..]);
        assert_eq!(gap(START, &later), Some(BatchOutcome::Gap { expected: 1 }));
        let b = batch(&entries);
        let head = ChainHead {
            seq: 1,
            hash: entries[0].hash,
        };
        assert_eq!(resent_range(head, &b), Some(1..=1));
        let same = StoredSeq {
            hash: entries[0].hash,
            credited_member: Some("M-1".into()),
        };
        let stored = HashMap::from([(1, same.clone())]);
        let members = BTreeSet::from(["M-1".to_string()]);
        assert_eq!(
            check_resent(head, &b, &stored).unwrap(),
            Resent::Consistent(members)
        );
        let other = StoredSeq {
            hash: Digest32([9; 32]),
            ..same
        };
        let stored = HashMap::from([(1, other)]);
        let Resent::Reused { conflict, .. } = check_resent(head, &b, &stored).unwrap() else {
            panic!("expected seq_reused");
        };
        assert_eq!(conflict.kind, ConflictKind::SeqReused);
        assert!(check_resent(head, &b, &HashMap::new()).is_err());
    }

    #[test]
    fn statuses_and_kinds_keep_their_stored_names() {
        for s in EntryStatus::ALL {
            assert_eq!(EntryStatus::parse(s.as_str()), Some(s));
        }
        for k in ConflictKind::ALL {
            assert_eq!(ConflictKind::parse(k.as_str()), Some(k));
        }
        let names: Vec<_> = ConflictKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "overdraft",
                "rejected",
                "seq_reused",
                "clock_skew",
                "points_mismatch",
                "context_corrected"
            ]
        );
    }
}
