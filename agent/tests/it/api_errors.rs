//! Every malformed request gets a 4xx JSON error `{"error": {code, message}}`
//! whose message names what is wrong, and stores nothing.

use crate::common::{Register, assert_error};
use serde_json::{Value, json};

fn sale(sale_id: &str) -> Value {
    json!({"sale_id": sale_id, "time": "2026-11-28T11:05:00+01:00",
           "member": {"id": "M-1001"},
           "lines": [{"line": 1, "sku": "4006381333931", "category": "shoes", "qty": "1", "unit_price": "59.99"}]})
}

/// After a refused request: no ledger entry and no sale.
async fn assert_nothing_stored(agent: &crate::common::Agent, sale_id: &str) {
    assert!(
        agent.ledger().await.is_empty(),
        "a refused request wrote ledger entries"
    );
    let (status, body) = agent.get(&format!("/v1/sales/{sale_id}")).await;
    assert_error(status, &body, 404, "unknown_sale");
}

#[tokio::test]
async fn malformed_bodies_are_json_errors_naming_the_field_and_store_nothing() {
    let reg = Register::new("max_body_bytes = 2048");
    reg.provision(0).await;
    let agent = reg.start().await;

    // Not JSON at all.
    let (status, body) = agent
        .raw(
            "POST",
            "/v1/sales",
            Some("application/json"),
            Some(b"{\"sale_id\": ".to_vec()),
        )
        .await;
    let body: Value = serde_json::from_slice(&body).expect("JSON error");
    assert_error(status, &body, 400, "malformed_json");

    // Wrong type: qty as a JSON number instead of a decimal string.
    let mut wrong = sale("S-BAD-1");
    wrong["lines"][0]["qty"] = json!(1);
    let (status, body) = agent.post("/v1/sales", &wrong).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("lines[0].qty"), "{message}");

    // Wrong type: sale_id as a number.
    let mut wrong = sale("S-BAD-2");
    wrong["sale_id"] = json!(12);
    let (status, body) = agent.post("/v1/sales", &wrong).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("sale_id"), "{message}");

    // Unknown field, top level and nested.
    let mut unknown = sale("S-BAD-3");
    unknown["earned_today"] = json!({"main": 0});
    let (status, body) = agent.post("/v1/sales", &unknown).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("earned_today"), "{message}");
    let mut unknown = sale("S-BAD-3");
    unknown["lines"][0]["colour"] = json!("red");
    let (status, body) = agent.post("/v1/sales", &unknown).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(
        message.contains("colour") && message.contains("lines[0]"),
        "{message}"
    );

    // Missing required field.
    let mut missing = sale("S-BAD-4");
    missing.as_object_mut().expect("object").remove("time");
    let (status, body) = agent.post("/v1/sales", &missing).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("time"), "{message}");

    // Negative quantity: well-formed, refused by basket validation.
    let mut negative = sale("S-BAD-5");
    negative["lines"][0]["qty"] = json!("-1");
    let (status, body) = agent.post("/v1/sales", &negative).await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("qty"), "{message}");

    // Unknown member id.
    let mut stranger = sale("S-BAD-6");
    stranger["member"] = json!({"id": "M-NOBODY"});
    let (status, body) = agent.post("/v1/sales", &stranger).await;
    let message = assert_error(status, &body, 422, "unknown_member");
    assert!(message.contains("M-NOBODY"), "{message}");

    // No content type, and a wrong one.
    let bytes = sale("S-BAD-7").to_string().into_bytes();
    let (status, body) = agent
        .raw("POST", "/v1/sales", None, Some(bytes.clone()))
        .await;
    assert_error(
        status,
        &serde_json::from_slice(&body).expect("JSON"),
        415,
        "unsupported_media_type",
    );
    let (status, body) = agent
        .raw("POST", "/v1/sales", Some("text/plain"), Some(bytes))
        .await;
    assert_error(
        status,
        &serde_json::from_slice(&body).expect("JSON"),
        415,
        "unsupported_media_type",
    );

    // Oversized body (limit 2048 in this config).
    let mut big = sale("S-BAD-8");
    big["lines"][0]["sku"] = json!("x".repeat(4096));
    let (status, body) = agent.post("/v1/sales", &big).await;
    let message = assert_error(status, &body, 413, "body_too_large");
    assert!(message.contains("2048"), "{message}");

    // A return with a wrong type, for a sale that does not exist either way.
    let (status, body) = agent
        .post(
            "/v1/sales/S-BAD-1/returns",
            &json!({"return_id": "R-1", "lines": [{"line": "one", "qty": "1"}]}),
        )
        .await;
    let message = assert_error(status, &body, 422, "invalid_request");
    assert!(message.contains("lines[0].line"), "{message}");

    for id in [
        "S-BAD-1", "S-BAD-2", "S-BAD-3", "S-BAD-4", "S-BAD-5", "S-BAD-6", "S-BAD-7", "S-BAD-8",
    ] {
        assert_nothing_stored(&agent, id).await;
    }
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_queries_are_json_errors() {
    let reg = Register::new("");
    reg.provision(0).await;
    let agent = reg.start().await;

    let (status, body) = agent.get("/v1/nope").await;
    let message = assert_error(status, &body, 404, "not_found");
    assert!(message.contains("/v1/nope"), "{message}");

    let (status, body) = agent.json("DELETE", "/v1/sales", None).await;
    assert_error(status, &body, 405, "method_not_allowed");
    let (status, body) = agent.get("/v1/quote").await;
    assert_error(status, &body, 405, "method_not_allowed");

    let (status, body) = agent.get("/v1/ledger?from_seq=abc").await;
    let message = assert_error(status, &body, 400, "invalid_query");
    assert!(message.contains("from_seq"), "{message}");
    let (status, body) = agent.get("/v1/ledger?limit=0").await;
    let message = assert_error(status, &body, 400, "invalid_query");
    assert!(message.contains("limit"), "{message}");
    let (status, body) = agent.get("/v1/ledger?colour=red").await;
    assert_error(status, &body, 400, "invalid_query");

    let (status, body) = agent.get("/v1/members/NO-SUCH-MEMBER").await;
    assert_error(status, &body, 404, "unknown_member");
    let (status, body) = agent.get("/v1/sales/NO-SUCH-SALE").await;
    assert_error(status, &body, 404, "unknown_sale");

    // Sync is off without [central]: a clear refusal, not a silent no-op.
    let (status, body) = agent.get("/v1/sync").await;
    assert_eq!((status, &body["state"]), (200, &json!("off")), "{body}");
    let (status, body) = agent.raw("POST", "/v1/sync/now", None, None).await;
    assert_error(
        status,
        &serde_json::from_slice(&body).expect("JSON"),
        409,
        "sync_off",
    );

    // Errors are counted by code in the metrics.
    let (status, text) = agent.raw("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = String::from_utf8(text).expect("utf-8");
    assert!(
        text.contains("pos_agent_api_errors_total{code=\"not_found\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pos_agent_api_errors_total{code=\"method_not_allowed\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("pos_agent_api_errors_total{code=\"sync_off\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn event_streams_are_bounded_and_other_requests_still_served() {
    let reg = Register::new("");
    let agent = reg.start().await;
    let mut streams = Vec::new();
    for _ in 0..pos_agent::api::EVENT_STREAMS_MAX {
        streams.push(crate::common::open_events(agent.socket()).await);
    }
    let (status, body) = agent.get("/v1/events").await;
    let message = assert_error(status, &body, 503, "too_many_event_streams");
    assert!(
        message.contains(&pos_agent::api::EVENT_STREAMS_MAX.to_string()),
        "{message}"
    );
    // Other requests are still served while the streams are open.
    let (status, _) = agent.get("/v1/health").await;
    assert_eq!(status, 200);
}

/// A synthetic Visa-range number with a valid Luhn check digit (no real card).
fn synthetic_pan() -> String {
    pos_testkit::check_digit::luhn_complete("453201511283036")
}

#[tokio::test]
async fn a_payment_card_named_as_member_is_refused_never_stored_nor_echoed() {
    let reg = Register::new("");
    reg.provision(0).await;
    let agent = reg.start().await;
    let pan = synthetic_pan();
    let mut body = sale("S-PAN");
    body["member"] = json!({"card": pan});
    for path in ["/v1/sales", "/v1/quote"] {
        let (status, answer) = agent.post(path, &body).await;
        let message = assert_error(status, &answer, 422, "payment_card");
        assert!(message.contains("member.card"), "{message}");
        assert!(
            !answer.to_string().contains(&pan),
            "{path} echoed the number"
        );
    }
    let (status, answer) = agent
        .post("/v1/session/member", &json!({"member": {"card": pan}}))
        .await;
    assert_error(status, &answer, 422, "payment_card");
    let (status, answer) = agent.get(&format!("/v1/members/{pan}")).await;
    assert_error(status, &answer, 422, "payment_card");
    assert!(!answer.to_string().contains(&pan));
    assert_nothing_stored(&agent, "S-PAN").await;
    let (_, session) = agent.get("/v1/session").await;
    assert!(!session.to_string().contains(&pan), "{session}");
    // Neither the database nor its write-ahead log holds the number.
    for file in [reg.db.clone(), reg.db.with_extension("db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(pan.len()).any(|w| w == pan.as_bytes()),
            "the number reached {}",
            file.display()
        );
    }
}
