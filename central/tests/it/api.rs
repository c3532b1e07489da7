//! The HTTP layer (router) without sockets: auth, JSON error bodies, body
//! limits, the admin answers' exact shapes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use pos_central::files::token_hash;
use pos_central::server::{AppState, router};
use pos_central::storage::Storage;
use pos_sync::protocol::{BATCH_BYTES_MAX, BatchOutcome, EntryResult, UploadAnswer, UploadBatch};
use pos_sync::testing::Chain;
use pos_sync::{Digest32, EntryKind, LedgerEntry, wire};
use rand::SeedableRng;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::backend::{self, on_both_backends};

const ADMIN: &str = "admin-token";
const TERMINAL: &str = "reg-1";
const TERMINAL_TOKEN: &str = "terminal-token";
/// `pos_sync::testing::BUNDLE_JSON` at version 1: the documents of
/// `testing::documents_for` give the entries' points under it.
const RULES: &str = r#"{"version": 1, "programs": [
    {"id": "main", "currency": "EUR", "base_rate": "1",
     "redeem": {"points_per_unit": 1, "min_points": 0, "step": 1, "max_share": "1",
                "offline_allowance": 1000000}}]}"#;

fn app() -> axum::Router {
    let storage: Arc<dyn Storage> = backend::off_runtime(|| {
        let storage = backend::open();
        storage
            .add_terminal(TERMINAL, token_hash(TERMINAL_TOKEN))
            .unwrap();
        storage
            .add_terminal("reg-2", token_hash("other-token"))
            .unwrap();
        storage.into()
    });
    router(Arc::new(AppState::new(
        storage,
        SigningKey::generate(&mut rand::rngs::StdRng::seed_from_u64(3)),
        token_hash(ADMIN),
    )))
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    call_speaking(app, method, path, token, content_type, body, Some("2")).await
}

/// [`call`] with the `Pos-Sync-Protocol` header as given (`None`: absent,
/// as a protocol 1 register sends it).
async fn call_speaking(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
    protocol: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(version) = protocol {
        req = req.header(wire::PROTOCOL_HEADER, version);
    }
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

async fn json_call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let (status, bytes) = call(app, method, path, token, "application/json", body.into()).await;
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

fn entries(terminal: &str, points: &[i64]) -> Vec<LedgerEntry> {
    let mut chain = Chain::new(terminal);
    points
        .iter()
        .map(|p| {
            let kind = if *p < 0 {
                EntryKind::Redeem
            } else {
                EntryKind::Earn
            };
            chain.entry(kind, "M-1", *p)
        })
        .collect()
}

fn upload_body(terminal: &str, points: &[i64]) -> Vec<u8> {
    let entries = entries(terminal, points);
    wire::encode_upload(&UploadBatch {
        terminal_id: terminal.into(),
        first_seq: 1,
        documents: pos_sync::testing::documents_for(&entries),
        entries,
    })
    .unwrap()
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

on_both_backends! {
async fn every_error_is_json_with_a_code_and_message() {
    let app = app();
    let (s, b) = json_call(&app, "GET", "/v1/admin/terminals", None, "").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error(&b, "unauthorized");
    let (s, b) = json_call(&app, "GET", "/v1/admin/terminals", Some(TERMINAL_TOKEN), "").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a terminal token is not the admin token"
    );
    assert_error(&b, "unauthorized");
    let (s, b) = json_call(&app, "GET", "/v1/nowhere", Some(ADMIN), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&b, "not_found");
    let (s, b) = json_call(
        &app,
        "GET",
        "/v1/admin/conflicts?limit=lots",
        Some(ADMIN),
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&b, "invalid");
    let (s, b) = json_call(&app, "GET", "/v1/admin/members/nobody", Some(ADMIN), "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&b, "not_found");
}
}

/// Every route of the table in `server`'s docs, by API.
const SYNC_ROUTES: [(&str, &str); 7] = [
    ("POST", "/v1/sync/upload"),
    ("GET", "/v1/sync/rules?after=0"),
    ("GET", "/v1/sync/rules/1"),
    ("GET", "/v1/sync/members"),
    ("GET", "/v1/sync/catalog"),
    ("POST", "/v1/sync/holds"),
    ("POST", "/v1/sync/holds/release"),
];
const ADMIN_ROUTES: [(&str, &str); 7] = [
    ("POST", "/v1/admin/rules"),
    ("POST", "/v1/admin/members"),
    ("POST", "/v1/admin/catalog"),
    ("GET", "/v1/admin/members/M-1"),
    ("GET", "/v1/admin/ledger"),
    ("GET", "/v1/admin/terminals"),
    ("GET", "/v1/admin/conflicts"),
];

on_both_backends! {
async fn every_route_needs_its_apis_token_before_anything_else() {
    let app = app();
    let routes = SYNC_ROUTES
        .iter()
        .map(|r| (r, ADMIN))
        .chain(ADMIN_ROUTES.iter().map(|r| (r, TERMINAL_TOKEN)));
    for (&(method, path), other_apis_token) in routes {
        for token in [None, Some("nope"), Some(other_apis_token)] {
            // A body the route would refuse anyway: the token comes first.
            let (s, b) = call(&app, method, path, token, "application/json", b"{".to_vec()).await;
            assert_eq!(
                s,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}"
            );
            assert_error(&serde_json::from_slice(&b).unwrap(), "unauthorized");
        }
    }
    // Not even a body over the route's limit is read first.
    let huge = vec![0u8; BATCH_BYTES_MAX + 1];
    let (s, _) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        None,
        wire::CONTENT_TYPE,
        huge,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A wrong method and an unknown path answer as before, token or not.
    for token in [None, Some(TERMINAL_TOKEN)] {
        let (s, _) = call(&app, "GET", "/v1/sync/upload", token, "", Vec::new()).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{token:?}");
        let (s, _) = call(&app, "GET", "/v1/sync/nowhere", token, "", Vec::new()).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{token:?}");
    }
}
}

on_both_backends! {
async fn uploads_need_the_terminals_own_token_and_a_well_formed_body() {
    let app = app();
    let body = upload_body(TERMINAL, &[5]);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some("nope"),
        wire::CONTENT_TYPE,
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some("other-token"),
        wire::CONTENT_TYPE,
        body,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error(&serde_json::from_slice(&b).unwrap(), "forbidden");

    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some(TERMINAL_TOKEN),
        wire::CONTENT_TYPE,
        b"garbage".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error(&serde_json::from_slice(&b).unwrap(), "protocol");

    let huge = vec![0u8; BATCH_BYTES_MAX + 1];
    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some(TERMINAL_TOKEN),
        wire::CONTENT_TYPE,
        huge,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&serde_json::from_slice(&b).unwrap(), "too_large");
}
}

