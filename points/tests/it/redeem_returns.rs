//! Redemption checks (spec §6) and returns (spec §5) on a small program.

use std::collections::BTreeMap;

use pos_points::{Basket, Bundle, Format, quote, redeem, returns};
use rust_decimal_macros::dec;

fn bundle() -> Bundle {
    Bundle::parse(
        r#"{"version": 4, "programs": [
            {"id": "main", "currency": "EUR", "base_rate": "1",
             "rules": [{"id": "shoes", "kind": "per_unit", "value": "1", "match": {"categories": ["shoes"]}},
                       {"id": "visit", "kind": "fixed", "value": "10"}],
             "redeem": {"points_per_unit": 100, "min_points": 500, "step": 100, "max_share": "0.5", "offline_allowance": 2000}},
            {"id": "plain", "currency": "EUR", "base_rate": "2"}]}"#,
        Format::Json,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sale() -> Basket {
    Basket::parse_json(
        r#"{"sale_id": "S-1", "time": "2026-11-25T12:00:00Z",
            "member": {"id": "M-1", "programs": {"main": {}, "plain": {}}},
            "paid_with_points": "10.00",
            "lines": [{"line": 1, "sku": "SH", "category": "shoes", "qty": "3", "unit_price": "20.00", "discount": "6.00"},
                      {"line": 2, "sku": "G", "category": "groceries", "qty": "1", "unit_price": "16.00"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn refusal_codes_are_the_spec_table() {
    use redeem::Refusal::*;
    let codes: Vec<&str> = [
        BelowMinimum,
        NotAStep,
        ExceedsMaxShare,
        InsufficientPoints,
        OfflineAllowanceExceeded,
        MemberBlocked,
        NotRedeemable,
    ]
    .iter()
    .map(|r| r.code())
    .collect();
    assert_eq!(
        codes,
        [
            "below_minimum",
            "not_a_step",
            "exceeds_max_share",
            "insufficient_points",
            "offline_allowance_exceeded",
            "member_blocked",
            "not_redeemable"
        ]
    );
}

#[test]
fn redeem_checks() {
    let bundle = bundle();
    let main = bundle.program("main").expect("main");
    let plain = bundle.program("plain").expect("plain");
    use redeem::Refusal::*;
    // Basket 70.00: at most 0.5 × 70.00 = 35.00 → 3500 points.
    assert_eq!(redeem::check(plain, 500, dec!(70.00)), Err(NotRedeemable));
    assert_eq!(redeem::check(main, 400, dec!(70.00)), Err(BelowMinimum));
    assert_eq!(redeem::check(main, -100, dec!(70.00)), Err(BelowMinimum));
    assert_eq!(redeem::check(main, 550, dec!(70.00)), Err(NotAStep));
    assert_eq!(
        redeem::check(main, 3500, dec!(70.00)),
        Ok(()),
        "exactly the max share is allowed"
    );
    assert_eq!(redeem::check(main, 3600, dec!(70.00)), Err(ExceedsMaxShare));
    assert_eq!(redeem::check(main, 500, dec!(70.00)), Ok(()));
    assert_eq!(redeem::currency_value(main, 1250), Some(dec!(12.5)));
    assert_eq!(redeem::currency_value(plain, 1250), None);
}

#[test]
fn full_return_reverses_the_sale_and_partial_returns_add_up() {
    let bundle = bundle();
    let sale = sale();
    // Amounts: shoes 3 × 20 − 6 = 54, groceries 16; total 70.
    // main: E_base = 70 − 10 = 60 → 60; shoes 54 → 54; visit 10 → 124.
    // plain: 60 × 2 = 120.
    let sold = quote(&bundle, &sale).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sold.programs.iter().map(|p| p.total).collect::<Vec<_>>(),
        [124, 120]
    );

    let all = BTreeMap::from([(1, dec!(3)), (2, dec!(1))]);
    let one_shoe_back = BTreeMap::from([(1, dec!(2)), (2, dec!(1))]);
    let none = BTreeMap::new();
    // One of three shoes back: discount pro-rated to 4.00, shoes amount 2 × 20 − 4 = 36,
    // remaining 52 of 70, paid_with_points 10 × 52 / 70 = 7.428571… → 7.43.
    // main after: E_base = 52 − 7.43 = 44.57 → 44; shoes 36; visit 10 → 90; reversed 124 − 90 = 34.
    // plain after: 44.57 × 2 = 89.14 → 89; reversed 120 − 89 = 31.
    let first =
        returns::reversal(&bundle, &sale, &all, &one_shoe_back).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        first,
        BTreeMap::from([("main".to_owned(), 34), ("plain".to_owned(), 31)])
    );
    let rest =
        returns::reversal(&bundle, &sale, &one_shoe_back, &none).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rest,
        BTreeMap::from([("main".to_owned(), 90), ("plain".to_owned(), 89)])
    );
    let full = returns::reversal(&bundle, &sale, &all, &none).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        full,
        BTreeMap::from([("main".to_owned(), 124), ("plain".to_owned(), 120)])
    );
}

#[test]
fn returns_refuse_unknown_lines_and_quantities_beyond_the_sale() {
    let bundle = bundle();
    let sale = sale();
    let all = BTreeMap::from([(1, dec!(3)), (2, dec!(1))]);
    let unknown = BTreeMap::from([(9, dec!(1))]);
    let too_many = BTreeMap::from([(1, dec!(4))]);
    let error =
        returns::reversal(&bundle, &sale, &all, &unknown).expect_err("line 9 is not in the sale");
    assert!(
        error
            .to_string()
            .contains("line 9 is not a line of the sale"),
        "{error}"
    );
    let error = returns::reversal(&bundle, &sale, &too_many, &all).expect_err("4 of 3 shoes");
    assert!(
        error
            .to_string()
            .contains("line 1: remaining quantity must be between 0 and the 3 sold"),
        "{error}"
    );
}
