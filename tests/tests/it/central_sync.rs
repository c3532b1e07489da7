//! The real `pos-central` binary, driven by the real `pos-sync` client over
//! TLS with the development CA: uploads, auth, lost answers through the
//! fault-injecting proxy, signed rules, changes by cursor and holds.

use std::path::Path;

use pos_sync::protocol::{
    BatchOutcome, EntryResult, HoldAnswer, HoldRelease, HoldRequest, UploadAnswer, UploadBatch,
};
use pos_sync::signing::{parse_public_key, verify_bundle};
use pos_sync::testing::Chain;
use pos_sync::{ClientConfig, EntryKind, LedgerEntry, SyncClient, SyncError, Token};
use pos_testkit::central_proc::Central;
use pos_testkit::proxy::{Mode, Proxy};

const TERMINAL: &str = "store-1-reg-1";
/// Short enough that a blackholed request fails quickly, long enough for a
/// debug central on a loaded machine.
const SHORT_TIMEOUT_MS: u64 = 1_500;

const RULES_V1: &str = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "0.5", "offline_allowance": 2000}}]}"#;

/// Writes a file of mode 0600: the agent refuses a token file that other
/// users can read.
fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

/// A TLS central with the rules published and one terminal; its token.
fn central() -> (Central, String, tempfile::TempDir) {
    let central = Central::start().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let files = tempfile::tempdir().unwrap();
    let answer = central
        .publish_rules(write(files.path(), "rules.json", RULES_V1))
        .unwrap();
    assert_eq!(answer["version"], 1);
    (central, token, files)
}

fn client_for(central: &Central, url: &str, token: &str) -> SyncClient {
    let mut config = ClientConfig::new(url, Token::new(token).unwrap());
    config.ca_file = Some(central.ca_path());
    config.request_timeout_ms = SHORT_TIMEOUT_MS * 4;
    SyncClient::new(&config).unwrap()
}

fn batch(entries: &[LedgerEntry]) -> UploadBatch {
    UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: pos_sync::testing::documents_for(entries),
    }
}

fn results(answer: &UploadAnswer) -> Vec<EntryResult> {
    match &answer.outcome {
        BatchOutcome::Entries(r) => r.clone(),
        other => panic!("expected per-entry results, got {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_over_tls_is_applied_and_the_admin_api_shows_it() {
    let (central, token, _files) = central();
    let client = client_for(&central, &central.url, &token);
    let mut r = Chain::new(TERMINAL);
    let entries = [
        r.entry(EntryKind::Earn, "M-1", 120),
        r.entry(EntryKind::Earn, "M-2", 30),
        r.entry(EntryKind::Redeem, "M-1", -100),
    ];
    let answer = client.upload(&batch(&entries)).await.unwrap();
    assert_eq!(results(&answer), vec![EntryResult::Applied; 3]);
    let m1 = answer.balances.iter().find(|b| b.member == "M-1").unwrap();
    assert_eq!(m1.programs[0].balance, 20);

    let b = central.balance("M-1", "main").unwrap();
    assert_eq!(
        b,
        serde_json::json!({"balance": 20, "available": 20, "pending": 0})
    );
    let terminals = central.admin_get("/v1/admin/terminals").unwrap();
    assert_eq!(terminals["terminals"][0]["terminal_id"], TERMINAL);
    assert_eq!(terminals["terminals"][0]["last_seq"], 3);
    let ledger = central
        .admin_get(&format!("/v1/admin/ledger?terminal={TERMINAL}&member=M-1"))
        .unwrap();
    let stored = ledger["entries"].as_array().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1]["points"], -100);
    assert_eq!(stored[1]["hash"], entries[2].hash.to_hex());
}

