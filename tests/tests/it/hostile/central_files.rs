//! Central's state directory holds member data, token hashes and keys: on
//! the real binary, `init` makes it 0700 and `central.db` (with its `-wal`
//! and `-shm`) 0600, tightens an existing directory others can read, and
//! `serve` refuses one that others can write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use pos_testkit::central_proc::{Central, central_bin};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn central(args: &[&str]) -> std::process::Output {
    Command::new(central_bin()).args(args).output().unwrap()
}

#[test]
fn init_makes_the_directory_0700_and_the_database_0600() {
    let base = tempfile::tempdir().unwrap();
    // A umask that would leave everything readable by others.
    let dir = base.path().join("central");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 022; exec "$0" init --dir "$1""#)
        .arg(central_bin())
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("central.db")), 0o600);
    for secret in ["admin.token", "signing.key", "ca.key", "server.key"] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    // The write-ahead log and its index, as serving leaves them.
    let served = Central::start_insecure().unwrap();
    served.add_terminal("store-1-reg-1").unwrap();
    assert_eq!(mode(served.dir()), 0o700);
    for name in ["central.db", "central.db-wal", "central.db-shm"] {
        let path = served.dir().join(name);
        assert!(path.exists(), "{name}");
        assert_eq!(mode(&path), 0o600, "{name}");
    }
}

#[test]
fn init_tightens_an_existing_directory_and_serve_refuses_one_others_can_write() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("central");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.to_str().unwrap();
    let out = central(&["init", "--dir", path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir), 0o700);
    assert!(String::from_utf8_lossy(&out.stderr).contains("tightened"));

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    let out = central(&[
        "serve",
        "--dir",
        path,
        "--listen",
        "127.0.0.1:0",
        "--insecure-http",
    ]);
    assert!(
        !out.status.success(),
        "serve ran from a group-writable directory"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("writable by others") && stderr.contains("chmod 700"),
        "{stderr}"
    );
}

#[test]
fn init_refuses_a_shared_sticky_directory() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = central(&["init", "--dir", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("shared directory"));
    assert_eq!(mode(&dir), 0o1777, "a shared directory is left as it was");
}
