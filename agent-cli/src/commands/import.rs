//! `pos-agent import --rules FILE [--members FILE] [--catalog FILE] [--config PATH]`
//! (agent spec §1–§2): loads a rules bundle and member and catalog snapshots
//! into the configured store without central — provisioning a register
//! before its first sync, and tests.
//!
//! Everything is loaded in one transaction: a bad member in the snapshot
//! leaves the store as it was. Bad files and refused content are exit 2;
//! a store that cannot be opened is exit 1.

use std::path::Path;

use anyhow::{Context, anyhow};
use pos_agent::model::{CatalogSnapshot, MembersSnapshot};
use pos_agent::store::{Store, StoreError, StoreOptions};
use pos_points::{Bundle, Format};
use serde::de::DeserializeOwned;

use crate::commands::{Failure, bad_input, other, read_input};

pub fn run(
    rules: &Path,
    members: Option<&Path>,
    catalog: Option<&Path>,
    config: &Path,
) -> Result<(), Failure> {
    let config = pos_config::Config::load(config).map_err(|e| bad_input(anyhow!("{e}")))?;
    let format = Format::from_path(rules).ok_or_else(|| {
        bad_input(anyhow!(
            "{}: unknown rules format: the file name must end in .json or .toml",
            rules.display()
        ))
    })?;
    let bundle = Bundle::parse(&read_input(rules)?, format)
        .with_context(|| format!("{}: invalid rules bundle", rules.display()))
        .map_err(bad_input)?;
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
        let store = Store::open(options).map_err(store_failure)?;
        let result = store.import(Some(bundle), &source, members, catalog).await;
        let _ = store.close().await;
        result.map_err(store_failure)
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

/// Reads a JSON snapshot; unknown fields and wrong types are refused with
/// the line and column serde_json reports.
fn snapshot<T: DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    let text = read_input(path)?;
    serde_json::from_str(&text)
        .with_context(|| format!("{}: invalid snapshot", path.display()))
        .map_err(bad_input)
}

/// Refused content is bad input (exit 2); a store that cannot be opened or
/// written is an operational failure (exit 1).
fn store_failure(error: StoreError) -> Failure {
    if error.is_bad_request() || error.is_conflict() {
        bad_input(error)
    } else {
        other(error)
    }
}
