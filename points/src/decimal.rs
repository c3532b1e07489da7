//! Exact decimal arithmetic on `rust_decimal`, refusing instead of rounding.
//!
//! `rust_decimal` keeps 96 bits of mantissa (28–29 significant digits). When a
//! product or sum needs more, it silently rounds. The spec demands exact
//! arithmetic, so every operation here checks that no digit was lost and
//! returns `None` when one would be; the caller turns that into an
//! [`crate::ErrorKind::Arithmetic`] error. Validation bounds (see
//! [`crate::limits`]) keep realistic inputs far away from that edge.

use rust_decimal::Decimal;
#[cfg(test)]
use rust_decimal::RoundingStrategy;
#[cfg(test)]
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::limits::{DECIMAL_ABS_MAX, DECIMAL_SCALE_MAX};

/// How a program turns exact points into whole points (spec §1 `rounding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Towards negative infinity.
    #[default]
    Floor,
    /// Towards positive infinity.
    Ceil,
    /// To nearest; ties away from zero.
    HalfUp,
    /// To nearest; ties to the even neighbour (banker's rounding).
    HalfEven,
}

impl Rounding {
    /// The spelling used in bundles.
    pub fn name(self) -> &'static str {
        match self {
            Rounding::Floor => "floor",
            Rounding::Ceil => "ceil",
            Rounding::HalfUp => "half_up",
            Rounding::HalfEven => "half_even",
        }
    }

    /// Parses a bundle spelling; `None` for anything else.
    pub fn from_name(name: &str) -> Option<Rounding> {
        Some(match name {
            "floor" => Rounding::Floor,
            "ceil" => Rounding::Ceil,
            "half_up" => Rounding::HalfUp,
            "half_even" => Rounding::HalfEven,
            _ => return None,
        })
    }

    #[cfg(test)]
    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::Floor => RoundingStrategy::ToNegativeInfinity,
            Rounding::Ceil => RoundingStrategy::ToPositiveInfinity,
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
        }
    }

    /// `round(x)` of spec §3 as points; `None` when the result does not fit `i64`.
    ///
    /// Hand-written on the i128 mantissa rather than
    /// `Decimal::round_dp_with_strategy`: it runs once per rule per quote and
    /// was a tenth of the benchmark; a unit test checks it against
    /// rust_decimal on every mode and on ties of both signs.
    pub fn apply(self, x: Decimal) -> Option<i64> {
        let mantissa = x.mantissa();
        let scale = x.scale();
        if scale == 0 {
            return i64::try_from(mantissa).ok();
        }
        // scale <= 28, so 10^scale < 2^127.
        let unit = 10i128.checked_pow(scale)?;
        let floor = mantissa.div_euclid(unit);
        let rest = mantissa.rem_euclid(unit); // 0 <= rest < unit
        let twice = rest * 2; // rest < unit <= 10^28, so this fits i128
        let up = match self {
            Rounding::Floor => false,
            Rounding::Ceil => rest > 0,
            // Ties away from zero: up for positive values, down (floor) for negative.
            Rounding::HalfUp => twice > unit || (twice == unit && mantissa > 0),
            Rounding::HalfEven => twice > unit || (twice == unit && floor % 2 != 0),
        };
        i64::try_from(floor + i128::from(up)).ok()
    }
}

fn out_of_range(text: &str) -> String {
    format!(
        "is out of range, got {text:?} (at most {DECIMAL_SCALE_MAX} decimal places and absolute value <= {DECIMAL_ABS_MAX})"
    )
}

/// Parses a decimal string as the spec writes them: an optional `-`, digits,
/// optionally `.` and more digits. Nothing else: no exponent, no `+`, no
/// spaces, no `_`, because `Decimal::from_str` accepts some of those and a
/// bundle must mean the same thing to every implementation.
/// The result is normalized (trailing zeros dropped) so that later products
/// carry the smallest possible scale.
pub fn parse(text: &str) -> Result<Decimal, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || fraction.is_some_and(|f| !all_digits(f)) {
        return Err(format!(
            "is not a decimal string like \"12.34\", got {text:?}"
        ));
    }
    let value = Decimal::from_str_exact(text)
        .map_err(|_| out_of_range(text))?
        .normalize();
    if value.scale() > DECIMAL_SCALE_MAX || value.abs() > Decimal::from(DECIMAL_ABS_MAX) {
        return Err(out_of_range(text));
    }
    Ok(value)
}

/// serde `deserialize_with` for decimals outside a bundle (API bodies,
/// snapshots): a JSON string read exactly as [`parse`] reads bundles, so
/// every input of the system means the same thing by `"12.34"`.
pub fn deserialize_strict<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(|e| <D::Error as serde::de::Error>::custom(format!("the value {e}")))
}

