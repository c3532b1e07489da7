//! Upload: unsynced entries in seq order, in batches of at most 1,000
//! entries or 4 MiB with their sale and return documents, until none is
//! left (sync spec §2, protocol v2: `docs/sync-v2.md` §2).
//!
//! Every answer is recorded before the next batch is read: per-entry
//! results and central's balances in one store transaction
//! ([`Store::settle_upload`]); `gap` resends from the seq central expects
//! (entries already marked synced here included: central lost them);
//! `seq_reused` rebases the unsynced entries after central's high seq and
//! sends them again. The worker only reads the ledger and writes through
//! the store's bounded writer, so a sale never waits for sync.

use std::collections::BTreeMap;

use pos_sync::protocol::{
    BATCH_ENTRIES_MAX, BatchOutcome, Document, DocumentKey, EntryResult, UploadAnswer, UploadBatch,
};
use pos_sync::{Digest32, EntryKind, LedgerEntry, SyncClient, SyncError, wire};

use crate::store::Store;
use crate::store::sync::{CentralBalance, EntryVerdict, Settlement};
use crate::sync_worker::SyncWorkerError;
use crate::sync_worker::holds::OwnHolds;
use crate::sync_worker::report::OverdraftNote;

/// Most `seq_reused` rebases in one drain. One is expected after a restore;
/// a second may follow if central moved on meanwhile. More means the two
/// sides disagree in a way a rebase cannot fix: stop and report rather
/// than re-number forever.
pub const REBASES_PER_DRAIN_MAX: u32 = 3;
/// Most batches in one drain (100,000 entries at the full batch size):
/// bounds one cycle so downloads and health updates still happen during a
/// very long catch-up; the next cycle continues where this one stopped.
pub const BATCHES_PER_DRAIN_MAX: u32 = 100;

/// What one drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainSummary {
    pub batches: u32,
    pub synced: u64,
    pub rejected: u64,
    /// Entries central credited with another figure (`corrected`).
    pub corrected: u64,
    pub rebases: u32,
    pub gaps: u32,
    pub overdrafts: Vec<OverdraftNote>,
    /// Stopped at [`BATCHES_PER_DRAIN_MAX`] with entries left.
    pub more: bool,
}

/// Uploads until no unsynced entry is left (or the per-drain bound).
pub async fn drain(
    store: &Store,
    client: &SyncClient,
    terminal_id: &str,
    own: &OwnHolds,
) -> Result<DrainSummary, SyncWorkerError> {
    let mut summary = DrainSummary::default();
    // Set by `gap`: send the ledger from this seq, synced entries included.
    let mut resend_from: Option<u64> = None;
    loop {
        if summary.batches >= BATCHES_PER_DRAIN_MAX {
            summary.more = true;
            return Ok(summary);
        }
        let Some(batch) = next_batch(store, terminal_id, resend_from.take()).await? else {
            return Ok(summary);
        };
        let answer = client.upload(&batch).await?;
        summary.batches += 1;
        match answer.outcome {
            BatchOutcome::Entries(ref results) => {
                settle(store, &batch, results, &answer, own, &mut summary).await?;
            }
            BatchOutcome::Gap { expected } => {
                resend_from = Some(resend_after_gap(expected, batch.first_seq, &mut summary)?);
            }
            BatchOutcome::SeqReused {
                server_high,
                server_high_hash,
            } => rebase(store, server_high, server_high_hash, &mut summary).await?,
        }
    }
}

/// The next batch: the unsynced entries, or after a `gap` the ledger from
/// `resend_from` on; `None` when there is nothing to send.
async fn next_batch(
    store: &Store,
    terminal_id: &str,
    resend_from: Option<u64>,
) -> Result<Option<UploadBatch>, SyncWorkerError> {
    let batch_max = u32::try_from(BATCH_ENTRIES_MAX).unwrap_or(u32::MAX);
    let mut entries = match resend_from {
        Some(from) => store
            .ledger(from, batch_max)
            .await?
            .into_iter()
            .map(|row| row.entry)
            .collect(),
        None => store.unsynced(batch_max).await?,
    };
    if entries.is_empty() {
        return Ok(None);
    }
    let documents = store.documents_for(entries.clone()).await?;
    cut_batch(&mut entries, &documents)?;
    let Some(first_seq) = entries.first().map(|e| e.seq) else {
        return Ok(None);
    };
    Ok(Some(UploadBatch::assemble(
        terminal_id.to_string(),
        first_seq,
        entries,
        &documents,
    )))
}

