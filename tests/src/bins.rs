//! Locating (and if need be building) the workspace binaries.
//!
//! `CARGO_BIN_EXE_*` only exists for binaries of the test's own package, and
//! these tests live in their own crate, so the binaries are found next to the
//! test executable (`target/<profile>/`). Each is built once per test
//! process with the same cargo, target directory and profile (`cargo build
//! -p NAME --bin NAME`: from this crate's directory `--bin` alone would only
//! see this crate's binaries), so `cargo test --workspace` needs nothing set
//! up beforehand and never runs a stale binary.
//!
//! `$POS_AGENT_BIN` / `$POS_CENTRAL_BIN` override the lookup (e.g. to test an
//! installed package).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The directory holding the workspace binaries for this test's profile.
fn bin_dir() -> PathBuf {
    // current_exe is target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

fn build(name: &str) -> PathBuf {
    let profile_dir = bin_dir();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", name, "--bin", name])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {name}: {e}"));
    assert!(status.success(), "cargo build of {name} failed");
    let path = profile_dir.join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}

/// Path of a workspace binary (`"pos-agent"` or `"pos-central"`), built once
/// per test process unless `$POS_AGENT_BIN` / `$POS_CENTRAL_BIN` names it.
pub fn path(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let override_var = format!("{}_BIN", name.to_ascii_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(&override_var) {
        return PathBuf::from(path);
    }
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    // Held across the build on purpose: two threads of one test binary must
    // not run cargo for the same binary at once.
    let mut built = built
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    built
        .entry(name.to_string())
        .or_insert_with(|| build(name))
        .clone()
}
