//! The demo's data: the repository's example rules, members and catalog
//! (examples/), the members and products the script uses, sale bodies as a
//! POS sends them, and the redemption arithmetic.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::DemoError;

/// The example data of the repository (examples/), so the demo shows the
/// same rules, members and products the README documents.
pub const RULES_JSON: &str = include_str!("../../examples/rules.json");
pub const MEMBERS_JSON: &str = include_str!("../../examples/members.json");
pub const CATALOG_JSON: &str = include_str!("../../examples/catalog.json");

/// The member both registers let overdraw (gold, 1,500 points in
/// examples/members.json) and the card printed on their loyalty card.
pub const OVERDRAWN_MEMBER: &str = "M-1001";
pub const OVERDRAWN_MEMBER_CARD: &str = "9990000010013";
/// Another member, who only earns.
pub const OTHER_MEMBER: &str = "M-1002";
/// The program the story follows.
pub const PROGRAM: &str = "main";

pub const SHOE: &str = "4006381333931";
pub const COFFEE: &str = "8711000530085";
pub const BANANAS: &str = "4011";
pub const CHOCOLATE: &str = "7622210449283";
pub const WATER: &str = "5000159407236";
pub const CAR_WASH: &str = "CARWASH-PREMIUM";

/// Program ids of a bundle, for the story.
pub fn program_ids(bundle: &str) -> Result<Vec<String>, DemoError> {
    let value: Value = serde_json::from_str(bundle)
        .map_err(|e| DemoError::Script(format!("examples/rules.json: {e}")))?;
    Ok(value["programs"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// The redeem section of a program in the demo's rules.
pub struct RedeemRules {
    pub points_per_unit: i64,
    pub min_points: i64,
    pub step: i64,
    pub max_share: Decimal,
    pub offline_allowance: i64,
}

impl RedeemRules {
    pub fn of_program(program: &str) -> Result<RedeemRules, DemoError> {
        let bundle: Value = serde_json::from_str(RULES_JSON)
            .map_err(|e| DemoError::Script(format!("examples/rules.json: {e}")))?;
        let redeem = bundle["programs"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["id"] == program))
            .map(|p| &p["redeem"])
            .ok_or_else(|| {
                DemoError::Script(format!("examples/rules.json: no program {program:?}"))
            })?;
        let int = |key: &str| {
            redeem[key].as_i64().ok_or_else(|| {
                DemoError::Script(format!(
                    "examples/rules.json: {program}.redeem.{key} missing"
                ))
            })
        };
        let max_share = redeem["max_share"]
            .as_str()
            .and_then(|s| Decimal::from_str(s).ok())
            .ok_or_else(|| {
                DemoError::Script(format!(
                    "examples/rules.json: {program}.redeem.max_share missing"
                ))
            })?;
        Ok(RedeemRules {
            points_per_unit: int("points_per_unit")?,
            min_points: int("min_points")?,
            step: int("step")?,
            max_share,
            offline_allowance: int("offline_allowance")?,
        })
    }
}

/// The most points a register can let the member redeem on a basket of
/// `amount` while offline: within what it sees available, its offline
/// allowance and the program's share limit, in whole steps. Both registers
/// see (about) the whole balance, so both together exceed it.
pub fn redemption_points(
    rules: &RedeemRules,
    available: i64,
    amount: Decimal,
) -> Result<i64, DemoError> {
    let by_share = (rules.max_share * amount * Decimal::from(rules.points_per_unit))
        .floor()
        .try_into()
        .unwrap_or(i64::MAX);
    let most = available.min(rules.offline_allowance).min(by_share);
    if rules.step <= 0 {
        return Err(DemoError::Script("redeem step must be positive".into()));
    }
    let points = most - most.rem_euclid(rules.step);
    if points < rules.min_points {
        return Err(DemoError::Script(format!(
            "only {available} points available: below the minimum redemption of {}",
            rules.min_points
        )));
    }
    Ok(points)
}

/// The register clock's now, RFC 3339 in UTC, whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// A POS sale body: lines priced from the demo catalog.
pub fn sale(id: &str, member: Option<&str>, lines: &[(&str, &str)], redeem: Option<i64>) -> Value {
    let catalog: Value = serde_json::from_str(CATALOG_JSON).unwrap_or_default();
    let lines: Vec<Value> = lines
        .iter()
        .map(|(sku, qty)| {
            let product = catalog["products"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["sku"] == *sku))
                .cloned()
                .unwrap_or_default();
            json!({"sku": sku, "category": product["category"], "qty": qty,
                   "unit_price": product["price"]})
        })
        .collect();
    let mut body = json!({"sale_id": id, "time": now(), "lines": lines});
    if let Some(member) = member {
        body["member"] = json!({"id": member});
    }
    if let Some(points) = redeem {
        body["redeem"] = json!([{"program": PROGRAM, "points": points}]);
    }
    body
}

/// The amount of a basket at catalog prices.
pub fn basket_amount(lines: &[(&str, &str)]) -> Result<Decimal, DemoError> {
    let body = sale("amount", None, lines, None);
    let mut amount = Decimal::ZERO;
    for line in body["lines"].as_array().into_iter().flatten() {
        let parse = |key: &str| {
            line[key]
                .as_str()
                .and_then(|s| Decimal::from_str(s).ok())
                .ok_or_else(|| DemoError::Script(format!("catalog line without {key}: {line}")))
        };
        amount += parse("unit_price")? * parse("qty")?;
    }
    Ok(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RedeemRules {
        RedeemRules {
            points_per_unit: 100,
            min_points: 500,
            step: 100,
            max_share: Decimal::from_str("0.5").expect("literal"),
            offline_allowance: 2000,
        }
    }

    #[test]
    fn redemption_stays_within_balance_allowance_share_and_steps() {
        let amount = Decimal::from_str("59.99").expect("literal");
        // What the register sees, in whole steps.
        assert_eq!(redemption_points(&rules(), 1865, amount).ok(), Some(1800));
        // The offline allowance caps a large balance.
        assert_eq!(redemption_points(&rules(), 9000, amount).ok(), Some(2000));
        // Half of a 20.00 basket is 1,000 points.
        let small = Decimal::from_str("20.00").expect("literal");
        assert_eq!(redemption_points(&rules(), 9000, small).ok(), Some(1000));
    }

    #[test]
    fn too_few_points_for_the_minimum_is_an_error_not_a_refused_sale() {
        let amount = Decimal::from_str("59.99").expect("literal");
        let error = redemption_points(&rules(), 499, amount).err();
        assert!(
            matches!(&error, Some(DemoError::Script(m)) if m.contains("minimum")),
            "{error:?}"
        );
    }

    #[test]
    fn the_example_data_has_what_the_script_needs() {
        let main = RedeemRules::of_program(PROGRAM).expect("main is redeemable");
        assert!(main.offline_allowance >= main.min_points);
        // Two bars and six bottles at the example catalog's prices.
        let amount = basket_amount(&[(CHOCOLATE, "2"), (WATER, "6")]).expect("priced");
        assert_eq!(amount, Decimal::from_str("9.72").expect("literal"));
        let sale = sale("S-1", Some(OVERDRAWN_MEMBER), &[(SHOE, "1")], Some(500));
        assert_eq!(sale["lines"][0]["category"], "shoes");
        assert_eq!(sale["redeem"][0]["points"], 500);
        assert!(
            program_ids(RULES_JSON)
                .expect("ids")
                .contains(&PROGRAM.to_string())
        );
    }
}
