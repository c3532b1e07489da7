//! Sales through the store: earning, idempotency, member resolution,
//! earned_today, and every redemption refusal (points spec §6, sync spec
//! §4). Expected points are worked out by hand from the bundle in
//! `store_common` (main: 1 point per EUR, floor, gold ×1.5, daily cap 100;
//! bonus: 2 per EUR, food excluded).

use crate::store_common::*;
use pos_agent::model::{EntryStatus, Freshness, MemberRef, MembersSnapshot};
use pos_agent::store::StoreError;
use pos_sync::EntryKind;

#[tokio::test]
async fn a_member_sale_writes_one_earn_entry_and_moves_the_balance() {
    let t = store().await;
    // 1 × 59.99 shoes: main base floor(59.99 × 1) = 59, under the daily cap.
    let req = sale("S-1", member("M-1"), vec![line(1, "shoes", "1", "59.99")]);
    let done = t.sold(req).await;
    assert!(!done.replay);
    let main = &done.value.quote.programs[0];
    assert_eq!((main.program.as_str(), main.total), ("main", 59));
    // M-1 is enrolled in main only: bonus is not quoted.
    assert_eq!(done.value.quote.programs.len(), 1);

    let rows = t.store.ledger(1, 100).await.expect("ledger");
    assert_eq!(rows.len(), 1);
    let e = &rows[0].entry;
    assert_eq!(
        (
            e.seq,
            e.kind,
            e.program.as_str(),
            e.member.as_str(),
            e.points
        ),
        (1, EntryKind::Earn, "main", "M-1", 59)
    );
    assert_eq!(e.sale_id.as_deref(), Some("S-1"));
    assert_eq!(e.rules_version, 7);
    assert_eq!(e.occurred_at, "2026-11-28T11:05:00+01:00");
    assert_eq!(rows[0].status, EntryStatus::Unsynced);
    assert!(e.hash_is_valid());

    // Balance: cache 1500 + unsynced 59.
    let b = &done.value.balances["main"];
    assert_eq!((b.available, b.unsynced), (1559, 59));
    let m = t.store.member("M-1").await.expect("member");
    assert_eq!(m.programs["main"].available, 1559);
    assert_eq!(m.freshness, Freshness::Fresh);

    let stats = t.store.stats().await.expect("stats");
    assert_eq!(
        (stats.sales, stats.points_earned, stats.unsynced_entries),
        (1, 59, 1)
    );
    assert_eq!(stats.rules_version, Some(7));
}

#[tokio::test]
async fn the_same_sale_again_gives_the_first_answer_and_other_content_conflicts() {
    let t = store().await;
    let req = sale("S-1", member("M-1"), vec![line(1, "shoes", "1", "59.99")]);
    let first = t.sold(req.clone()).await;
    let again = t.sold(req.clone()).await;
    assert!(again.replay);
    assert_eq!(again.json, first.json, "byte-identical answer");
    assert_eq!(t.store.ledger(1, 100).await.expect("ledger").len(), 1);

    let mut other = req;
    other.lines[0].qty = dec("2");
    let err = t.store.commit_sale(other).await.expect_err("conflict");
    assert_eq!(err.code(), "conflict");
    assert!(err.is_conflict());
    assert_eq!(t.store.ledger(1, 100).await.expect("ledger").len(), 1);
}

#[tokio::test]
async fn earned_today_comes_from_the_ledger_and_the_daily_cap_holds() {
    let t = store().await;
    let shoes = || vec![line(1, "shoes", "1", "59.99")];
    let a = t.sold(sale("S-A", member("M-1"), shoes())).await;
    assert_eq!(a.value.quote.programs[0].total, 59);
    // Same local day: 100 − 59 = 41 left under member_daily_cap.
    let b = t.sold(sale("S-B", member("M-1"), shoes())).await;
    assert_eq!(b.value.quote.programs[0].total, 41);
    assert_eq!(
        serde_json::to_value(&b.value.quote.programs[0].limited_by).expect("json"),
        serde_json::json!(["member_daily_cap"])
    );
    // Nothing left: the sale commits with no earn entry.
    let c = t.sold(sale("S-C", member("M-1"), shoes())).await;
    assert_eq!(c.value.quote.programs[0].total, 0);
    assert_eq!(t.store.ledger(1, 100).await.expect("ledger").len(), 2);
    // Another local day starts from 0 again.
    let mut next_day = sale("S-D", member("M-1"), shoes());
    next_day.time = "2026-11-29T09:00:00+01:00".into();
    let d = t.sold(next_day).await;
    assert_eq!(d.value.quote.programs[0].total, 59);
}

