//! # pos-points: the loyalty points engine
//!
//! The contract of `shared/spec/points.md`: the rules bundle a central
//! platform publishes ([`Bundle`], §1), the basket a register quotes
//! ([`Basket`], §2), the exact evaluation ([`quote()`], §3) and its result
//! ([`Quote`], §4), returns ([`returns`], §5) and the redemption checks that
//! need no member data ([`redeem`], §6).
//!
//! The crate is pure: no file reading, no clock, no async. Callers choose the
//! [`Format`] of a bundle (usually [`Format::from_path`]) and pass text.
//!
//! ```
//! use pos_points::{quote, Basket, Bundle, Format};
//! let bundle = Bundle::parse(r#"{"version": 1, "programs": [
//!     {"id": "main", "currency": "EUR", "base_rate": "1"}]}"#, Format::Json)?;
//! let basket = Basket::parse_json(r#"{"time": "2026-11-28T11:05:00+01:00",
//!     "lines": [{"sku": "A", "qty": "2", "unit_price": "9.99"}]}"#)?;
//! let quote = quote(&bundle, &basket)?;
//! assert_eq!(quote.programs[0].total, 19); // floor(19.98 × 1)
//! # Ok::<(), pos_points::Error>(())
//! ```
//!
//! ## Guarantees
//! - Money, rates and quantities are `rust_decimal::Decimal`; points are `i64`.
//!   Every step of a quote is exact or an [`ErrorKind::Arithmetic`] error,
//!   never a silently rounded value, never a panic; the only roundings are the
//!   program's own (§3) and the documented pro-rating of returns.
//! - Parsing refuses the whole document and names every problem found with
//!   its path (`programs[0].rules[3].value`) and owners
//!   (`program "main", rule "double-shoes"`); see [`Error`].
//! - Inputs are bounded ([`limits`]), which keeps evaluation exact for any
//!   realistic data.
//!
//! ## Layering
//! Parsing goes in one direction; each module uses only modules earlier in
//! this list, never a later one (`grep -n "use crate::" points/src/*.rs`
//! shows it), so a change to how documents are written never reaches the
//! types the engine computes with:
//! 1. model: `bundle` and `basket` (with `decimal`, `localtime`, `error`):
//!    the types and what they mean, knowing nothing of how they are written;
//! 2. `raw`: the serde shapes of the documents as written (decimals, names
//!    and times still strings), knowing nothing of the model;
//! 3. `validate`: raw into model (`validate::convert`, every bad value
//!    recorded) and every check of spec §1 and §2, all problems collected;
//! 4. `parse`: the entry points from text ([`Bundle::parse`],
//!    [`Basket::parse_json`], serde `Deserialize`) and the rendering of
//!    shape errors with paths and owners.
//!
//! [`quote()`], [`returns`] and [`redeem`] work on the model alone.
//!
//! ## Readings of the spec where it leaves room
//! Each is documented where it is implemented; in short:
//! - `when.days: []` matches no day (the spec says "an empty list counts as
//!   absent" for `tiers` and for `match`, not for `days`).
//! - `when.hours` takes `00:00`..`23:59`; `24:00` is refused. Seconds and
//!   fractions of the basket time count: `13:59:59.9` is before `14:00`, and
//!   `when.to` excludes its own second.
//! - The basket `time` is strict RFC 3339: `T` or `t`, seconds required,
//!   1–9 fraction digits, `Z`/`z` or `±HH:MM`; a leap second `:60` reads as `:59`.
//! - Without a member, `earned_today` and `member_daily_cap` still apply as
//!   written in §3.7 (a guest basket normally has no `earned_today`).
//! - A `stop` rule stops later rules when its own (capped) points are > 0,
//!   even if it then loses its `best` group: §3.4 comes before §3.5.
//! - Ranges the spec leaves open: `min_spend`, `paid_with_points`, caps and
//!   limits must be >= 0; `earned_today` may be any integer; every `redeem`
//!   field is required, `points_per_unit` and `step` >= 1, `max_share` >= 0;
//!   `currency` is three capital letters; `member.programs` is required;
//!   `member.programs` and `earned_today` may name programs the bundle does
//!   not have (they are ignored).
//! - Decimal strings are `-?digits[.digits]` only (no exponent, `+`, spaces),
//!   with at most [`limits::DECIMAL_SCALE_MAX`] places (trailing zeros not
//!   counted) and absolute value <= [`limits::DECIMAL_ABS_MAX`]. They are
//!   stored normalized. Every problem of a document is reported, except past
//!   bad syntax, a missing required field or a bad array element, where
//!   reading cannot go on (up to [`limits::SHAPE_PROBLEMS_MAX`] shape errors).
//! - Parsed bundles hold their rules in evaluation order.
//! - Returns ([`returns::reversal`]) pro-rate a line's `discount` with its
//!   quantity; [`redeem::currency_value`] is `None` unless the quotient is exact.

mod basket;
mod bundle;
mod decimal;
mod error;
mod localtime;
mod parse;
mod quote;
mod raw;
mod validate;

pub mod redeem;
pub mod returns;

pub use basket::{Basket, Line, Member, MemberProgram};
pub use bundle::{
    Bundle, Day, Group, GroupMode, Hours, Limits, Match, Program, Redeem, Rule, RuleKind, Tier,
    When,
};
pub use decimal::{Rounding, deserialize_strict as deserialize_decimal, parse as parse_decimal};
pub use error::{Error, ErrorKind, Problem};
pub use parse::Format;
pub use quote::{Limit, ProgramQuote, Quote, RuleQuote, quote};

/// Bounds on every input, so that evaluation stays exact and memory bounded.
/// The spec sets none of these; they are far beyond any real store.
pub mod limits {
    /// Largest bundle or basket text accepted, in bytes.
    pub const DOCUMENT_BYTES_MAX: usize = 16 * 1024 * 1024;
    /// Shape errors (unknown field, wrong type) reported for one document;
    /// each costs a re-read of the document.
    pub const SHAPE_PROBLEMS_MAX: usize = 50;
    /// Programs per bundle.
    pub const PROGRAMS_MAX: usize = 64;
    /// Rules per program.
    pub const RULES_PER_PROGRAM_MAX: usize = 1_000;
    /// Tiers per program.
    pub const TIERS_PER_PROGRAM_MAX: usize = 100;
    /// Groups per program.
    pub const GROUPS_PER_PROGRAM_MAX: usize = 1_000;
    /// Entries of any list of names (categories, skus, tiers, days).
    pub const LIST_ENTRIES_MAX: usize = 1_000;
    /// Lines per basket.
    pub const LINES_MAX: usize = 1_000;
    /// Programs a member snapshot or `earned_today` may list.
    pub const MEMBER_PROGRAMS_MAX: usize = 1_000;
    /// Length of a program id (spec: `[a-z0-9_-]{1,64}`), in bytes.
    pub const PROGRAM_ID_BYTES_MAX: usize = 64;
    /// Length of any other id or name (rule, tier, group, sku, category, member, sale), in bytes.
    pub const TEXT_BYTES_MAX: usize = 256;
    /// Decimal places of any decimal, trailing zeros not counted.
    pub const DECIMAL_SCALE_MAX: u32 = 8;
    /// Largest absolute value of any decimal.
    pub const DECIMAL_ABS_MAX: i64 = 1_000_000_000_000;
}
