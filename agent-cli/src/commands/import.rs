//! `pos-agent import --rules FILE [--members FILE] [--catalog FILE] [--config PATH]`
//! (agent spec §1–§2): loads a rules bundle and member and catalog snapshots
//! into the configured store without central — provisioning a register
//! before its first sync, and tests.
//!
//! Everything is loaded in one transaction: a bad member in the snapshot
//! leaves the store as it was. Bad files and refused content are exit 2;
//! a store that cannot be opened is exit 1.
//!
//! With `[central]` configured the rules file must be a signed rules file
//! (`pos-central export-rules`, `docs/signed-rules.md`) whose signature
//! verifies with `rules_public_key`: a plain bundle would let whoever runs
//! the command set the rules the register sells with. Standalone, plain
//! bundles (`.json`, `.toml`) are read as before, and signed files too.

use std::path::Path;

use anyhow::{Context, anyhow};
use pos_agent::model::{CatalogSnapshot, MembersSnapshot};
use pos_agent::store::{RulesInput, Store, StoreError, StoreOptions};
use pos_points::{Bundle, Format};
use pos_sync::signed_file;
use pos_sync::signing::{parse_public_key_bytes, parse_verified, verify_signature};
use serde::de::DeserializeOwned;

use crate::commands::{Failure, bad_input, other, read_input};

pub fn run(
    rules: &Path,
    members: Option<&Path>,
    catalog: Option<&Path>,
    config: &Path,
) -> Result<(), Failure> {
    let config = pos_config::Config::load(config).map_err(|e| bad_input(anyhow!("{e}")))?;
    let bundle = rules_input(rules, config.central.as_ref())?;
    let members: Option<MembersSnapshot> = members.map(snapshot).transpose()?;
    let catalog: Option<CatalogSnapshot> = catalog.map(snapshot).transpose()?;

    let options = StoreOptions::from_config(&config);
    let db = options.path.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(other)?;
    let source = format!("import:{}", rules.display());
    let summary = runtime.block_on(async {
        let store = Store::open(options).map_err(|e| store_failure(None, e))?;
        let result = store
            .import_with(Some(bundle), &source, members, catalog)
            .await;
        let _ = store.close().await;
        result.map_err(|e| store_failure(Some(rules), e))
    })?;
    match summary.rules_version {
        Some(v) => println!("rules version {v} stored"),
        None => println!("rules version already cached"),
    }
    println!(
        "{} members, {} products imported into {}",
        summary.members,
        summary.products,
        db.display()
    );
    Ok(())
}

/// Reads the rules file: with `[central]` only a signed file whose
/// signature verifies (checked here, before the store is opened, and again
/// by the store); standalone a signed file or a plain bundle.
fn rules_input(path: &Path, central: Option<&pos_config::Central>) -> Result<RulesInput, Failure> {
    let text = read_input(path)?;
    let refused = |why: String| {
        bad_input(anyhow!(
            "{}: refused, nothing stored: {why}",
            path.display()
        ))
    };
    if let Some(central) = central {
        let signed = signed_file::from_file_text(&text).map_err(|e| {
            refused(format!(
                "{e} (with [central] configured only bundles signed by central are imported)"
            ))
        })?;
        let key = parse_public_key_bytes(&central.rules_public_key)
            .map_err(|e| refused(e.to_string()))?;
        verify_signature(&signed, &key).map_err(|e| refused(e.to_string()))?;
        parse_verified(&signed).map_err(|e| refused(e.to_string()))?;
        return Ok(RulesInput::Signed(signed));
    }
    if signed_file::is_signed_file(&text) {
        let signed = signed_file::from_file_text(&text)
            .and_then(|s| parse_verified(&s).map(|_| s))
            .map_err(|e| bad_input(anyhow!("{}: {e}", path.display())))?;
        return Ok(RulesInput::Signed(signed));
    }
    let format = Format::from_path(path).ok_or_else(|| {
        bad_input(anyhow!(
            "{}: unknown rules format: the file name must end in .json or .toml",
            path.display()
        ))
    })?;
    let bundle = Bundle::parse(&text, format)
        .with_context(|| format!("{}: invalid rules bundle", path.display()))
        .map_err(bad_input)?;
    Ok(RulesInput::Plain(bundle))
}

/// Reads a JSON snapshot; unknown fields and wrong types are refused with
/// the line and column serde_json reports.
fn snapshot<T: DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    let text = read_input(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid snapshot", path.display()))
        .map_err(bad_input)
}

/// Refused content is bad input (exit 2), named with the rules file; a
/// store that cannot be opened or written is an operational failure (exit 1).
fn store_failure(rules: Option<&Path>, error: StoreError) -> Failure {
    if error.is_bad_request() || error.is_conflict() {
        match rules {
            Some(rules) => bad_input(anyhow!("{error} (importing {})", rules.display())),
            None => bad_input(error),
        }
    } else {
        other(error)
    }
}
