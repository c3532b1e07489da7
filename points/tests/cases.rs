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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cases exists")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 40,
        "expected at least 40 cases, found {}",
        paths.len()
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            run_case(path).err().map(|why| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name}: {why}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
}