#[tokio::test]
async fn tier_comes_from_the_member_cache() {
    let t = store().await;
    // 10.00: base 10, gold tier bonus floor(10 × 0.5) = 5.
    let q = t
        .sold(sale(
            "S-G",
            member("M-GOLD"),
            vec![line(1, "shoes", "1", "10.00")],
        ))
        .await;
    let p = &q.value.quote.programs[0];
    assert_eq!((p.base, p.tier_bonus, p.total), (10, 5, 15));
    // pending comes from the cache as is.
    assert_eq!(q.value.balances["main"].pending, 7);
}

#[tokio::test]
async fn cards_resolve_to_members_and_unknown_cards_earn_under_the_token() {
    let t = store().await;
    let known = sale(
        "S-K",
        Some(MemberRef::Card("9990000010013".into())),
        vec![line(1, "shoes", "1", "59.99")],
    );
    let k = t.sold(known).await;
    assert_eq!(k.value.quote.member.as_deref(), Some("M-1"));

    // Unknown card: every program, no tier: main 59, bonus floor(59.99 × 2) = 119.
    let unknown = sale(
        "S-U",
        Some(MemberRef::Card("CARD-NEW".into())),
        vec![line(1, "shoes", "1", "59.99")],
    );
    let u = t.sold(unknown).await;
    let totals: Vec<(String, i64)> = u
        .value
        .quote
        .programs
        .iter()
        .map(|p| (p.program.clone(), p.total))
        .collect();
    assert_eq!(totals, vec![("main".into(), 59), ("bonus".into(), 119)]);
    let m = t.store.member("CARD-NEW").await.expect("card balance");
    assert!(!m.known);
    assert_eq!(m.programs["main"].available, 59);
    assert_eq!(m.programs["bonus"].available, 119);

    let err = t
        .store
        .commit_sale(sale(
            "S-X",
            member("M-NOPE"),
            vec![line(1, "shoes", "1", "1")],
        ))
        .await
        .expect_err("unknown id");
    assert_eq!(err.code(), "unknown_member");
    assert!(err.is_bad_request());
    let err = t.store.member("NOBODY").await.expect_err("no such member");
    assert_eq!(err.code(), "unknown_member");
}

#[tokio::test]
async fn a_guest_sale_commits_without_entries_and_quotes_every_program() {
    let t = store().await;
    let g = t
        .sold(sale("S-GUEST", None, vec![line(1, "shoes", "1", "59.99")]))
        .await;
    assert_eq!(g.value.quote.programs.len(), 2);
    assert!(g.value.balances.is_empty());
    assert!(t.store.ledger(1, 10).await.expect("ledger").is_empty());
    let rec = t.store.sale("S-GUEST").await.expect("record");
    assert_eq!(rec.member, None);
}

#[tokio::test]
async fn a_redemption_pays_part_of_the_sale_and_is_booked() {
    let t = store().await;
    let mut req = sale("S-R", member("M-1"), vec![line(1, "shoes", "1", "59.99")]);
    req.redeem = vec![redeem("main", 500)];
    let done = t.sold(req).await;
    // paid_with_points = 500 / 100 = 5.00; base floor(59.99 − 5.00) = 54.
    assert_eq!(done.value.quote.programs[0].total, 54);
    assert_eq!(done.value.redeemed, vec![redeem("main", 500)]);
    let kinds: Vec<(EntryKind, i64)> = t
        .store
        .ledger(1, 10)
        .await
        .expect("ledger")
        .iter()
        .map(|r| (r.entry.kind, r.entry.points))
        .collect();
    assert_eq!(
        kinds,
        vec![(EntryKind::Earn, 54), (EntryKind::Redeem, -500)]
    );
    // 1500 + 54 − 500.
    assert_eq!(done.value.balances["main"].available, 1054);
    let stats = t.store.stats().await.expect("stats");
    assert_eq!(stats.points_redeemed, 500);
    let rec = t.store.sale("S-R").await.expect("record");
    assert_eq!(rec.answer.quote, done.value.quote);
}

