//! Redemption checks that need only the program and the basket (spec §6).
//! The member-dependent refusals (`insufficient_points`,
//! `offline_allowance_exceeded`, `member_blocked`) are decided by the agent,
//! which knows balances and staleness; their codes live here so that every
//! crate spells them the same.

use rust_decimal::Decimal;

use crate::bundle::Program;
use crate::decimal;

/// Why a redemption is refused, with the codes of the spec table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The program has no `redeem` section.
    NotRedeemable,
    /// The member is blocked.
    MemberBlocked,
    /// `p < min_points`.
    BelowMinimum,
    /// `p` is not a multiple of `step`.
    NotAStep,
    /// `p / points_per_unit > max_share × basket amount`.
    ExceedsMaxShare,
    /// `p` > the member's available points.
    InsufficientPoints,
    /// Stale member data and the offline allowance would be exceeded.
    OfflineAllowanceExceeded,
}

impl Refusal {
    /// The code exactly as in spec §6.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotRedeemable => "not_redeemable",
            Refusal::MemberBlocked => "member_blocked",
            Refusal::BelowMinimum => "below_minimum",
            Refusal::NotAStep => "not_a_step",
            Refusal::ExceedsMaxShare => "exceeds_max_share",
            Refusal::InsufficientPoints => "insufficient_points",
            Refusal::OfflineAllowanceExceeded => "offline_allowance_exceeded",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Checks, in this order, `not_redeemable`, `below_minimum`, `not_a_step`,
/// `exceeds_max_share` (with `basket_amount` = all lines). The share test is
/// done without division: `p > max_share × basket_amount × points_per_unit`.
/// A product beyond exact arithmetic is refused as `exceeds_max_share`.
pub fn check(program: &Program, points: i64, basket_amount: Decimal) -> Result<(), Refusal> {
    let redeem = program.redeem.as_ref().ok_or(Refusal::NotRedeemable)?;
    if points < redeem.min_points {
        return Err(Refusal::BelowMinimum);
    }
    if redeem.step <= 0 || points % redeem.step != 0 {
        return Err(Refusal::NotAStep);
    }
    let allowed = decimal::mul(redeem.max_share, basket_amount)
        .and_then(|share| decimal::mul(share, Decimal::from(redeem.points_per_unit)))
        .ok_or(Refusal::ExceedsMaxShare)?;
    if Decimal::from(points) > allowed {
        return Err(Refusal::ExceedsMaxShare);
    }
    Ok(())
}

/// Currency value of `points` in this program: `points / points_per_unit`.
/// `None` when the program is not redeemable or the quotient is not an exact
/// decimal (e.g. 1 point at 3 points per unit), since money is never rounded here.
pub fn currency_value(program: &Program, points: i64) -> Option<Decimal> {
    let per_unit = Decimal::from(program.redeem.as_ref()?.points_per_unit);
    let value = Decimal::from(points).checked_div(per_unit)?;
    (decimal::mul(value, per_unit)? == Decimal::from(points)).then_some(value)
}
