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

use pos_sync::protocol::{BatchOutcome, EntryResult, ReceivedBatch, ReceivedEntry};
use pos_sync::{Digest32, EntryKind, LedgerEntry};
use uuid::Uuid;

use super::{Account, AccountKey, ChainHead, ConflictKind, EntryStatus, NewConflict, OpenHold};
use super::{StoredSeq, Touched};
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
    /// Its program is in no published bundle.
    UnknownProgram(String),
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
            Rejection::UnknownProgram(program) => {
                write!(
                    f,
                    "unknown program {program:?}: not in any published bundle"
                )
            }
        }
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
}

impl Verdict {
    pub fn status(&self) -> EntryStatus {
        match self {
            Verdict::Applied => EntryStatus::Applied,
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
        }
    }

    /// The stored `reason` column.
    pub fn reason(&self) -> Option<String> {
        match self {
            Verdict::Rejected(r) => Some(r.to_string()),
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
    /// New `applied` sums, by (member, program).
    pub applied: BTreeMap<AccountKey, i64>,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchContext {
    pub programs: HashSet<String>,
    /// Name a register used → the card's member (None: not a known card).
    pub cards: HashMap<String, Option<String>>,
    /// Entry ids of the batch already stored with a counting status.
    pub counted: HashSet<Uuid>,
    /// Every (credited member, program) the batch names, before the batch.
    pub accounts: HashMap<AccountKey, Account>,
    /// (sale, program) → the terminal's open hold for it, if any.
    pub sale_holds: HashMap<(String, String), Option<OpenHold>>,
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
        } else if let Some(rejection) = self.rejection(seq, entry) {
            let conflict = self.conflict(ConflictKind::Rejected, seq, entry, &credited);
            self.writes.conflicts.push(NewConflict {
                detail: rejection.to_string(),
                ..conflict
            });
            Verdict::Rejected(rejection)
        } else {
            self.counted.insert(entry.entry_id);
            self.apply_points(seq, entry, &credited)
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
        } else if !self.context.programs.contains(&entry.program) {
            Some(Rejection::UnknownProgram(entry.program.clone()))
        } else {
            None
        }
    }

    /// Counts the points, settling the sale's hold first: the redemption
    /// spends what the hold reserved.
    fn apply_points(&mut self, seq: u64, entry: &LedgerEntry, credited: &str) -> Verdict {
        let key = (credited.to_string(), entry.program.clone());
        self.touch_account(&key);
        let settled = self.settle_hold(entry);
        let account = self.accounts.entry(key).or_default();
        account.held = account.held.saturating_sub(settled);
        let after = account.available().saturating_add(entry.points);
        account.applied = account.applied.saturating_add(entry.points);
        self.touched.insert(credited.to_string());
        if entry.points < 0 && after < 0 {
            let shortfall = after.saturating_neg().min(entry.points.saturating_neg());
            let conflict = self.conflict(ConflictKind::Overdraft, seq, entry, credited);
            self.writes.conflicts.push(NewConflict {
                shortfall: Some(shortfall),
                detail: format!(
                    "{} of {} points not covered; available is now {after}",
                    shortfall, -entry.points
                ),
                ..conflict
            });
            Verdict::Overdraft { shortfall }
        } else {
            Verdict::Applied
        }
    }

    /// Brings an account into the batch as it stands in storage now: as
    /// loaded, less the holds this batch already settled.
    fn touch_account(&mut self, key: &AccountKey) {
        if self.accounts.contains_key(key) {
            return;
        }
        let mut account = self.context.accounts.get(key).copied().unwrap_or_default();
        let settled = self.settled_by_account.get(key).copied().unwrap_or(0);
        account.held = account.held.saturating_sub(settled);
        self.accounts.insert(key.clone(), account);
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
            self.writes.applied.insert(key, account.applied);
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
    use pos_sync::testing::Chain;
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
            documents: vec![],
        };
        wire::decode_upload(&wire::encode_upload(&b).unwrap()).unwrap()
    }

    fn context() -> BatchContext {
        BatchContext {
            programs: HashSet::from(["main".to_string()]),
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
        assert_eq!(d.writes.applied.get(&key), Some(&105));
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
        assert!(d.writes.applied.is_empty());
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
        let reason = "unknown program \"other\": not in any published bundle".to_string();
        assert_eq!(d.results, vec![EntryResult::Rejected { reason }]);
        assert_eq!(kinds(&d), vec![ConflictKind::Rejected]);

        let mut r = chain();
        r.resume_after(0, Digest32([7; 32]));
        let b = batch(&[r.earn("M-1", 1)]);
        let d = run(&b, &context());
        let reason = "broken chain: prev_hash of seq 1 is not the hash of seq 0".to_string();
        assert_eq!(d.results, vec![EntryResult::Rejected { reason }]);
    }

    #[test]
    fn a_redemption_settles_its_sales_hold_once() {
        let mut r = chain();
        let redeem = |r: &mut Chain| {
            r.entry_with(|e| {
                e.kind = EntryKind::Redeem;
                e.member = "M-1".into();
                e.points = -40;
                e.sale_id = Some("S-1".into());
            })
        };
        let b = batch(&[redeem(&mut r), redeem(&mut r)]);
        let mut c = context();
        let key = ("M-1".to_string(), "main".to_string());
        let account = Account {
            opening: 100,
            applied: 0,
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
        // 100 - 40 - 40: the hold's 40 are spent, not counted twice.
        assert_eq!(d.results, vec![EntryResult::Applied; 2]);
        assert_eq!(d.writes.settled_holds, vec![("S-1".into(), "main".into())]);
        assert_eq!(d.writes.applied.get(&key), Some(&-80));
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
        assert_eq!(names, ["overdraft", "rejected", "seq_reused", "clock_skew"]);
    }
}
