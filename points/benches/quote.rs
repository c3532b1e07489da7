//! Quoting a 50-line member basket against one program of 200 rules.
//! Goal (issue 2): median under 50 µs.
//!
//! `cargo bench -p pos-points` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick run).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pos_points::{Basket, Bundle, Format, quote};
use serde_json::{Value, json};

const CATEGORIES: usize = 20;
const SKUS: usize = 100;

fn bundle() -> Bundle {
    let kinds = ["multiplier", "per_unit", "per_item", "fixed"];
    let rules: Vec<Value> = (0..200)
        .map(|i| {
            let mut rule = json!({
                "id": format!("rule-{i:03}"),
                "priority": (i * 7) % 13,
                "kind": kinds[i % 4],
                "value": if i % 4 == 0 { "1.5" } else { "2" },
                "match": {
                    "categories": [format!("cat-{}", i % CATEGORIES), format!("cat-{}", (i * 3) % CATEGORIES)],
                    "skus": [format!("sku-{}", (i * 11) % SKUS)]
                },
                "cap": 400,
            });
            if i % 5 == 0 {
                rule["group"] = json!(format!("group-{}", i % 4));
            }
            if i % 6 == 0 {
                rule["when"] = json!({"from": "2026-11-01T00:00:00", "to": "2026-12-01T00:00:00",
                    "days": ["sat", "sun"], "hours": {"start": "09:00", "end": "20:00"}});
            }
            if i % 7 == 0 {
                rule["min_spend"] = json!("20.00");
            }
            if i % 9 == 0 {
                rule["tiers"] = json!(["gold"]);
            }
            rule
        })
        .collect();
    let bundle = json!({"version": 1, "programs": [{
        "id": "main", "currency": "EUR", "base_rate": "1", "rounding": "half_even",
        "exclude_categories": ["cat-19"],
        "tiers": [{"id": "silver", "multiplier": "1.25"}, {"id": "gold", "multiplier": "1.5"}],
        "groups": [{"id": "group-0", "mode": "best", "cap": 500}, {"id": "group-1", "mode": "sum", "cap": 300},
                   {"id": "group-2", "mode": "best"}, {"id": "group-3", "mode": "sum"}],
        "rules": rules,
        "limits": {"sale_cap": 100000, "member_daily_cap": 200000}
    }]});
    Bundle::parse(&bundle.to_string(), Format::Json).expect("the benchmark bundle is valid")
}

fn basket() -> Basket {
    let lines: Vec<Value> = (0..50)
        .map(|i| {
            json!({"line": i + 1, "sku": format!("sku-{}", (i * 13) % SKUS), "category": format!("cat-{}", i % CATEGORIES),
                   "qty": if i % 5 == 0 { "0.875" } else { "2" }, "unit_price": format!("{}.99", 1 + i % 30),
                   "discount": if i % 4 == 0 { "0.50" } else { "0" }})
        })
        .collect();
    let basket = json!({"sale_id": "S-1", "time": "2026-11-28T11:05:00+01:00",
        "member": {"id": "M-1", "birthday": "1990-11-03", "programs": {"main": {"tier": "gold"}}},
        "earned_today": {"main": 120}, "paid_with_points": "5.00", "lines": lines});
    Basket::parse_json(&basket.to_string()).expect("the benchmark basket is valid")
}

fn bench(c: &mut Criterion) {
    let bundle = bundle();
    let basket = basket();
    let first = quote(&bundle, &basket).expect("the benchmark basket quotes");
    assert!(
        !first.programs[0].rules.is_empty(),
        "the benchmark must exercise rules"
    );
    c.bench_function("quote 50 lines x 200 rules", |b| {
        b.iter(|| quote(black_box(&bundle), black_box(&basket)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
