//! The documents an upload carries (protocol v2, `docs/sync-v2.md` §2),
//! read back from the store: each sale's basket exactly as quoted (so the
//! same rules give the entry's points again), what it redeemed, and for a
//! return what remained before it and what it took.

use crate::store_common::*;
use pos_sync::protocol::{Document, DocumentKey, LineQty, ProgramPoints};

#[tokio::test]
async fn documents_hold_what_central_needs_to_re_derive_every_entry() {
    let t = store().await;
    let mut req = sale(
        "S-1",
        member("M-1"),
        vec![
            line(1, "shoes", "2", "20.00"),
            line(2, "food", "1", "10.00"),
        ],
    );
    req.redeem = vec![redeem("main", 500)];
    let sold = t.sold(req).await;
    t.returned("S-1", "R-1", &[(1, "1")]).await;
    t.returned("S-1", "R-2", &[(2, "1")]).await;

    let entries: Vec<_> = t
        .store
        .ledger(1, 100)
        .await
        .expect("ledger")
        .into_iter()
        .map(|r| r.entry)
        .collect();
    let documents = t
        .store
        .documents_for(entries.clone())
        .await
        .expect("documents");
    let keys: Vec<_> = documents.keys().cloned().collect();
    assert_eq!(
        keys,
        vec![
            DocumentKey::Sale("S-1".into()),
            DocumentKey::Return("R-1".into()),
            DocumentKey::Return("R-2".into()),
        ],
        "one document per sale and return, however many entries name it"
    );

    let Some(Document::Sale(sale_doc)) = documents.get(&DocumentKey::Sale("S-1".into())) else {
        panic!("no sale document: {documents:?}")
    };
    assert_eq!(
        sale_doc.redeemed,
        vec![ProgramPoints {
            program: "main".into(),
            points: 500
        }]
    );
    // The basket as written gives the earn entry's points under its rules.
    let basket: pos_points::Basket = serde_json::from_str(&sale_doc.basket).expect("basket JSON");
    let requote = pos_points::quote(&bundle(), &basket).expect("quote");
    let earn = entries
        .iter()
        .find(|e| e.kind == pos_sync::EntryKind::Earn)
        .expect("earn");
    assert_eq!(requote.programs[0].total, earn.points);
    assert_eq!(
        requote.programs[0].total,
        sold.value.quote.programs[0].total
    );

    let Some(Document::Return(r2)) = documents.get(&DocumentKey::Return("R-2".into())) else {
        panic!("no return document R-2")
    };
    assert_eq!(r2.sale_id, "S-1");
    assert_eq!(r2.sale, *sale_doc, "a return carries its whole sale");
    assert_eq!(
        r2.remaining_before,
        vec![
            LineQty {
                line: 1,
                qty: dec("1")
            },
            LineQty {
                line: 2,
                qty: dec("1")
            },
        ],
        "R-1 took one shoe before R-2"
    );
    assert_eq!(
        r2.lines,
        vec![LineQty {
            line: 2,
            qty: dec("1")
        }]
    );
    let Some(Document::Return(r1)) = documents.get(&DocumentKey::Return("R-1".into())) else {
        panic!("no return document R-1")
    };
    assert_eq!(
        r1.remaining_before,
        vec![
            LineQty {
                line: 1,
                qty: dec("2")
            },
            LineQty {
                line: 2,
                qty: dec("1")
            },
        ]
    );
}
