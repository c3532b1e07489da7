//! Orders and returns of other channels (`docs/channels.md`) through the
//! router, on both backends: points computed at central as a register's
//! basket is quoted, idempotent by (channel, order id), scoped tokens,
//! redemptions covered or refused, returns bounded by the order.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use pos_central::files::token_hash;
use pos_central::server::{AppState, router};
use pos_central::storage::Storage;
use pos_points::{Basket, Bundle, Format};
use rand::SeedableRng;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::backend::{self, on_both_backends};

const ADMIN: &str = "admin-token";
const WEB: &str = "web-token";
const APP: &str = "app-token";
const REGISTER: &str = "register-token";

fn app() -> axum::Router {
    let storage: Arc<dyn Storage> = backend::off_runtime(|| {
        let storage = backend::open();
        storage
            .add_terminal("@channel/web", token_hash(WEB))
            .unwrap();
        storage
            .add_terminal("@channel/app", token_hash(APP))
            .unwrap();
        storage.add_terminal("reg-1", token_hash(REGISTER)).unwrap();
        storage.into()
    });
    router(Arc::new(AppState::new(
        storage,
        SigningKey::generate(&mut rand::rngs::StdRng::seed_from_u64(5)),
        token_hash(ADMIN),
    )))
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .header(pos_sync::wire::PROTOCOL_HEADER, "2")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn post(app: &axum::Router, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
    let (status, text) = call(
        app,
        "POST",
        path,
        token,
        "application/json",
        body.to_string(),
    )
    .await;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    };
    (status, value)
}

