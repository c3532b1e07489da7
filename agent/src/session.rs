//! The register's current checkout: the basket being built by scans and by
//! the POS, until it is committed as a sale.
//!
//! One session per agent (one register). Every operation — from the HTTP
//! API now, from a scanner event later — goes through [`Session`]'s async
//! methods, which take the session lock, change the [`Checkout`], publish a
//! `session` event and return the new view. The lock is held across the
//! store call of [`Session::commit`] on purpose: nothing can be added to a
//! basket while it is being committed.
//!
//! [`Checkout`] is pure (no store, no clock) so its rules are unit-tested.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::events::{Event, EventBus};
use crate::model::{MemberRef, Redemption, SaleAnswer, SaleRequest};
use crate::store::Committed;

/// Most lines in one checkout: a generous trolley; the points engine bounds
/// baskets too, and a runaway scanner must not grow memory without end.
pub const SESSION_LINES_MAX: usize = 500;

/// Largest quantity added in one operation, and the most decimal places:
/// a typo (or a garbled scan) of "1000000" pieces is refused at once
/// instead of at commit.
pub const LINE_QTY_MAX: u32 = 10_000;
pub const LINE_QTY_SCALE_MAX: u32 = 3;

/// Unknown product codes a checkout remembers for the cashier: enough for a
/// trolley of new stock; a runaway scanner must not grow it without end.
pub const UNKNOWN_PRODUCTS_MAX: usize = 20;

/// Why a session operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("no checkout is open; start one or scan an item")]
    NoSession,
    #[error("the checkout has no lines; add an item before committing")]
    Empty,
    #[error("the checkout has {SESSION_LINES_MAX} lines, the most allowed")]
    TooManyLines,
    #[error(
        "qty: must be > 0 and <= {LINE_QTY_MAX} with at most {LINE_QTY_SCALE_MAX} decimal places, got \"{0}\""
    )]
    BadQty(String),
    #[error("line {0}: no such line in the checkout")]
    UnknownLine(u32),
    #[error("sku \"{0}\": not in the catalog cache")]
    UnknownSku(String),
    #[error("a checkout with {0} line(s) is open; commit or clear it first")]
    Busy(usize),
    #[error("sale_id: must be 1 to {max} bytes, got {0}", max = crate::store::ID_BYTES_MAX)]
    BadSaleId(usize),
}

impl SessionError {
    /// The API error code.
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::NoSession => "no_session",
            SessionError::Empty => "empty_session",
            SessionError::TooManyLines => "too_many_lines",
            SessionError::BadQty(_) => "invalid_qty",
            SessionError::UnknownLine(_) => "unknown_line",
            SessionError::UnknownSku(_) => "unknown_sku",
            SessionError::Busy(_) => "session_open",
            SessionError::BadSaleId(_) => "invalid_sale_id",
        }
    }
}

/// A product as priced from the catalog cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub unit_price: Decimal,
}

/// One line of the checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLine {
    /// Line number, 1-based, never reused within a checkout (so a removed
    /// line does not renumber the others under the cashier's eyes).
    pub line: u32,
    pub sku: String,
    pub name: String,
    pub category: Option<String>,
    pub qty: Decimal,
    pub unit_price: Decimal,
}

/// The checkout state (pure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The sale id the checkout commits under, fixed at start so that a
    /// commit retried after a lost answer is the same sale (idempotent).
    pub sale_id: String,
    pub member: Option<MemberRef>,
    pub lines: Vec<SessionLine>,
    /// Set by the first commit attempt and reused by retries, for the same
    /// reason as `sale_id`: a retry must send the same content.
    pub commit_time: Option<String>,
    /// Codes scanned that the catalog cache does not know, newest last, at
    /// most [`UNKNOWN_PRODUCTS_MAX`]: shown to the cashier, not sold.
    #[serde(default)]
    pub unknown_products: Vec<String>,
    next_line: u32,
}

impl Checkout {
    pub fn new(sale_id: String) -> Result<Self, SessionError> {
        // The store's id limit, checked here so a bad id is refused when
        // the checkout opens, not when it is committed.
        if sale_id.is_empty() || sale_id.len() > crate::store::ID_BYTES_MAX {
            return Err(SessionError::BadSaleId(sale_id.len()));
        }
        Ok(Checkout {
            sale_id,
            member: None,
            lines: Vec::new(),
            commit_time: None,
            unknown_products: Vec::new(),
            next_line: 1,
        })
    }

