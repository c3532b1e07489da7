//! A full disk (SQLITE_FULL, provoked with `PRAGMA max_page_count`): the
//! sale is refused with `storage_full`, its transaction rolls back,
//! everything committed before is intact and reads keep working.

use crate::store_common::*;
use pos_agent::model::BasketLine;
use pos_agent::store::Store;

/// A sale with many lines, so a few of them fill pages quickly; sale `i`
/// is on its own day so the daily cap never stops it earning.
fn big_sale(id: &str, i: usize) -> pos_agent::model::SaleRequest {
    let lines: Vec<BasketLine> = (1..=50)
        .map(|n| {
            let mut l = line(n, "shoes", "1", "0.10");
            l.sku = format!("SKU-{n:0>40}");
            l
        })
        .collect();
    let mut req = sale(id, member("M-RICH"), lines);
    req.time = format!("2026-{:02}-{:02}T11:05:00+01:00", 1 + i / 28, 1 + i % 28);
    req
}

#[tokio::test]
async fn a_full_disk_refuses_the_sale_and_keeps_everything_before() {
    let t = store().await;
    t.store.close().await.expect("close");
    let pages: i64 = raw(t.dir.path())
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("page count");

    // Room for a few more pages only.
    let mut opts = options(t.dir.path(), &t.clock);
    opts.max_page_count = Some(u64::try_from(pages).expect("positive") + 40);
    let store = Store::open(opts).expect("reopen with a cap");

    let mut committed = Vec::new();
    let mut full = None;
    for i in 0..300 {
        let id = format!("S-{i}");
        match store.commit_sale(big_sale(&id, i)).await {
            Ok(_) => committed.push(id),
            Err(e) => {
                full = Some((id, e));
                break;
            }
        }
    }
    let (failed_id, err) = full.expect("the cap is reached within 300 sales");
    assert_eq!(err.code(), "storage_full", "{err}");
    assert!(err.is_unavailable());
    assert!(
        !committed.is_empty(),
        "some sales fit before the disk filled"
    );

    // The refused sale left nothing; everything before is intact and readable.
    let missing = store.sale(&failed_id).await.expect_err("not stored");
    assert_eq!(missing.code(), "unknown_sale");
    for id in &committed {
        let rec = store.sale(id).await.expect("committed sale readable");
        assert_eq!(rec.request.lines.len(), 50);
    }
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.sales, committed.len() as u64);
    assert_eq!(stats.ledger_entries, committed.len() as u64);
    let report = store.verify().await.expect("verify");
    assert!(report.is_ok(), "{report:?}");

    // The writer is still alive: the same refusal again, not a hang.
    let again = store
        .commit_sale(big_sale(&failed_id, committed.len()))
        .await
        .expect_err("still full");
    assert_eq!(again.code(), "storage_full");
    assert!(store.writer_health().running);
}
