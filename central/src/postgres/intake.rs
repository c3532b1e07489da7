//! The loads and stores of an upload batch ([`SyncTx`]) on PostgreSQL:
//! SQL only, the decisions are [`crate::apply`]'s. The chain head is read
//! `FOR UPDATE` and every balance only once its account name is locked
//! (the locking scheme of [`super`]).

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;

use pos_sync::protocol::ProgramBalance;
use uuid::Uuid;

use super::locks::{self, RevKind};
use super::prefetch::Prefetch;
use super::{PgTx, bundles, digest_of, i64_of, members, u64_of};
use crate::apply::verify::{MemberFacts, SaleRecord, TierSpell};
use crate::apply::{
    Account, BatchWrites, ChainHead, NewConflict, NewEntry, OpenHold, StoredSeq, SyncTx,
};
use crate::error::CentralError;

impl SyncTx for PgTx<'_> {
    fn chain_head(&self, terminal: &str) -> Result<Option<ChainHead>, CentralError> {
        let row = self.query_opt(
            "SELECT last_seq, last_hash FROM terminals WHERE id = $1 FOR UPDATE",
            &[&terminal],
        )?;
        row.map(|r| {
            Ok(ChainHead {
                seq: u64_of(r.try_get(0)?, "last_seq")?,
                hash: digest_of(r.try_get(1)?, "last_hash")?,
            })
        })
        .transpose()
    }

    fn record_contact(&self, terminal: &str, at: &str) -> Result<(), CentralError> {
        self.execute(
            "UPDATE terminals SET last_contact = $1 WHERE id = $2",
            &[&at, &terminal],
        )?;
        Ok(())
    }

    fn stored_seqs(
        &self,
        terminal: &str,
        seqs: RangeInclusive<u64>,
    ) -> Result<HashMap<u64, StoredSeq>, CentralError> {
        let first = i64_of(*seqs.start(), "first_seq")?;
        let last = i64_of(*seqs.end(), "seq")?;
        let rows = self.query(
            "SELECT seq, hash, credited_member FROM entries
             WHERE terminal_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[&terminal, &first, &last],
        )?;
        let mut stored = HashMap::new();
        for r in rows {
            stored.insert(
                u64_of(r.try_get(0)?, "seq")?,
                StoredSeq {
                    hash: digest_of(r.try_get(1)?, "hash")?,
                    credited_member: r.try_get(2)?,
                },
            );
        }
        Ok(stored)
    }

    fn bundle_programs(&self, version: u64) -> Result<Option<BTreeSet<String>>, CentralError> {
        bundles::programs_of(self, version)
    }

    fn card_owner(&self, card: &str) -> Result<Option<String>, CentralError> {
        if let Some(owner) = self
            .prefetch
            .borrow()
            .as_ref()
            .and_then(|p| p.owners.get(card))
        {
            return Ok(owner.clone());
        }
        self.query_opt("SELECT member FROM cards WHERE card = $1", &[&card])?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(Into::into)
    }

    fn is_counted(&self, terminal: &str, entry_id: Uuid) -> Result<bool, CentralError> {
        if let Some(counted) = self
            .prefetch
            .borrow()
            .as_ref()
            .and_then(|p| p.counted(entry_id))
        {
            return Ok(counted);
        }
        Ok(self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM entries WHERE terminal_id = $1 AND entry_id = $2
                                AND status IN ('applied', 'overdraft'))",
                &[&terminal, &entry_id.as_bytes().as_slice()],
            )?
            .try_get(0)?)
    }

    fn account(&self, member: &str, program: &str, now_secs: i64) -> Result<Account, CentralError> {
        // Locked before: a name the batch did not name (a card moved since).
        locks::lock_names(self, [member.to_string()])?;
        let loaded = self
            .prefetch
            .borrow()
            .as_ref()
            .and_then(|p| p.account(member, program, now_secs));
        if let Some((balance, held)) = loaded {
            return Ok(Account { balance, held });
        }
        let balance = self
            .query_opt(
                "SELECT balance FROM balances WHERE member = $1 AND program = $2",
                &[&member, &program],
            )?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(0);
        let held = members::held(self, member, program, now_secs)?;
        Ok(Account { balance, held })
    }

    fn open_hold(
        &self,
        terminal: &str,
        sale_id: &str,
        program: &str,
        now_secs: i64,
    ) -> Result<Option<OpenHold>, CentralError> {
        self.query_opt(
            "SELECT member, points FROM holds
             WHERE terminal_id = $1 AND sale_id = $2 AND program = $3
               AND state = 'open' AND expires_at > $4",
            &[&terminal, &sale_id, &program, &now_secs],
        )?
        .map(|r| {
            Ok(OpenHold {
                member: r.try_get(0)?,
                points: r.try_get(1)?,
            })
        })
        .transpose()
    }

    fn store_batch(
        &self,
        terminal: &str,
        writes: &BatchWrites<'_>,
        at: &str,
        now_secs: i64,
    ) -> Result<(), CentralError> {
        // What was loaded is about to change.
        *self.prefetch.borrow_mut() = None;
        self.stored.set(true);
        insert_entries(self, terminal, &writes.entries, at)?;
        for (sale_id, program) in &writes.settled_holds {
            self.execute(
                "UPDATE holds SET state = 'settled'
                 WHERE terminal_id = $1 AND sale_id = $2 AND program = $3
                   AND state = 'open' AND expires_at > $4",
                &[&terminal, sale_id, program, &now_secs],
            )?;
        }
        if let Some(head) = writes.head {
            self.execute(
                "UPDATE terminals SET last_seq = $1, last_hash = $2 WHERE id = $3",
                &[
                    &i64_of(head.seq, "last_seq")?,
                    &head.hash.0.as_slice(),
                    &terminal,
                ],
            )?;
        }
        let (mut names, mut programs, mut values) = (Vec::new(), Vec::new(), Vec::new());
        for ((member, program), balance) in &writes.balances {
            names.push(member.as_str());
            programs.push(program.as_str());
            values.push(*balance);
        }
        if !names.is_empty() {
            self.execute(
                "INSERT INTO balances (member, program, opening, balance)
                 SELECT m, p, 0, b FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(m, p, b)
                 ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
                &[&names, &programs, &values],
            )?;
        }
        for member in &writes.changed_members {
            self.changed(member, RevKind::Upsert);
        }
        self.store_conflicts(terminal, &writes.conflicts, at)
    }

    fn store_conflicts(
        &self,
        terminal: &str,
        conflicts: &[NewConflict],
        at: &str,
    ) -> Result<(), CentralError> {
        for c in conflicts {
            let seq = c.seq.map(|s| i64_of(s, "seq")).transpose()?;
            let entry_id = c.entry_id.map(|u| u.as_bytes().to_vec());
            // A repeat (same terminal, kind, member, program and detail) is
            // counted on the row already there; `at` stays the first time.
            self.execute(
                "INSERT INTO conflicts (kind, terminal_id, seq, entry_id, member, program,
                                        shortfall, detail, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (terminal_id, kind, member, program, md5(detail)) DO UPDATE
                 SET count = conflicts.count + 1, last_at = excluded.at, seq = excluded.seq,
                     entry_id = excluded.entry_id, shortfall = excluded.shortfall",
                &[
                    &c.kind.as_str(),
                    &terminal,
                    &seq,
                    &entry_id,
                    &c.member,
                    &c.program,
                    &c.shortfall,
                    &c.detail,
                    &at,
                ],
            )?;
        }
        Ok(())
    }

    fn published_bundle(&self, version: u64) -> Result<Option<pos_points::Bundle>, CentralError> {
        bundles::by_version(self, version)?
            .map(|signed| crate::rules::parse(&signed.bytes, signed.format))
            .transpose()
    }

    fn member_facts(&self, member: &str) -> Result<Option<MemberFacts>, CentralError> {
        let Some(row) = self.query_opt("SELECT birthday FROM members WHERE id = $1", &[&member])?
        else {
            return Ok(None);
        };
        let birthday: Option<String> = row.try_get(0)?;
        let rows = self.query(
            "SELECT program, tier, since FROM tier_history WHERE member = $1
             ORDER BY program, since, id",
            &[&member],
        )?;
        let mut tiers = Vec::with_capacity(rows.len());
        for r in rows {
            let since: String = r.try_get(2)?;
            tiers.push(TierSpell {
                program: r.try_get(0)?,
                tier: r.try_get(1)?,
                since: since.parse().map_err(|e| {
                    CentralError::Corrupt(format!("tier_history.since {since:?}: {e}"))
                })?,
            });
        }
        Ok(Some(MemberFacts { birthday, tiers }))
    }

    fn earned_on(&self, member: &str, program: &str, date: &str) -> Result<i64, CentralError> {
        // NUMERIC sum, then checked back into 64 bits: no SQL overflow.
        let sum: Option<String> = self
            .query_one(
                "SELECT SUM(COALESCE(credited, points))::text FROM entries
                 WHERE credited_member = $1 AND program = $2 AND substr(occurred_at, 1, 10) = $3
                   AND kind IN ('earn', 'return_earn') AND status IN ('applied', 'overdraft')",
                &[&member, &program, &date],
            )?
            .try_get(0)?;
        sum_of(sum)
    }

    fn sale_record(
        &self,
        terminal: &str,
        sale_id: &str,
        program: &str,
    ) -> Result<SaleRecord, CentralError> {
        if let Some(record) = self
            .prefetch
            .borrow()
            .as_ref()
            .and_then(|p| p.sale(sale_id, program))
        {
            return Ok(record);
        }
        let rows = self.query(
            "SELECT kind, COUNT(*), SUM(COALESCE(credited, points))::text FROM entries
             WHERE terminal_id = $1 AND sale_id = $2 AND program = $3
               AND status IN ('applied', 'overdraft')
             GROUP BY kind",
            &[&terminal, &sale_id, &program],
        )?;
        let mut record = SaleRecord::default();
        for r in rows {
            let kind: String = r.try_get(0)?;
            add_to_record(&mut record, &kind, r.try_get(1)?, sum_of(r.try_get(2)?)?);
        }
        Ok(record)
    }

    fn member_programs(
        &self,
        member: &str,
        now_secs: i64,
    ) -> Result<Vec<ProgramBalance>, CentralError> {
        // The answer's balances: the locked names' loaded once, after the
        // batch's writes.
        if self.stored.get() && self.prefetch.borrow().is_none() {
            let names = self.locked.borrow().clone();
            *self.prefetch.borrow_mut() = Some(Prefetch::after_store(self, names, now_secs)?);
        }
        if let Some(programs) = self
            .prefetch
            .borrow()
            .as_ref()
            .and_then(|p| p.programs(member, now_secs))
        {
            return Ok(programs);
        }
        members::member_programs(self, member, now_secs)
    }
}