on_both_backends! {
async fn admin_answers_have_the_specified_shapes() {
    let app = app();
    let (s, b) = json_call(&app, "POST", "/v1/admin/rules", Some(ADMIN), RULES).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b, json!({"version": 1, "programs": ["main"]}));

    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some(TERMINAL_TOKEN),
        wire::CONTENT_TYPE,
        upload_body(TERMINAL, &[300, -500]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answer: UploadAnswer = wire::decode(&b, 1 << 20).unwrap();
    assert_eq!(answer.balances[0].programs[0].balance, -200);

    let (s, b) = json_call(&app, "GET", "/v1/admin/members/M-1", Some(ADMIN), "").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({"member": "M-1", "programs": {"main": {"balance": -200, "available": -200, "pending": 0}}})
    );
    let (_, b) = json_call(&app, "GET", "/v1/admin/conflicts", Some(ADMIN), "").await;
    assert_eq!(b["conflicts"][0]["kind"], "overdraft");
    assert_eq!(b["conflicts"][0]["shortfall"], 200);
    assert_eq!(b["conflicts"][0]["seq"], 2);
    let (_, b) = json_call(
        &app,
        "GET",
        "/v1/admin/ledger?terminal=reg-1&limit=1",
        Some(ADMIN),
        "",
    )
    .await;
    assert_eq!(b["entries"].as_array().unwrap().len(), 1);
    assert_eq!(b["entries"][0]["status"], "applied");
    let (_, b) = json_call(&app, "GET", "/v1/admin/terminals", Some(ADMIN), "").await;
    assert_eq!(b["terminals"][0]["terminal_id"], "reg-1");
    assert_eq!(b["terminals"][0]["last_seq"], 2);
    assert_eq!(b["terminals"][1]["last_seq"], 0);
}
}