/// Central lost entries before `first_seq`: where to resend from. A `gap`
/// that does not point before the batch is a protocol error.
fn resend_after_gap(
    expected: u64,
    first_seq: u64,
    summary: &mut DrainSummary,
) -> Result<u64, SyncWorkerError> {
    if expected >= first_seq || expected == 0 {
        return Err(SyncError::Protocol(format!(
            "central answered gap {{expected: {expected}}} to a batch starting at seq {first_seq}"
        ))
        .into());
    }
    tracing::warn!(
        message = "Central expects earlier entries; resending.",
        expected,
        first_seq
    );
    summary.gaps += 1;
    Ok(expected)
}

/// `seq_reused`: re-numbers the unsynced entries after central's high seq,
/// at most [`REBASES_PER_DRAIN_MAX`] times per drain.
async fn rebase(
    store: &Store,
    server_high: u64,
    server_high_hash: Digest32,
    summary: &mut DrainSummary,
) -> Result<(), SyncWorkerError> {
    if summary.rebases >= REBASES_PER_DRAIN_MAX {
        return Err(SyncError::Protocol(format!(
            "central answered seq_reused {} times in one drain (server_high {server_high}); \
             giving up until the next cycle",
            summary.rebases + 1
        ))
        .into());
    }
    let moved = store.rebase(server_high, server_high_hash).await?;
    summary.rebases += 1;
    tracing::warn!(
        message = "Central holds other entries under our seqs (database restored?): unsynced entries re-numbered after central's high seq.",
        server_high,
        moved
    );
    Ok(())
}

/// Keeps the longest prefix that is one batch: consecutive seqs, at most
/// 1,000 entries and 1 MiB encoded.
fn cut_batch(
    entries: &mut Vec<LedgerEntry>,
    documents: &BTreeMap<DocumentKey, Document>,
) -> Result<(), SyncWorkerError> {
    let fits = wire::batch_prefix_len(entries, documents);
    if let (0, Some(first)) = (fits, entries.first()) {
        return Err(SyncError::Protocol(format!(
            "ledger entry seq {} alone is larger than a batch may be",
            first.seq
        ))
        .into());
    }
    let consecutive = entries
        .windows(2)
        .position(|w| w[1].seq != w[0].seq + 1)
        .map_or(entries.len(), |i| i + 1);
    entries.truncate(fits.min(consecutive));
    Ok(())
}

/// Records central's per-entry results and balances for one batch, in
/// one store transaction.
async fn settle(
    store: &Store,
    batch: &UploadBatch,
    results: &[EntryResult],
    answer: &UploadAnswer,
    own: &OwnHolds,
    summary: &mut DrainSummary,
) -> Result<(), SyncWorkerError> {
    if results.len() != batch.entries.len() {
        return Err(SyncError::Protocol(format!(
            "central answered {} results for a batch of {} entries",
            results.len(),
            batch.entries.len()
        ))
        .into());
    }
    let mut verdicts = Vec::with_capacity(results.len());
    for (entry, result) in batch.entries.iter().zip(results) {
        let settlement = settlement(entry, result, summary);
        // Central settled (or, rejected, never will settle) the hold of
        // this redemption: it is no longer ours to add back.
        if entry.kind == EntryKind::Redeem
            && let Some(sale_id) = &entry.sale_id
        {
            own.remove(sale_id, &entry.program);
        }
        verdicts.push(EntryVerdict {
            seq: entry.seq,
            entry_id: entry.entry_id,
            settlement,
        });
    }
    let settled = store
        .settle_upload(verdicts, central_balances(answer, own))
        .await?;
    summary.synced += settled.synced;
    summary.rejected += settled.dead;
    tracing::debug!(
        message = "Batch settled.",
        first_seq = batch.first_seq,
        entries = batch.entries.len(),
        synced = settled.synced,
        dead = settled.dead,
        already_settled = settled.already_settled,
        balances = settled.balances_updated
    );
    Ok(())
}

