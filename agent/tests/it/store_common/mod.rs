//! Shared set-up for the store tests: a real SQLite file in a tempdir, a
//! controllable clock, and a small bundle whose arithmetic is easy to do by
//! hand.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use pos_agent::model::{
    BasketLine, CatalogSnapshot, MemberRef, MembersSnapshot, Redemption, ReturnLine, ReturnRequest,
    SaleRequest,
};
use pos_agent::model::{ReturnAnswer, SaleAnswer};
use pos_agent::store::{Committed, Store, StoreError, StoreOptions};
use pos_points::{Bundle, Format};
use rust_decimal::Decimal;

/// 2026-11-28T10:05:00Z.
pub const START_UNIX_MS: i64 = 1_795_860_300_000;

/// Program `main`: 1 point per EUR, floor, tier gold ×1.5, redeemable at
/// 100 points per EUR (min 500, step 100, max share 50 %, offline
/// allowance 1000), member daily cap 100. Program `bonus`: 2 points per EUR,
/// not redeemable, only `shoes` earn (others excluded).
pub const BUNDLE: &str = r#"{
  "version": 7,
  "programs": [
    {"id": "main", "currency": "EUR", "base_rate": "1", "rounding": "floor",
     "tiers": [{"id": "gold", "multiplier": "1.5"}],
     "limits": {"member_daily_cap": 100},
     "redeem": {"points_per_unit": 100, "min_points": 500, "step": 100,
                "max_share": "0.5", "offline_allowance": 1000}},
    {"id": "bonus", "currency": "EUR", "base_rate": "2",
     "exclude_categories": ["food"]}
  ]
}"#;

pub const MEMBERS: &str = r#"{"members": [
  {"id": "M-1", "cards": ["9990000010013"], "birthday": "1990-11-03", "blocked": false,
   "programs": {"main": {"tier": null, "available": 1500, "pending": 0}}},
  {"id": "M-GOLD", "cards": [], "programs": {"main": {"tier": "gold", "available": 0, "pending": 7}}},
  {"id": "M-BLOCKED", "cards": ["9990000099999"], "blocked": true,
   "programs": {"main": {"available": 5000, "pending": 0}}},
  {"id": "M-RICH", "programs": {"main": {"available": 100000, "pending": 0}}}
]}"#;

pub const CATALOG: &str = r#"{"products": [
  {"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"}
]}"#;

/// A test clock the test moves by hand.
#[derive(Clone)]
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn advance_secs(&self, secs: i64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: TestClock,
}

impl TestStore {
    /// Commits a sale the test expects to succeed.
    pub async fn sold(&self, req: SaleRequest) -> Committed<SaleAnswer> {
        let id = req.sale_id.clone();
        self.store
            .commit_sale(req)
            .await
            .unwrap_or_else(|e| panic!("sale {id}: {e}"))
    }

    /// Commits return `return_id` of `sale_id` (lines as (line, qty)); the
    /// test expects it to succeed.
    pub async fn returned(
        &self,
        sale_id: &str,
        return_id: &str,
        lines: &[(u32, &str)],
    ) -> Committed<ReturnAnswer> {
        self.store
            .commit_return(sale_id, ret(return_id, lines))
            .await
            .unwrap_or_else(|e| panic!("return {return_id} of {sale_id}: {e}"))
    }

    /// Like [`TestStore::returned`], for a return the test expects refused.
    pub async fn return_refused(
        &self,
        sale_id: &str,
        return_id: &str,
        lines: &[(u32, &str)],
    ) -> StoreError {
        match self
            .store
            .commit_return(sale_id, ret(return_id, lines))
            .await
        {
            Ok(_) => panic!("return {return_id} of {sale_id} was accepted"),
            Err(e) => e,
        }
    }
}

pub fn options(dir: &std::path::Path, clock: &TestClock) -> StoreOptions {
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").expect("tz database has Europe/Berlin");
    let mut options = StoreOptions::new(dir.join("agent.db"), "store-1-reg-1", tz);
    let now = clock.0.clone();
    options.clock = Arc::new(move || {
        jiff::Timestamp::from_millisecond(now.load(Ordering::SeqCst)).expect("valid test time")
    });
    options
}

/// A store with the bundle, members and catalog imported.
pub async fn store() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = TestClock(Arc::new(AtomicI64::new(START_UNIX_MS)));
    let store = Store::open(options(dir.path(), &clock)).expect("open store");
    store
        .import(
            Some(bundle()),
            "test",
            Some(serde_json::from_str::<MembersSnapshot>(MEMBERS).expect("members json")),
            Some(serde_json::from_str::<CatalogSnapshot>(CATALOG).expect("catalog json")),
        )
        .await
        .expect("import");
    TestStore { dir, store, clock }
}

pub fn bundle() -> Bundle {
    Bundle::parse(BUNDLE, Format::Json).expect("test bundle is valid")
}

pub fn dec(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

pub fn line(n: u32, category: &str, qty: &str, price: &str) -> BasketLine {
    BasketLine {
        line: Some(n),
        sku: format!("SKU-{n}"),
        category: Some(category.to_string()),
        qty: dec(qty),
        unit_price: dec(price),
        discount: Decimal::ZERO,
    }
}

pub fn sale(id: &str, member: Option<MemberRef>, lines: Vec<BasketLine>) -> SaleRequest {
    SaleRequest {
        sale_id: id.to_string(),
        time: "2026-11-28T11:05:00+01:00".to_string(),
        member,
        lines,
        redeem: Vec::new(),
    }
}

pub fn member(id: &str) -> Option<MemberRef> {
    Some(MemberRef::Id(id.to_string()))
}

pub fn redeem(program: &str, points: i64) -> Redemption {
    Redemption {
        program: program.to_string(),
        points,
    }
}

pub fn ret(id: &str, lines: &[(u32, &str)]) -> ReturnRequest {
    ReturnRequest {
        return_id: id.to_string(),
        lines: lines
            .iter()
            .map(|(line, qty)| ReturnLine {
                line: *line,
                qty: dec(qty),
            })
            .collect(),
    }
}

/// Opens the database file directly, bypassing the store (to inspect or
/// tamper with it).
pub fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("agent.db")).expect("open raw db")
}
