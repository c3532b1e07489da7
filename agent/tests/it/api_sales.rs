//! Sales, returns, redemptions, balances, quotes, metrics and the checkout
//! session through the real binary's API.
//!
//! Expected points are never pasted: they are read from the agent's own
//! quote and checked against relations that must hold (balance after =
//! before + earned − redeemed; returns reverse exactly what was earned;
//! the API quote equals `pos-agent quote` on the equivalent basket).

use crate::common::{Agent, Register, assert_error};
use serde_json::{Value, json};

const TIME: &str = "2026-11-28T11:05:00+01:00";
const SHOE: &str = "4006381333931";

fn shoe(line: u32, qty: &str) -> Value {
    json!({"line": line, "sku": SHOE, "category": "shoes", "qty": qty, "unit_price": "59.99"})
}

fn milk(line: u32, qty: &str) -> Value {
    json!({"line": line, "sku": "GROC-1", "category": "groceries", "qty": qty, "unit_price": "2.50"})
}

fn sale(sale_id: &str, member: Value, lines: Vec<Value>, redeem: Value) -> Value {
    json!({"sale_id": sale_id, "time": TIME, "member": member, "lines": lines, "redeem": redeem})
}

fn total(quote: &Value, program: &str) -> i64 {
    quote["programs"]
        .as_array()
        .expect("programs")
        .iter()
        .find(|p| p["program"] == program)
        .map_or(0, |p| p["total"].as_i64().expect("total"))
}