/// Commits `req`, expects refusal `code`, and checks nothing was stored.
async fn refused(t: &TestStore, req: pos_agent::model::SaleRequest, code: &str) -> StoreError {
    let before = t.store.stats().await.expect("stats");
    let err = t.store.commit_sale(req.clone()).await.expect_err(code);
    assert_eq!(err.code(), code, "{err}");
    let after = t.store.stats().await.expect("stats");
    assert_eq!(before, after, "a refused sale stores nothing");
    let missing = t.store.sale(&req.sale_id).await.expect_err("no sale");
    assert_eq!(missing.code(), "unknown_sale");
    err
}

fn with_redeem(
    id: &str,
    who: &str,
    amount: &str,
    program: &str,
    points: i64,
) -> pos_agent::model::SaleRequest {
    let mut req = sale(id, member(who), vec![line(1, "shoes", "1", amount)]);
    req.redeem = vec![redeem(program, points)];
    req
}

#[tokio::test]
async fn every_redemption_refusal_has_its_code_and_stores_nothing() {
    let t = store().await;
    refused(
        &t,
        with_redeem("R1", "M-1", "59.99", "main", 400),
        "below_minimum",
    )
    .await;
    refused(
        &t,
        with_redeem("R2", "M-1", "59.99", "main", 550),
        "not_a_step",
    )
    .await;
    // 0.5 × 9.99 × 100 = 499.5 < 500.
    refused(
        &t,
        with_redeem("R3", "M-1", "9.99", "main", 500),
        "exceeds_max_share",
    )
    .await;
    // 1600 > 1500 available (share allows 2999.5).
    refused(
        &t,
        with_redeem("R4", "M-1", "59.99", "main", 1600),
        "insufficient_points",
    )
    .await;
    refused(
        &t,
        with_redeem("R5", "M-BLOCKED", "59.99", "main", 500),
        "member_blocked",
    )
    .await;
    refused(
        &t,
        with_redeem("R6", "M-1", "59.99", "bonus", 500),
        "not_redeemable",
    )
    .await;
    refused(
        &t,
        with_redeem("R7", "M-1", "59.99", "nope", 500),
        "unknown_program",
    )
    .await;
    let mut guest = with_redeem("R8", "M-1", "59.99", "main", 500);
    guest.member = None;
    refused(&t, guest, "member_required").await;
    let err = refused(
        &t,
        with_redeem("R9", "M-1", "59.99", "main", 1600),
        "insufficient_points",
    )
    .await;
    assert!(err.is_conflict());
}

#[tokio::test]
async fn stale_member_data_bounds_redemptions_by_the_offline_allowance() {
    let t = store().await;
    // Fresh: 1100 is fine (allowance applies only while stale).
    t.sold(with_redeem("F1", "M-RICH", "59.99", "main", 1100))
        .await;
    // 301 s later the import (300 s freshness) is stale.
    t.clock.advance_secs(301);
    assert_eq!(
        t.store.member("M-RICH").await.expect("m").freshness,
        Freshness::Stale
    );
    // Since the last fresh data M-RICH redeemed 1100 here already: > 1000.
    refused(
        &t,
        with_redeem("S1", "M-RICH", "59.99", "main", 500),
        "offline_allowance_exceeded",
    )
    .await;
    // Fresh again (a member download), the bound starts over from now.
    let members: MembersSnapshot = serde_json::from_str(MEMBERS).expect("json");
    t.store
        .apply_member_download(members.members, Some("c1".into()))
        .await
        .expect("download");
    t.clock.advance_secs(301);
    t.sold(with_redeem("S2", "M-RICH", "59.99", "main", 600))
        .await;
    refused(
        &t,
        with_redeem("S3", "M-RICH", "59.99", "main", 500),
        "offline_allowance_exceeded",
    )
    .await;
    assert_eq!(
        t.store.sync_state("members_cursor").await.expect("cursor"),
        Some("c1".into())
    );
}

