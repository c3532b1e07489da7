//! The ledger: gapless seq and hash chain, verification that names the
//! first broken entry, and the sync-facing operations (unsynced, mark
//! synced, dead letters, rebase after `seq_reused`).

use crate::store_common::*;
use pos_agent::model::EntryStatus;
use pos_agent::store::verify_file;
use pos_sync::{ChainVerifier, Digest32};

async fn with_sales(n: usize) -> TestStore {
    let t = store().await;
    for i in 0..n {
        // M-RICH has no daily cap issue below 100 points: 1 point each.
        t.store
            .commit_sale(sale(
                &format!("S-{i}"),
                member("M-RICH"),
                vec![line(1, "shoes", "1", "1.00")],
            ))
            .await
            .expect("sale");
    }
    t
}

#[tokio::test]
async fn entries_chain_from_seq_one_and_verify() {
    let t = with_sales(5).await;
    let rows = t.store.ledger(1, 100).await.expect("ledger");
    let mut v = ChainVerifier::default();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.entry.seq, i as u64 + 1);
        assert_eq!(r.entry.terminal_id, "store-1-reg-1");
        assert_eq!(r.entry.entry_id.get_version_num(), 7, "UUIDv7");
        v.push(&r.entry).expect("chain holds");
    }
    assert_eq!(rows[0].entry.prev_hash, Digest32::ZERO);
    let report = t.store.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 5);
    // Paging: from_seq and limit.
    let page = t.store.ledger(3, 2).await.expect("page");
    let seqs: Vec<u64> = page.iter().map(|r| r.entry.seq).collect();
    assert_eq!(seqs, vec![3, 4]);
}

#[tokio::test]
async fn an_altered_entry_is_named_by_verify() {
    let t = with_sales(4).await;
    {
        let raw = raw(t.dir.path());
        raw.execute("UPDATE ledger SET points = 999 WHERE seq = 3", [])
            .expect("tamper");
    }
    let report = t.store.verify().await.expect("verify");
    assert!(report.integrity_ok);
    let broken = report.chain_break.expect("chain broken");
    assert!(broken.contains("seq 3"), "{broken}");
    assert_eq!(report.entries, 2, "entries verified before the break");
    // The same through the file-level check `db verify` uses.
    let file = verify_file(&t.dir.path().join("agent.db")).expect("verify file");
    assert!(file.chain_break.expect("broken").contains("seq 3"));
}

#[tokio::test]
async fn a_deleted_entry_is_a_gap() {
    let t = with_sales(4).await;
    {
        let raw = raw(t.dir.path());
        raw.execute("DELETE FROM ledger WHERE seq = 2", [])
            .expect("tamper");
    }
    let report = t.store.verify().await.expect("verify");
    let broken = report.chain_break.expect("gap");
    assert!(
        broken.contains("seq 3") && broken.contains("expected seq 2"),
        "{broken}"
    );
}

#[tokio::test]
async fn sync_status_dead_letters_and_rebase_keep_the_chain_verifiable() {
    let t = with_sales(4).await;
    let unsynced = t.store.unsynced(10).await.expect("unsynced");
    assert_eq!(unsynced.len(), 4);
    assert_eq!(t.store.mark_synced(2).await.expect("mark"), 2);
    let unsynced = t.store.unsynced(10).await.expect("unsynced");
    let seqs: Vec<u64> = unsynced.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![3, 4]);
    // Balances count only unsynced entries on top of the cache.
    let m = t.store.member("M-RICH").await.expect("member");
    assert_eq!(m.programs["main"].unsynced, 2);

    // Central already holds seqs up to 6 (this db was restored): 3 and 4
    // move to 7 and 8, chained after central's hash of 6, same entry ids.
    let server_hash = Digest32([9; 32]);
    let ids: Vec<_> = unsynced.iter().map(|e| e.entry_id).collect();
    assert_eq!(t.store.rebase(6, server_hash).await.expect("rebase"), 2);
    let rows = t.store.ledger(1, 100).await.expect("ledger");
    let seqs: Vec<u64> = rows.iter().map(|r| r.entry.seq).collect();
    assert_eq!(seqs, vec![1, 2, 7, 8]);
    assert_eq!(rows[2].entry.prev_hash, server_hash);
    assert_eq!(rows[2].entry.entry_id, ids[0]);
    assert_eq!(rows[3].entry.entry_id, ids[1]);
    let report = t.store.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 4);

    // New entries continue after the rebased ones.
    t.store
        .commit_sale(sale(
            "S-next",
            member("M-RICH"),
            vec![line(1, "shoes", "1", "1.00")],
        ))
        .await
        .expect("sale");
    let last = t.store.ledger(9, 1).await.expect("ledger");
    assert_eq!(last[0].entry.seq, 9);
    assert!(t.store.verify().await.expect("verify").is_ok());

    // Central rejects 7: a dead letter, no longer unsynced.
    t.store
        .dead_letter(7, "unknown program")
        .await
        .expect("dead");
    let stats = t.store.stats().await.expect("stats");
    assert_eq!((stats.dead_letters, stats.unsynced_entries), (1, 2));
    let row = t.store.ledger(7, 1).await.expect("ledger");
    assert_eq!(row[0].status, EntryStatus::Dead);
    let err = t.store.dead_letter(99, "x").await.expect_err("no entry 99");
    assert!(err.is_bad_request());
}

#[tokio::test]
async fn the_ledger_page_is_capped() {
    let t = with_sales(3).await;
    let rows = t.store.ledger(1, u32::MAX).await.expect("ledger");
    assert_eq!(rows.len(), 3, "a huge limit is capped, not an error");
    let rows = t.store.ledger(2, 0).await.expect("ledger");
    assert!(rows.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_keep_seq_gapless_and_the_chain_whole() {
    let t = store().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            // Each on its own day: the daily cap never stops an earn.
            let mut req = sale(
                &format!("S-{i}"),
                member("M-RICH"),
                vec![line(1, "shoes", "1", "3.00")],
            );
            req.time = format!("2026-{:02}-{:02}T11:05:00+01:00", 1 + i / 28, 1 + i % 28);
            store.commit_sale(req).await
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("sale");
    }
    let rows = t.store.ledger(1, 1000).await.expect("ledger");
    let seqs: Vec<u64> = rows.iter().map(|r| r.entry.seq).collect();
    assert_eq!(seqs, (1..=64).collect::<Vec<u64>>());
    let report = t.store.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");
    // 64 sales × 3 points on top of the cached 100000.
    let m = t.store.member("M-RICH").await.expect("member");
    assert_eq!(m.programs["main"].available, 100_000 + 64 * 3);
}
