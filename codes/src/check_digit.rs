//! Check digits: the GS1 modulo-10 digit (GTIN, SSCC, GSRN), the GS1 price/weight check
//! digit of variable-measure codes, and the Luhn digit of card numbers.
//!
//! Hand-written: each is a few lines of arithmetic defined by its standard, smaller than
//! any crate that would wrap it, and we need exact control over the error messages.

use crate::error::{Error, Result};

/// Digit values of an ASCII-digit string, or an error naming the first non-digit.
pub(crate) fn digit_values(what: &str, digits: &str) -> Result<Vec<u8>> {
    digits
        .chars()
        .enumerate()
        .map(|(position, c)| {
            c.to_digit(10)
                .map(|d| d as u8)
                .ok_or_else(|| Error::Character {
                    what: what.to_string(),
                    position,
                    found: c,
                    allowed: "digits 0-9",
                })
        })
        .collect()
}

/// The GS1 modulo-10 check digit for `body` (the digits before the check digit).
///
/// GS1 General Specifications §7.9.1: weights 3 and 1 alternate starting with 3 at the
/// digit next to the check digit; the check digit tops the sum up to a multiple of ten.
pub fn gs1_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| u32::from(d) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Checks the last digit of `digits` (ASCII) as a GS1 check digit.
pub fn verify_gs1(what: &str, digits: &str) -> Result<()> {
    let values = digit_values(what, digits)?;
    let Some((&found, body)) = values.split_last() else {
        return Err(Error::Length {
            what: what.to_string(),
            expected: "at least 2".into(),
            found: 0,
        });
    };
    let expected = gs1_check_digit(body);
    if expected == found {
        Ok(())
    } else {
        Err(Error::CheckDigit {
            what: what.to_string(),
            expected,
            found,
        })
    }
}

/// True when `digits` (ASCII digits, check digit last) pass the Luhn (ISO/IEC 7812-1) test.
/// Any non-digit makes it false.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.len() < 2 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// GS1 weighting factor "2-": 2×d, then the tens digit subtracted from the units digit.
fn weight_2_minus(d: u8) -> u8 {
    [0, 2, 4, 6, 8, 9, 1, 3, 5, 7][usize::from(d)]
}
/// GS1 weighting factor "3": units digit of 3×d.
fn weight_3(d: u8) -> u8 {
    (3 * d) % 10
}
/// GS1 weighting factor "5+": 5×d, units digit plus tens digit.
fn weight_5_plus(d: u8) -> u8 {
    [0, 5, 1, 6, 2, 7, 3, 8, 4, 9][usize::from(d)]
}
/// GS1 weighting factor "5-": 5×d, tens digit subtracted from the units digit.
fn weight_5_minus(d: u8) -> u8 {
    [0, 5, 9, 4, 8, 3, 7, 2, 6, 1][usize::from(d)]
}

/// The check digit of a 4- or 5-digit price/weight field in a variable-measure code
/// (GS1 General Specifications §7.9.2 and §7.9.3). `None` for any other field length, which
/// the standard does not define.
///
/// Four digits: weights 2-, 2-, 3, 5-; the sum times 3, units digit.
/// Five digits: weights 5+, 2-, 5-, 5+, 2-; ten minus the units digit of the sum; the check
/// digit is the digit whose 5- product equals that.
pub fn price_check_digit(value: &[u8]) -> Option<u8> {
    if value.iter().any(|&d| d > 9) {
        return None;
    }
    match value {
        [a, b, c, d] => {
            let sum = u32::from(weight_2_minus(*a))
                + u32::from(weight_2_minus(*b))
                + u32::from(weight_3(*c))
                + u32::from(weight_5_minus(*d));
            Some(((sum * 3) % 10) as u8)
        }
        [a, b, c, d, e] => {
            let sum = u32::from(weight_5_plus(*a))
                + u32::from(weight_2_minus(*b))
                + u32::from(weight_5_minus(*c))
                + u32::from(weight_5_plus(*d))
                + u32::from(weight_2_minus(*e));
            let target = ((10 - sum % 10) % 10) as u8;
            (0..10).find(|&x| weight_5_minus(x) == target)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<u8> {
        s.bytes().map(|b| b - b'0').collect()
    }

    #[test]
    fn gs1_reference_examples() {
        // GS1 General Specifications §7.9.1 worked example: GTIN-13 629104150021 → 3.
        assert_eq!(gs1_check_digit(&values("629104150021")), 3);
        // Widely published EAN-13 4006381333931 and SSCC 106141411234567897.
        assert_eq!(gs1_check_digit(&values("400638133393")), 1);
        assert_eq!(gs1_check_digit(&values("10614141123456789")), 7);
        // UPC-A 036000291452, EAN-8 96385074.
        assert_eq!(gs1_check_digit(&values("03600029145")), 2);
        assert_eq!(gs1_check_digit(&values("9638507")), 4);
        assert!(verify_gs1("GTIN", "4006381333931").is_ok());
        let err = verify_gs1("GTIN", "4006381333932").unwrap_err();
        assert!(matches!(
            err,
            Error::CheckDigit {
                expected: 1,
                found: 2,
                ..
            }
        ));
    }

    #[test]
    fn verify_names_non_digit_position() {
        let err = verify_gs1("GTIN", "40063X1333931").unwrap_err();
        assert!(err.to_string().contains("position 5"), "{err}");
    }

    #[test]
    fn luhn_reference_examples() {
        // ISO/IEC 7812-1 style example "79927398713" is the classic Luhn sample.
        assert!(luhn_valid(b"79927398713"));
        assert!(!luhn_valid(b"79927398710"));
        assert!(!luhn_valid(b"7992739871a"));
        assert!(!luhn_valid(b"0"));
    }

    #[test]
    fn price_check_digit_reference_examples() {
        // GS1 General Specifications §7.9.3 examples: price 2875 → 9, price 14685 → 6.
        assert_eq!(price_check_digit(&values("2875")), Some(9));
        assert_eq!(price_check_digit(&values("14685")), Some(6));
        assert_eq!(price_check_digit(&values("123")), None);
    }

    #[test]
    fn weighting_tables_follow_their_definitions() {
        for d in 0..10u8 {
            let two = 2 * d;
            assert_eq!(weight_2_minus(d), (two % 10 + 10 - two / 10) % 10);
            let five = 5 * d;
            assert_eq!(weight_5_plus(d), (five % 10 + five / 10) % 10);
            assert_eq!(weight_5_minus(d), (five % 10 + 10 - five / 10) % 10);
        }
    }
}
