//! Returns (spec §5): the points a return reverses and the redeemed points it gives back.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::basket::Basket;
use crate::bundle::Bundle;
use crate::decimal;
use crate::error::{Error, ErrorKind};
use crate::quote::quote;

/// Scale, at least, of a pro-rated money amount (cents). A pro-rated amount
/// keeps its own scale when that is finer.
const PRORATED_SCALE_MIN: u32 = 2;

/// Per-program points to reverse when the remaining quantities per line go
/// from `before` to `after`: `quote(before).total − quote(after).total`.
///
/// Both quotes use the sale's own context (time, member snapshot,
/// `earned_today`, the bundle the sale was quoted with) and `paid_with_points`
/// scaled by remaining amount over original amount. Keys are line numbers
/// ([`Basket::line_number`]); lines absent from a map have quantity 0.
///
/// The spec does not say how a line `discount` follows a partial quantity.
/// Here it is pro-rated like the quantity: `discount × remaining_qty / qty`.
/// That and the scaled `paid_with_points` are rounded half-even to the
/// amount's own scale or cents, whichever is finer (a division need not
/// terminate), and a full line keeps its exact discount. Successive reversals
/// telescope, so together they never exceed what the sale earned, and a full
/// return (after = nothing) reverses exactly the sale's quote.
pub fn reversal(
    bundle: &Bundle,
    sale: &Basket,
    before: &BTreeMap<u32, Decimal>,
    after: &BTreeMap<u32, Decimal>,
) -> Result<BTreeMap<String, i64>, Error> {
    let quote_before = quote(bundle, &remaining(sale, before, "before")?)?;
    let quote_after = quote(bundle, &remaining(sale, after, "after")?)?;
    let mut reversed = BTreeMap::new();
    for program in &quote_before.programs {
        let after_total = quote_after
            .programs
            .iter()
            .find(|other| other.program == program.program)
            .map_or(0, |other| other.total);
        reversed.insert(
            program.program.clone(),
            program.total.saturating_sub(after_total),
        );
    }
    Ok(reversed)
}

fn prorate(value: Decimal, numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    if numerator == denominator || denominator.is_zero() {
        return Some(value);
    }
    let scale = value.scale().max(PRORATED_SCALE_MIN);
    Some(
        decimal::mul(value, numerator)?
            .checked_div(denominator)?
            .round_dp_with_strategy(scale, RoundingStrategy::MidpointNearestEven),
    )
}

/// The sale with only the remaining quantities.
fn remaining(
    sale: &Basket,
    quantities: &BTreeMap<u32, Decimal>,
    which: &str,
) -> Result<Basket, Error> {
    let invalid = |message: String| Error::one(ErrorKind::Invalid, which, "", message);
    let arithmetic = || Error::arithmetic("", "pro-rating the returned lines");
    for number in quantities.keys() {
        if !(0..sale.lines.len()).any(|index| sale.line_number(index) == *number) {
            return Err(invalid(format!("line {number} is not a line of the sale")));
        }
    }
    let mut lines = Vec::with_capacity(sale.lines.len());
    for (index, line) in sale.lines.iter().enumerate() {
        let number = sale.line_number(index);
        let qty = quantities.get(&number).copied().unwrap_or(Decimal::ZERO);
        if qty < Decimal::ZERO || qty > line.qty {
            return Err(invalid(format!(
                "line {number}: remaining quantity must be between 0 and the {} sold, got \"{qty}\"",
                line.qty
            )));
        }
        if qty.is_zero() {
            continue;
        }
        let gross = decimal::mul(qty, line.unit_price).ok_or_else(arithmetic)?;
        let discount = prorate(line.discount, qty, line.qty)
            .ok_or_else(arithmetic)?
            .min(gross);
        let mut kept = line.clone();
        kept.line = Some(number);
        kept.qty = qty;
        kept.discount = discount;
        lines.push(kept);
    }
    let mut basket = Basket {
        lines,
        ..sale.clone()
    };
    let original = sale.amount();
    basket.paid_with_points =
        prorate(sale.paid_with_points, basket.amount(), original).ok_or_else(arithmetic)?;
    Ok(basket)
}

/// Redeemed points given back by a return:
/// `floor(redeemed × returned_amount / original_amount)`, or, for the return
/// that empties the sale (`is_last`), everything not yet given back. Never
/// more than `redeemed − already_back`, never negative. An original amount
/// of 0 gives nothing back before the last return.
pub fn redeemed_back(
    redeemed: i64,
    already_back: i64,
    returned_amount: Decimal,
    original_amount: Decimal,
    is_last: bool,
) -> i64 {
    let left = redeemed.saturating_sub(already_back).max(0);
    if is_last {
        return left;
    }
    if original_amount <= Decimal::ZERO || returned_amount <= Decimal::ZERO {
        return 0;
    }
    let Some(numerator) = decimal::mul(Decimal::from(redeemed), returned_amount) else {
        return 0;
    };
    // Division rounds at 28 digits, so the floor is checked against exact
    // products and corrected by one either way.
    let Some(mut back) = numerator
        .checked_div(original_amount)
        .map(|q| q.floor())
        .and_then(|q| i64::try_from(q).ok())
    else {
        return left;
    };
    let product = |points: i64| decimal::mul(Decimal::from(points), original_amount);
    if product(back).is_some_and(|p| p > numerator) {
        back -= 1;
    } else if product(back.saturating_add(1)).is_some_and(|p| p <= numerator) {
        back += 1;
    }
    back.clamp(0, left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn redeemed_back_floors_and_last_takes_the_rest() {
        // 1000 × 10 / 30 = 333.33 → 333.
        assert_eq!(redeemed_back(1000, 0, dec!(10), dec!(30), false), 333);
        assert_eq!(redeemed_back(1000, 333, dec!(10), dec!(30), false), 333);
        assert_eq!(redeemed_back(1000, 666, dec!(10), dec!(30), true), 334);
        // Exact division: 1000 × 15 / 30 = 500.
        assert_eq!(redeemed_back(1000, 0, dec!(15), dec!(30), false), 500);
        assert_eq!(redeemed_back(1000, 0, dec!(1), dec!(0), false), 0);
        assert_eq!(redeemed_back(1000, 900, dec!(30), dec!(30), false), 100);
    }
}
