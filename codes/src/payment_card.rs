//! The payment-card guard: recognises payment-card data so the driver can drop it before
//! it is stored, logged or sent anywhere (PCI DSS keeps card numbers out of this system).
//!
//! A scan or swipe is a payment card when it holds
//! * ISO/IEC 7813 track 1 in format B (`%B` + account number + `^`, or the same without
//!   `%` at the start when the reader strips sentinels), whatever the number; or
//! * a primary account number: 13–19 digits (optionally grouped by single spaces or
//!   dashes, as printed) that pass Luhn and start with a card-brand IIN range.
//!
//! Decided safely: this runs before member-card recognition, so a number that looks like
//! a payment card is rejected even when it starts with a configured loyalty prefix.
//! The only exemption is a whole scan that is a GTIN: an EAN/UPC symbol (AIM `]E`), an
//! ITF-14 (AIM `]I`) with a valid GS1 check digit, or 13 bare digits with a valid GS1
//! check digit. GTINs of German products start with 40–44 and about one in ten would
//! otherwise pass Luhn as "Visa"; 13-digit Visa numbers are no longer issued.
//!
//! GS1 element strings that parse are searched element by element rather than as one
//! run of digits (see `decode_barcode`): concatenated numeric elements are not a number.
//!
//! Copies of candidate digits are held in [`Zeroizing`] buffers and wiped when dropped.

use zeroize::Zeroizing;

use crate::check_digit::luhn_valid;

/// Shortest primary account number (ISO/IEC 7812-1 allows 8, but no brand issues
/// fewer than 13 digits).
pub const PAN_DIGITS_MIN: usize = 13;
/// Longest primary account number (ISO/IEC 7812-1).
pub const PAN_DIGITS_MAX: usize = 19;

/// True when `digits` (ASCII) start with an IIN range of a payment-card brand.
///
/// Ranges: Visa 4; Mastercard 51–55 and 2221–2720; American Express 34, 37; Discover
/// 6011, 644–649, 65; JCB 3528–3589; Diners Club 300–305, 3095, 36, 38, 39; Maestro 50,
/// 56–69 (which also covers UnionPay 62, RuPay 60, Elo, Hipercard and Troy's 65); Mir
/// 2200–2204; RuPay 81–82; Troy 9792. Broad on purpose: a false "payment card" costs a
/// rescan, a missed one leaks a card number.
pub fn in_brand_range(digits: &[u8]) -> bool {
    let prefix = |n: usize| -> Option<u32> {
        let head = digits.get(..n)?;
        head.iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let p1 = prefix(1);
    let p2 = prefix(2);
    let p3 = prefix(3);
    let p4 = prefix(4);
    p1 == Some(4)
        || matches!(p2, Some(34 | 36..=39 | 50..=55 | 56..=69 | 81 | 82))
        || matches!(p3, Some(300..=305))
        || matches!(
            p4,
            Some(2200..=2204 | 2221..=2720 | 3095 | 3528..=3589 | 6011 | 9792)
        )
}

/// True when `digits` (ASCII digits only) are a payment card number: 13–19 digits, Luhn,
/// brand range.
pub fn is_pan(digits: &[u8]) -> bool {
    (PAN_DIGITS_MIN..=PAN_DIGITS_MAX).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && in_brand_range(digits)
        && luhn_valid(digits)
}

/// True when `text` holds a payment card number anywhere: every maximal run of digits
/// (single spaces or dashes between digits join a run) is tested with [`is_pan`].
pub fn contains_pan(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut run: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(PAN_DIGITS_MAX + 1));
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        match b {
            Some(d) if d.is_ascii_digit() => run.push(d),
            Some(b' ' | b'-')
                if !run.is_empty() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            _ => {
                if is_pan(&run) {
                    return true;
                }
                run.clear();
            }
        }
        i += 1;
    }
    false
}

/// Longest account-number field of track 1 format B: 19 digits plus the spaces some
/// issuers embed.
const TRACK1_PAN_FIELD_CHARS_MAX: usize = 24;

