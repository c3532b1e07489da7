//! The shipped agent carries no central (issue 17's acceptance): the
//! dependency tree of the `pos-agent` binary as the Debian package builds
//! it (the features its `[package.metadata.deb]` names) holds no central,
//! no demo, no TLS-certificate generation or parsing, no CSV parser and no
//! temporary-file crate; nor does the `pos-agent` library's. Checked with
//! `cargo tree`, so a dependency added back anywhere below the binary fails
//! here. The default build (what `cargo run --bin pos-agent -- demo` runs)
//! does hold the demo and central: that shows the check sees them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

/// Crates only the demo and central need: central itself, the demo,
/// certificate generation and parsing (central's development CA), CSV
/// (central's snapshot import), temporary directories (the demo's state).
const NOT_SHIPPED: [&str; 6] = [
    "pos-central",
    "pos-demo",
    "rcgen",
    "x509-parser",
    "csv",
    "tempfile",
];

/// The package of the `pos-agent` binary, and the library under it.
const BINARY_PACKAGE: &str = "pos-agent-cli";
const LIBRARY_PACKAGE: &str = "pos-agent";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The names of every crate in `cargo tree -p PACKAGE -e normal` with the
/// given feature flags.
fn normal_dependencies(package: &str, features: &[String]) -> Result<Vec<String>> {
    let mut args: Vec<String> = ["-p", package, "-e", "normal"].map(String::from).to_vec();
    args.extend_from_slice(features);
    tree(&args)
}

/// The names of every crate `cargo tree ARGS` lists. Offline first
/// (everything the tree names was fetched to build the tests); where cargo
/// wants a manifest it never downloaded (a fresh machine), again with the
/// network, lock file fixed.
fn tree(args: &[String]) -> Result<Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut failures = Vec::new();
    for network in [&["--offline", "--locked"][..], &["--locked"][..]] {
        let out = Command::new(&cargo)
            .args(["tree", "--prefix", "none"])
            .args(args)
            .args(network)
            .current_dir(workspace())
            .output()
            .context("run cargo tree")?;
        if out.status.success() {
            let tree = String::from_utf8(out.stdout).context("cargo tree output")?;
            // Each line: `name vX.Y.Z (path)` and ` (*)` for a repeat.
            return Ok(tree
                .lines()
                .filter_map(|line| line.split_whitespace().next())
                .map(str::to_string)
                .collect());
        }
        failures.push(format!(
            "{network:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    bail!(
        "cargo tree {} failed: {}",
        args.join(" "),
        failures.join("; ")
    )
}

/// The `cargo tree` feature flags of the Debian package's build, from its
/// `[package.metadata.deb]` (`default-features`, `features`).
fn packaged_features() -> Result<Vec<String>> {
    let path = workspace().join("agent-cli/Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path)
        .with_context(|| format!("read {}", path.display()))?
        .parse()?;
    let deb = manifest["package"]["metadata"]["deb"]
        .as_table()
        .context("[package.metadata.deb]")?;
    let mut flags = Vec::new();
    if deb.get("default-features").and_then(toml::Value::as_bool) == Some(false) {
        flags.push("--no-default-features".to_string());
    }
    let features: Vec<&str> = deb
        .get("features")
        .and_then(toml::Value::as_array)
        .map(|list| list.iter().filter_map(toml::Value::as_str).collect())
        .unwrap_or_default();
    if !features.is_empty() {
        flags.push(format!("--features={}", features.join(",")));
    }
    Ok(flags)
}

fn ensure_none_of_the_demo(package: &str, crates: &[String]) -> Result<()> {
    ensure!(
        crates.iter().any(|c| c == LIBRARY_PACKAGE),
        "{package}'s tree does not hold {LIBRARY_PACKAGE}: {crates:?}"
    );
    let found: Vec<&str> = NOT_SHIPPED
        .into_iter()
        .filter(|name| crates.iter().any(|c| c == name))
        .collect();
    ensure!(
        found.is_empty(),
        "{package}'s normal dependencies hold {found:?}; only the demo (pos-demo) and central may need them"
    );
    Ok(())
}

#[test]
fn the_packaged_binary_depends_on_no_central_demo_certificate_or_csv_crate() -> Result<()> {
    let features = packaged_features()?;
    ensure!(
        features.iter().any(|f| f == "--no-default-features"),
        "the Debian package keeps the default features, so it ships the demo: {features:?}"
    );
    let crates = normal_dependencies(BINARY_PACKAGE, &features)?;
    ensure_none_of_the_demo(BINARY_PACKAGE, &crates)
}

#[test]
fn the_agent_library_depends_on_no_central_demo_certificate_or_csv_crate() -> Result<()> {
    let crates = normal_dependencies(LIBRARY_PACKAGE, &[])?;
    ensure_none_of_the_demo(LIBRARY_PACKAGE, &crates)
}

/// The control: with its default features the binary has the demo, and
/// the check above would see central there.
#[test]
fn the_default_binary_has_the_demo_and_central() -> Result<()> {
    let crates = normal_dependencies(BINARY_PACKAGE, &[])?;
    for name in ["pos-demo", "pos-central"] {
        ensure!(
            crates.iter().any(|c| c == name),
            "{name} not in {BINARY_PACKAGE}'s default tree: {crates:?}"
        );
    }
    Ok(())
}

/// The test kit is a dev-dependency only: no crate of the workspace
/// depends on it to build (the inverted tree holds pos-testkit alone).
#[test]
fn no_crate_depends_on_the_test_kit_but_for_its_tests() -> Result<()> {
    let args = ["--workspace", "-e", "normal,build", "-i", "pos-testkit"].map(String::from);
    let dependents = tree(&args)?;
    ensure!(
        dependents == ["pos-testkit"],
        "crates depend on pos-testkit outside their tests: {dependents:?}"
    );
    Ok(())
}
