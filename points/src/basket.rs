//! The basket that is quoted (spec §2).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::decimal;

/// A sale as it stands at the register.
///
/// Serializes back to the basket JSON shape; deserializing (see `parse`) validates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Basket {
    /// Echoed in the quote (`null` when absent).
    pub sale_id: Option<String>,
    /// RFC 3339 with offset, as given. Time conditions use its wall clock as
    /// written; the offset is validated but not applied.
    pub time: String,
    /// The identified member, if any.
    pub member: Option<Member>,
    /// Points the member already earned today, per program (absent = 0).
    pub earned_today: BTreeMap<String, i64>,
    /// Currency value of this sale paid with points, >= 0.
    pub paid_with_points: Decimal,
    /// The basket lines.
    pub lines: Vec<Line>,
}

/// The member snapshot a basket carries.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Member {
    /// Echoed in the quote.
    pub id: String,
    /// `YYYY-MM-DD`; only its month matters.
    pub birthday: Option<String>,
    /// The programs the member earns in, keyed by program id.
    pub programs: BTreeMap<String, MemberProgram>,
}

/// The member's standing in one program.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemberProgram {
    /// A tier id; one the program does not declare counts as no tier.
    pub tier: Option<String>,
}

/// One basket line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    /// Line number; defaults to the 1-based position; unique in the basket.
    pub line: Option<u32>,
    /// Article number.
    pub sku: String,
    /// Category, matched by rules and `exclude_categories`.
    pub category: Option<String>,
    /// Quantity, > 0 (weighted items have decimals).
    pub qty: Decimal,
    /// Price of one unit, >= 0.
    pub unit_price: Decimal,
    /// Discount on the whole line, >= 0.
    pub discount: Decimal,
}

impl Line {
    /// `qty × unit_price − discount`, exact; `None` beyond the exact range.
    pub fn amount(&self) -> Option<Decimal> {
        decimal::sub(decimal::mul(self.qty, self.unit_price)?, self.discount)
    }
}

/// How problems name a line: by its number, explicit or positional.
pub(crate) fn line_context(line: Option<u32>, index: usize) -> String {
    match line {
        Some(number) => format!("line {number}"),
        None => format!("line {} (by position)", index + 1),
    }
}

impl Basket {
    /// Sum of all line amounts (excluded categories included). Exact for a
    /// validated basket; validation refuses baskets where it would not be,
    /// and for those this saturates instead of panicking.
    pub fn amount(&self) -> Decimal {
        self.lines
            .iter()
            .try_fold(Decimal::ZERO, |sum, line| decimal::add(sum, line.amount()?))
            .unwrap_or(Decimal::MAX)
    }

    /// The line's explicit `line`, or its 1-based position.
    pub fn line_number(&self, index: usize) -> u32 {
        match self.lines.get(index).and_then(|line| line.line) {
            Some(number) => number,
            None => u32::try_from(index + 1).unwrap_or(u32::MAX),
        }
    }
}
