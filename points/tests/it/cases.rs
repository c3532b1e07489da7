//! Worked examples of spec §3: every file in `tests/cases/` holds a bundle, a
//! basket and the quote computed by hand from the spec (the arithmetic is in
//! its `why`). Each case also runs with the bundle converted to TOML, which
//! must not change the quote. All failing cases are reported by name.

use std::path::Path;

use pos_points::{Basket, Bundle, Format, quote};
use serde_json::Value;

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let case: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    for field in ["what", "why", "bundle", "basket", "expected"] {
        if case.get(field).is_none() {
            return Err(format!("the case has no {field:?}"));
        }
    }
    let bundle_json = case["bundle"].to_string();
    let basket = Basket::parse_json(&case["basket"].to_string())
        .map_err(|e| format!("basket refused:\n{e}"))?;
    let bundle_toml =
        toml::to_string(&case["bundle"]).map_err(|e| format!("bundle has no TOML twin: {e}"))?;
    for (format, text) in [(Format::Json, bundle_json), (Format::Toml, bundle_toml)] {
        let bundle =
            Bundle::parse(&text, format).map_err(|e| format!("{format:?} bundle refused:\n{e}"))?;
        let got = quote(&bundle, &basket).map_err(|e| format!("quote failed:\n{e}"))?;
        let got = serde_json::to_value(&got).map_err(|e| format!("quote not serializable: {e}"))?;
        if got != case["expected"] {
            return Err(format!(
                "{format:?} bundle: quote differs\n  expected: {}\n  got:      {}",
                case["expected"], got
            ));
        }
    }
    Ok(())
}

#[test]
fn worked_examples() {
    crate::common::run_case_dir("cases", 40, run_case);
}