#[tokio::test]
async fn invalid_baskets_are_bad_requests_that_store_nothing() {
    let t = store().await;
    let mut bad_qty = sale("B1", member("M-1"), vec![line(1, "shoes", "-1", "5")]);
    let err = t
        .store
        .commit_sale(bad_qty.clone())
        .await
        .expect_err("negative qty");
    assert!(err.is_bad_request(), "{err}");
    assert!(err.to_string().contains("qty"), "{err}");
    bad_qty.lines[0].qty = dec("1");
    bad_qty.time = "yesterday".into();
    let err = t.store.commit_sale(bad_qty).await.expect_err("bad time");
    assert!(err.is_bad_request(), "{err}");
    assert!(err.to_string().contains("time"), "{err}");
    let err = t
        .store
        .commit_sale(sale(
            "has space",
            member("M-1"),
            vec![line(1, "shoes", "1", "5")],
        ))
        .await
        .expect_err("bad id");
    assert_eq!(err.code(), "invalid_request");
    assert!(err.to_string().contains("sale_id"), "{err}");
    assert_eq!(t.store.stats().await.expect("stats").sales, 0);
}

#[tokio::test]
async fn quote_has_no_side_effect_and_matches_the_commit() {
    let t = store().await;
    let req = sale(
        "S-Q",
        member("M-GOLD"),
        vec![line(1, "shoes", "2", "12.50")],
    );
    let quoted = t.store.quote(&req.quote_request()).await.expect("quote");
    assert_eq!(t.store.stats().await.expect("stats").sales, 0);
    let done = t.sold(req).await;
    assert_eq!(quoted, done.value.quote);
}

#[tokio::test]
async fn catalog_products_are_looked_up_by_sku() {
    let t = store().await;
    let p = t
        .store
        .product("4006381333931")
        .await
        .expect("lookup")
        .expect("known");
    assert_eq!((p.name.as_str(), p.price), ("Trail shoe", dec("59.99")));
    assert!(t.store.product("nope").await.expect("lookup").is_none());
}

#[test]
fn request_decimals_are_strict_strings_and_unknown_fields_are_refused() {
    let ok = r#"{"sale_id": "S-1", "time": "2026-11-28T11:05:00+01:00", "member": {"card": "999"},
        "lines": [{"sku": "A", "qty": "1.0", "unit_price": "2.50"}]}"#;
    let req: pos_agent::model::SaleRequest = serde_json::from_str(ok).expect("valid");
    assert_eq!(req.lines[0].qty, dec("1"));
    assert_eq!(req.lines[0].discount, dec("0"));
    for (bad, why) in [
        (r#""qty": 1"#, "a JSON number"),
        (r#""qty": "1e3""#, "an exponent"),
        (r#""qty": "+1""#, "a plus sign"),
        (r#""qty": "1_000""#, "an underscore"),
        (r#""qty": " 1""#, "a space"),
        (r#""qty": "1.123456789""#, "more than 8 decimal places"),
    ] {
        let text = ok.replace(r#""qty": "1.0""#, bad);
        let err = serde_json::from_str::<pos_agent::model::SaleRequest>(&text)
            .expect_err(why)
            .to_string();
        assert!(
            err.contains("decimal") || err.contains("string"),
            "{why}: {err}"
        );
    }
    let unknown = ok.replace(r#""sku": "A""#, r#""sku": "A", "colour": "red""#);
    let err = serde_json::from_str::<pos_agent::model::SaleRequest>(&unknown)
        .expect_err("unknown field")
        .to_string();
    assert!(err.contains("colour"), "{err}");
    let both = ok.replace(r#"{"card": "999"}"#, r#"{"card": "999", "id": "M-1"}"#);
    assert!(serde_json::from_str::<pos_agent::model::SaleRequest>(&both).is_err());
    let earned = ok.replace(r#""lines""#, r#""earned_today": {"main": 1}, "lines""#);
    let err = serde_json::from_str::<pos_agent::model::SaleRequest>(&earned)
        .expect_err("earned_today is filled by the agent")
        .to_string();
    assert!(err.contains("earned_today"), "{err}");
}

#[tokio::test]
async fn the_writer_reports_its_heartbeat_and_stops_on_close() {
    let t = store().await;
    t.sold(sale("S-1", member("M-1"), vec![line(1, "shoes", "1", "5")]))
        .await;
    let health = t.store.writer_health();
    assert!(health.running);
    assert_eq!(health.pending, 0);
    assert!(health.is_alive(std::time::Duration::from_secs(1)));
    t.store.close().await.expect("close");
    assert!(!t.store.writer_health().running);
    let err = t
        .store
        .commit_sale(sale("S-2", member("M-1"), vec![line(1, "shoes", "1", "5")]))
        .await
        .expect_err("closed");
    assert_eq!(err.code(), "unavailable");
}