/// Adds one `GROUP BY kind` row of a sale's counted entries to its record.
pub(super) fn add_to_record(record: &mut SaleRecord, kind: &str, count: i64, sum: i64) {
    let some = (count > 0).then_some(sum);
    match kind {
        "earn" => record.earned = some,
        "redeem" => record.redeemed = some.map(i64::saturating_neg),
        "return_earn" => record.reversed = sum.saturating_neg(),
        "return_redeem" => record.given_back = sum,
        _ => {}
    }
}

/// A SQL `SUM` (NUMERIC, as text; NULL for no rows) as points, saturated
/// as SQLite's integer sum would fail: entries are bounded, so only a
/// corrupt table comes near.
pub(super) fn sum_of(text: Option<String>) -> Result<i64, CentralError> {
    let Some(text) = text else { return Ok(0) };
    text.parse::<i64>()
        .map_err(|_| CentralError::Corrupt(format!("a sum of points {text} leaves 64 bits")))
}

/// The batch's consumed seqs into `entries`, one statement for all; a
/// malformed entry keeps only its seq, id, hash, status and reason.
fn insert_entries(
    tx: &PgTx<'_>,
    terminal: &str,
    rows: &[NewEntry<'_>],
    received_at: &str,
) -> Result<(), CentralError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = EntryColumns::default();
    for row in rows {
        c.push(row)?;
    }
    tx.execute(
        "INSERT INTO entries (terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
            credited_member, points, sale_id, return_id, rules_version, occurred_at, detail,
            status, reason, credited, received_at)
         SELECT $1, u.*, $19 FROM unnest($2::int8[], $3::bytea[], $4::bytea[], $5::bytea[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[],
            $12::text[], $13::int8[], $14::text[], $15::text[], $16::text[], $17::text[],
            $18::int8[]) AS u",
        &[
            &terminal,
            &c.seq,
            &c.entry_id,
            &c.hash,
            &c.prev_hash,
            &c.kind,
            &c.program,
            &c.member,
            &c.credited_member,
            &c.points,
            &c.sale_id,
            &c.return_id,
            &c.rules_version,
            &c.occurred_at,
            &c.detail,
            &c.status,
            &c.reason,
            &c.credited,
            &received_at,
        ],
    )?;
    Ok(())
}

