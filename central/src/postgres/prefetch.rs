//! What an upload batch reads, loaded in a handful of statements once its
//! locks are held, rather than a query or two per entry: over a socket
//! every query is a round trip, and a 1,000-entry batch asked some 7,000
//! of them. [`apply`](crate::apply) still asks entry by entry; the
//! `SyncTx` methods answer from here what was loaded and query the rest.
//!
//! Sound because nothing loaded can change before it is used: the rows are
//! those of the locked terminal and locked account names (the locking
//! scheme of [`super`]), and the batch's own writes come after every load
//! (`store_batch` drops the loads; the balances the answer carries are
//! loaded afresh after it, [`Prefetch::after_store`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use pos_sync::protocol::{ProgramBalance, ReceivedBatch};
use uuid::Uuid;

use super::PgTx;
use crate::apply::verify::{self, SaleRecord};
use crate::error::CentralError;

/// The loads of one batch (see the module doc).
#[derive(Default)]
pub(crate) struct Prefetch {
    /// Name → the card's member, for every name the batch uses.
    pub(crate) owners: HashMap<String, Option<String>>,
    /// Entry ids of the batch asked, and those counted for the terminal.
    asked_ids: HashSet<Uuid>,
    counted: HashSet<Uuid>,
    /// Balances and open holds of the locked names, at `now_secs`.
    names: HashSet<String>,
    balances: HashMap<(String, String), i64>,
    held: HashMap<(String, String), i64>,
    now_secs: i64,
    /// Sale ids asked (every program) and what was counted for them.
    sales_asked: HashSet<String>,
    sales: HashMap<(String, String), SaleRecord>,
}

impl Prefetch {
    pub(crate) fn counted(&self, id: Uuid) -> Option<bool> {
        self.asked_ids
            .contains(&id)
            .then(|| self.counted.contains(&id))
    }

    /// (balance, held) of a loaded name.
    pub(crate) fn account(&self, member: &str, program: &str, now: i64) -> Option<(i64, i64)> {
        if now != self.now_secs || !self.names.contains(member) {
            return None;
        }
        let key = (member.to_string(), program.to_string());
        Some((
            self.balances.get(&key).copied().unwrap_or(0),
            self.held.get(&key).copied().unwrap_or(0),
        ))
    }

    pub(crate) fn sale(&self, sale_id: &str, program: &str) -> Option<SaleRecord> {
        self.sales_asked.contains(sale_id).then(|| {
            self.sales
                .get(&(sale_id.to_string(), program.to_string()))
                .copied()
                .unwrap_or_default()
        })
    }

    /// The programs of a loaded name, as `members::member_programs` gives
    /// them (by program, available = balance − held).
    pub(crate) fn programs(&self, member: &str, now: i64) -> Option<Vec<ProgramBalance>> {
        if now != self.now_secs || !self.names.contains(member) {
            return None;
        }
        let mine: BTreeMap<&str, i64> = self
            .balances
            .iter()
            .filter(|((m, _), _)| m == member)
            .map(|((_, p), b)| (p.as_str(), *b))
            .collect();
        Some(
            mine.into_iter()
                .map(|(program, balance)| {
                    let held = self
                        .held
                        .get(&(member.to_string(), program.to_string()))
                        .copied()
                        .unwrap_or(0);
                    ProgramBalance {
                        program: program.to_string(),
                        balance,
                        available: balance.saturating_sub(held),
                        pending: 0,
                    }
                })
                .collect(),
        )
    }

    /// Balances and holds of `names` as they stand now (after the batch's
    /// writes), for the answer.
    pub(crate) fn after_store(
        tx: &PgTx<'_>,
        names: HashSet<String>,
        now_secs: i64,
    ) -> Result<Prefetch, CentralError> {
        let mut p = Prefetch {
            now_secs,
            ..Prefetch::default()
        };
        p.load_accounts(tx, names)?;
        Ok(p)
    }

    fn load_accounts(&mut self, tx: &PgTx<'_>, names: HashSet<String>) -> Result<(), CentralError> {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        for r in tx.query(
            "SELECT member, program, balance FROM balances WHERE member = ANY($1)",
            &[&list],
        )? {
            self.balances
                .insert((r.try_get(0)?, r.try_get(1)?), r.try_get(2)?);
        }
        for r in tx.query(
            "SELECT member, program, points FROM holds
             WHERE member = ANY($1) AND state = 'open' AND expires_at > $2",
            &[&list, &self.now_secs],
        )? {
            let held = self.held.entry((r.try_get(0)?, r.try_get(1)?)).or_insert(0);
            *held = held.saturating_add(r.try_get(2)?);
        }
        self.names = names;
        Ok(())
    }
}

/// Loads what `batch` will read; `owners` are the card owners the lock
/// step found (name → member).
pub(crate) fn load(
    tx: &PgTx<'_>,
    batch: &ReceivedBatch,
    owners: HashMap<String, Option<String>>,
    now_secs: i64,
) -> Result<Prefetch, CentralError> {
    let mut p = Prefetch {
        owners,
        now_secs,
        ..Prefetch::default()
    };
    let entries: Vec<_> = batch
        .entries
        .iter()
        .filter_map(|r| r.entry.as_ref().ok())
        .collect();
    let ids: Vec<&[u8]> = entries
        .iter()
        .map(|e| e.entry_id.as_bytes().as_slice())
        .collect();
    for r in tx.query(
        "SELECT entry_id FROM entries WHERE terminal_id = $1 AND entry_id = ANY($2)
           AND status IN ('applied', 'overdraft')",
        &[&batch.terminal_id, &ids],
    )? {
        p.counted.insert(super::uuid_of(r.try_get(0)?)?);
    }
    p.asked_ids = entries.iter().map(|e| e.entry_id).collect();
    p.load_accounts(tx, tx.locked.borrow().clone())?;
    let sales: HashSet<String> = entries
        .iter()
        .filter_map(|e| verify::sale_of(e, &batch.documents))
        .collect();
    let list: Vec<&str> = sales.iter().map(String::as_str).collect();
    for r in tx.query(
        "SELECT sale_id, program, kind, COUNT(*), SUM(COALESCE(credited, points))::text
         FROM entries
         WHERE terminal_id = $1 AND sale_id = ANY($2) AND status IN ('applied', 'overdraft')
         GROUP BY sale_id, program, kind",
        &[&batch.terminal_id, &list],
    )? {
        let key = (r.try_get(0)?, r.try_get(1)?);
        let kind: String = r.try_get(2)?;
        let count: i64 = r.try_get(3)?;
        let sum = super::intake::sum_of(r.try_get(4)?)?;
        super::intake::add_to_record(p.sales.entry(key).or_default(), &kind, count, sum);
    }
    p.sales_asked = sales;
    Ok(p)
}
