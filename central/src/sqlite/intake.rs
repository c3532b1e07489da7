//! The loads and stores of an upload batch ([`SyncTx`]): SQL only, the
//! decisions are [`crate::apply`]'s.
//!
//! Hold states and counting entry statuses are written as literals in the
//! SQL (they are [`crate::apply::hold::HoldState`]'s and
//! [`crate::apply::EntryStatus`]'s names): SQLite uses the partial indexes
//! `holds_open` and `entries_counted_id` only when the query names the
//! values itself.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;

use pos_sync::protocol::ProgramBalance;
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::{bundles, digest_of, i64_of, members, next_rev, u64_of};
use crate::apply::verify::{MemberFacts, SaleRecord, TierSpell};
use crate::apply::{
    Account, BatchWrites, ChainHead, NewConflict, NewEntry, OpenHold, StoredSeq, SyncTx,
};
use crate::error::CentralError;

impl SyncTx for Transaction<'_> {
    fn chain_head(&self, terminal: &str) -> Result<Option<ChainHead>, CentralError> {
        let row: Option<(i64, Vec<u8>)> = self
            .prepare_cached("SELECT last_seq, last_hash FROM terminals WHERE id = ?1")?
            .query_row([terminal], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        row.map(|(seq, hash)| {
            Ok(ChainHead {
                seq: u64_of(seq, "last_seq")?,
                hash: digest_of(hash, "last_hash")?,
            })
        })
        .transpose()
    }

    fn record_contact(&self, terminal: &str, at: &str) -> Result<(), CentralError> {
        self.prepare_cached("UPDATE terminals SET last_contact = ?1 WHERE id = ?2")?
            .execute(params![at, terminal])?;
        Ok(())
    }

    fn stored_seqs(
        &self,
        terminal: &str,
        seqs: RangeInclusive<u64>,
    ) -> Result<HashMap<u64, StoredSeq>, CentralError> {
        let mut stmt = self.prepare_cached(
            "SELECT seq, hash, credited_member FROM entries
             WHERE terminal_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
        )?;
        let first = i64_of(*seqs.start(), "first_seq")?;
        let last = i64_of(*seqs.end(), "seq")?;
        let rows = stmt.query_map(params![terminal, first, last], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut stored = HashMap::new();
        for row in rows {
            let (seq, hash, credited_member) = row?;
            let hash = digest_of(hash, "hash")?;
            stored.insert(
                u64_of(seq, "seq")?,
                StoredSeq {
                    hash,
                    credited_member,
                },
            );
        }
        Ok(stored)
    }

    fn bundle_programs(&self, version: u64) -> Result<Option<BTreeSet<String>>, CentralError> {
        bundles::programs_of(self, version)
    }

    fn card_owner(&self, card: &str) -> Result<Option<String>, CentralError> {
        Ok(self
            .prepare_cached("SELECT member FROM cards WHERE card = ?1")?
            .query_row([card], |r| r.get(0))
            .optional()?)
    }

    fn is_counted(&self, terminal: &str, entry_id: Uuid) -> Result<bool, CentralError> {
        // The statuses that count (EntryStatus::counts) as literals, for the
        // partial index `entries_counted_id`.
        Ok(self
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM entries WHERE terminal_id = ?1 AND entry_id = ?2
                                AND status IN ('applied', 'overdraft'))",
            )?
            .query_row(params![terminal, entry_id.as_bytes().as_slice()], |r| {
                r.get(0)
            })?)
    }

    fn account(&self, member: &str, program: &str, now_secs: i64) -> Result<Account, CentralError> {
        let balance = self
            .prepare_cached("SELECT balance FROM balances WHERE member = ?1 AND program = ?2")?
            .query_row([member, program], |r| r.get(0))
            .optional()?
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
        Ok(self
            .prepare_cached(
                "SELECT member, points FROM holds
                 WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3
                   AND state = 'open' AND expires_at > ?4",
            )?
            .query_row(params![terminal, sale_id, program, now_secs], |r| {
                Ok(OpenHold {
                    member: r.get(0)?,
                    points: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn store_batch(
        &self,
        terminal: &str,
        writes: &BatchWrites<'_>,
        at: &str,
        now_secs: i64,
    ) -> Result<(), CentralError> {
        for row in &writes.entries {
            insert_entry(self, terminal, row, at)?;
        }
        for (sale_id, program) in &writes.settled_holds {
            settle_hold(self, terminal, sale_id, program, now_secs)?;
        }
        if let Some(head) = writes.head {
            self.prepare_cached(
                "UPDATE terminals SET last_seq = ?1, last_hash = ?2 WHERE id = ?3",
            )?
            .execute(params![
                i64_of(head.seq, "last_seq")?,
                head.hash.0.as_slice(),
                terminal
            ])?;
        }
        let mut stmt = self.prepare_cached(
            "INSERT INTO balances (member, program, opening, balance) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (member, program) DO UPDATE SET balance = excluded.balance",
        )?;
        for ((member, program), balance) in &writes.balances {
            stmt.execute(params![member, program, balance])?;
        }
        let mut stmt = self.prepare_cached(
            "INSERT INTO members (id, rev) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
        )?;
        for member in &writes.changed_members {
            let rev = next_rev(self)?;
            stmt.execute(params![member, rev])?;
        }
        self.store_conflicts(terminal, &writes.conflicts, at)
    }

    fn store_conflicts(
        &self,
        terminal: &str,
        conflicts: &[NewConflict],
        at: &str,
    ) -> Result<(), CentralError> {
        let mut stmt = self.prepare_cached(
            "INSERT INTO conflicts (kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for c in conflicts {
            let seq = c.seq.map(|s| i64_of(s, "seq")).transpose()?;
            stmt.execute(params![
                c.kind.as_str(),
                terminal,
                seq,
                c.entry_id.map(|u| u.as_bytes().to_vec()),
                c.member,
                c.program,
                c.shortfall,
                c.detail,
                at
            ])?;
        }
        Ok(())
    }

    fn published_bundle(&self, version: u64) -> Result<Option<pos_points::Bundle>, CentralError> {
        bundles::by_version(self, version)?
            .map(|signed| crate::rules::parse(&signed.bytes, signed.format))
            .transpose()
    }

    fn member_facts(&self, member: &str) -> Result<Option<MemberFacts>, CentralError> {
        let birthday: Option<Option<String>> = self
            .prepare_cached("SELECT birthday FROM members WHERE id = ?1")?
            .query_row([member], |r| r.get(0))
            .optional()?;
        let Some(birthday) = birthday else {
            return Ok(None);
        };
        let mut stmt = self.prepare_cached(
            "SELECT program, tier, since FROM tier_history WHERE member = ?1
             ORDER BY program, since, rowid",
        )?;
        let rows = stmt
            .query_map([member], |r| {
                Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let tiers = rows
            .into_iter()
            .map(|(program, tier, since)| {
                let since = since.parse().map_err(|e| {
                    CentralError::Corrupt(format!("tier_history.since {since:?}: {e}"))
                })?;
                Ok(TierSpell {
                    program,
                    tier,
                    since,
                })
            })
            .collect::<Result<Vec<_>, CentralError>>()?;
        Ok(Some(MemberFacts { birthday, tiers }))
    }

    fn earned_on(&self, member: &str, program: &str, date: &str) -> Result<i64, CentralError> {
        let sum: i64 = self
            .prepare_cached(
                "SELECT COALESCE(SUM(COALESCE(credited, points)), 0) FROM entries
                 WHERE credited_member = ?1 AND program = ?2 AND substr(occurred_at, 1, 10) = ?3
                   AND kind IN ('earn', 'return_earn') AND status IN ('applied', 'overdraft')",
            )?
            .query_row([member, program, date], |r| r.get(0))?;
        Ok(sum)
    }

    fn sale_record(
        &self,
        terminal: &str,
        sale_id: &str,
        program: &str,
    ) -> Result<SaleRecord, CentralError> {
        let mut stmt = self.prepare_cached(
            "SELECT kind, COUNT(*), COALESCE(SUM(COALESCE(credited, points)), 0) FROM entries
             WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3
               AND status IN ('applied', 'overdraft')
             GROUP BY kind",
        )?;
        let rows = stmt
            .query_map([terminal, sale_id, program], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut record = SaleRecord::default();
        for (kind, count, sum) in rows {
            let some = (count > 0).then_some(sum);
            match kind.as_str() {
                "earn" => record.earned = some,
                "redeem" => record.redeemed = some.map(i64::saturating_neg),
                "return_earn" => record.reversed = sum.saturating_neg(),
                "return_redeem" => record.given_back = sum,
                _ => {}
            }
        }
        Ok(record)
    }

    fn member_programs(
        &self,
        member: &str,
        now_secs: i64,
    ) -> Result<Vec<ProgramBalance>, CentralError> {
        members::member_programs(self, member, now_secs)
    }
}

/// One consumed seq into `entries`; a malformed entry keeps only its seq,
/// id, hash, status and reason.
fn insert_entry(
    tx: &Transaction<'_>,
    terminal_id: &str,
    row: &NewEntry<'_>,
    received_at: &str,
) -> Result<(), CentralError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO entries (terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
            credited_member, points, sale_id, return_id, rules_version, occurred_at, detail,
            status, reason, received_at, credited)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19)",
    )?;
    let e = row.entry.as_ref().map(|(e, _)| *e);
    let credited = row.entry.as_ref().map(|(_, c)| c.as_str());
    // A version beyond SQLite's integers is stored as null (the entry is
    // rejected, its reason names the version) rather than failing the batch.
    let rules_version = e.and_then(|e| i64::try_from(e.rules_version).ok());
    stmt.execute(params![
        terminal_id,
        i64_of(row.seq, "seq")?,
        row.entry_id.as_bytes().as_slice(),
        row.hash.0.as_slice(),
        e.map(|e| e.prev_hash.0.as_slice()),
        e.map(|e| e.kind.as_str()),
        e.map(|e| e.program.as_str()),
        e.map(|e| e.member.as_str()),
        credited,
        e.map(|e| e.points),
        e.and_then(|e| e.sale_id.as_deref()),
        e.and_then(|e| e.return_id.as_deref()),
        rules_version,
        e.map(|e| e.occurred_at.as_str()),
        e.map(|e| e.detail.as_str()),
        row.verdict.status().as_str(),
        row.verdict.reason(),
        received_at,
        row.verdict.credited()
    ])?;
    Ok(())
}

fn settle_hold(
    tx: &Transaction<'_>,
    terminal: &str,
    sale_id: &str,
    program: &str,
    now_secs: i64,
) -> Result<(), CentralError> {
    tx.prepare_cached(
        "UPDATE holds SET state = 'settled'
         WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3
           AND state = 'open' AND expires_at > ?4",
    )?
    .execute(params![terminal, sale_id, program, now_secs])?;
    Ok(())
}