async fn available(agent: &Agent, member: &str, program: &str) -> i64 {
    let (status, body) = agent.get(&format!("/v1/members/{member}")).await;
    assert_eq!(status, 200, "{body}");
    body["programs"][program]["available"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

async fn started() -> (Register, Agent) {
    let reg = Register::new("");
    reg.provision(0).await;
    let agent = reg.start().await;
    (reg, agent)
}

#[tokio::test]
async fn a_sale_replayed_gives_the_same_bytes_and_conflicting_content_is_409() {
    let (_reg, agent) = started().await;
    let body = sale(
        "S-1",
        json!({"id": "M-1001"}),
        vec![shoe(1, "1"), milk(2, "2")],
        json!([]),
    );
    let bytes = body.to_string().into_bytes();
    let (status, first) = agent
        .raw(
            "POST",
            "/v1/sales",
            Some("application/json"),
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let entries = agent.ledger().await.len();
    assert!(entries >= 1, "a member sale earning points writes entries");

    let (status, again) = agent
        .raw("POST", "/v1/sales", Some("application/json"), Some(bytes))
        .await;
    assert_eq!(status, 200);
    assert_eq!(first, again, "a replay must answer byte for byte the same");

    let conflicting = sale(
        "S-1",
        json!({"id": "M-1001"}),
        vec![shoe(1, "2"), milk(2, "2")],
        json!([]),
    );
    let (status, answer) = agent.post("/v1/sales", &conflicting).await;
    let message = assert_error(status, &answer, 409, "conflict");
    assert!(message.contains("S-1"), "{message}");
    assert_eq!(
        agent.ledger().await.len(),
        entries,
        "replay and conflict wrote nothing"
    );

    let (status, record) = agent.get("/v1/sales/S-1").await;
    assert_eq!(status, 200, "{record}");
    let first: Value = serde_json::from_slice(&first).expect("JSON");
    assert_eq!(record["answer"], first);
    assert_eq!(record["sale_id"], "S-1");
}

#[tokio::test]
async fn balances_move_by_what_a_sale_earns_and_redeems() {
    let (_reg, agent) = started().await;
    let before = available(&agent, "M-1001", "main").await;
    let plain_before = available(&agent, "M-1001", "plain").await;
    let body = sale(
        "S-B",
        json!({"id": "M-1001"}),
        vec![shoe(1, "1"), milk(2, "2")],
        json!([{"program": "main", "points": 500}]),
    );
    let (status, answer) = agent.post("/v1/sales", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["redeemed"],
        json!([{"program": "main", "points": 500}])
    );
    let earned = total(&answer["quote"], "main");
    assert!(earned > 0, "{answer}");
    let after = available(&agent, "M-1001", "main").await;
    assert_eq!(after, before + earned - 500);
    assert_eq!(
        answer["balances"]["main"]["available"],
        json!(after),
        "{answer}"
    );
    assert_eq!(
        available(&agent, "M-1001", "plain").await,
        plain_before + total(&answer["quote"], "plain")
    );

    // By card: the same member and balances.
    let (status, by_card) = agent.get("/v1/members/9990000010013").await;
    assert_eq!(status, 200, "{by_card}");
    assert_eq!(by_card["member"], "M-1001");
    assert_eq!(by_card["programs"]["main"]["available"], json!(after));
    assert_eq!(by_card["programs"]["main"]["unsynced"], json!(earned - 500));

    // The ledger holds the earn and the (negative) redeem for this sale.
    let rows: Vec<Value> = agent
        .ledger()
        .await
        .into_iter()
        .filter(|r| r["sale_id"] == "S-B")
        .collect();
    let main_points: i64 = rows
        .iter()
        .filter(|r| r["program"] == "main")
        .map(|r| r["points"].as_i64().expect("points"))
        .sum();
    assert_eq!(main_points, earned - 500, "{rows:?}");
}

#[tokio::test]
async fn partial_and_full_returns_reverse_exactly_what_was_earned() {
    let (_reg, agent) = started().await;
    let before = available(&agent, "M-1001", "main").await;
    let body = sale(
        "S-R",
        json!({"id": "M-1001"}),
        vec![shoe(1, "1"), milk(2, "2")],
        json!([{"program": "main", "points": 500}]),
    );
    let (status, answer) = agent.post("/v1/sales", &body).await;
    assert_eq!(status, 200, "{answer}");
    let earned_main = total(&answer["quote"], "main");
    let earned_plain = total(&answer["quote"], "plain");

    let partial = json!({"return_id": "R-1", "lines": [{"line": 2, "qty": "1"}]});
    let bytes = partial.to_string().into_bytes();
    let (status, first) = agent
        .raw(
            "POST",
            "/v1/sales/S-R/returns",
            Some("application/json"),
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&first));
    let (status, replay) = agent
        .raw(
            "POST",
            "/v1/sales/S-R/returns",
            Some("application/json"),
            Some(bytes),
        )
        .await;
    assert_eq!(
        (status, &replay),
        (200, &first),
        "a replayed return answers the same bytes"
    );
    let first: Value = serde_json::from_slice(&first).expect("JSON");
    assert_eq!(
        (&first["return_id"], &first["sale_id"]),
        (&json!("R-1"), &json!("S-R"))
    );

    let entries = agent.ledger().await.len();
    let (status, body) = agent
        .post(
            "/v1/sales/S-R/returns",
            &json!({"return_id": "R-1", "lines": [{"line": 1, "qty": "1"}]}),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = agent
        .post(
            "/v1/sales/S-R/returns",
            &json!({"return_id": "R-X", "lines": [{"line": 2, "qty": "2"}]}),
        )
        .await;
    let message = assert_error(status, &body, 409, "exceeds_remaining");
    assert!(message.contains("lines[0].qty"), "{message}");
    let (status, body) = agent
        .post(
            "/v1/sales/S-R/returns",
            &json!({"return_id": "R-Y", "lines": [{"line": 9, "qty": "1"}]}),
        )
        .await;
    assert_error(status, &body, 422, "unknown_line");
    let (status, body) = agent
        .post(
            "/v1/sales/NOPE/returns",
            &json!({"return_id": "R-Z", "lines": [{"line": 1, "qty": "1"}]}),
        )
        .await;
    assert_error(status, &body, 404, "unknown_sale");
    assert_eq!(
        agent.ledger().await.len(),
        entries,
        "refused returns wrote nothing"
    );

    let rest =
        json!({"return_id": "R-2", "lines": [{"line": 1, "qty": "1"}, {"line": 2, "qty": "1"}]});
    let (status, second) = agent.post("/v1/sales/S-R/returns", &rest).await;
    assert_eq!(status, 200, "{second}");

    let sum = |field: &str, program: &str| -> i64 {
        [&first, &second]
            .iter()
            .flat_map(|a| a["programs"].as_array().expect("programs").iter())
            .filter(|p| p["program"] == program)
            .map(|p| p[field].as_i64().expect("points"))
            .sum()
    };
    assert_eq!(sum("reversed", "main"), earned_main, "{first} {second}");
    assert_eq!(sum("reversed", "plain"), earned_plain, "{first} {second}");
    assert_eq!(
        sum("given_back", "main"),
        500,
        "the last return gives back the rest"
    );
    assert_eq!(
        available(&agent, "M-1001", "main").await,
        before,
        "a full return restores the balance"
    );

    let (status, record) = agent.get("/v1/sales/S-R").await;
    assert_eq!(status, 200);
    assert_eq!(
        record["returns"].as_array().map(Vec::len),
        Some(2),
        "{record}"
    );
    let (status, body) = agent
        .post(
            "/v1/sales/S-R/returns",
            &json!({"return_id": "R-3", "lines": [{"line": 1, "qty": "1"}]}),
        )
        .await;
    assert_error(status, &body, 409, "exceeds_remaining");
}

#[tokio::test]
async fn every_redemption_refusal_has_its_code_and_stores_nothing() {
    let (_reg, agent) = started().await;
    let cases = [
        (
            "S-NR",
            json!({"id": "M-1001"}),
            vec![shoe(1, "1")],
            json!([{"program": "plain", "points": 500}]),
            409,
            "not_redeemable",
        ),
        (
            "S-MB",
            json!({"id": "M-2002"}),
            vec![shoe(1, "1")],
            json!([{"program": "main", "points": 500}]),
            409,
            "member_blocked",
        ),
        (
            "S-BM",
            json!({"id": "M-1001"}),
            vec![shoe(1, "1")],
            json!([{"program": "main", "points": 400}]),
            409,
            "below_minimum",
        ),
        (
            "S-NS",
            json!({"id": "M-1001"}),
            vec![shoe(1, "1")],
            json!([{"program": "main", "points": 550}]),
            409,
            "not_a_step",
        ),
        (
            "S-MS",
            json!({"id": "M-1001"}),
            vec![milk(1, "1")],
            json!([{"program": "main", "points": 500}]),
            409,
            "exceeds_max_share",
        ),
        (
            "S-IP",
            json!({"id": "M-3003"}),
            vec![shoe(1, "1")],
            json!([{"program": "main", "points": 700}]),
            409,
            "insufficient_points",
        ),
        (
            "S-GU",
            json!(null),
            vec![shoe(1, "1")],
            json!([{"program": "main", "points": 500}]),
            422,
            "member_required",
        ),
    ];
    for (sale_id, member, lines, redeem, want_status, code) in cases {
        let before = available(&agent, "M-1001", "main").await;
        let (status, body) = agent
            .post("/v1/sales", &sale(sale_id, member, lines, redeem))
            .await;
        assert_error(status, &body, want_status, code);
        assert!(
            agent.ledger().await.is_empty(),
            "{code}: entries were written"
        );
        let (status, body) = agent.get(&format!("/v1/sales/{sale_id}")).await;
        assert_error(status, &body, 404, "unknown_sale");
        assert_eq!(available(&agent, "M-1001", "main").await, before);
    }
}

#[tokio::test]
async fn stale_member_data_bounds_redemptions_by_the_offline_allowance() {
    let reg = Register::new("");
    reg.provision(86_400).await; // member data a day old: stale
    let agent = reg.start().await;
    let (status, member) = agent.get("/v1/members/M-4004").await;
    assert_eq!(
        (status, &member["freshness"]),
        (200, &json!("stale")),
        "{member}"
    );

    let basket = || vec![shoe(1, "2")];
    let (status, body) = agent
        .post(
            "/v1/sales",
            &sale(
                "S-O1",
                json!({"id": "M-4004"}),
                basket(),
                json!([{"program": "main", "points": 2100}]),
            ),
        )
        .await;
    assert_error(status, &body, 409, "offline_allowance_exceeded");
    let (status, body) = agent
        .post(
            "/v1/sales",
            &sale(
                "S-O2",
                json!({"id": "M-4004"}),
                basket(),
                json!([{"program": "main", "points": 1500}]),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // 1500 already redeemed offline + 600 > 2000.
    let (status, body) = agent
        .post(
            "/v1/sales",
            &sale(
                "S-O3",
                json!({"id": "M-4004"}),
                basket(),
                json!([{"program": "main", "points": 600}]),
            ),
        )
        .await;
    assert_error(status, &body, 409, "offline_allowance_exceeded");
    let (status, _) = agent.get("/v1/sales/S-O3").await;
    assert_eq!(status, 404);
}

fn sample(metrics: &str, name: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn metrics(agent: &Agent) -> String {
    let (status, text) = agent.raw("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    String::from_utf8(text).expect("utf-8")
}

#[tokio::test]
async fn metrics_counters_move_after_a_sale() {
    let (_reg, agent) = started().await;
    let m0 = metrics(&agent).await;
    let ok_sales =
        "pos_agent_http_requests_total{route=\"/v1/sales\",method=\"POST\",status=\"200\"}";
    let body = sale(
        "S-M",
        json!({"id": "M-1001"}),
        vec![shoe(1, "1")],
        json!([{"program": "main", "points": 500}]),
    );
    let (status, answer) = agent.post("/v1/sales", &body).await;
    assert_eq!(status, 200, "{answer}");
    let earned = total(&answer["quote"], "main") + total(&answer["quote"], "plain");
    let m1 = metrics(&agent).await;
    assert_eq!(
        sample(&m1, "pos_agent_sales_total"),
        sample(&m0, "pos_agent_sales_total") + 1,
        "{m1}"
    );
    assert_eq!(
        sample(&m1, "pos_agent_points_earned_total"),
        sample(&m0, "pos_agent_points_earned_total") + earned
    );
    assert_eq!(
        sample(&m1, "pos_agent_points_redeemed_total"),
        sample(&m0, "pos_agent_points_redeemed_total") + 500
    );
    assert_eq!(
        sample(&m1, "pos_agent_unsynced_entries"),
        agent.ledger().await.len() as i64
    );
    assert_eq!(sample(&m1, ok_sales), sample(&m0, ok_sales) + 1, "{m1}");
    assert!(
        m1.contains("pos_agent_http_request_duration_seconds_count{route=\"/v1/sales\"} 1"),
        "{m1}"
    );
    assert!(m1.contains("# TYPE pos_agent_http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn the_session_builds_a_basket_from_the_catalog_commits_it_and_emits_events() {
    let (_reg, agent) = started().await;
    let mut events = crate::common::open_events(agent.socket()).await;

    let (status, view) = agent.post("/v1/session/start", &json!({})).await;
    assert_eq!(status, 200, "{view}");
    let sale_id = view["checkout"]["sale_id"]
        .as_str()
        .expect("sale id")
        .to_string();
    let (status, view) = agent.post("/v1/session/add", &json!({"sku": SHOE})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        view["checkout"]["lines"][0]["unit_price"], "59.99",
        "priced from the catalog: {view}"
    );
    let (status, _) = agent
        .post("/v1/session/add", &json!({"sku": "GROC-1", "qty": "2"}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = agent
        .post("/v1/session/add", &json!({"sku": "NOT-IN-CATALOG"}))
        .await;
    assert_error(status, &body, 404, "unknown_sku");
    let (status, body) = agent
        .post("/v1/session/add", &json!({"sku": "GROC-1", "qty": "-1"}))
        .await;
    assert_error(status, &body, 422, "invalid_qty");
    let (status, _) = agent
        .post(
            "/v1/session/member",
            &json!({"member": {"card": "9990000010013"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = agent
        .post("/v1/session/member", &json!({"member": {"id": "M-NOBODY"}}))
        .await;
    assert_error(status, &body, 422, "unknown_member");
    let (status, view) = agent.post("/v1/session/remove", &json!({"line": 2})).await;
    assert_eq!(status, 200, "{view}");
    let (status, body) = agent.post("/v1/session/remove", &json!({"line": 2})).await;
    assert_error(status, &body, 404, "unknown_line");

    let (status, view) = agent.get("/v1/session").await;
    assert_eq!(status, 200);
    assert_eq!(
        view["checkout"]["lines"].as_array().map(Vec::len),
        Some(1),
        "{view}"
    );
    assert_eq!(view["amount"], "59.99");

    let before = available(&agent, "M-1001", "main").await;
    let (status, answer) = agent.post("/v1/session/commit", &json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sale_id"], json!(sale_id));
    assert_eq!(
        available(&agent, "M-1001", "main").await,
        before + total(&answer["quote"], "main")
    );
    let (status, record) = agent.get(&format!("/v1/sales/{sale_id}")).await;
    assert_eq!(status, 200, "{record}");
    let (status, view) = agent.get("/v1/session").await;
    assert_eq!((status, &view["checkout"]), (200, &json!(null)));
    let (status, body) = agent.post("/v1/session/commit", &json!({})).await;
    assert_error(status, &body, 404, "no_session");

    // The POS saw the session change as server-sent events.
    let mut seen = String::new();
    while !seen.contains("event: session") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), events.recv())
            .await
            .expect("an event within 10 s")
            .expect("stream open");
        seen.push_str(&chunk);
    }
    assert!(seen.contains(&sale_id), "{seen}");
}

#[tokio::test]
async fn an_open_checkout_with_lines_is_not_replaced_until_cleared() {
    let (_reg, agent) = started().await;
    let (status, _) = agent
        .post("/v1/session/add", &json!({"sku": "GROC-1"}))
        .await;
    assert_eq!(status, 200, "the first scan opens a checkout");
    let (status, body) = agent
        .post("/v1/session/start", &json!({"sale_id": "S-NEW"}))
        .await;
    let message = assert_error(status, &body, 409, "session_open");
    assert!(message.contains("1 line"), "{message}");
    let (status, view) = agent.raw("POST", "/v1/session/clear", None, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&view));
    let (status, view) = agent
        .post("/v1/session/start", &json!({"sale_id": "S-NEW"}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["checkout"]["sale_id"], "S-NEW");
    assert_eq!(view["checkout"]["lines"], json!([]));
    let (status, body) = agent.post("/v1/session/commit", &json!({})).await;
    assert_error(status, &body, 422, "empty_session");
    let too_long = "S".repeat(65);
    let (status, body) = agent
        .post("/v1/session/start", &json!({"sale_id": too_long}))
        .await;
    assert_error(status, &body, 422, "invalid_sale_id");
    assert!(agent.ledger().await.is_empty());
}