/// The example rules and members published and imported, as a chain's
/// central holds them.
async fn stocked() -> axum::Router {
    let app = app();
    let rules = std::fs::read_to_string(example("rules.json")).unwrap();
    let (s, b) = call(
        &app,
        "POST",
        "/v1/admin/rules",
        ADMIN,
        "application/json",
        rules,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let members = std::fs::read_to_string(example("members.json")).unwrap();
    let (s, b) = call(
        &app,
        "POST",
        "/v1/admin/members",
        ADMIN,
        "application/json",
        members,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    app
}

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Now, on a +01:00 wall clock (what a European web shop sends).
fn now_local() -> String {
    let zoned = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(1)));
    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn lines() -> Value {
    json!([
        {"line": 1, "sku": "4006381333931", "category": "shoes", "qty": "1", "unit_price": "59.99", "discount": "5.00"},
        {"line": 2, "sku": "8711000530085", "category": "groceries", "qty": "2", "unit_price": "7.49"},
        {"line": 3, "sku": "GC-25", "category": "gift_card", "qty": "1", "unit_price": "25.00"}
    ])
}

fn order(id: &str, time: &str) -> Value {
    json!({"order_id": id, "member": "M-1001", "time": time, "lines": lines()})
}

async fn balance(app: &axum::Router, member: &str, program: &str) -> i64 {
    let (s, text) = call(
        app,
        "GET",
        &format!("/v1/admin/members/{member}"),
        ADMIN,
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["programs"][program]["balance"].as_i64().unwrap_or(0)
}

async fn ledger_of(app: &axum::Router, terminal: &str) -> Vec<Value> {
    let (s, text) = call(
        app,
        "GET",
        &format!("/v1/admin/ledger?terminal={}", terminal.replace('/', "%2F")),
        ADMIN,
        "application/json",
        String::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["entries"].as_array().unwrap().clone()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

on_both_backends! {
/// The acceptance point: a web order and a register basket with the same
/// lines and context get the same points.
async fn a_web_order_earns_what_the_same_basket_earns_at_a_register() {
    let app = stocked().await;
    let time = now_local();
    let before = balance(&app, "M-1001", "main").await;
    let (s, answer) = post(&app, "/v1/channel/orders", WEB, &order("W-1", &time)).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    // The register's basket: the member's context as its download has it.
    let bundle = Bundle::parse(
        &std::fs::read_to_string(example("rules.json")).unwrap(),
        Format::Json,
    )
    .unwrap();
    let basket = Basket::parse_json(
        &json!({
            "sale_id": "S-1", "time": time,
            "member": {"id": "M-1001", "birthday": "1990-11-03",
                       "programs": {"main": {"tier": "gold"}}},
            "lines": lines()
        })
        .to_string(),
    )
    .unwrap();
    let quote = pos_points::quote(&bundle, &basket).unwrap();
    let register: i64 = quote.programs.iter().map(|p| p.total).sum();
    assert!(register > 0, "the basket earns something: {quote:?}");
    let earned: i64 = answer["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["earned"].as_i64().unwrap())
        .sum();
    assert_eq!(earned, register, "{answer}");
    assert_eq!(answer["channel"], "web");
    assert_eq!(answer["member"], "M-1001");
    assert_eq!(answer["rules_version"], 12);
    assert_eq!(balance(&app, "M-1001", "main").await, before + register);
    let entries = ledger_of(&app, "@channel/web").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kind"], "earn");
    assert_eq!(entries[0]["points"], register);
    assert_eq!(entries[0]["sale_id"], "W-1");
    // A card names its member.
    let mut by_card = order("W-2", &time);
    by_card["member"] = json!("9990000010013");
    let (s, answer) = post(&app, "/v1/channel/orders", WEB, &by_card).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    assert_eq!(answer["member"], "M-1001");
}
}

on_both_backends! {
async fn an_order_sent_twice_counts_once_and_a_reused_id_is_refused() {
    let app = stocked().await;
    let time = now_local();
    let before = balance(&app, "M-1001", "main").await;
    let body = order("W-7", &time);
    let (_, first) = call(&app, "POST", "/v1/channel/orders", WEB, "application/json", body.to_string()).await;
    // Spaced differently, the same order: the stored answer, byte for byte.
    let spaced = serde_json::to_string_pretty(&body).unwrap();
    let (s, second) = call(&app, "POST", "/v1/channel/orders", WEB, "application/json", spaced).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(first, second);
    let earned = serde_json::from_str::<Value>(&first).unwrap()["programs"][0]["earned"]
        .as_i64()
        .unwrap();
    assert_eq!(balance(&app, "M-1001", "main").await, before + earned);
    // Another order under the same id changes nothing.
    let mut other = order("W-7", &time);
    other["lines"][0]["qty"] = json!("2");
    let (s, b) = post(&app, "/v1/channel/orders", WEB, &other).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(error_code(&b), "order_id_reused");
    assert_eq!(balance(&app, "M-1001", "main").await, before + earned);
    assert_eq!(ledger_of(&app, "@channel/web").await.len(), 1);
    // The same order id in another channel is another order.
    let (s, b) = post(&app, "/v1/channel/orders", APP, &order("W-7", &time)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(balance(&app, "M-1001", "main").await, before + 2 * earned);
}
}

on_both_backends! {
async fn channel_and_register_tokens_are_each_refused_on_the_others_routes() {
    let app = stocked().await;
    let (s, b) = post(&app, "/v1/channel/orders", REGISTER, &order("W-1", &now_local())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(error_code(&b), "unauthorized");
    let (s, b) = post(&app, "/v1/channel/orders", ADMIN, &order("W-1", &now_local())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    for (method, path) in [("GET", "/v1/sync/members"), ("GET", "/v1/sync/rules?after=0"), ("POST", "/v1/sync/upload")] {
        let (s, text) = call(&app, method, path, WEB, "application/octet-stream", String::new()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {text}");
    }
    assert!(ledger_of(&app, "@channel/web").await.is_empty());
    // Channels are not registers: the fleet view does not list them.
    let (_, text) = call(&app, "GET", "/v1/admin/terminals", ADMIN, "application/json", String::new()).await;
    assert!(!text.contains("@channel"), "{text}");
    assert!(text.contains("reg-1"), "{text}");
}
}

on_both_backends! {
async fn bad_orders_are_refused_naming_the_field_and_change_nothing() {
    let app = stocked().await;
    let time = now_local();
    let before = balance(&app, "M-1001", "main").await;
    let mut bad_qty = order("W-1", &time);
    bad_qty["lines"][1]["qty"] = json!("-1");
    let mut unknown_field = order("W-1", &time);
    unknown_field["tier"] = json!("platinum");
    let mut old = order("W-1", &time);
    old["time"] = json!("2026-01-01T10:00:00+01:00");
    let mut pan = order("W-1", &time);
    pan["member"] = json!("4111 1111 1111 1111");
    let mut card_id = order("4111111111111111", &time);
    card_id["member"] = json!("M-1001");
    for (body, status, needle) in [
        (bad_qty, StatusCode::BAD_REQUEST, "qty"),
        (unknown_field, StatusCode::BAD_REQUEST, "tier"),
        (old, StatusCode::BAD_REQUEST, "time: "),
        (pan, StatusCode::BAD_REQUEST, "member: "),
        (card_id, StatusCode::BAD_REQUEST, "order_id: "),
    ] {
        let (s, b) = post(&app, "/v1/channel/orders", WEB, &body).await;
        assert_eq!(s, status, "{body}: {b}");
        let message = b["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle}: {message}");
        assert!(!message.contains("4111"), "{message}");
    }
    let mut stranger = order("W-1", &time);
    stranger["member"] = json!("M-9999");
    let (s, b) = post(&app, "/v1/channel/orders", WEB, &stranger).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(balance(&app, "M-1001", "main").await, before);
    assert!(ledger_of(&app, "@channel/web").await.is_empty());
}
}

on_both_backends! {
async fn an_online_redemption_is_covered_by_the_balance_or_a_hold_or_refused() {
    let app = stocked().await;
    let time = now_local();
    let before = balance(&app, "M-1001", "main").await;
    assert_eq!(before, 1500);
    // More than the member has: refused, nothing written.
    let mut greedy = order("W-1", &time);
    greedy["lines"] = json!([{"sku": "TV", "category": "electronics", "qty": "1", "unit_price": "999.00"}]);
    greedy["redeem"] = json!([{"program": "main", "points": 1600}]);
    let (s, b) = post(&app, "/v1/channel/orders", WEB, &greedy).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(error_code(&b), "insufficient_points");
    assert_eq!(balance(&app, "M-1001", "main").await, before);
    // Not a valid redemption of this order (over max_share 0.5 of 20.00).
    let mut small = order("W-2", &time);
    small["lines"] = json!([{"sku": "MUG", "category": "home", "qty": "1", "unit_price": "20.00"}]);
    small["redeem"] = json!([{"program": "main", "points": 1100}]);
    let (s, b) = post(&app, "/v1/channel/orders", WEB, &small).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(error_code(&b), "exceeds_max_share");
    // The checkout holds 1,000 points; a register cannot spend them meanwhile
    // and the order then spends its own hold.
    let mut checkout = order("W-3", &time);
    checkout["lines"] = json!([{"sku": "TV", "category": "electronics", "qty": "1", "unit_price": "999.00"}]);
    checkout["redeem"] = json!([{"program": "main", "points": 1000}]);
    let (s, b) = post(&app, "/v1/channel/holds", WEB, &checkout).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["holds"][0]["granted"], true, "{b}");
    assert_eq!(b["holds"][0]["available"], 500, "{b}");
    let mut other = order("W-4", &time);
    other["lines"] = checkout["lines"].clone();
    other["redeem"] = json!([{"program": "main", "points": 600}]);
    let (s, b) = post(&app, "/v1/channel/orders", APP, &other).await;
    assert_eq!(s, StatusCode::CONFLICT, "the held points are not available to another order: {b}");
    let (s, answer) = post(&app, "/v1/channel/orders", WEB, &checkout).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let main = &answer["programs"][0];
    assert_eq!(main["redeemed"], 1000);
    let earned = main["earned"].as_i64().unwrap();
    assert_eq!(balance(&app, "M-1001", "main").await, before - 1000 + earned);
    let kinds: Vec<String> = ledger_of(&app, "@channel/web")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["earn", "redeem"]);
    // A released hold gives its points back.
    let mut abandoned = order("W-5", &time);
    abandoned["lines"] = checkout["lines"].clone();
    abandoned["redeem"] = json!([{"program": "main", "points": 500}]);
    let (_, b) = post(&app, "/v1/channel/holds", WEB, &abandoned).await;
    assert_eq!(b["holds"][0]["granted"], true, "{b}");
    let (s, _) = post(&app, "/v1/channel/holds/release", WEB, &json!({"order_id": "W-5", "program": "main"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, b) = post(&app, "/v1/channel/holds", APP, &{
        let mut again = abandoned.clone();
        again["order_id"] = json!("W-6");
        again
    })
    .await;
    assert_eq!(b["holds"][0]["granted"], true, "released points can be held again: {b}");
}
}

on_both_backends! {
async fn a_return_takes_back_its_share_once_and_never_more_than_was_sold() {
    let app = stocked().await;
    let time = now_local();
    let before = balance(&app, "M-1001", "main").await;
    let mut body = order("W-1", &time);
    body["redeem"] = json!([{"program": "main", "points": 500}]);
    let (s, answer) = post(&app, "/v1/channel/orders", WEB, &body).await;
    assert_eq!(s, StatusCode::OK, "{answer}");
    let earned = answer["programs"][0]["earned"].as_i64().unwrap();
    assert_eq!(balance(&app, "M-1001", "main").await, before + earned - 500);
    // One of the two bags of coffee back.
    let ret = json!({"return_id": "R-1", "order_id": "W-1", "time": time,
                     "lines": [{"line": 2, "qty": "1"}]});
    let (s, first) = call(&app, "POST", "/v1/channel/returns", WEB, "application/json", ret.to_string()).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let a: Value = serde_json::from_str(&first).unwrap();
    let reversed = a["programs"][0]["reversed"].as_i64().unwrap();
    let given_back = a["programs"][0]["given_back"].as_i64().unwrap();
    assert!(reversed > 0 && reversed < earned, "{a}");
    assert!(given_back > 0 && given_back < 500, "{a}");
    let after_return = before + earned - 500 - reversed + given_back;
    assert_eq!(balance(&app, "M-1001", "main").await, after_return);
    // Sent again: the same answer, nothing twice.
    let (_, again) = call(&app, "POST", "/v1/channel/returns", WEB, "application/json", ret.to_string()).await;
    assert_eq!(again, first);
    assert_eq!(balance(&app, "M-1001", "main").await, after_return);
    // Two more bags than remain: refused.
    let too_many = json!({"return_id": "R-2", "order_id": "W-1", "time": time,
                          "lines": [{"line": 2, "qty": "2"}]});
    let (s, b) = post(&app, "/v1/channel/returns", WEB, &too_many).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(error_code(&b), "exceeds_remaining");
    // Another channel's order is not this channel's to return.
    let (s, b) = post(&app, "/v1/channel/returns", APP, &json!({"return_id": "R-3", "order_id": "W-1", "time": time, "lines": [{"line": 1, "qty": "1"}]})).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    // The rest back: everything earned reversed, every redeemed point given back.
    let rest = json!({"return_id": "R-4", "order_id": "W-1", "time": time,
                      "lines": [{"line": 1, "qty": "1"}, {"line": 2, "qty": "1"}, {"line": 3, "qty": "1"}]});
    let (s, b) = post(&app, "/v1/channel/returns", WEB, &rest).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(balance(&app, "M-1001", "main").await, before);
    let kinds: Vec<String> = ledger_of(&app, "@channel/web")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["earn", "redeem", "return_earn", "return_redeem", "return_earn", "return_redeem"]);
}
}
