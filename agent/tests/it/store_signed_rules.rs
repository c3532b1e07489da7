//! Signed rules in the store (`docs/signed-rules.md`): with a rules key
//! only bundles whose signature verifies are stored and used; a store of
//! schema 1 (bundles cached before signatures were kept) is migrated and
//! its bundles count as unsigned until central's signed bytes complete them.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use ed25519_dalek::SigningKey;
use pos_agent::store::schema::{APPLICATION_ID, MIGRATIONS, schema_version};
use pos_agent::store::{RulesInput, Store, StoreError};
use pos_sync::protocol::{BundleFormat, SignedBundle};
use pos_sync::signing::sign_bundle;

use crate::store_common::*;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn signed(bytes: &str) -> SignedBundle {
    sign_bundle(&key(), 7, BundleFormat::Json, bytes.as_bytes().to_vec())
}

fn open(dir: &std::path::Path, with_key: bool) -> Store {
    let clock = TestClock(Arc::new(AtomicI64::new(START_UNIX_MS)));
    let mut options = options(dir, &clock);
    if with_key {
        options.rules_key = Some(key().verifying_key().to_bytes());
    }
    Store::open(options).expect("open store")
}

/// A schema-1 file holding BUNDLE as version 7, unsigned, as pos-agent
/// wrote it before migration 2.
fn schema_1_store(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(dir.join("agent.db")).expect("create");
    conn.execute_batch(MIGRATIONS[0].1).expect("schema 1");
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .expect("application_id");
    conn.pragma_update(None, "user_version", 1)
        .expect("user_version");
    let text = serde_json::to_string(&bundle()).expect("encode");
    conn.execute(
        "INSERT INTO rules (version, bundle, source, received_at) VALUES (7, ?1, 'central', 'then')",
        [text],
    )
    .expect("bundle");
}

#[tokio::test]
async fn with_a_key_only_verified_bundles_are_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path(), true);
    let err = store
        .import(Some(bundle()), "import:evil.json", None, None)
        .await
        .expect_err("unsigned refused");
    assert!(matches!(err, StoreError::RulesUnsigned(7)), "{err}");
    let mut forged = signed(BUNDLE);
    forged.bytes = BUNDLE.replace("\"1\"", "\"100\"").into_bytes();
    let err = store
        .store_rules(RulesInput::Signed(forged), "central")
        .await
        .expect_err("forged refused");
    assert_eq!(err.code(), "bad_signature", "{err}");
    assert_eq!(store.stats().await.expect("stats").rules_version, None);

    let stored = store
        .store_rules(RulesInput::Signed(signed(BUNDLE)), "central")
        .await
        .expect("signed stored");
    assert_eq!(stored, Some(7));
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.rules_version, stats.rules_unverified),
        (Some(7), None)
    );
    store.close().await.expect("close");
}

#[tokio::test]
async fn bundles_of_schema_1_are_unsigned_until_central_signs_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    schema_1_store(dir.path());
    // Standalone: the unsigned bundle serves as before.
    let store = open(dir.path(), false);
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.rules_version, stats.rules_unverified),
        (Some(7), None)
    );
    store.close().await.expect("close");
    let conn = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, schema_version());
    let recorded: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM migrations WHERE version = 2",
            [],
            |r| r.get(0),
        )
        .expect("migrations");
    assert_eq!(recorded, 1, "migration 2 recorded");
    drop(conn);
    pos_agent::store::verify_file(&dir.path().join("agent.db")).expect("db verify");

    // With [central]: not used, and health is told why.
    let store = open(dir.path(), true);
    let stats = store.stats().await.expect("stats");
    let why = stats.rules_unverified.expect("unverified");
    assert!(why.contains("without a signature"), "{why}");
    // Central's signed bytes of the same bundle complete the row.
    store
        .store_rules(RulesInput::Signed(signed(BUNDLE)), "central")
        .await
        .expect("signed completes the row");
    let stats = store.stats().await.expect("stats");
    assert_eq!(
        (stats.rules_version, stats.rules_unverified),
        (Some(7), None)
    );
    store.close().await.expect("close");
}
