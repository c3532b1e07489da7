//! Returns (spec §5): which quantities a return may take back, the amount
//! it returns, the points it reverses and the redeemed points it gives back.
//!
//! All of it is pure: the agent loads the sale, its earlier returns and its
//! ledger entries, calls [`plan`], [`reversal`] and [`settle`] in that order,
//! and stores what they decide.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::{Decimal, RoundingStrategy};

use crate::basket::Basket;
use crate::bundle::Bundle;
use crate::decimal;
use crate::error::{Error, ErrorKind};
use crate::quote::quote;

/// Scale, at least, of a pro-rated money amount (cents). A pro-rated amount
/// keeps its own scale when that is finer.
const PRORATED_SCALE_MIN: u32 = 2;

/// One line a return takes back: its number in the sale
/// ([`Basket::line_number`]) and the quantity, > 0 (the caller checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReturnedLine {
    /// Line number in the sale.
    pub line: u32,
    /// Quantity taken back.
    pub qty: Decimal,
}

/// What one return changes in its sale, before any points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remaining {
    /// Quantity left per line before this return; lines with nothing left
    /// are absent, as [`reversal`] expects.
    pub before: BTreeMap<u32, Decimal>,
    /// Quantity left per line after it, same convention.
    pub after: BTreeMap<u32, Decimal>,
    /// The returned lines' amounts, each line's amount (discount included)
    /// shared out by quantity: `amount × qty / sold`, unrounded beyond the
    /// 28 digits of the division.
    pub returned_amount: Decimal,
    /// The sale's whole amount ([`Basket::amount`]).
    pub original_amount: Decimal,
}

impl Remaining {
    /// True when this return leaves nothing of the sale: it then gives back
    /// every redeemed point not yet given back.
    pub fn is_last(&self) -> bool {
        self.after.is_empty()
    }
}

/// Why a return cannot be planned. Like [`crate::redeem::Refusal`] these are
/// answers for the register, each mapped by the agent to its own response,
/// not failures of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A line of the stored sale whose amount `qty × unit_price − discount`
    /// overflows; a sale that passed validation has none.
    SaleLineAmount {
        /// Line number in the sale.
        line: u32,
    },
    /// A line of the stored sale whose earlier returns do not subtract from
    /// its quantity.
    SaleLineQty {
        /// Line number in the sale.
        line: u32,
    },
    /// The return names a line the sale does not have.
    UnknownLine {
        /// Position in the return's lines.
        index: usize,
        /// The line number named.
        line: u32,
    },
    /// The return takes back more than remains of the line.
    ExceedsRemaining {
        /// Position in the return's lines.
        index: usize,
        /// Line number in the sale.
        line: u32,
        /// Quantity asked for.
        qty: Decimal,
        /// Quantity left before this return.
        remaining: Decimal,
    },
    /// The returned amount overflows.
    AmountOverflow {
        /// Position in the return's lines.
        index: usize,
    },
}

/// What a sale's ledger holds per program, as far as returns care.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaleLedger {
    /// Programs the sale earned points in.
    pub earned: BTreeSet<String>,
    /// Points redeemed on the sale per program (positive).
    pub redeemed: BTreeMap<String, i64>,
    /// Redeemed points earlier returns of the sale gave back, per program.
    pub given_back: BTreeMap<String, i64>,
}

/// What one return does in one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramReturn {
    /// Program id.
    pub program: String,
    /// Earned points taken back, >= 0.
    pub reversed: i64,
    /// Redeemed points given back, >= 0.
    pub given_back: i64,
}

/// Plans a return of `lines` from `sale`, whose earlier returns took back
/// `returned_so_far` per line. Checks, in this order: every sale line's
/// amount and remaining quantity (in line order), then each returned line
/// (known, not more than remains, amount in range).
pub fn plan(
    sale: &Basket,
    returned_so_far: &BTreeMap<u32, Decimal>,
    lines: &[ReturnedLine],
) -> Result<Remaining, Refusal> {
    let (before, sold) = before_return(sale, returned_so_far)?;
    let mut after = before.clone();
    let mut returned_amount = Decimal::ZERO;
    for (index, taken) in lines.iter().enumerate() {
        let Some(&(qty, amount)) = sold.get(&taken.line) else {
            return Err(Refusal::UnknownLine {
                index,
                line: taken.line,
            });
        };
        take(&mut after, &before, index, taken)?;
        // The line's amount shared out by quantity (discount included).
        returned_amount = amount
            .checked_mul(taken.qty)
            .and_then(|part| part.checked_div(qty))
            .and_then(|part| returned_amount.checked_add(part))
            .ok_or(Refusal::AmountOverflow { index })?;
    }
    Ok(Remaining {
        before,
        after,
        returned_amount,
        original_amount: sale.amount(),
    })
}

