//! `pos-agent import` and `pos-agent db verify` as a user runs them: exit
//! codes 0 / 1 / 2 and messages that name what is wrong.

use std::process::{Command, Output};

use pos_testkit::agent_proc::AgentDir;

use crate::store_common::{BUNDLE, CATALOG, MEMBERS, sale};

const BIN: &str = env!("CARGO_BIN_EXE_pos-agent");

/// A register directory (`pos_testkit`'s harness) running this package's binary.
fn register() -> AgentDir {
    AgentDir::new().expect("register directory").with_bin(BIN)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run pos-agent")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn import_then_verify_then_a_tampered_entry_fails_verify() {
    let dir = register();
    let config = dir.config.clone();
    let p = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        path.display().to_string()
    };
    let (rules, members, catalog) = (
        p("rules.json", BUNDLE),
        p("members.json", MEMBERS),
        p("catalog.json", CATALOG),
    );
    let cfg = config.display().to_string();
    let out = run(&[
        "import",
        "--rules",
        &rules,
        "--members",
        &members,
        "--catalog",
        &catalog,
        "--config",
        &cfg,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("rules version 7 stored"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("4 members, 1 products"),
        "{}",
        text(&out)
    );

    // A few sales through the library on the same file, then verify.
    {
        let clock = crate::store_common::TestClock(std::sync::Arc::new(
            std::sync::atomic::AtomicI64::new(crate::store_common::START_UNIX_MS),
        ));
        let store = pos_agent::store::Store::open(crate::store_common::options(dir.path(), &clock))
            .expect("open");
        for i in 0..3 {
            store
                .commit_sale(sale(
                    &format!("S-{i}"),
                    crate::store_common::member("M-RICH"),
                    vec![crate::store_common::line(1, "shoes", "1", "5.00")],
                ))
                .await
                .expect("sale");
        }
        store.close().await.expect("close");
    }
    let db = dir.path().join("agent.db").display().to_string();
    let out = run(&["db", "verify", "--db", &db]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("3 ledger entries"), "{}", text(&out));
    // Without --db the configured path is used.
    let out = run(&["db", "verify", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    {
        let raw = crate::store_common::raw(dir.path());
        raw.execute("UPDATE ledger SET member = 'M-1' WHERE seq = 2", [])
            .expect("tamper");
    }
    let out = run(&["db", "verify", "--db", &db]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("seq 2"), "{}", text(&out));
}

#[test]
fn bad_snapshots_are_exit_2_and_store_nothing() {
    let dir = register();
    let cfg = dir.config.display().to_string();
    let rules = dir.path().join("rules.json");
    std::fs::write(&rules, BUNDLE).expect("write");
    let members = dir.path().join("members.json");
    std::fs::write(&members, r#"{"members": [{"id": "M-1", "tier": "gold"}]}"#).expect("write");
    let out = run(&[
        "import",
        "--rules",
        &rules.display().to_string(),
        "--members",
        &members.display().to_string(),
        "--config",
        &cfg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("tier"),
        "names the unknown field: {}",
        text(&out)
    );
    assert!(!dir.path().join("agent.db").exists(), "nothing stored");

    let bad_rules = dir.path().join("bad.json");
    std::fs::write(
        &bad_rules,
        r#"{"version": 1, "programs": [{"id": "main"}]}"#,
    )
    .expect("write");
    let out = run(&[
        "import",
        "--rules",
        &bad_rules.display().to_string(),
        "--config",
        &cfg,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn verify_refuses_a_foreign_file_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .expect("create");
    }
    let before = std::fs::read(&path).expect("read");
    let out = run(&["db", "verify", "--db", &path.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("another application"), "{}", text(&out));
    assert_eq!(before, std::fs::read(&path).expect("read"));
}