/// The columns of [`insert_entries`]' one statement.
#[derive(Default)]
struct EntryColumns<'b> {
    seq: Vec<i64>,
    entry_id: Vec<&'b [u8]>,
    hash: Vec<&'b [u8]>,
    prev_hash: Vec<Option<&'b [u8]>>,
    kind: Vec<Option<&'b str>>,
    program: Vec<Option<&'b str>>,
    member: Vec<Option<&'b str>>,
    credited_member: Vec<Option<&'b str>>,
    points: Vec<Option<i64>>,
    sale_id: Vec<Option<&'b str>>,
    return_id: Vec<Option<&'b str>>,
    rules_version: Vec<Option<i64>>,
    occurred_at: Vec<Option<&'b str>>,
    detail: Vec<Option<&'b str>>,
    status: Vec<&'static str>,
    reason: Vec<Option<String>>,
    credited: Vec<Option<i64>>,
}

impl<'b> EntryColumns<'b> {
    fn push(&mut self, row: &'b NewEntry<'b>) -> Result<(), CentralError> {
        let e = row.entry.as_ref().map(|(e, _)| *e);
        self.seq.push(i64_of(row.seq, "seq")?);
        self.entry_id.push(row.entry_id.as_bytes().as_slice());
        self.hash.push(row.hash.0.as_slice());
        self.prev_hash.push(e.map(|e| e.prev_hash.0.as_slice()));
        self.kind.push(e.map(|e| e.kind.as_str()));
        self.program.push(e.map(|e| e.program.as_str()));
        self.member.push(e.map(|e| e.member.as_str()));
        self.credited_member
            .push(row.entry.as_ref().map(|(_, c)| c.as_str()));
        self.points.push(e.map(|e| e.points));
        self.sale_id.push(e.and_then(|e| e.sale_id.as_deref()));
        self.return_id.push(e.and_then(|e| e.return_id.as_deref()));
        // A version beyond 64-bit integers is stored as null (the entry is
        // rejected, its reason names the version).
        self.rules_version
            .push(e.and_then(|e| i64::try_from(e.rules_version).ok()));
        self.occurred_at.push(e.map(|e| e.occurred_at.as_str()));
        self.detail.push(e.map(|e| e.detail.as_str()));
        self.status.push(row.verdict.status().as_str());
        self.reason.push(row.verdict.reason());
        self.credited.push(row.verdict.credited());
        Ok(())
    }
}