/// Sold quantity and amount per sale line, and the quantity left of each
/// before this return (lines with nothing left absent).
type BeforeReturn = (BTreeMap<u32, Decimal>, BTreeMap<u32, (Decimal, Decimal)>);

fn before_return(
    sale: &Basket,
    returned_so_far: &BTreeMap<u32, Decimal>,
) -> Result<BeforeReturn, Refusal> {
    let mut before = BTreeMap::new();
    let mut sold = BTreeMap::new();
    for (index, line) in sale.lines.iter().enumerate() {
        let number = sale.line_number(index);
        let amount = line
            .qty
            .checked_mul(line.unit_price)
            .and_then(|gross| gross.checked_sub(line.discount))
            .ok_or(Refusal::SaleLineAmount { line: number })?;
        sold.insert(number, (line.qty, amount));
        let left = line
            .qty
            .checked_sub(returned_so_far.get(&number).copied().unwrap_or_default())
            .ok_or(Refusal::SaleLineQty { line: number })?;
        if left > Decimal::ZERO {
            before.insert(number, left);
        }
    }
    Ok((before, sold))
}

/// Takes `taken` off what remains of its line in `after`.
fn take(
    after: &mut BTreeMap<u32, Decimal>,
    before: &BTreeMap<u32, Decimal>,
    index: usize,
    taken: &ReturnedLine,
) -> Result<(), Refusal> {
    let remaining = before.get(&taken.line).copied().unwrap_or_default();
    if taken.qty > remaining {
        return Err(Refusal::ExceedsRemaining {
            index,
            line: taken.line,
            qty: taken.qty,
            remaining,
        });
    }
    let left = remaining
        .checked_sub(taken.qty)
        .ok_or(Refusal::AmountOverflow { index })?;
    if left > Decimal::ZERO {
        after.insert(taken.line, left);
    } else {
        after.remove(&taken.line);
    }
    Ok(())
}