/// What central's result means for one entry here; an overdraft is noted
/// in `summary` (the sale stands, the entry is synced).
fn settlement(entry: &LedgerEntry, result: &EntryResult, summary: &mut DrainSummary) -> Settlement {
    match result {
        EntryResult::Applied | EntryResult::Duplicate => Settlement::Synced,
        EntryResult::Corrected { credited, reason } => {
            tracing::warn!(
                message = "Central credited another figure than this register's; the balance follows central.",
                seq = entry.seq,
                member = %entry.member,
                program = %entry.program,
                points = entry.points,
                credited,
                %reason
            );
            summary.corrected += 1;
            Settlement::Corrected {
                credited: *credited,
                reason: reason.clone(),
            }
        }
        EntryResult::Overdraft { shortfall } => {
            tracing::warn!(
                message = "Overdraft: a redemption exceeded central's balance; the sale stands.",
                seq = entry.seq,
                member = %entry.member,
                program = %entry.program,
                shortfall
            );
            summary.overdrafts.push(OverdraftNote {
                seq: entry.seq,
                entry_id: entry.entry_id.to_string(),
                member: entry.member.clone(),
                program: entry.program.clone(),
                shortfall: *shortfall,
            });
            Settlement::Synced
        }
        EntryResult::Rejected { reason } => {
            tracing::warn!(
                message = "Central rejected an entry; kept as a dead letter.",
                seq = entry.seq,
                entry_id = %entry.entry_id,
                %reason
            );
            Settlement::Dead(reason.clone())
        }
    }
}

/// Central's balances from the answer, with this register's own open
/// holds added back to `available` (see [`OwnHolds`] for why).
fn central_balances(answer: &UploadAnswer, own: &OwnHolds) -> Vec<CentralBalance> {
    answer
        .balances
        .iter()
        .flat_map(|m| {
            m.programs.iter().map(|p| CentralBalance {
                member: m.member.clone(),
                program: p.program.clone(),
                available: p
                    .available
                    .saturating_add(own.points(&m.member, &p.program)),
                pending: p.pending,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_sync::Digest32;
    use pos_sync::protocol::DETAIL_BYTES_MAX;
    use pos_sync::testing::Chain;

    /// Entry `seq` with a detail of `detail_bytes` (not chained to its
    /// neighbours: batching reads seqs and sizes only).
    fn entry(seq: u64, detail_bytes: usize) -> LedgerEntry {
        let mut chain = Chain::new("t").occurred_at("2026-11-28T11:05:00+01:00");
        chain.resume_after(seq - 1, Digest32::ZERO);
        chain.entry_with(|e| {
            e.member = "M-1".into();
            e.points = 1;
            e.sale_id = None;
            e.detail = "x".repeat(detail_bytes);
        })
    }

    #[test]
    fn batches_stop_at_1000_entries_4_mib_and_the_first_hole() {
        let mut many: Vec<_> = (1..=1_500).map(|s| entry(s, 10)).collect();
        cut_batch(&mut many, &BTreeMap::new()).unwrap();
        assert_eq!(many.len(), BATCH_ENTRIES_MAX);

        // 64 KiB details: 4 MiB holds fewer than 64 of them.
        let mut big: Vec<_> = (1..=100).map(|s| entry(s, DETAIL_BYTES_MAX)).collect();
        cut_batch(&mut big, &BTreeMap::new()).unwrap();
        assert!(big.len() < 64 && !big.is_empty(), "{}", big.len());
        let bytes: usize = big.iter().map(wire::entry_encoded_len).sum();
        assert!(bytes <= pos_sync::protocol::BATCH_BYTES_MAX);

        let mut holed = vec![entry(4, 1), entry(5, 1), entry(7, 1)];
        cut_batch(&mut holed, &BTreeMap::new()).unwrap();
        assert_eq!(holed.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    }
}