on_both_backends! {
async fn bundles_are_validated_and_versions_only_go_up() {
    let app = app();
    let toml = "version = 2\n[[programs]]\nid = \"main\"\ncurrency = \"EUR\"\nbase_rate = \"1\"\n";
    let (s, b) = call(
        &app,
        "POST",
        "/v1/admin/rules",
        Some(ADMIN),
        "application/toml",
        toml.into(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&b));
    let (s, b) = json_call(&app, "POST", "/v1/admin/rules", Some(ADMIN), RULES).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error(&b, "conflict");
    let bad = RULES
        .replace("\"version\": 1", "\"version\": 3")
        .replace("\"1\"", "\"-1\"");
    let (s, b) = json_call(&app, "POST", "/v1/admin/rules", Some(ADMIN), &bad).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base_rate"),
        "{b}"
    );
    let (s, b) = json_call(
        &app,
        "POST",
        "/v1/admin/members",
        Some(ADMIN),
        r#"{"members": [{"id": ""}]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("members[0].id"),
        "{b}"
    );
}
}

on_both_backends! {
async fn payment_card_numbers_are_refused_and_never_stored_or_echoed() {
    const PAN: &str = "4111111111111111"; // the well-known Visa test number
    let app = app();
    json_call(&app, "POST", "/v1/admin/rules", Some(ADMIN), RULES).await;
    let mut chain = entries(TERMINAL, &[5, 7]);
    chain[0].member = PAN.into();
    chain[0].chain_after(Digest32::ZERO);
    let first_hash = chain[0].hash;
    chain[1].chain_after(first_hash);
    let body = wire::encode_upload(&UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: 1,
        documents: pos_sync::testing::documents_for(&chain),
        entries: chain,
    })
    .unwrap();
    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some(TERMINAL_TOKEN),
        wire::CONTENT_TYPE,
        body,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answer: UploadAnswer = wire::decode(&b, 1 << 20).unwrap();
    let pos_sync::protocol::BatchOutcome::Entries(results) = answer.outcome else {
        panic!("expected results");
    };
    assert!(
        matches!(&results[0], pos_sync::protocol::EntryResult::Rejected { reason } if reason.contains("payment card") && !reason.contains(PAN))
    );
    assert_eq!(results[1], pos_sync::protocol::EntryResult::Applied);

    for path in ["/v1/admin/ledger", "/v1/admin/conflicts"] {
        let (_, b) = json_call(&app, "GET", path, Some(ADMIN), "").await;
        assert!(!b.to_string().contains(PAN), "{path}: {b}");
    }
    let members = format!(r#"{{"members": [{{"id": "M-9", "cards": ["{PAN}"]}}]}}"#);
    let (s, b) = json_call(&app, "POST", "/v1/admin/members", Some(ADMIN), &members).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!b.to_string().contains(PAN), "{b}");
    assert!(b.to_string().contains("members[0].cards[0]"), "{b}");
}
}

on_both_backends! {
async fn a_register_of_another_protocol_gets_426_and_nothing_is_applied() {
    let app = app();
    for (protocol, named) in [
        (None, "protocol 1"),
        (Some("1"), "protocol 1"),
        (Some("3"), "protocol 3"),
    ] {
        let (s, b) = call_speaking(
            &app,
            "POST",
            "/v1/sync/upload",
            Some(TERMINAL_TOKEN),
            wire::CONTENT_TYPE,
            upload_body(TERMINAL, &[300]),
            protocol,
        )
        .await;
        assert_eq!(s, StatusCode::UPGRADE_REQUIRED, "{protocol:?}");
        let body: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_error(&body, "protocol_version");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("speaks sync protocol 2") && message.contains(named),
            "{message}"
        );
    }
    // The token is checked first: no protocol talk with a stranger.
    let (s, _) = call_speaking(
        &app,
        "GET",
        "/v1/sync/rules",
        Some("nobody"),
        wire::CONTENT_TYPE,
        vec![],
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Nothing of the refused uploads reached the intake: the same entry
    // is judged afresh (this app publishes no bundle, so it is rejected
    // for its rules version), not a duplicate of a stored one.
    let (s, b) = call(
        &app,
        "POST",
        "/v1/sync/upload",
        Some(TERMINAL_TOKEN),
        wire::CONTENT_TYPE,
        upload_body(TERMINAL, &[300]),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let answer: UploadAnswer = wire::decode(&b, 1 << 20).unwrap();
    let BatchOutcome::Entries(results) = answer.outcome else {
        panic!("{:?}", answer.outcome)
    };
    assert!(
        matches!(&results[..], [EntryResult::Rejected { reason }] if reason.contains("was never published")),
        "{results:?}"
    );
}
}