/// Per program the sale earned or redeemed in (by id): the points this
/// return reverses (from [`reversal`], only where the sale earned, never
/// negative) and the redeemed points it gives back ([`redeemed_back`]).
pub fn settle(
    reversal: &BTreeMap<String, i64>,
    ledger: &SaleLedger,
    remaining: &Remaining,
) -> Vec<ProgramReturn> {
    let programs: BTreeSet<&String> = ledger.earned.iter().chain(ledger.redeemed.keys()).collect();
    programs
        .into_iter()
        .map(|program| {
            let reversed = if ledger.earned.contains(program) {
                reversal.get(program).copied().unwrap_or(0).max(0)
            } else {
                0
            };
            let given_back = match ledger.redeemed.get(program) {
                Some(&points) => redeemed_back(
                    points,
                    ledger.given_back.get(program).copied().unwrap_or(0),
                    remaining.returned_amount,
                    remaining.original_amount,
                    remaining.is_last(),
                ),
                None => 0,
            };
            ProgramReturn {
                program: program.clone(),
                reversed,
                given_back,
            }
        })
        .collect()
}

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
    use crate::basket::Line;
    use crate::parse::Format;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn line(qty: Decimal, unit_price: Decimal, discount: Decimal) -> Line {
        Line {
            line: None,
            sku: "A".to_owned(),
            category: None,
            qty,
            unit_price,
            discount,
        }
    }

    fn sale(lines: Vec<Line>, paid_with_points: Decimal) -> Basket {
        Basket {
            sale_id: Some("s1".to_owned()),
            time: "2026-11-28T11:05:00+01:00".to_owned(),
            member: None,
            earned_today: BTreeMap::new(),
            paid_with_points,
            lines,
        }
    }

    fn taken(line: u32, qty: Decimal) -> ReturnedLine {
        ReturnedLine { line, qty }
    }

    fn bundle() -> Bundle {
        Bundle::parse(
            r#"{"version": 1, "programs": [
                {"id": "main", "currency": "EUR", "base_rate": "1"}]}"#,
            Format::Json,
        )
        .expect("test bundle")
    }

    #[test]
    fn plan_takes_quantities_and_shares_amounts_by_quantity() {
        // Line 1: 3 × 10 − 3 = 27; line 2: 2 × 5 = 10.
        let sale = sale(
            vec![
                line(dec!(3), dec!(10), dec!(3)),
                line(dec!(2), dec!(5), dec!(0)),
            ],
            Decimal::ZERO,
        );
        let so_far = BTreeMap::from([(2, dec!(1))]);
        let plan =
            plan(&sale, &so_far, &[taken(1, dec!(1)), taken(2, dec!(1))]).expect("a valid return");
        assert_eq!(plan.before, BTreeMap::from([(1, dec!(3)), (2, dec!(1))]));
        assert_eq!(plan.after, BTreeMap::from([(1, dec!(2))]));
        assert_eq!(plan.returned_amount, dec!(14)); // 27 / 3 + 10 / 2
        assert_eq!(plan.original_amount, dec!(37));
        assert!(!plan.is_last());
    }

    #[test]
    fn plan_refuses_unknown_lines_and_more_than_remains() {
        let sale = sale(vec![line(dec!(2), dec!(1), dec!(0))], Decimal::ZERO);
        let so_far = BTreeMap::from([(1, dec!(1.5))]);
        assert_eq!(
            plan(&sale, &so_far, &[taken(1, dec!(0.5)), taken(7, dec!(1))]),
            Err(Refusal::UnknownLine { index: 1, line: 7 })
        );
        assert_eq!(
            plan(&sale, &so_far, &[taken(1, dec!(1))]),
            Err(Refusal::ExceedsRemaining {
                index: 0,
                line: 1,
                qty: dec!(1),
                remaining: dec!(0.5),
            })
        );
        let done = BTreeMap::from([(1, dec!(2))]);
        assert_eq!(
            plan(&sale, &done, &[taken(1, dec!(1))]),
            Err(Refusal::ExceedsRemaining {
                index: 0,
                line: 1,
                qty: dec!(1),
                remaining: Decimal::ZERO,
            })
        );
    }

    #[test]
    fn settle_reverses_only_earned_programs_and_gives_back_redeemed() {
        let sale = sale(vec![line(dec!(3), dec!(10), dec!(0))], Decimal::ZERO);
        let remaining = plan(&sale, &BTreeMap::new(), &[taken(1, dec!(1))]).expect("plan");
        let ledger = SaleLedger {
            earned: BTreeSet::from(["main".to_owned()]),
            redeemed: BTreeMap::from([("gift".to_owned(), 1000)]),
            given_back: BTreeMap::new(),
        };
        let reversal = BTreeMap::from([("main".to_owned(), 10), ("gift".to_owned(), 4)]);
        assert_eq!(
            settle(&reversal, &ledger, &remaining),
            vec![
                ProgramReturn {
                    program: "gift".to_owned(),
                    reversed: 0,
                    given_back: 333,
                },
                ProgramReturn {
                    program: "main".to_owned(),
                    reversed: 10,
                    given_back: 0,
                },
            ]
        );
    }

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

    /// Up to four lines of whole or half quantities and cent prices, a
    /// discount below each line's gross, and some points paid.
    fn sales() -> impl Strategy<Value = Basket> {
        let one = (1u32..=8, 0u32..=2_000, 0u32..=100).prop_map(|(halves, cents, off)| {
            let qty = Decimal::new(i64::from(halves) * 5, 1);
            let price = Decimal::new(i64::from(cents), 2);
            let gross = qty * price;
            let discount = (gross * Decimal::new(i64::from(off), 2) / Decimal::from(100))
                .round_dp(2)
                .min(gross);
            line(qty.normalize(), price.normalize(), discount.normalize())
        });
        (prop::collection::vec(one, 1..=4), 0u32..=500).prop_map(|(lines, paid)| {
            let basket = sale(lines, Decimal::ZERO);
            let paid = Decimal::new(i64::from(paid), 2).min(basket.amount());
            Basket {
                paid_with_points: paid,
                ..basket
            }
        })
    }

    /// The sale's lines returned in pieces: each line's quantity split at
    /// `cuts` (quarters of it), one piece per return, smallest first.
    fn returns_of(sale: &Basket, cuts: &[u8]) -> Vec<Vec<ReturnedLine>> {
        let mut pieces: Vec<ReturnedLine> = Vec::new();
        for (index, line) in sale.lines.iter().enumerate() {
            let number = sale.line_number(index);
            let cut = cuts.get(index).copied().unwrap_or(0);
            let first = (line.qty * Decimal::from(cut) / Decimal::from(4)).round_dp(1);
            if first > Decimal::ZERO && first < line.qty {
                pieces.push(taken(number, first));
                pieces.push(taken(number, line.qty - first));
            } else {
                pieces.push(taken(number, line.qty));
            }
        }
        pieces.sort_by_key(|piece| piece.qty);
        pieces.into_iter().map(|piece| vec![piece]).collect()
    }

    proptest! {
        #[test]
        fn returns_in_pieces_telescope_to_the_sale(
            sale in sales(),
            cuts in prop::collection::vec(0u8..=4, 4),
            redeemed in 0i64..=5_000,
        ) {
            let bundle = bundle();
            let earned = crate::quote::quote(&bundle, &sale).expect("quote").programs[0].total;
            let mut so_far: BTreeMap<u32, Decimal> = BTreeMap::new();
            let (mut reversed, mut given_back) = (0i64, 0i64);
            let returns = returns_of(&sale, &cuts);
            let count = returns.len();
            for (n, lines) in returns.into_iter().enumerate() {
                let remaining = plan(&sale, &so_far, &lines).expect("plan");
                prop_assert_eq!(remaining.is_last(), n + 1 == count);
                prop_assert!(remaining.returned_amount >= Decimal::ZERO);
                let points = reversal(&bundle, &sale, &remaining.before, &remaining.after)
                    .expect("reversal");
                let ledger = SaleLedger {
                    earned: BTreeSet::from(["main".to_owned()]),
                    redeemed: BTreeMap::from([("main".to_owned(), redeemed)]),
                    given_back: BTreeMap::from([("main".to_owned(), given_back)]),
                };
                let settled = settle(&points, &ledger, &remaining);
                prop_assert_eq!(settled.len(), 1);
                prop_assert!(settled[0].reversed >= 0 && settled[0].given_back >= 0);
                reversed += settled[0].reversed;
                given_back += settled[0].given_back;
                prop_assert!(reversed <= earned);
                prop_assert!(given_back <= redeemed);
                for taken in &lines {
                    *so_far.entry(taken.line).or_default() += taken.qty;
                }
            }
            // A full return, however split, reverses and gives back everything.
            prop_assert_eq!(reversed, earned);
            prop_assert_eq!(given_back, redeemed);
        }

        #[test]
        fn plan_keeps_quantities_and_refuses_past_what_remains(
            sale in sales(),
            line_index in 0usize..4,
            halves in 1u32..=20,
        ) {
            let index = line_index % sale.lines.len();
            let number = sale.line_number(index);
            let qty = Decimal::new(i64::from(halves) * 5, 1);
            let sold = sale.lines[index].qty;
            match plan(&sale, &BTreeMap::new(), &[taken(number, qty)]) {
                Ok(remaining) => {
                    prop_assert!(qty <= sold);
                    let left = remaining.after.get(&number).copied().unwrap_or_default();
                    prop_assert_eq!(left + qty, sold);
                    prop_assert_eq!(remaining.before.len(), sale.lines.len());
                    // The line's amount shared by quantity: all of it for all of it.
                    let amount = sale.lines[index].amount().expect("amount");
                    if qty == sold {
                        prop_assert_eq!(remaining.returned_amount, amount);
                    } else {
                        prop_assert!(remaining.returned_amount <= amount);
                    }
                }
                Err(refusal) => {
                    prop_assert!(qty > sold);
                    prop_assert_eq!(refusal, Refusal::ExceedsRemaining {
                        index: 0,
                        line: number,
                        qty,
                        remaining: sold,
                    });
                }
            }
        }

        #[test]
        fn redeemed_back_never_exceeds_what_is_left(
            redeemed in 0i64..=1_000_000,
            already in 0i64..=1_000_000,
            returned_cents in 0i64..=1_000_000,
            original_cents in 0i64..=1_000_000,
            is_last in any::<bool>(),
        ) {
            let back = redeemed_back(
                redeemed,
                already,
                Decimal::new(returned_cents, 2),
                Decimal::new(original_cents, 2),
                is_last,
            );
            let left = (redeemed - already).max(0);
            prop_assert!((0..=left).contains(&back));
            if is_last {
                prop_assert_eq!(back, left);
            } else if original_cents > 0 && returned_cents <= original_cents {
                // floor(redeemed × returned / original), exactly, when it fits.
                let exact = i128::from(redeemed) * i128::from(returned_cents)
                    / i128::from(original_cents);
                prop_assert_eq!(i128::from(back), exact.min(i128::from(left)));
            }
        }
    }
}
