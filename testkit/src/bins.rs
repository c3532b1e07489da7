//! Locating (and if need be building) the workspace binaries.
//!
//! `CARGO_BIN_EXE_*` only exists for binaries of the test's own package, and
//! most tests live in other packages (the end-to-end tests in their own), so
//! the binaries are found next to the test executable (`target/<profile>/`). They are built once per test
//! process with the same cargo, target directory and profile, so `cargo test
//! --workspace` needs nothing set up beforehand and never runs a stale binary.
//!
//! Always the one command `cargo build -p pos-agent-cli -p pos-central --bins`
//! (from this crate's directory `--bin` alone would only see this crate's
//! binaries, which are none): building one package at a time enables other dependency
//! features than building both, and every test binary would then rebuild
//! half the workspace for the other one. `pos-agent-cli` builds with its
//! default features, so the binary has `pos-agent demo`.
//!
//! `$POS_AGENT_BIN` / `$POS_CENTRAL_BIN` override the lookup (e.g. to test an
//! installed package).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding the workspace binaries for this test's profile.
fn bin_dir() -> PathBuf {
    // current_exe is target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// The workspace binaries the end-to-end tests run.
const BINARIES: [&str; 2] = ["pos-agent", "pos-central"];

/// The packages of [`BINARIES`] (the `pos-agent` binary is `pos-agent-cli`'s:
/// the `pos-agent` package is the library).
const PACKAGES: [&str; 2] = ["pos-agent-cli", "pos-central"];

fn build_all() {
    let profile_dir = bin_dir();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bins"]);
    for package in PACKAGES {
        cmd.args(["-p", package]);
    }
    cmd.arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build for the binaries");
    assert!(status.success(), "cargo build of {PACKAGES:?} failed");
}

/// Path of a workspace binary (`"pos-agent"` or `"pos-central"`), built
/// (with the other) once per test process unless `$POS_AGENT_BIN` /
/// `$POS_CENTRAL_BIN` names it.
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    assert!(BINARIES.contains(&name), "{name} is not a workspace binary");
    let override_var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&override_var) {
        return PathBuf::from(path);
    }
    // OnceLock blocks other threads while the first builds, so cargo runs once.
    BUILT.get_or_init(build_all);
    let path = bin_dir().join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}
