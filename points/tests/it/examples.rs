//! The shipped examples (`examples/rules.json`, `rules.toml`, `basket.json`,
//! `basket-guest.json`) parse, the TOML bundle is the JSON one, and their
//! quotes are the ones computed by hand below.

use std::path::PathBuf;

use pos_points::{Basket, Bundle, Format, quote};
use serde_json::json;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bundle() -> Bundle {
    Bundle::parse(&example("rules.json"), Format::Json)
        .unwrap_or_else(|e| panic!("rules.json: {e}"))
}

#[test]
fn toml_bundle_is_the_json_bundle() {
    let toml = Bundle::parse(&example("rules.toml"), Format::Toml)
        .unwrap_or_else(|e| panic!("rules.toml: {e}"));
    assert_eq!(toml, bundle());
}

/// TOML's own (unquoted) local date-times in `when.from`/`to` mean what
/// the quoted strings mean; a TOML date-time that is not local is refused
/// like its string twin, naming the field.
#[test]
fn toml_native_date_times_read_as_their_strings() {
    let quoted = example("rules.toml");
    let native = quoted
        .replace("\"2026-11-01T00:00:00\"", "2026-11-01T00:00:00")
        .replace("\"2026-12-01T00:00:00\"", "2026-12-01T00:00:00");
    assert_ne!(
        native, quoted,
        "the example has quoted date-times to unquote"
    );
    let parsed = Bundle::parse(&native, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed, bundle());

    // Another field's shape error is reported alone: reading on past it
    // keeps the native date-times readable.
    let error = Bundle::parse(
        &native.replacen("base_rate = \"1\"", "base_rate = 1", 1),
        Format::Toml,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("programs[0].base_rate"), "{error}");
    assert!(!error.contains("when"), "{error}");

    // In JSON an object is simply the wrong type.
    let json = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1",
        "rules": [{"id": "r", "kind": "multiplier", "value": "2", "when": {"from": {"x": 1}}}]}]}"#;
    let error = Bundle::parse(json, Format::Json).unwrap_err().to_string();
    assert!(
        error.contains("invalid type: map, expected a local date-time"),
        "{error}"
    );

    let offset = quoted.replace("\"2026-11-01T00:00:00\"", "2026-11-01T00:00:00+01:00");
    let error = Bundle::parse(&offset, Format::Toml)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("when.from must be a local date-time YYYY-MM-DDTHH:MM:SS, got \"2026-11-01T00:00:00+01:00\""),
        "{error}"
    );
}

#[test]
fn member_basket() {
    let basket =
        Basket::parse_json(&example("basket.json")).unwrap_or_else(|e| panic!("basket.json: {e}"));
    // E (gift card excluded) = 54.99 + 1.254 × 1.99 + 2 × 7.49 + (3 × 0.89 − 0.27)
    //   = 54.99 + 2.49546 + 14.98 + 2.40 = 74.86546 → base floor 74;
    // gold: 74.86546 × 0.5 = 37.43273 → 37.
    // Saturday 11:05: double-shoes 54.99 × 1 × (2 − 1) → 54 beats organic-produce
    // 2.49546 × 3 = 7.48638 → 7 in the best group; coffee and happy hour are
    // weekday rules; birthday in November → 250; 74.87 < 100 and < 150 for the
    // last two. 74 + 37 + 54 + 250 = 415, well under both caps (20000 − 120).
    // The member earns in "main" only.
    let expected = json!({
        "rules_version": 12, "sale_id": "S-000123", "member": "M-1001",
        "programs": [{"program": "main", "base": 74, "tier_bonus": 37,
            "rules": [{"id": "double-shoes", "points": 54, "capped": false},
                      {"id": "birthday-treat", "points": 250, "capped": false}],
            "subtotal": 415, "total": 415, "limited_by": []}]
    });
    let got = quote(&bundle(), &basket).unwrap_or_else(|e| panic!("quote: {e}"));
    assert_eq!(serde_json::to_value(got).expect("serializable"), expected);
}

#[test]
fn guest_basket() {
    let basket = Basket::parse_json(&example("basket-guest.json"))
        .unwrap_or_else(|e| panic!("basket-guest.json: {e}"));
    // main: tobacco excluded, E = 7.49 + 2 × 2.19 + 12.00 = 23.87 → 23; no tier.
    // Wednesday 17:30: coffee 1 bag × 15 = 15; happy hour groceries
    // (7.49 + 4.38) × 1 × 0.5 = 5.935 → 5; sum group cap 200 not reached.
    // 23 + 15 + 5 = 43.
    // fuel: 23.87 × 0.1 = 2.387 → half_up 2; car wash 20; 22 (cap 500).
    let expected = json!({
        "rules_version": 12, "sale_id": null, "member": null,
        "programs": [
            {"program": "main", "base": 23, "tier_bonus": 0,
             "rules": [{"id": "coffee-beans-per-bag", "points": 15, "capped": false},
                       {"id": "happy-hour-groceries", "points": 5, "capped": false}],
             "subtotal": 43, "total": 43, "limited_by": []},
            {"program": "fuel", "base": 2, "tier_bonus": 0,
             "rules": [{"id": "car-wash", "points": 20, "capped": false}],
             "subtotal": 22, "total": 22, "limited_by": []}]
    });
    let got = quote(&bundle(), &basket).unwrap_or_else(|e| panic!("quote: {e}"));
    assert_eq!(serde_json::to_value(got).expect("serializable"), expected);
}

#[test]
fn quote_fields_are_in_spec_order() {
    let basket =
        Basket::parse_json(&example("basket.json")).unwrap_or_else(|e| panic!("basket.json: {e}"));
    let text =
        serde_json::to_string(&quote(&bundle(), &basket).unwrap_or_else(|e| panic!("quote: {e}")))
            .expect("serializable");
    let order = [
        "\"rules_version\"",
        "\"sale_id\"",
        "\"member\"",
        "\"programs\"",
        "\"program\"",
        "\"base\"",
        "\"tier_bonus\"",
        "\"rules\"",
        "\"id\"",
        "\"points\"",
        "\"capped\"",
        "\"subtotal\"",
        "\"total\"",
        "\"limited_by\"",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|key| {
            text.find(key)
                .unwrap_or_else(|| panic!("{key} missing in {text}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "fields out of order: {text}"
    );
}
