//! Check digits written out independently of `pos-codes`: the tests that
//! build card numbers and barcodes do not trust the code they test.

/// The digits pass the Luhn check.
///
/// # Panics
/// When `digits` holds anything but ASCII digits (test data is digits).
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            assert!(b.is_ascii_digit(), "{digits:?} is not all digits");
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// `body` with the check digit that makes it pass Luhn.
pub fn luhn_complete(body: &str) -> String {
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| luhn_valid(candidate))
        .expect("one of ten check digits passes")
}

/// A synthetic Luhn-valid number of `len` digits: `prefix`, zeros, and the
/// check digit. Built at run time so tests never contain a real card number.
///
/// # Panics
/// When `len` is 0 or `prefix` is not all digits.
pub fn synthetic_pan(prefix: &str, len: usize) -> String {
    assert!(len >= 1, "a card number has at least one digit");
    let mut body = format!("{prefix:0<width$}", width = len - 1);
    body.truncate(len - 1);
    luhn_complete(&body)
}

/// `body` with its GS1 check digit appended (GTIN, SSCC, GSRN...): weights
/// 3 and 1 alternating from the right.
///
/// # Panics
/// When `body` holds anything but ASCII digits.
pub fn gs1_complete(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            assert!(b.is_ascii_digit(), "{body:?} is not all digits");
            u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers() {
        // The Luhn article's example and the EAN-13 of the tests' trail shoe.
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert_eq!(luhn_complete("7992739871"), "79927398713");
        assert_eq!(gs1_complete("400638133393"), "4006381333931");
        assert_eq!(synthetic_pan("4", 16).len(), 16);
        assert!(synthetic_pan("4111", 16).starts_with("41110000"));
    }
}