/// True when `at` starts `B`, a digit, up to [`TRACK1_PAN_FIELD_CHARS_MAX`] digits or
/// spaces in all, and the `^` field separator: the start of a format B track 1.
fn format_b_at(at: &[u8]) -> bool {
    if at.first() != Some(&b'B') || !at.get(1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let field = at[1..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b' ')
        .count();
    field <= TRACK1_PAN_FIELD_CHARS_MAX && at.get(1 + field) == Some(&b'^')
}

/// True when `text` holds ISO/IEC 7813 track 1 in format B: `%B`, the account number
/// field and `^`, anywhere; or the same without the `%` sentinel at the start (readers
/// that strip sentinels). The `^` is required so that text such as a GS1 batch "%B0"
/// is no false alarm; a format B track without it still has its number checked by
/// [`contains_pan`].
pub fn has_track1_format_b(text: &str) -> bool {
    let bytes = text.as_bytes();
    let sentinel = bytes
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"%B" && format_b_at(&bytes[i + 1..]));
    sentinel || format_b_at(bytes)
}

/// The guard for one scan or swipe: true means "payment card, drop it".
/// `exempt_gtin` is set by the decoder when the whole scan is a checked GTIN (see the
/// module documentation); track 1 format B is never exempt.
pub fn is_payment_card(text: &str, exempt_gtin: bool) -> bool {
    has_track1_format_b(text) || (!exempt_gtin && contains_pan(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_digit::luhn_valid;

    use pos_testkit::check_digit::synthetic_pan;

    #[test]
    fn brand_ranges() {
        for prefix in [
            "4", "51", "55", "2221", "2720", "34", "37", "6011", "644", "649", "65", "3528",
            "3589", "300", "305", "36", "38", "62", "2200", "50", "67",
        ] {
            let pan = synthetic_pan(prefix, 16);
            assert!(is_pan(pan.as_bytes()), "{prefix}");
        }
        for prefix in [
            "1", "2", "2220", "2721", "33", "35", "3527", "3590", "7", "8", "999",
        ] {
            let pan = synthetic_pan(prefix, 16);
            assert!(!in_brand_range(pan.as_bytes()), "{prefix}");
            assert!(!is_pan(pan.as_bytes()), "{prefix}");
        }
    }

    #[test]
    fn length_and_luhn_matter() {
        assert!(is_pan(synthetic_pan("4", 13).as_bytes()));
        assert!(is_pan(synthetic_pan("4", 19).as_bytes()));
        assert!(!is_pan(synthetic_pan("4", 12).as_bytes()));
        assert!(!is_pan(synthetic_pan("4", 20).as_bytes()));
        let mut broken = synthetic_pan("4", 16).into_bytes();
        broken[15] = if broken[15] == b'9' {
            b'0'
        } else {
            broken[15] + 1
        };
        assert!(!is_pan(&broken));
    }

    #[test]
    fn finds_numbers_inside_text_and_grouped() {
        let pan = synthetic_pan("5", 16);
        assert!(contains_pan(&format!("card:{pan};")));
        let grouped = format!(
            "{} {} {} {}",
            &pan[..4],
            &pan[4..8],
            &pan[8..12],
            &pan[12..]
        );
        assert!(contains_pan(&grouped));
        let dashed = grouped.replace(' ', "-");
        assert!(contains_pan(&dashed));
        let longer = (b'0'..=b'9')
            .map(|d| format!("{pan}{}", char::from(d)))
            .find(|s| !luhn_valid(s.as_bytes()))
            .unwrap();
        assert!(
            !contains_pan(&longer),
            "the whole run counts, not a part of it"
        );
        assert!(!contains_pan("hello"));
    }

    #[test]
    fn track1_format_b() {
        assert!(has_track1_format_b("%B1234^DOE/J^2512?"));
        assert!(has_track1_format_b("x;%B1234 5678^DOE/J^2512?"));
        assert!(has_track1_format_b("B1234^DOE/J^2512"));
        assert!(!has_track1_format_b("%A1234^X?"));
        assert!(!has_track1_format_b("BOX^"));
        assert!(!has_track1_format_b("LOT%B0"), "no field separator");
        assert!(!has_track1_format_b("%B^"), "no account number");
        assert!(is_payment_card("%B1^X?", true), "format B is never exempt");
    }

    #[test]
    fn gtin_exemption() {
        let pan = synthetic_pan("4", 13);
        assert!(is_payment_card(&pan, false));
        assert!(!is_payment_card(&pan, true));
    }
}