#[tokio::test]
async fn wrong_tokens_are_refused_as_auth_failures() {
    let (central, token, files) = central();
    let wrong = client_for(&central, &central.url, "not-the-token");
    let mut r = Chain::new(TERMINAL);
    let err = wrong
        .upload(&batch(&[r.entry(EntryKind::Earn, "M-1", 1)]))
        .await
        .unwrap_err();
    assert!(err.is_auth(), "{err}");
    assert!(
        matches!(err, SyncError::Status { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());

    // A terminal token is not an admin token.
    let token_file = write(files.path(), "terminal.token", &token);
    let out = central
        .cli(&[
            "admin-get",
            "/v1/admin/terminals",
            "--token-file",
            token_file.to_str().unwrap(),
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[tokio::test]
async fn a_terminal_cannot_upload_for_another() {
    let (central, _token, _files) = central();
    let other_token = central.add_terminal("store-1-reg-2").unwrap();
    let client = client_for(&central, &central.url, &other_token);
    let mut r = Chain::new(TERMINAL);
    let err = client
        .upload(&batch(&[r.entry(EntryKind::Earn, "M-1", 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Status { status: 403, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_lost_answer_is_resent_and_applied_exactly_once() {
    // Plain HTTP on loopback: the proxy's lose-answer works on bytes, and
    // over TLS the first bytes back are the handshake (see proxy docs).
    let central = Central::start_insecure().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let files = tempfile::tempdir().unwrap();
    central
        .publish_rules(write(files.path(), "rules.json", RULES_V1))
        .unwrap();
    let proxy = Proxy::start(central.addr).await.unwrap();
    let client = SyncClient::new(&ClientConfig::new(
        format!("http://{}", proxy.addr()),
        Token::new(&token).unwrap(),
    ))
    .unwrap();
    let mut r = Chain::new(TERMINAL);
    let entries = [
        r.entry(EntryKind::Earn, "M-1", 100),
        r.entry(EntryKind::Earn, "M-1", 23),
    ];

    proxy.set_mode(Mode::LoseAnswer);
    let err = client.upload(&batch(&entries)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert_eq!(proxy.answers_lost(), 1);
    // Central did apply it.
    assert_eq!(central.balance("M-1", "main").unwrap()["balance"], 123);

    proxy.set_mode(Mode::Pass);
    let answer = client.upload(&batch(&entries)).await.unwrap();
    assert_eq!(results(&answer), vec![EntryResult::Duplicate; 2]);
    assert_eq!(central.balance("M-1", "main").unwrap()["balance"], 123);
}

#[tokio::test]
async fn network_faults_are_retryable_errors() {
    let (central, token, _files) = central();
    let proxy = Proxy::start(central.addr).await.unwrap();
    let mut config = ClientConfig::new(
        format!("https://{}", proxy.addr()),
        Token::new(&token).unwrap(),
    );
    config.ca_file = Some(central.ca_path());
    config.request_timeout_ms = SHORT_TIMEOUT_MS;
    let client = SyncClient::new(&config).unwrap();
    for mode in [Mode::Blackhole, Mode::Reset, Mode::Drop] {
        proxy.set_mode(mode);
        let err = client.newest_rules(None).await.unwrap_err();
        assert!(
            matches!(err, SyncError::Network(_)) && err.is_retryable(),
            "{mode:?}: {err}"
        );
    }
    proxy.set_mode(Mode::Pass);
    // The port is re-opened asynchronously after Drop.
    let mut last = None;
    for _ in 0..100 {
        match client.newest_rules(None).await {
            Ok(answer) => {
                last = Some(answer.bundle);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    assert_eq!(last.flatten().map(|b| b.version), Some(1));
}

#[tokio::test]
async fn rules_download_verifies_with_the_public_key_and_only_newer_ones_come() {
    let (central, token, files) = central();
    let client = client_for(&central, &central.url, &token);
    let key = parse_public_key(&central.public_key().unwrap()).unwrap();
    let v1 = client.newest_rules(None).await.unwrap().bundle.unwrap();
    assert_eq!(v1.bytes, RULES_V1.as_bytes());
    verify_bundle(&v1, &key, None).unwrap();
    let up_to_date = client.newest_rules(Some(1)).await.unwrap();
    assert!(up_to_date.bundle.is_none());
    assert_eq!(
        up_to_date.newest, 1,
        "central says its newest even when nothing is newer"
    );

    let v2_text = RULES_V1.replace("\"version\": 1", "\"version\": 2");
    central
        .publish_rules(write(files.path(), "rules2.json", &v2_text))
        .unwrap();
    let v2 = client.newest_rules(Some(1)).await.unwrap().bundle.unwrap();
    assert_eq!(client.newest_rules(Some(9_999)).await.unwrap().newest, 2);
    verify_bundle(&v2, &key, Some(1)).unwrap();
    // Old versions stay available for returns.
    assert_eq!(client.rules_version(1).await.unwrap(), v1);

    let mut tampered = v2.clone();
    tampered.bytes = v2_text.replace("\"1\"", "\"9\"").into_bytes();
    assert!(matches!(
        verify_bundle(&tampered, &key, Some(1)),
        Err(SyncError::Bundle(_))
    ));
    // An older version is refused even when well signed.
    assert!(verify_bundle(&v1, &key, Some(2)).is_err());

    // Publishing an old version again is refused (exit 2: bad input).
    let out = central
        .cli(&[
            "publish-rules",
            write(files.path(), "again.json", RULES_V1)
                .to_str()
                .unwrap(),
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn members_catalog_and_holds_through_the_client() {
    let (central, token, files) = central();
    central
        .import_members(write(
            files.path(),
            "members.json",
            r#"{"members": [{"id": "M-1001", "cards": ["9990000010013"], "birthday": "1990-11-03",
                "blocked": false, "programs": {"main": {"tier": "gold", "available": 1500, "pending": 0}}}]}"#,
        ))
        .unwrap();
    central
        .import_catalog(write(
            files.path(),
            "catalog.json",
            r#"{"products": [{"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"}]}"#,
        ))
        .unwrap();
    let client = client_for(&central, &central.url, &token);
    let members = client.member_changes(0, 100).await.unwrap();
    assert_eq!(members.changes.len(), 1);
    let m = &members.changes[0];
    assert_eq!(m.id, "M-1001");
    assert_eq!(m.cards, vec!["9990000010013".to_string()]);
    assert_eq!(m.programs["main"].tier.as_deref(), Some("gold"));
    assert_eq!(m.programs["main"].available, 1500);
    let catalog = client.catalog_changes(0, 100).await.unwrap();
    assert_eq!(catalog.changes[0].price.to_string(), "59.99");

    let hold = HoldRequest {
        terminal_id: TERMINAL.into(),
        member: "9990000010013".into(),
        program: "main".into(),
        sale_id: "S-1".into(),
        points: 1000,
        // 20 EUR at most half paid with points at 100 a euro: 1000 points.
        basket: pos_sync::testing::hold_basket("S-1", "9990000010013", 20),
    };
    assert_eq!(
        client.place_hold(&hold).await.unwrap(),
        HoldAnswer::Granted { available: 500 }
    );
    assert_eq!(central.balance("M-1001", "main").unwrap()["available"], 500);
    // The hold changed the member: it comes again after the cursor.
    let again = client
        .member_changes(members.next_cursor, 100)
        .await
        .unwrap();
    assert_eq!(again.changes[0].programs["main"].available, 500);
    client
        .release_hold(&HoldRelease {
            terminal_id: TERMINAL.into(),
            sale_id: "S-1".into(),
            program: "main".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        central.balance("M-1001", "main").unwrap()["available"],
        1500
    );
}

#[tokio::test]
async fn the_client_refuses_a_server_it_does_not_trust() {
    let (central, token, _files) = central();
    let stranger = Central::start().unwrap();
    let mut config = ClientConfig::new(central.url.clone(), Token::new(&token).unwrap());
    config.ca_file = Some(stranger.ca_path());
    let err = SyncClient::new(&config)
        .unwrap()
        .newest_rules(None)
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Network(_)), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn serve_refuses_insecure_http_off_loopback() {
    let central = Central::start_insecure().unwrap();
    assert!(central.url.starts_with("http://127.0.0.1:"));
    let out = central
        .cli(&["serve", "--listen", "0.0.0.0:0", "--insecure-http"])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[tokio::test]
async fn plain_http_on_loopback_works_for_tests_and_the_demo() {
    let central = Central::start_insecure().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let client = SyncClient::new(&ClientConfig::new(
        central.url.clone(),
        Token::new(&token).unwrap(),
    ))
    .unwrap();
    assert!(client.newest_rules(None).await.unwrap().bundle.is_none());
}

#[tokio::test]
async fn a_configured_server_name_is_what_the_certificate_is_checked_against() {
    let (central, token, _files) = central();
    let with_name = |name: &str| {
        let mut config = ClientConfig::new(central.url.clone(), Token::new(&token).unwrap());
        config.ca_file = Some(central.ca_path());
        config.server_name = Some(name.to_string());
        SyncClient::new(&config).unwrap()
    };
    // The URL names 127.0.0.1; the development certificate also carries
    // "localhost", so checking against that name succeeds...
    assert!(with_name("localhost").newest_rules(None).await.is_ok());
    // ...and against a name it does not carry, fails.
    let err = with_name("loyalty.example.com")
        .newest_rules(None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// The CSV snapshots in examples/ import through the real CLI (`.csv`
/// files go as `text/csv`) and give the members and products their JSON
/// twins give; a broken CSV is refused (exit 2) naming its line, and
/// imports nothing.
#[tokio::test]
async fn csv_snapshots_import_like_their_json_twins() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let import_both = |members: &str, catalog: &str| {
        let (central, token, files) = central();
        let imported = central.import_members(examples.join(members)).unwrap();
        assert_eq!(imported["imported"], 3, "{members}: {imported}");
        let imported = central.import_catalog(examples.join(catalog)).unwrap();
        assert_eq!(imported["imported"], 7, "{catalog}: {imported}");
        (central, token, files)
    };
    let (json_central, json_token, _json_files) = import_both("members.json", "catalog.json");
    let (csv_central, csv_token, csv_files) = import_both("members.csv", "catalog.csv");
    let json_client = client_for(&json_central, &json_central.url, &json_token);
    let csv_client = client_for(&csv_central, &csv_central.url, &csv_token);
    let from_json = json_client.member_changes(0, 100).await.unwrap().changes;
    let from_csv = csv_client.member_changes(0, 100).await.unwrap().changes;
    assert_eq!(from_csv, from_json);
    assert_eq!(from_csv.len(), 3);
    assert_eq!(
        csv_central.balance("M-1002", "fuel").unwrap()["available"],
        40
    );
    let from_json = json_client.catalog_changes(0, 100).await.unwrap().changes;
    let from_csv = csv_client.catalog_changes(0, 100).await.unwrap().changes;
    assert_eq!(from_csv, from_json);

    let broken = write(
        csv_files.path(),
        "broken.csv",
        "id,program,available\nM-2001,main,10\nM-2002,main,ten\n",
    );
    let out = csv_central
        .cli(&["import-members", broken.to_str().unwrap()])
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3, available: must be a whole number"),
        "{stderr}"
    );
    let members = csv_client.member_changes(0, 100).await.unwrap().changes;
    assert!(members.iter().all(|m| m.id != "M-2001"), "{members:?}");
}
