//! Returns through the store (points spec §5): reversal with the sale's own
//! rules and context, redeemed points given back, remaining quantities,
//! idempotency. Points worked out by hand (main: 1 point per EUR, floor).

use crate::store_common::*;
use pos_agent::model::ReturnProgram;
use pos_points::{Bundle, Format};
use pos_sync::EntryKind;

fn program(reversed: i64, given_back: i64) -> Vec<ReturnProgram> {
    vec![ReturnProgram {
        program: "main".into(),
        reversed,
        given_back,
    }]
}

#[tokio::test]
async fn partial_then_full_return_reverses_exactly_what_was_earned() {
    let t = store().await;
    // 2 × 20.00 shoes + 1 × 10.00 food = 50.00: main earns 50.
    let s = t
        .sold(sale(
            "S-1",
            member("M-1"),
            vec![
                line(1, "shoes", "2", "20.00"),
                line(2, "food", "1", "10.00"),
            ],
        ))
        .await;
    assert_eq!(s.value.quote.programs[0].total, 50);

    // One shoe back: quote(50.00) − quote(30.00) = 50 − 30 = 20.
    let r1 = t.returned("S-1", "R-1", &[(1, "1")]).await;
    assert_eq!(r1.value.programs, program(20, 0));

    // More than remains, an unknown line, an unknown sale: refused.
    let err = t.return_refused("S-1", "R-2", &[(1, "2")]).await;
    assert_eq!(err.code(), "exceeds_remaining");
    let err = t.return_refused("S-1", "R-2", &[(9, "1")]).await;
    assert_eq!(err.code(), "unknown_line");
    let err = t.return_refused("S-404", "R-2", &[(1, "1")]).await;
    assert_eq!(err.code(), "unknown_sale");
    assert!(err.is_not_found());

    // Same return again: first answer; other content: conflict.
    let again = t.returned("S-1", "R-1", &[(1, "1")]).await;
    assert!(again.replay);
    assert_eq!(again.json, r1.json);
    let err = t.return_refused("S-1", "R-1", &[(2, "1")]).await;
    assert_eq!(err.code(), "conflict");

    // The rest: quote(30.00) − quote(nothing) = 30; in all 20 + 30 = 50.
    let r3 = t.returned("S-1", "R-3", &[(1, "1"), (2, "1")]).await;
    assert_eq!(r3.value.programs, program(30, 0));
    let err = t.return_refused("S-1", "R-4", &[(2, "1")]).await;
    assert_eq!(err.code(), "exceeds_remaining");

    let entries: Vec<(EntryKind, i64)> = t
        .store
        .ledger(1, 100)
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.entry.kind, r.entry.points))
        .collect();
    assert_eq!(
        entries,
        vec![
            (EntryKind::Earn, 50),
            (EntryKind::ReturnEarn, -20),
            (EntryKind::ReturnEarn, -30)
        ]
    );
    let rec = t.store.sale("S-1").await.expect("record");
    let ids: Vec<&str> = rec.returns.iter().map(|r| r.return_id.as_str()).collect();
    assert_eq!(ids, vec!["R-1", "R-3"]);
    assert_eq!(
        t.store.member("M-1").await.expect("m").programs["main"].available,
        1500
    );
}

#[tokio::test]
async fn redeemed_points_come_back_pro_rata_and_the_last_return_rounds_up() {
    let t = store().await;
    // 3 × 20.00 = 60.00, 1000 points paid (= 10.00): base floor(60 − 10) = 50.
    let mut req = sale("S-R", member("M-1"), vec![line(1, "shoes", "3", "20.00")]);
    req.redeem = vec![redeem("main", 1000)];
    let s = t.sold(req).await;
    assert_eq!(s.value.quote.programs[0].total, 50);

    // One of three back: floor(1000 × 20 / 60) = 333 given back; reversal:
    // remaining 60 → 40, paid scaled 10 → 6.67: floor(50) − floor(33.33) = 50 − 33 = 17.
    let r1 = t.returned("S-R", "R-1", &[(1, "1")]).await;
    assert_eq!(r1.value.programs, program(17, 333));
    // The last two: everything not yet given back, 1000 − 333 = 667; 33 reversed.
    let r2 = t.returned("S-R", "R-2", &[(1, "2")]).await;
    assert_eq!(r2.value.programs, program(33, 667));
    // 1500 + 50 − 1000 − 17 + 333 − 33 + 667 = 1500.
    assert_eq!(
        t.store.member("M-1").await.expect("m").programs["main"].available,
        1500
    );
    let kinds: Vec<EntryKind> = t
        .store
        .ledger(1, 100)
        .await
        .expect("ledger")
        .iter()
        .map(|r| r.entry.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            EntryKind::Earn,
            EntryKind::Redeem,
            EntryKind::ReturnEarn,
            EntryKind::ReturnRedeem,
            EntryKind::ReturnEarn,
            EntryKind::ReturnRedeem
        ]
    );
}

#[tokio::test]
async fn a_return_recomputes_with_the_sales_own_rules_version() {
    let t = store().await;
    let s = t
        .sold(sale(
            "S-1",
            member("M-1"),
            vec![line(1, "shoes", "1", "40.00")],
        ))
        .await;
    assert_eq!(s.value.quote.programs[0].total, 40);
    // Version 8 triples the base rate; the return must still use version 7.
    let v8 = common_bundle_v8();
    let summary = t
        .store
        .import(Some(v8), "test", None, None)
        .await
        .expect("v8");
    assert_eq!(summary.rules_version, Some(8));
    let r = t.returned("S-1", "R-1", &[(1, "1")]).await;
    assert_eq!(r.value.programs, program(40, 0));
    // A new sale uses version 8: 3 × 10 = 30.
    let n = t
        .sold(sale(
            "S-2",
            member("M-1"),
            vec![line(1, "shoes", "1", "10.00")],
        ))
        .await;
    assert_eq!(n.value.quote.rules_version, 8);
    assert_eq!(n.value.quote.programs[0].total, 30);
    // An older bundle than the newest is refused.
    let err = t
        .store
        .import(Some(bundle()), "test", None, None)
        .await
        .map(|s| s.rules_version);
    assert_eq!(err.expect("same v7 content is a no-op"), None);
    let mut v6 = bundle();
    v6.version = 6;
    let err = t
        .store
        .import(Some(v6), "test", None, None)
        .await
        .expect_err("older");
    assert_eq!(err.code(), "rules_outdated");
}

fn common_bundle_v8() -> Bundle {
    let text = BUNDLE
        .replace("\"version\": 7", "\"version\": 8")
        .replace("\"base_rate\": \"1\"", "\"base_rate\": \"3\"");
    Bundle::parse(&text, Format::Json).expect("v8 bundle")
}

#[tokio::test]
async fn a_guest_sale_can_be_returned_without_entries() {
    let t = store().await;
    t.sold(sale("S-G", None, vec![line(1, "shoes", "1", "40.00")]))
        .await;
    let r = t.returned("S-G", "R-G", &[(1, "1")]).await;
    assert!(r.value.programs.is_empty());
    assert!(t.store.ledger(1, 10).await.expect("ledger").is_empty());
}
