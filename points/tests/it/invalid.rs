//! Every refusal of spec §1 (bundle) and §2 (basket): each file in
//! `tests/invalid/` holds an input (a JSON value, or raw `text` for syntax
//! errors) and message fragments that must all appear in the error. The
//! fragments name the offending field by path and, where known, by program
//! and rule id; optional `forbidden` fragments must not appear. All failing cases are reported by name.

use std::path::Path;

use pos_points::{Basket, Bundle, Format};
use serde_json::Value;

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let case: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let format = match case["format"].as_str() {
        Some("toml") => Format::Toml,
        Some("json") => Format::Json,
        other => return Err(format!("unknown format {other:?}")),
    };
    let input = match (&case["text"], &case["input"]) {
        (Value::String(text), _) => text.clone(),
        (_, value) if !value.is_null() => match format {
            Format::Json => value.to_string(),
            Format::Toml => toml::to_string(value).map_err(|e| format!("no TOML form: {e}"))?,
        },
        _ => return Err("the case has neither text nor input".to_owned()),
    };
    let result = match case["kind"].as_str() {
        Some("bundle") => Bundle::parse(&input, format).map(|_| ()),
        Some("basket") => Basket::parse_json(&input).map(|_| ()),
        other => return Err(format!("unknown kind {other:?}")),
    };
    let error = match result {
        Ok(()) => return Err("accepted, but must be refused".to_owned()),
        Err(error) => error,
    };
    let message = error.to_string();
    let fragments = case["errors"]
        .as_array()
        .ok_or("the case has no errors list")?;
    if fragments.is_empty() {
        return Err("the case lists no expected fragment".to_owned());
    }
    let missing: Vec<&str> = fragments
        .iter()
        .filter_map(Value::as_str)
        .filter(|fragment| !message.contains(fragment))
        .collect();
    // Fragments that must NOT appear: problems made up from another one.
    let present: Vec<&str> = case["forbidden"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|fragment| message.contains(fragment))
        .collect();
    if missing.is_empty() && present.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the error lacks {missing:?} and has {present:?}; it was:\n{message}"
        ))
    }
}

#[test]
fn every_refusal_names_the_field() {
    crate::common::run_case_dir("invalid", 1, run_case);
}

/// Nesting 100,000 deep must be an error, not a stack overflow (which would
/// abort the process rather than panic).
#[test]
fn deeply_nested_documents_are_refused() {
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert!(Bundle::parse(&arrays, Format::Json).is_err());
    assert!(Basket::parse_json(&arrays).is_err());
    let toml_arrays = format!("a = {arrays}");
    assert!(Bundle::parse(&toml_arrays, Format::Toml).is_err());
    let toml_tables = format!("a = {}1{}", "{b = ".repeat(depth), "}".repeat(depth));
    assert!(Bundle::parse(&toml_tables, Format::Toml).is_err());
}
