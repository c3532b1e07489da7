//! What a register does after `seq_reused` (sync spec §2): its database was
//! restored or replaced, so central holds seqs the register reused. The
//! register re-numbers its unsynced entries after central's `server_high`
//! and re-chains them onto central's hash at that seq, keeping their
//! `entry_id`s (central's exactly-once key), then resends.

use crate::entry::{Digest32, LedgerEntry};

/// The unsynced entries (in seq order) re-numbered from `server_high + 1`
/// and re-chained onto `server_high_hash`. Contents and entry ids are kept;
/// only `seq`, `prev_hash` and `hash` change.
pub fn renumber_after(
    unsynced: &[LedgerEntry],
    server_high: u64,
    server_high_hash: Digest32,
) -> Vec<LedgerEntry> {
    let mut prev = server_high_hash;
    unsynced
        .iter()
        .zip(server_high.saturating_add(1)..)
        .map(|(entry, seq)| {
            let mut e = entry.clone();
            e.seq = seq;
            e.chain_after(prev);
            prev = e.hash;
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::ChainVerifier;
    use crate::testing::Chain;

    /// Entry `seq`, chained after `prev`.
    fn entry(seq: u64, prev: Digest32, points: i64) -> LedgerEntry {
        let mut chain = Chain::new("t").occurred_at("2026-11-28T11:05:00+01:00");
        chain.resume_after(seq - 1, prev);
        chain.entry_with(|e| {
            e.member = "M-1".into();
            e.points = points;
            e.sale_id = None;
        })
    }

    #[test]
    fn renumbered_entries_chain_onto_central_and_keep_their_ids() {
        let a = entry(4, Digest32([3; 32]), 10);
        let b = entry(5, a.hash, 20);
        let central_high_hash = Digest32([8; 32]);
        let out = renumber_after(&[a.clone(), b.clone()], 9, central_high_hash);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![10, 11]);
        assert_eq!(out[0].entry_id, a.entry_id);
        assert_eq!(out[1].entry_id, b.entry_id);
        assert_eq!(out[1].points, 20);
        let mut v = ChainVerifier::resume(9, central_high_hash);
        for e in &out {
            v.push(e).unwrap();
        }
    }
}
