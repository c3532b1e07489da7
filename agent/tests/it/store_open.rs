//! Opening refuses, byte for byte untouched, what is not our store: a
//! non-SQLite file, a foreign SQLite database, a newer schema, a corrupted
//! file, another terminal's database.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use crate::store_common::*;
use pos_agent::store::schema::{APPLICATION_ID, schema_version};
use pos_agent::store::{Store, StoreError};

fn clock() -> TestClock {
    TestClock(Arc::new(AtomicI64::new(START_UNIX_MS)))
}

/// Opening `dir/agent.db` fails with `code`, and every file in `dir` is
/// unchanged (the db and any -wal/-shm beside it).
fn refused_untouched(dir: &Path, code: &str) -> StoreError {
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| {
                let e = e.expect("dir entry");
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read file"),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = snapshot(dir);
    let err = match Store::open(options(dir, &clock())) {
        Ok(_) => panic!("opening must be refused with {code}"),
        Err(e) => e,
    };
    assert_eq!(err.code(), code, "{err}");
    assert!(
        err.to_string().contains("agent.db"),
        "names the file: {err}"
    );
    assert_eq!(before, snapshot(dir), "files unchanged after refusing");
    err
}

#[test]
fn a_text_file_is_not_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("agent.db"),
        "terminal = 'not a database'\n".repeat(20),
    )
    .expect("write");
    refused_untouched(dir.path(), "not_sqlite");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let c = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
        c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT); INSERT INTO invoices VALUES (1, '9.99');")
            .expect("create");
    }
    let err = refused_untouched(dir.path(), "foreign_database");
    assert!(err.to_string().contains("invoices"), "{err}");
}

#[test]
fn our_application_id_with_unknown_tables_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let c = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
        c.pragma_update(None, "application_id", APPLICATION_ID)
            .expect("app id");
        c.execute_batch("CREATE TABLE something_else (x);")
            .expect("create");
    }
    refused_untouched(dir.path(), "foreign_database");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = clock();
    let store = Store::open(options(dir.path(), &c)).expect("create");
    store.close().await.expect("close");
    {
        let raw = raw(dir.path());
        raw.pragma_update(None, "user_version", schema_version() + 1)
            .expect("bump");
    }
    let err = refused_untouched(dir.path(), "newer_schema");
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn a_corrupted_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = clock();
    let t = Store::open(options(dir.path(), &c)).expect("create");
    t.import(Some(bundle()), "test", None, None)
        .await
        .expect("import");
    for i in 0..50 {
        t.commit_sale(sale(
            &format!("S-{i}"),
            None,
            vec![line(1, "shoes", "1", "5")],
        ))
        .await
        .expect("sale");
    }
    t.close().await.expect("close");
    // Scribble over every page after the first (the schema page stays
    // readable, the tables do not).
    let path = dir.path().join("agent.db");
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 8192, "several pages");
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&path, &bytes).expect("write");
    refused_untouched(dir.path(), "corrupt");
}

#[tokio::test]
async fn another_terminals_database_is_refused_and_ours_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = clock();
    let t = Store::open(options(dir.path(), &c)).expect("create");
    t.close().await.expect("close");
    let mut other = options(dir.path(), &c);
    other.terminal_id = "store-9-reg-9".into();
    let err = match Store::open(other) {
        Ok(_) => panic!("other terminal must be refused"),
        Err(e) => e,
    };
    assert_eq!(err.code(), "terminal_mismatch");
    // The right terminal opens it again (migrations are not re-applied).
    let again = Store::open(options(dir.path(), &c)).expect("reopen");
    assert_eq!(again.stats().await.expect("stats").sales, 0);
}

#[tokio::test]
async fn an_empty_file_becomes_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("agent.db"), b"").expect("touch");
    let c = clock();
    let s = Store::open(options(dir.path(), &c)).expect("empty file is fine");
    assert_eq!(s.stats().await.expect("stats").ledger_entries, 0);
    let raw = raw(dir.path());
    let id: i32 = raw
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .expect("app id");
    assert_eq!(id, APPLICATION_ID);
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}
