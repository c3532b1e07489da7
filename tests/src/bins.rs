//! Locating (and if need be building) the workspace binaries.
//!
//! `CARGO_BIN_EXE_*` only exists for binaries of the test's own package, and
//! these tests live in their own crate, so the binaries are found next to the
//! test executable (`target/<profile>/`). If they are missing or stale, they
//! are built once per test process with the same cargo and profile, so
//! `cargo test --workspace` needs nothing set up beforehand.

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

fn build_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let profile_dir = bin_dir();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--bin",
            "pos-agent",
            "--bin",
            "pos-central",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build for the binaries");
        assert!(
            status.success(),
            "cargo build of pos-agent/pos-central failed"
        );
    });
}

/// Path of a workspace binary (`"pos-agent"` or `"pos-central"`), built if needed.
pub fn path(name: &str) -> PathBuf {
    build_once();
    let path = bin_dir().join(name);
    assert!(path.exists(), "binary {} not found", path.display());
    path
}
