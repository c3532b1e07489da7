//! `pos-agent quote --rules FILE --basket FILE` (points spec §4).
//!
//! Reads both files, validates them completely (every problem is reported,
//! not just the first) and prints the quote as one JSON object. Any invalid
//! input is exit code 2 with the message on stderr.

use std::path::Path;

use anyhow::Context;
use pos_points::{Basket, Bundle, Format};

use crate::commands::{Failure, bad_input, other, read_input};

pub fn run(rules: &Path, basket_path: &Path) -> Result<(), Failure> {
    let format = Format::from_path(rules).ok_or_else(|| {
        bad_input(anyhow::anyhow!(
            "{}: unknown rules format: the file name must end in .json or .toml",
            rules.display()
        ))
    })?;
    let bundle_text = read_input(rules)?;
    let bundle = Bundle::parse(&bundle_text, format)
        .with_context(|| format!("{}: invalid rules bundle", rules.display()))
        .map_err(bad_input)?;
    let basket_text = read_input(basket_path)?;
    let basket = Basket::parse_json(&basket_text)
        .with_context(|| format!("{}: invalid basket", basket_path.display()))
        .map_err(bad_input)?;
    let quote = pos_points::quote(&bundle, &basket)
        .with_context(|| format!("{}: cannot be quoted", basket_path.display()))
        .map_err(bad_input)?;
    let json = serde_json::to_string_pretty(&quote).map_err(other)?;
    println!("{json}");
    Ok(())
}