    /// Records a scanned code the catalog does not know (a repeat moves to
    /// the end); the oldest is dropped beyond [`UNKNOWN_PRODUCTS_MAX`].
    pub fn note_unknown_product(&mut self, code: String) {
        self.unknown_products.retain(|c| *c != code);
        if self.unknown_products.len() >= UNKNOWN_PRODUCTS_MAX {
            self.unknown_products.remove(0);
        }
        self.unknown_products.push(code);
    }

    /// Adds `qty` of a product. The same sku at the same price adds to its
    /// existing line (a second scan of the same item), otherwise a new line.
    pub fn add(&mut self, product: Priced, qty: Decimal) -> Result<u32, SessionError> {
        if qty <= Decimal::ZERO
            || qty > Decimal::from(LINE_QTY_MAX)
            || qty.scale() > LINE_QTY_SCALE_MAX
        {
            return Err(SessionError::BadQty(qty.to_string()));
        }
        self.commit_time = None;
        if let Some(line) = self
            .lines
            .iter_mut()
            .find(|l| l.sku == product.sku && l.unit_price == product.unit_price)
        {
            let total = line
                .qty
                .checked_add(qty)
                .filter(|t| *t <= Decimal::from(LINE_QTY_MAX));
            return match total {
                Some(total) => {
                    line.qty = total;
                    Ok(line.line)
                }
                None => Err(SessionError::BadQty(qty.to_string())),
            };
        }
        if self.lines.len() >= SESSION_LINES_MAX {
            return Err(SessionError::TooManyLines);
        }
        let number = self.next_line;
        // Line numbers are never reused, so a checkout that has seen 4
        // billion adds is full even if it holds few lines.
        self.next_line = number.checked_add(1).ok_or(SessionError::TooManyLines)?;
        self.lines.push(SessionLine {
            line: number,
            sku: product.sku,
            name: product.name,
            category: product.category,
            qty,
            unit_price: product.unit_price,
        });
        Ok(number)
    }

    pub fn remove(&mut self, line: u32) -> Result<(), SessionError> {
        let before = self.lines.len();
        self.lines.retain(|l| l.line != line);
        if self.lines.len() == before {
            return Err(SessionError::UnknownLine(line));
        }
        self.commit_time = None;
        Ok(())
    }

    pub fn attach(&mut self, member: Option<MemberRef>) {
        self.commit_time = None;
        self.member = member;
    }

    /// The sale request this checkout commits as, at `time` (RFC 3339).
    pub fn sale_request(
        &self,
        time: String,
        redeem: Vec<Redemption>,
    ) -> Result<SaleRequest, SessionError> {
        if self.lines.is_empty() {
            return Err(SessionError::Empty);
        }
        let lines = self
            .lines
            .iter()
            .map(|l| crate::model::BasketLine {
                line: Some(l.line),
                sku: l.sku.clone(),
                category: l.category.clone(),
                qty: l.qty,
                unit_price: l.unit_price,
                discount: Decimal::ZERO,
            })
            .collect();
        Ok(SaleRequest {
            sale_id: self.sale_id.clone(),
            time,
            member: self.member.clone(),
            lines,
            redeem,
        })
    }
}

/// What `GET /v1/session` answers and the `session` event carries.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// `null` when no checkout is open.
    pub checkout: Option<Checkout>,
    /// Sum of `qty × unit_price` over the lines; `null` when it cannot be
    /// represented exactly (absurd catalog prices): never a wrong figure.
    pub amount: Option<Decimal>,
}

impl SessionView {
    fn of(checkout: &Option<Checkout>) -> Self {
        let amount = match checkout {
            None => Some(Decimal::ZERO),
            Some(c) => c.lines.iter().try_fold(Decimal::ZERO, |sum, l| {
                l.qty
                    .checked_mul(l.unit_price)
                    .and_then(|a| sum.checked_add(a))
            }),
        };
        SessionView {
            checkout: checkout.clone(),
            amount,
        }
    }
}

/// What a session operation failed on: its own rules or the store.
#[derive(Debug)]
pub enum SessionFailure {
    Session(SessionError),
    Store(crate::store::StoreError),
}

impl From<SessionError> for SessionFailure {
    fn from(e: SessionError) -> Self {
        SessionFailure::Session(e)
    }
}

impl From<crate::store::StoreError> for SessionFailure {
    fn from(e: crate::store::StoreError) -> Self {
        SessionFailure::Store(e)
    }
}

/// The register's checkout, shared by the API and (later) the scanners.
pub struct Session {
    state: Mutex<Option<Checkout>>,
    store: crate::store::Store,
    events: EventBus,
    timezone: jiff::tz::TimeZone,
    /// The sync worker, once it runs: commits with redemptions ask it for
    /// online holds (sync spec §4), as `POST /v1/sales` does.
    sync: std::sync::OnceLock<crate::sync_worker::SyncMonitor>,
}

