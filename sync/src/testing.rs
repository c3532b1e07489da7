//! A register's chain kept in memory, for tests and benchmarks of the sync
//! path (feature `testing`). The agent's real chain lives in its store
//! (`agent/src/store/ledger.rs`), which takes seq and the last hash from
//! the database; this builds the same chain without one.

use uuid::Uuid;

use crate::{Digest32, EntryKind, LedgerEntry};

/// Appends entries to one terminal's chain: seq from 1, each entry chained
/// after the one before, program `main`, rules version 1.
#[derive(Clone, Debug)]
pub struct Chain {
    terminal_id: String,
    seq: u64,
    last: Digest32,
    occurred_at: String,
}

impl Chain {
    /// An empty chain of `terminal_id`, its entries stamped now (so central
    /// sees no clock skew).
    pub fn new(terminal_id: &str) -> Chain {
        Chain {
            terminal_id: terminal_id.to_string(),
            seq: 0,
            last: Digest32::ZERO,
            occurred_at: jiff::Timestamp::now().to_string(),
        }
    }

    /// Stamps the entries appended from now on with `occurred_at`.
    pub fn occurred_at(mut self, occurred_at: &str) -> Chain {
        self.occurred_at = occurred_at.to_string();
        self
    }

    /// The seq of the last entry appended (0 when empty).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Goes on after entry `seq` whose hash is `last`, as a register
    /// restored from a backup or re-numbered after `seq_reused` does.
    pub fn resume_after(&mut self, seq: u64, last: Digest32) {
        self.seq = seq;
        self.last = last;
    }

    /// Appends an entry of `kind` for `member`, sold as sale `S-{seq}`.
    pub fn entry(&mut self, kind: EntryKind, member: &str, points: i64) -> LedgerEntry {
        self.entry_with(|e| {
            e.kind = kind;
            e.member = member.to_string();
            e.points = points;
        })
    }

    /// Appends an earn for `member`.
    pub fn earn(&mut self, member: &str, points: i64) -> LedgerEntry {
        self.entry(EntryKind::Earn, member, points)
    }

    /// Appends an entry after `fill` has set its fields; seq, terminal and
    /// the hashes are then set here, so the chain stays whole.
    pub fn entry_with(&mut self, fill: impl FnOnce(&mut LedgerEntry)) -> LedgerEntry {
        self.seq += 1;
        let mut e = LedgerEntry {
            entry_id: Uuid::now_v7(),
            terminal_id: self.terminal_id.clone(),
            seq: self.seq,
            prev_hash: Digest32::ZERO,
            hash: Digest32::ZERO,
            kind: EntryKind::Earn,
            program: "main".into(),
            member: String::new(),
            points: 0,
            sale_id: Some(format!("S-{}", self.seq)),
            return_id: None,
            rules_version: 1,
            occurred_at: self.occurred_at.clone(),
            detail: "{}".into(),
        };
        fill(&mut e);
        e.terminal_id.clone_from(&self.terminal_id);
        e.seq = self.seq;
        e.chain_after(self.last);
        self.last = e.hash;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_chain_one_after_another() {
        let mut chain = Chain::new("reg-1").occurred_at("2026-11-28T11:05:00+01:00");
        let a = chain.earn("M-1", 10);
        let b = chain.entry_with(|e| e.seq = 99);
        assert_eq!(
            (a.seq, b.seq, chain.seq()),
            (1, 2, 2),
            "seq is the chain's, not the filler's"
        );
        assert_eq!(a.prev_hash, Digest32::ZERO);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(b.hash, b.compute_hash());
        assert_eq!(a.occurred_at, "2026-11-28T11:05:00+01:00");
    }
}
