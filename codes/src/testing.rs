//! Helpers for tests, here and in the crates above (feature `testing`; never in a
//! release build).

use crate::check_digit::luhn_valid;

/// A synthetic Luhn-valid number of `len` digits: `prefix`, zeros, and the Luhn check
/// digit. Built at run time so tests never contain a real card number.
///
/// # Panics
/// Never for `len >= 1`: one of ten check digits always satisfies Luhn.
pub fn synthetic_pan(prefix: &str, len: usize) -> String {
    let mut body = format!("{prefix:0<width$}", width = len - 1);
    body.truncate(len - 1);
    (0..10u8)
        .map(|d| format!("{body}{d}"))
        .find(|candidate| luhn_valid(candidate.as_bytes()))
        .expect("one of ten check digits always satisfies Luhn")
}
