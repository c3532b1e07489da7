//! The in-process central (what the demo runs) serves the real sync API
//! over TLS to the real client.

use pos_central::CentralError;
use pos_central::embedded;
use pos_sync::protocol::{BatchOutcome, BundleFormat, EntryResult, UploadBatch};
use pos_sync::signing::{open_bundle, parse_public_key};
use pos_sync::{ClientConfig, Digest32, EntryKind, LedgerEntry, SyncClient, Token};
use uuid::Uuid;

const RULES: &str =
    r#"{"version": 4, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;

#[tokio::test]
async fn an_embedded_central_serves_registers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let central = embedded::start(dir.path(), "127.0.0.1:0".parse().unwrap(), true)
        .await
        .unwrap();
    assert!(central.url.starts_with("https://127.0.0.1:"));
    let token = central.add_terminal("reg-1").unwrap();
    assert_eq!(
        central
            .publish_rules(RULES.into(), BundleFormat::Json)
            .unwrap(),
        4
    );
    central
        .import_members(r#"{"members": [{"id": "M-1", "cards": ["999"], "programs": {"main": {"available": 10}}}]}"#)
        .unwrap();

    let mut config = ClientConfig::new(
        central.url.clone(),
        Token::from_secret(token.clone()).unwrap(),
    );
    config.ca_file = Some(central.ca_path());
    let client = SyncClient::new(&config).unwrap();

    let key = parse_public_key(&central.public_key_base64()).unwrap();
    let signed = client.newest_rules(None).await.unwrap().bundle.unwrap();
    assert_eq!(open_bundle(&signed, &key, None).unwrap().version, 4);

    let mut entry = LedgerEntry {
        entry_id: Uuid::now_v7(),
        terminal_id: "reg-1".into(),
        seq: 1,
        prev_hash: Digest32::ZERO,
        hash: Digest32::ZERO,
        kind: EntryKind::Earn,
        program: "main".into(),
        member: "999".into(),
        points: 5,
        sale_id: Some("S-1".into()),
        return_id: None,
        rules_version: 4,
        occurred_at: jiff::Timestamp::now().to_string(),
        detail: "{}".into(),
    };
    entry.chain_after(Digest32::ZERO);
    let answer = client
        .upload(&UploadBatch {
            terminal_id: "reg-1".into(),
            first_seq: 1,
            entries: vec![entry],
            documents: vec![],
        })
        .await
        .unwrap();
    assert_eq!(
        answer.outcome,
        BatchOutcome::Entries(vec![EntryResult::Applied])
    );
    let (member, programs) = central
        .storage()
        .member_balances("M-1", jiff::Timestamp::now())
        .unwrap()
        .unwrap();
    assert_eq!((member.as_str(), programs[0].balance), ("M-1", 15));

    let url = central.url.clone();
    central.stop().await;
    // Stopped means nobody answers any more.
    let stopped = SyncClient::new(&{
        let mut c = ClientConfig::new(url, Token::from_secret(token.clone()).unwrap());
        c.ca_file = Some(dir.path().join("ca.pem"));
        c
    })
    .unwrap();
    assert!(stopped.newest_rules(None).await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let refused = embedded::start(dir.path(), "0.0.0.0:0".parse().unwrap(), false).await;
    assert!(matches!(refused, Err(CentralError::Invalid(_))));
}