impl Session {
    pub fn new(store: crate::store::Store, events: EventBus, timezone: jiff::tz::TimeZone) -> Self {
        Session {
            state: Mutex::new(None),
            store,
            events,
            timezone,
            sync: std::sync::OnceLock::new(),
        }
    }

    /// Connects the sync worker (the daemon does, once).
    pub fn attach_sync(&self, monitor: crate::sync_worker::SyncMonitor) {
        let _ = self.sync.set(monitor);
    }

    fn changed(&self, state: &Option<Checkout>) -> SessionView {
        let view = SessionView::of(state);
        if let Ok(value) = serde_json::to_value(&view) {
            self.events.publish(Event::Session(value));
        }
        view
    }

    pub async fn view(&self) -> SessionView {
        SessionView::of(&*self.state.lock().await)
    }

    /// Opens a checkout. Refused while one with lines is open (commit or
    /// clear it first); an empty open checkout is replaced.
    pub async fn start(&self, sale_id: Option<String>) -> Result<SessionView, SessionFailure> {
        let mut state = self.state.lock().await;
        if let Some(open) = state.as_ref()
            && !open.lines.is_empty()
        {
            return Err(SessionError::Busy(open.lines.len()).into());
        }
        let sale_id = sale_id.unwrap_or_else(new_sale_id);
        *state = Some(Checkout::new(sale_id)?);
        Ok(self.changed(&state))
    }

    /// Attaches (or with `None` detaches) the member; opens a checkout when
    /// none is open, as a card swipe before the first item does.
    pub async fn attach_member(
        &self,
        member: Option<MemberRef>,
    ) -> Result<SessionView, SessionFailure> {
        let mut state = self.state.lock().await;
        let checkout = open_or_start(&mut state)?;
        checkout.attach(member);
        Ok(self.changed(&state))
    }

    /// Adds `qty` of `sku`, priced from the catalog cache; opens a checkout
    /// when none is open, as the first scan does.
    pub async fn add_line(&self, sku: &str, qty: Decimal) -> Result<SessionView, SessionFailure> {
        let product = self
            .store
            .product(sku)
            .await?
            .ok_or_else(|| SessionError::UnknownSku(sku.to_string()))?;
        let priced = Priced {
            sku: product.sku,
            name: product.name,
            category: product.category,
            unit_price: product.price,
        };
        let mut state = self.state.lock().await;
        let checkout = open_or_start(&mut state)?;
        checkout.add(priced, qty)?;
        Ok(self.changed(&state))
    }

    /// Adds `qty` of a product already priced by the caller (a scanner: the
    /// catalog lookup by several keys, or a price embedded in the label);
    /// opens a checkout when none is open. Returns the line number.
    pub async fn add_priced(
        &self,
        product: Priced,
        qty: Decimal,
    ) -> Result<(u32, SessionView), SessionFailure> {
        let mut state = self.state.lock().await;
        let checkout = open_or_start(&mut state)?;
        let line = checkout.add(product, qty)?;
        Ok((line, self.changed(&state)))
    }

    /// Shows a scanned code the catalog does not know in the checkout;
    /// opens a checkout when none is open, as any first scan does.
    pub async fn note_unknown_product(&self, code: String) -> Result<SessionView, SessionFailure> {
        let mut state = self.state.lock().await;
        let checkout = open_or_start(&mut state)?;
        checkout.note_unknown_product(code);
        Ok(self.changed(&state))
    }

    pub async fn remove_line(&self, line: u32) -> Result<SessionView, SessionFailure> {
        let mut state = self.state.lock().await;
        let checkout = state.as_mut().ok_or(SessionError::NoSession)?;
        checkout.remove(line)?;
        Ok(self.changed(&state))
    }

    /// Drops the open checkout (if any).
    pub async fn clear(&self) -> SessionView {
        let mut state = self.state.lock().await;
        *state = None;
        self.changed(&state)
    }

    /// Commits the checkout as a sale through the store. On success the
    /// checkout is closed; on failure it stays open, unchanged, so the
    /// cashier can fix it (or retry: the same sale id and time are sent).
    pub async fn commit(
        &self,
        redeem: Vec<Redemption>,
    ) -> Result<Committed<SaleAnswer>, SessionFailure> {
        let mut state = self.state.lock().await;
        let checkout = state.as_mut().ok_or(SessionError::NoSession)?;
        let time = match &checkout.commit_time {
            Some(t) => t.clone(),
            None => {
                let t = now_rfc3339(&self.timezone);
                checkout.commit_time = Some(t.clone());
                t
            }
        };
        let request = checkout.sale_request(time, redeem)?;
        let holds = match self.sync.get() {
            Some(sync) => sync.authorise_redemptions(&self.store, &request).await?,
            None => Default::default(),
        };
        let answer = match self.store.commit_sale(request).await {
            Ok(answer) => answer,
            Err(error) => {
                holds.release();
                return Err(error.into());
            }
        };
        *state = None;
        self.changed(&state);
        Ok(answer)
    }
}

