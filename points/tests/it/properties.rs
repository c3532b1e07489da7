//! Properties over random bundles and baskets (proptest).
//!
//! - a quote never has a negative total, never exceeds the sale cap, the
//!   subtotal, or a rule's own cap, and lists only rules with points > 0;
//! - a JSON bundle and its TOML twin give the same quote, and a parsed bundle
//!   serializes back (JSON and TOML) to an equal bundle;
//! - a full return reverses exactly the quote's totals;
//! - parsing never panics on arbitrary text or arbitrary JSON shapes.

use std::collections::BTreeMap;

use pos_points::{Basket, Bundle, Format, quote, returns};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const CATEGORIES: &[&str] = &["shoes", "groceries", "gift_card", "tobacco", "produce"];
const SKUS: &[&str] = &["A", "B", "C", "D", "E", "F"];
const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A decimal string `units / 10^scale`.
fn decimal(units: std::ops::RangeInclusive<i64>, scale: u32) -> impl Strategy<Value = String> {
    (units, 0..=scale).prop_map(|(units, scale)| Decimal::new(units, scale).to_string())
}

fn subset(items: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(items, 0..=items.len().min(3))
        .prop_map(|items| items.into_iter().map(str::to_owned).collect())
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(
    strategy: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(strategy)
}

fn when() -> impl Strategy<Value = Value> {
    (
        maybe((20u32..=30, 0u32..24)),
        maybe(0u32..48),
        maybe(subset(DAYS)),
        maybe((0u32..23, 0u32..60, 1u32..=120)),
    )
        .prop_map(|(from, length_hours, days, hours)| {
            let mut when = serde_json::Map::new();
            if let Some((day, hour)) = from {
                when.insert("from".into(), json!(format!("2026-11-{day:02}T{hour:02}:00:00")));
                if let Some(length) = length_hours {
                    let end = day * 24 + hour + length + 1;
                    let (end_day, end_hour) = (end / 24, end % 24);
                    if end_day <= 30 {
                        when.insert("to".into(), json!(format!("2026-11-{end_day:02}T{end_hour:02}:00:00")));
                    }
                }
            }
            if let Some(days) = days {
                when.insert("days".into(), json!(days));
            }
            if let Some((hour, minute, length)) = hours {
                let end = (hour * 60 + minute + length).min(23 * 60 + 59);
                when.insert(
                    "hours".into(),
                    json!({"start": format!("{hour:02}:{minute:02}"), "end": format!("{:02}:{:02}", end / 60, end % 60)}),
                );
            }
            Value::Object(when)
        })
}

fn rule(index: usize, tiers: usize, groups: usize) -> impl Strategy<Value = Value> {
    (
        -2i64..3,
        prop_oneof![Just("multiplier"), Just("per_unit"), Just("per_item"), Just("fixed")],
        decimal(0..=400, 2),
        maybe(0..groups.max(1)),
        (subset(CATEGORIES), subset(SKUS)),
        maybe(when()),
        maybe(decimal(0..=8000, 2)),
        proptest::sample::subsequence((0..tiers).collect::<Vec<_>>(), 0..=tiers),
        (any::<bool>(), maybe(0i64..300), any::<bool>()),
    )
        .prop_map(move |(priority, kind, value, group, (categories, skus), when, min_spend, rule_tiers, (birthday, cap, stop))| {
            let value = if kind == "multiplier" {
                (value.parse::<Decimal>().unwrap_or_default() / Decimal::from(100) + Decimal::ONE).normalize().to_string()
            } else {
                value
            };
            let mut rule = json!({"id": format!("r{index}"), "priority": priority, "kind": kind, "value": value,
                "match": {"categories": categories, "skus": skus},
                "tiers": rule_tiers.iter().map(|t| format!("t{t}")).collect::<Vec<_>>(),
                "birthday": birthday, "stop": stop});
            if let (Some(group), true) = (group, groups > 0) {
                rule["group"] = json!(format!("g{group}"));
            }
            if let Some(when) = when {
                rule["when"] = when;
            }
            if let Some(min_spend) = min_spend {
                rule["min_spend"] = json!(min_spend);
            }
            if let Some(cap) = cap {
                rule["cap"] = json!(cap);
            }
            rule
        })
}

fn program(id: String) -> impl Strategy<Value = Value> {
    (0usize..3, 0usize..3, 0usize..8).prop_flat_map(move |(tiers, groups, rules)| {
        let id = id.clone();
        (
            decimal(0..=300, 2),
            prop_oneof![Just("floor"), Just("ceil"), Just("half_up"), Just("half_even")],
            subset(CATEGORIES),
            any::<bool>(),
            proptest::collection::vec(decimal(100..=300, 2), tiers),
            proptest::collection::vec((any::<bool>(), maybe(0i64..200)), groups),
            (0..rules).map(|index| rule(index, tiers, groups)).collect::<Vec<_>>(),
            (maybe(0i64..500), maybe(0i64..1500)),
        )
            .prop_map(move |(base_rate, rounding, exclude, earn_on_redeemed, tiers, groups, rules, (sale_cap, daily_cap))| {
                let mut limits = serde_json::Map::new();
                if let Some(cap) = sale_cap {
                    limits.insert("sale_cap".into(), json!(cap));
                }
                if let Some(cap) = daily_cap {
                    limits.insert("member_daily_cap".into(), json!(cap));
                }
                json!({
                    "id": id, "currency": "EUR", "base_rate": base_rate, "rounding": rounding,
                    "exclude_categories": exclude, "earn_on_redeemed": earn_on_redeemed,
                    "tiers": tiers.iter().enumerate().map(|(i, m)| {
                        let m = (m.parse::<Decimal>().unwrap_or(Decimal::ONE)).max(Decimal::ONE);
                        json!({"id": format!("t{i}"), "multiplier": m.to_string()})
                    }).collect::<Vec<_>>(),
                    "groups": groups.iter().enumerate().map(|(i, (best, cap))| {
                        let mut group = json!({"id": format!("g{i}"), "mode": if *best { "best" } else { "sum" }});
                        if let Some(cap) = cap { group["cap"] = json!(cap); }
                        group
                    }).collect::<Vec<_>>(),
                    "rules": rules,
                    "limits": limits,
                })
            })
    })
}

fn bundle() -> impl Strategy<Value = Value> {
    (1usize..=3)
        .prop_flat_map(|count| {
            (0..count)
                .map(|i| program(format!("p{i}")))
                .collect::<Vec<_>>()
        })
        .prop_map(|programs| json!({"version": 5, "programs": programs}))
}

fn line() -> impl Strategy<Value = Value> {
    (
        proptest::sample::select(SKUS),
        maybe(proptest::sample::select(CATEGORIES)),
        decimal(1..=5000, 3),
        decimal(0..=20000, 2),
        0u32..=100,
    )
        .prop_map(|(sku, category, qty, unit_price, discount_percent)| {
            let qty: Decimal = qty.parse().unwrap_or(Decimal::ONE);
            let qty = if qty.is_zero() { Decimal::ONE } else { qty };
            let unit_price: Decimal = unit_price.parse().unwrap_or_default();
            let discount = (qty * unit_price * Decimal::from(discount_percent) / Decimal::from(100)).round_dp(2);
            let discount = discount.min(qty * unit_price);
            let mut line = json!({"sku": sku, "qty": qty.to_string(), "unit_price": unit_price.to_string(), "discount": discount.to_string()});
            if let Some(category) = category {
                line["category"] = json!(category);
            }
            line
        })
}

fn basket() -> impl Strategy<Value = Value> {
    (
        (18u32..=30, 0u32..24, 0u32..60, 0u32..60, -12i32..=14),
        maybe((1u32..=12, proptest::sample::subsequence(vec!["p0", "p1", "p2", "nope"], 0..=4), 0usize..4)),
        (0i64..1500, decimal(0..=5000, 2)),
        proptest::collection::vec(line(), 0..8),
    )
        .prop_map(|((day, hour, minute, second, offset), member, (earned, paid), lines)| {
            let offset = if offset == 0 { "Z".to_owned() } else { format!("{}{:02}:00", if offset < 0 { '-' } else { '+' }, offset.abs()) };
            let mut basket = json!({
                "sale_id": "S-1",
                "time": format!("2026-11-{day:02}T{hour:02}:{minute:02}:{second:02}{offset}"),
                "earned_today": {"p0": earned, "p1": earned / 2},
                "paid_with_points": paid,
                "lines": lines,
            });
            if let Some((month, programs, tier)) = member {
                let programs: serde_json::Map<String, Value> = programs
                    .into_iter()
                    .map(|p| (p.to_owned(), json!({"tier": format!("t{tier}")})))
                    .collect();
                basket["member"] = json!({"id": "M-1", "birthday": format!("1990-{month:02}-15"), "programs": programs});
            }
            basket
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn quotes_respect_caps_and_formats_agree(bundle_value in bundle(), basket_value in basket()) {
        let bundle = Bundle::parse(&bundle_value.to_string(), Format::Json)
            .map_err(|e| TestCaseError::fail(format!("generated bundle refused: {e}")))?;
        let basket = Basket::parse_json(&basket_value.to_string())
            .map_err(|e| TestCaseError::fail(format!("generated basket refused: {e}")))?;
        let got = quote(&bundle, &basket).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for program_quote in &got.programs {
            let program = bundle.program(&program_quote.program).ok_or_else(|| TestCaseError::fail("unknown program"))?;
            prop_assert!(program_quote.total >= 0, "negative total {program_quote:?}");
            prop_assert!(program_quote.base >= 0 && program_quote.tier_bonus >= 0);
            prop_assert!(program_quote.total <= program_quote.subtotal);
            if let Some(cap) = program.limits.sale_cap {
                prop_assert!(program_quote.total <= cap, "total above sale_cap {cap}: {program_quote:?}");
            }
            for rule_quote in &program_quote.rules {
                prop_assert!(rule_quote.points > 0);
                let rule = program.rules.iter().find(|r| r.id == rule_quote.id).ok_or_else(|| TestCaseError::fail("unknown rule"))?;
                if let Some(cap) = rule.cap {
                    prop_assert!(rule_quote.points <= cap);
                }
            }
        }
        // Rules held in another order (a bundle edited in code) quote the same:
        // the evaluation order is computed, not taken from the list.
        let mut shuffled = bundle.clone();
        for program in &mut shuffled.programs {
            program.rules.reverse();
        }
        prop_assert_eq!(quote(&shuffled, &basket).map_err(|e| TestCaseError::fail(e.to_string()))?, got.clone());
        // The TOML twin of the bundle gives the same quote.
        let toml_text = toml::to_string(&bundle_value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let twin = Bundle::parse(&toml_text, Format::Toml).map_err(|e| TestCaseError::fail(format!("TOML twin refused: {e}\n{toml_text}")))?;
        prop_assert_eq!(&twin, &bundle);
        prop_assert_eq!(quote(&twin, &basket).map_err(|e| TestCaseError::fail(e.to_string()))?, got.clone());
        // A parsed bundle and basket serialize back to equal values.
        let json_again = serde_json::to_string(&bundle).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&Bundle::parse(&json_again, Format::Json).map_err(|e| TestCaseError::fail(e.to_string()))?, &bundle);
        let toml_again = toml::to_string(&bundle).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&Bundle::parse(&toml_again, Format::Toml).map_err(|e| TestCaseError::fail(format!("{e}\n{toml_again}")))?, &bundle);
        let basket_again = serde_json::to_string(&basket).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&Basket::parse_json(&basket_again).map_err(|e| TestCaseError::fail(e.to_string()))?, &basket);
        // A full return reverses exactly what the sale earned.
        let sold: BTreeMap<u32, Decimal> = basket.lines.iter().enumerate().map(|(i, l)| (basket.line_number(i), l.qty)).collect();
        let reversed = returns::reversal(&bundle, &basket, &sold, &BTreeMap::new()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for program_quote in &got.programs {
            prop_assert_eq!(reversed.get(&program_quote.program).copied(), Some(program_quote.total));
        }
    }

    #[test]
    fn partial_returns_never_reverse_more_than_earned(bundle_value in bundle(), basket_value in basket(), cut in 0u32..=100) {
        let bundle = Bundle::parse(&bundle_value.to_string(), Format::Json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let basket = Basket::parse_json(&basket_value.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = quote(&bundle, &basket).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sold: BTreeMap<u32, Decimal> = basket.lines.iter().enumerate().map(|(i, l)| (basket.line_number(i), l.qty)).collect();
        // First return: `cut` percent of every line (rounded to 3 places), then the rest.
        let middle: BTreeMap<u32, Decimal> = sold.iter().map(|(n, q)| (*n, (q * Decimal::from(100 - cut) / Decimal::from(100)).round_dp(3))).collect();
        let first = returns::reversal(&bundle, &basket, &sold, &middle).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let second = returns::reversal(&bundle, &basket, &middle, &BTreeMap::new()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for program_quote in &got.programs {
            let a = first.get(&program_quote.program).copied().unwrap_or(0);
            let b = second.get(&program_quote.program).copied().unwrap_or(0);
            prop_assert_eq!(a + b, program_quote.total, "the two returns must add up to the sale");
        }
    }

    #[test]
    fn redeemed_points_come_back_at_most_once(redeemed in 0i64..100_000, cents in proptest::collection::vec(1i64..10_000, 1..6)) {
        let amounts: Vec<Decimal> = cents.iter().map(|c| Decimal::new(*c, 2)).collect();
        let original: Decimal = amounts.iter().sum();
        let mut back = 0;
        for (index, amount) in amounts.iter().enumerate() {
            let is_last = index + 1 == amounts.len();
            let now = returns::redeemed_back(redeemed, back, *amount, original, is_last);
            prop_assert!(now >= 0);
            back += now;
            prop_assert!(back <= redeemed);
        }
        prop_assert_eq!(back, redeemed, "after the last return everything is back");
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = Bundle::parse(&text, Format::Json);
        let _ = Bundle::parse(&text, Format::Toml);
        let _ = Basket::parse_json(&text);
    }

    #[test]
    fn parsing_mutated_documents_never_panics(bundle_value in bundle(), basket_value in basket(), cuts in proptest::collection::vec((any::<prop::sample::Index>(), "\\PC{0,3}"), 1..4)) {
        for (format, mut text) in [(Format::Json, bundle_value.to_string()), (Format::Toml, toml::to_string(&bundle_value).unwrap_or_default())] {
            for (at, insert) in &cuts {
                let mut at = at.index(text.len() + 1);
                while !text.is_char_boundary(at) { at -= 1; }
                text.insert_str(at, insert);
            }
            if let Ok(bundle) = Bundle::parse(&text, format)
                && let Ok(basket) = Basket::parse_json(&basket_value.to_string()) {
                let _ = quote(&bundle, &basket);
            }
        }
        let mut text = basket_value.to_string();
        for (at, insert) in &cuts {
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            text.insert_str(at, insert);
        }
        let _ = Basket::parse_json(&text);
    }

    #[test]
    fn parsing_arbitrary_json_shapes_never_panics(bundle_value in shaped_value(), basket_value in shaped_value()) {
        if let (Ok(bundle), Ok(basket)) = (Bundle::parse(&bundle_value.to_string(), Format::Json), Basket::parse_json(&basket_value.to_string())) {
            let _ = quote(&bundle, &basket);
        }
        if let Ok(text) = toml::to_string(&bundle_value) {
            let _ = Bundle::parse(&text, Format::Toml);
        }
    }
}

/// JSON values shaped like bundles and baskets: field names from the spec,
/// leaves of every JSON type including near-valid and extreme decimals.
fn shaped_value() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "version",
        "programs",
        "id",
        "currency",
        "base_rate",
        "rounding",
        "exclude_categories",
        "earn_on_redeemed",
        "tiers",
        "multiplier",
        "groups",
        "mode",
        "cap",
        "rules",
        "priority",
        "group",
        "kind",
        "value",
        "match",
        "categories",
        "skus",
        "when",
        "from",
        "to",
        "days",
        "hours",
        "start",
        "end",
        "min_spend",
        "birthday",
        "stop",
        "limits",
        "sale_cap",
        "member_daily_cap",
        "redeem",
        "points_per_unit",
        "min_points",
        "step",
        "max_share",
        "offline_allowance",
        "sale_id",
        "time",
        "member",
        "earned_today",
        "paid_with_points",
        "lines",
        "line",
        "sku",
        "category",
        "qty",
        "unit_price",
        "discount",
        "tier",
        "main",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e30f64..1.0e30).prop_map(Value::from),
        prop_oneof![
            Just("1"),
            Just("0"),
            Just("-1"),
            Just("0.5"),
            Just("2"),
            Just("79228162514264337593543950335"),
            Just("999999999999.99999999"),
            Just("0.00000001"),
            Just("main"),
            Just("best"),
            Just("sum"),
            Just("floor"),
            Just("half_even"),
            Just("multiplier"),
            Just("fixed"),
            Just("per_item"),
            Just("sat"),
            Just("10:00"),
            Just("23:59"),
            Just("2026-11-28T11:05:00+01:00"),
            Just("2026-11-01T00:00:00"),
            Just("1990-11-03"),
            Just("EUR"),
        ]
        .prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(KEYS).prop_map(str::to_owned),
                inner,
                0..8
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Spec §3 read as plainly as possible: every rule scans every line, sums
/// use rust_decimal's operators, rounding uses `round_dp_with_strategy`. It
/// shares no code with the engine's evaluation (indexes per category and
/// sku, exactness checks, integer rounding), so agreement on random inputs
/// checks those shortcuts against the spec's own wording.
mod reference {
    use pos_points::{Basket, Bundle, Day, GroupMode, Program, Rounding, RuleKind};
    use rust_decimal::{Decimal, RoundingStrategy};
    use serde_json::{Value, json};

    fn round(mode: Rounding, x: Decimal) -> i64 {
        let strategy = match mode {
            Rounding::Floor => RoundingStrategy::ToNegativeInfinity,
            Rounding::Ceil => RoundingStrategy::ToPositiveInfinity,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
        };
        i64::try_from(x.round_dp_with_strategy(0, strategy).mantissa()).expect("small test values")
    }

    pub fn quote(bundle: &Bundle, basket: &Basket) -> Value {
        // The generator writes times as YYYY-MM-DDTHH:MM:SS followed by an offset.
        let wall: jiff::civil::DateTime = basket.time[..19].parse().expect("generated time");
        let programs: Vec<Value> = bundle
            .programs
            .iter()
            .filter(|p| {
                basket
                    .member
                    .as_ref()
                    .is_none_or(|m| m.programs.contains_key(&p.id))
            })
            .map(|p| program(p, basket, wall))
            .collect();
        json!({"rules_version": bundle.version, "sale_id": basket.sale_id, "member": basket.member.as_ref().map(|m| m.id.clone()), "programs": programs})
    }

    fn program(p: &Program, basket: &Basket, wall: jiff::civil::DateTime) -> Value {
        let amount =
            |i: usize| basket.lines[i].qty * basket.lines[i].unit_price - basket.lines[i].discount;
        let eligible: Vec<usize> = (0..basket.lines.len())
            .filter(|&i| {
                basket.lines[i]
                    .category
                    .as_ref()
                    .is_none_or(|c| !p.exclude_categories.contains(c))
            })
            .collect();
        let e: Decimal = eligible.iter().map(|&i| amount(i)).sum();
        let e_base = if p.earn_on_redeemed {
            e
        } else {
            (e - basket.paid_with_points).max(Decimal::ZERO)
        };
        let base_exact = e_base * p.base_rate;
        let base = round(p.rounding, base_exact);
        let tier_id = basket
            .member
            .as_ref()
            .and_then(|m| m.programs.get(&p.id))
            .and_then(|mp| mp.tier.clone())
            .filter(|t| p.tiers.iter().any(|tier| &tier.id == t));
        let m = tier_id
            .as_ref()
            .and_then(|t| p.tiers.iter().find(|tier| &tier.id == t))
            .map_or(Decimal::ONE, |tier| tier.multiplier);
        let tier_bonus = round(p.rounding, base_exact * (m - Decimal::ONE));
        let birthday_month: Option<i8> = basket
            .member
            .as_ref()
            .and_then(|m| m.birthday.as_ref())
            .map(|b| b[5..7].parse().expect("generated birthday"));

        let mut rules: Vec<_> = p.rules.iter().collect();
        rules.sort_by(|a, b| (a.priority, a.id.as_bytes()).cmp(&(b.priority, b.id.as_bytes())));
        // (rule index in `rules`, points, capped)
        let mut applied: Vec<(usize, i64, bool)> = Vec::new();
        for (k, rule) in rules.iter().enumerate() {
            let w = &rule.when;
            let day = Day::of(wall.weekday());
            let when_ok = w.from.is_none_or(|f| wall >= f)
                && w.to.is_none_or(|t| wall < t)
                && w.days.as_ref().is_none_or(|d| d.contains(&day))
                && w.hours
                    .as_ref()
                    .is_none_or(|h| wall.time() >= h.start && wall.time() < h.end);
            let tiers_ok =
                rule.tiers.is_empty() || tier_id.as_ref().is_some_and(|t| rule.tiers.contains(t));
            let birthday_ok = !rule.birthday || birthday_month == Some(wall.month());
            let matched: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&i| {
                    let line = &basket.lines[i];
                    (rule.matches.categories.is_empty() && rule.matches.skus.is_empty())
                        || line
                            .category
                            .as_ref()
                            .is_some_and(|c| rule.matches.categories.contains(c))
                        || rule.matches.skus.contains(&line.sku)
                })
                .collect();
            let m_amount: Decimal = matched.iter().map(|&i| amount(i)).sum();
            let q: Decimal = matched.iter().map(|&i| basket.lines[i].qty).sum();
            let spend_ok = rule.min_spend.is_none_or(|min| m_amount >= min);
            if matched.is_empty() || !when_ok || !tiers_ok || !birthday_ok || !spend_ok {
                continue;
            }
            let exact = match rule.kind {
                RuleKind::Multiplier => m_amount * p.base_rate * (rule.value - Decimal::ONE),
                RuleKind::PerUnit => m_amount * rule.value,
                RuleKind::PerItem => q * rule.value,
                RuleKind::Fixed => rule.value,
            };
            let rounded = round(p.rounding, exact);
            let points = rule.cap.map_or(rounded, |cap| rounded.min(cap));
            applied.push((k, points, points < rounded));
            if rule.stop && points > 0 {
                break;
            }
        }
        for group in &p.groups {
            let members: Vec<usize> = (0..applied.len())
                .filter(|&a| rules[applied[a].0].group.as_deref() == Some(group.id.as_str()))
                .collect();
            if group.mode == GroupMode::Best && !members.is_empty() {
                let most = members.iter().map(|&a| applied[a].1).max().unwrap_or(0);
                let winner = members.iter().copied().find(|&a| applied[a].1 == most);
                for &a in &members {
                    if Some(a) != winner {
                        applied[a].1 = 0;
                    }
                }
            }
            if let Some(cap) = group.cap {
                let mut left = cap;
                for &a in &members {
                    let kept = applied[a].1.min(left);
                    if kept < applied[a].1 {
                        applied[a].2 = true;
                    }
                    applied[a].1 = kept;
                    left -= kept;
                }
            }
        }
        let listed: Vec<Value> = applied
            .iter()
            .filter(|a| a.1 > 0)
            .map(|a| json!({"id": rules[a.0].id, "points": a.1, "capped": a.2}))
            .collect();
        let subtotal = base + tier_bonus + applied.iter().map(|a| a.1).sum::<i64>();
        let mut total = subtotal;
        let mut limited_by = Vec::new();
        if let Some(cap) = p.limits.sale_cap
            && total > cap
        {
            total = cap;
            limited_by.push("sale_cap");
        }
        if let Some(cap) = p.limits.member_daily_cap {
            let earned = basket.earned_today.get(&p.id).copied().unwrap_or(0);
            let room = (cap - earned).max(0);
            if total > room {
                total = room;
                limited_by.push("member_daily_cap");
            }
        }
        json!({"program": p.id, "base": base, "tier_bonus": tier_bonus, "rules": listed,
               "subtotal": subtotal, "total": total, "limited_by": limited_by})
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn quote_agrees_with_a_plain_reading_of_the_spec(bundle_value in bundle(), basket_value in basket()) {
        let bundle = Bundle::parse(&bundle_value.to_string(), Format::Json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let basket = Basket::parse_json(&basket_value.to_string()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = serde_json::to_value(quote(&bundle, &basket).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got, reference::quote(&bundle, &basket));
    }
}

/// Replaces decimal-string leaves of `value`, in document order, by the
/// extremes `picks` names (cycling), where `mask` says so.
fn with_extremes(value: &mut Value, mask: &[bool], picks: &[usize], at: &mut usize) {
    const EXTREMES: &[&str] = &[
        "999999999999.99999999",
        "1000000000000",
        "0.00000001",
        "123456789012.3456789",
        "0.99999999",
        "-0",
        "1",
    ];
    match value {
        Value::String(text) if text.parse::<Decimal>().is_ok() && !text.contains(':') => {
            let index = *at;
            *at += 1;
            if mask
                .get(index % mask.len().max(1))
                .copied()
                .unwrap_or(false)
            {
                let pick = picks.get(index % picks.len().max(1)).copied().unwrap_or(0);
                *text = EXTREMES[pick % EXTREMES.len()].to_owned();
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| with_extremes(item, mask, picks, at)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| with_extremes(item, mask, picks, at)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Decimals at the edges of the accepted range: a quote is a number or an
    /// arithmetic error, never a panic, and never negative.
    #[test]
    fn extreme_decimals_never_panic(
        mut bundle_value in bundle(),
        mut basket_value in basket(),
        mask in proptest::collection::vec(any::<bool>(), 1..16),
        picks in proptest::collection::vec(0usize..7, 1..16),
    ) {
        with_extremes(&mut bundle_value, &mask, &picks, &mut 0);
        with_extremes(&mut basket_value, &mask, &picks, &mut 0);
        if let (Ok(bundle), Ok(basket)) = (
            Bundle::parse(&bundle_value.to_string(), Format::Json),
            Basket::parse_json(&basket_value.to_string()),
        ) && let Ok(got) = quote(&bundle, &basket)
        {
            for program_quote in &got.programs {
                prop_assert!(program_quote.total >= 0);
            }
        }
    }
}