/// `a × b`, exactly, or `None`.
pub fn mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    if let Some(product) = exact_mul(a, b) {
        return Some(product);
    }
    // Trailing zeros may have pushed the scale past what fits; try without them.
    exact_mul(a.normalize(), b.normalize())
}

fn exact_mul(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale() + b.scale();
    if scale > Decimal::MAX_SCALE {
        return None;
    }
    let product = a.checked_mul(b)?;
    // rust_decimal keeps scale a+b whenever the exact product fits; a smaller
    // scale means it rounded. A zero product may come back with any scale.
    (product.scale() == scale || product.is_zero()).then_some(product)
}

/// `a + b`, exactly, or `None`.
pub fn add(a: Decimal, b: Decimal) -> Option<Decimal> {
    // rust_decimal returns the other operand untouched when one is zero,
    // whatever the scales; that is exact.
    if a.is_zero() {
        return Some(b);
    }
    if b.is_zero() {
        return Some(a);
    }
    let sum = a.checked_add(b)?;
    // Otherwise the exact sum has the larger scale; a smaller one means it rounded.
    (sum.scale() >= a.scale().max(b.scale()) || sum.is_zero()).then_some(sum)
}

/// `a − b`, exactly, or `None`.
pub fn sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    add(a, -b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parse_accepts_plain_decimals_and_normalizes() {
        assert_eq!(
            parse("12.340").map(|d| d.to_string()),
            Ok("12.34".to_owned())
        );
        assert_eq!(parse("-0.5"), Ok(dec!(-0.5)));
        assert_eq!(parse("7"), Ok(dec!(7)));
    }

    #[test]
    fn parse_refuses_other_spellings() {
        for bad in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "1_000", "1.2.3", "abc", "0x10",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn parse_refuses_out_of_range() {
        assert!(parse("0.000000001").is_err());
        assert!(parse("1000000000001").is_err());
        assert!(parse("99999999999999999999999999999999").is_err());
        assert!(
            parse("0.100000000000").is_ok(),
            "trailing zeros do not count"
        );
    }

    #[test]
    fn mul_is_exact_or_none() {
        assert_eq!(mul(dec!(1.5), dec!(0.25)), Some(dec!(0.375)));
        // 28 significant digits times 3 cannot stay exact with 28 decimals.
        let long = dec!(0.1234567890123456789012345678);
        assert_eq!(mul(long, dec!(0.3)), None);
        assert_eq!(mul(Decimal::MAX, dec!(2)), None);
        assert_eq!(
            mul(dec!(1.000000000000000), dec!(3.0000000000000000)),
            Some(dec!(3))
        );
    }

    #[test]
    fn add_is_exact_or_none() {
        assert_eq!(add(dec!(0.1), dec!(0.02)), Some(dec!(0.12)));
        assert_eq!(add(dec!(17926.405), dec!(0.0000)), Some(dec!(17926.405)));
        assert_eq!(add(dec!(0.000), dec!(2.5)), Some(dec!(2.5)));
        assert_eq!(add(Decimal::MAX, dec!(1)), None);
        let big = dec!(79228162514264337593543950.33);
        assert_eq!(add(big, dec!(0.009)), None);
    }

    #[test]
    fn rounding_modes() {
        let cases = [
            (Rounding::Floor, dec!(2.5), 2),
            (Rounding::Ceil, dec!(2.1), 3),
            (Rounding::Ceil, dec!(2), 2),
            (Rounding::HalfUp, dec!(2.5), 3),
            (Rounding::HalfUp, dec!(2.49), 2),
            (Rounding::HalfEven, dec!(2.5), 2),
            (Rounding::HalfEven, dec!(3.5), 4),
            (Rounding::HalfEven, dec!(2.51), 3),
        ];
        for (mode, x, want) in cases {
            assert_eq!(mode.apply(x), Some(want), "{mode:?} of {x}");
        }
        assert_eq!(Rounding::Floor.apply(Decimal::MAX), None);
    }

    #[test]
    fn rounding_agrees_with_rust_decimal() {
        let modes = [
            Rounding::Floor,
            Rounding::Ceil,
            Rounding::HalfUp,
            Rounding::HalfEven,
        ];
        let mut values = Vec::new();
        for units in -2_000i64..=2_000 {
            for scale in 0..=4 {
                values.push(Decimal::new(units * 5, scale));
                values.push(Decimal::new(units * 7 + 1, scale));
            }
        }
        values.push(Decimal::new(i64::MAX, 0));
        values.push(Decimal::new(i64::MIN, 0));
        values.push(Decimal::new(25, 28));
        values.push(Decimal::from_i128_with_scale(5 * 10i128.pow(27), 28));
        for x in values {
            for mode in modes {
                let want = x.round_dp_with_strategy(0, mode.strategy()).to_i64();
                assert_eq!(mode.apply(x), want, "{mode:?} of {x}");
            }
        }
    }
}