fn open_or_start(state: &mut Option<Checkout>) -> Result<&mut Checkout, SessionError> {
    if state.is_none() {
        *state = Some(Checkout::new(new_sale_id())?);
    }
    state.as_mut().ok_or(SessionError::NoSession)
}

/// A fresh sale id for a checkout the POS did not name: a UUIDv7, so ids
/// sort by time and never repeat across restarts.
fn new_sale_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The register's wall clock in its configured time zone, RFC 3339 with
/// offset (the basket `time` format).
pub fn now_rfc3339(tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::now()
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn product(sku: &str, price: &str) -> Priced {
        Priced {
            sku: sku.to_string(),
            name: format!("product {sku}"),
            category: None,
            unit_price: Decimal::from_str(price).expect("test price"),
        }
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn same_item_twice_adds_to_its_line() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        assert_eq!(c.add(product("a", "1.00"), d("1")), Ok(1));
        assert_eq!(c.add(product("b", "2.00"), d("1")), Ok(2));
        assert_eq!(c.add(product("a", "1.00"), d("2")), Ok(1));
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0].qty, d("3"));
    }

    #[test]
    fn removed_line_numbers_are_not_reused() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        c.add(product("a", "1.00"), d("1")).expect("add a");
        c.add(product("b", "1.00"), d("1")).expect("add b");
        c.remove(1).expect("remove 1");
        assert_eq!(c.add(product("c", "1.00"), d("1")), Ok(3));
        assert_eq!(c.remove(1), Err(SessionError::UnknownLine(1)));
    }

    #[test]
    fn bad_quantities_are_refused() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        for q in ["0", "-1", "10001", "0.0001"] {
            assert!(
                matches!(c.add(product("a", "1"), d(q)), Err(SessionError::BadQty(_))),
                "{q}"
            );
        }
        assert!(c.lines.is_empty());
    }

    #[test]
    fn line_count_is_bounded() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        for i in 0..SESSION_LINES_MAX {
            c.add(product(&format!("sku{i}"), "1"), d("1"))
                .expect("add");
        }
        assert_eq!(
            c.add(product("one-more", "1"), d("1")),
            Err(SessionError::TooManyLines)
        );
    }

    #[test]
    fn sale_request_carries_lines_member_and_fixed_sale_id() {
        let mut c = Checkout::new("S-9".into()).expect("sale id");
        assert_eq!(
            c.sale_request("t".into(), vec![]).unwrap_err(),
            SessionError::Empty
        );
        c.add(product("a", "2.50"), d("2")).expect("add");
        c.attach(Some(MemberRef::Card("999".into())));
        let r = c
            .sale_request("2026-11-28T11:05:00+01:00".into(), vec![])
            .expect("request");
        assert_eq!(r.sale_id, "S-9");
        assert_eq!(r.member, Some(MemberRef::Card("999".into())));
        assert_eq!(r.lines.len(), 1);
        assert_eq!(r.lines[0].line, Some(1));
        assert_eq!(r.lines[0].unit_price, d("2.50"));
    }

    #[test]
    fn unknown_products_are_bounded_newest_last_without_repeats() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        for i in 0..=UNKNOWN_PRODUCTS_MAX {
            c.note_unknown_product(format!("code{i}"));
        }
        c.note_unknown_product("code5".into());
        assert_eq!(c.unknown_products.len(), UNKNOWN_PRODUCTS_MAX);
        assert_eq!(
            c.unknown_products.first().map(String::as_str),
            Some("code1")
        );
        assert_eq!(c.unknown_products.last().map(String::as_str), Some("code5"));
        assert_eq!(
            c.unknown_products.iter().filter(|c| *c == "code5").count(),
            1
        );
    }

    #[test]
    fn view_amount_sums_lines() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        c.add(product("a", "2.50"), d("2")).expect("add");
        c.add(product("b", "0.99"), d("1.5")).expect("add");
        assert_eq!(SessionView::of(&Some(c)).amount, Some(d("6.485")));
    }

    #[test]
    fn an_amount_that_overflows_is_null_not_wrong() {
        let mut c = Checkout::new("S-1".into()).expect("sale id");
        c.add(product("a", "79228162514264337593543950335"), d("2"))
            .expect("add");
        assert_eq!(SessionView::of(&Some(c)).amount, None);
    }
}
