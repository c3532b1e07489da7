//! The API's `POST /v1/quote` gives exactly what `pos-agent quote` gives
//! for the equivalent points-spec basket: the agent only fills in the
//! member (tier, birthday, enrolment) from its cache, never changes the
//! arithmetic.

use crate::common::Register;
use serde_json::{Value, json};

const TIME: &str = "2026-11-28T11:05:00+01:00";

fn shoe(line: u32, qty: &str) -> Value {
    json!({"line": line, "sku": "4006381333931", "category": "shoes", "qty": qty, "unit_price": "59.99"})
}

fn milk(line: u32, qty: &str) -> Value {
    json!({"line": line, "sku": "GROC-1", "category": "groceries", "qty": qty, "unit_price": "2.50"})
}

#[tokio::test]
async fn the_api_quote_equals_pos_agent_quote_on_the_same_basket() {
    let reg = Register::new("");
    reg.provision(0).await;
    let agent = reg.start().await;
    let rules = reg.write("rules.json", &crate::common::bundle_json().to_string());
    let lines = vec![
        shoe(1, "1"),
        milk(2, "3"),
        json!({"line": 3, "sku": "GIFT-25", "category": "gift_card", "qty": "1", "unit_price": "25.00"}),
    ];
    // (API member, the basket member the agent must have filled in)
    let members = [
        (
            json!({"id": "M-1001"}),
            json!({"id": "M-1001", "birthday": "1990-11-03",
                                         "programs": {"main": {"tier": "gold"}, "plain": {"tier": null}}}),
        ),
        (
            json!({"card": "9990000099999"}),
            json!({"id": "9990000099999",
                                                  "programs": {"main": {"tier": null}, "plain": {"tier": null}}}),
        ),
        (json!(null), json!(null)),
    ];
    for (i, (api_member, basket_member)) in members.into_iter().enumerate() {
        let mut request = json!({"sale_id": format!("Q-{i}"), "time": TIME, "lines": lines});
        let mut basket = request.clone();
        if !api_member.is_null() {
            request["member"] = api_member;
            basket["member"] = basket_member;
        }
        let (status, api_quote) = agent.post("/v1/quote", &request).await;
        assert_eq!(status, 200, "{api_quote}");
        let basket_file = reg.write(&format!("basket-{i}.json"), &basket.to_string());
        let out = reg.cli(&[
            "quote",
            "--rules",
            rules.to_str().expect("utf-8"),
            "--basket",
            basket_file.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "pos-agent quote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli_quote: Value = serde_json::from_slice(&out.stdout).expect("quote JSON");
        assert_eq!(api_quote, cli_quote, "member case {i}");
    }
    assert!(
        agent.ledger().await.is_empty(),
        "quotes have no side effect"
    );
}
