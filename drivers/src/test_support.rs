//! Helpers shared by the unit tests.

use crate::check_digit::luhn_valid;

/// A synthetic Luhn-valid number of `len` digits: `prefix`, zeros, and the Luhn check
/// digit. Built at run time so tests never contain a real card number.
pub(crate) fn synthetic_pan(prefix: &str, len: usize) -> String {
    let mut body = format!("{prefix:0<width$}", width = len - 1);
    body.truncate(len - 1);
    (0..10u8)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| luhn_valid(candidate.as_bytes()))
        .expect("one of ten check digits always satisfies Luhn")
}
