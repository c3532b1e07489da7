//! The payment-card guard: recognises payment-card data so the driver can drop it before
//! it is stored, logged or sent anywhere (PCI DSS keeps card numbers out of this system).
//!
//! A scan or swipe is a payment card when it holds
//! * ISO/IEC 7813 track 1 in format B (`%B` + account number + `^`, or the same without
//!   `%` at the start when the reader strips sentinels), whatever the number; or
//! * a primary account number: 13–19 digits that pass Luhn and start with a card-brand
//!   IIN range, anywhere in a run of digits; the run is joined over separators (spaces,
//!   dashes, dots, underscores, slashes, ...) and may have leading zeros or other digits
//!   around the number (`4111.1111.1111.1111`, `04111111111111111`).
//!
//! Decided safely: this runs before member-card recognition, so a number that looks like
//! a payment card is rejected even when it starts with a configured loyalty prefix.
//! The only exemption is a whole scan that is a GTIN: an EAN/UPC symbol (AIM `]E`), an
//! ITF-14 (AIM `]I`) with a valid GS1 check digit, or 13 bare digits with a valid GS1
//! check digit. GTINs of German products start with 40–44 and about one in ten would
//! otherwise pass Luhn as "Visa"; 13-digit Visa numbers are no longer issued.
//!
//! GS1 element strings that parse are searched element by element rather than as one
//! run of digits (see `decode_barcode`): concatenated numeric elements are not a number,
//! and an element's value is tested as a whole ([`contains_pan_run`]), not every part of
//! it: serial numbers of up to 20 digits are ordinary there.
//!
//! Stored free-text fields (member ids, cards, tier names, sale ids) at the register and
//! at central go through [`screen_field`], the one definition both sides call.
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

/// Most separator characters between two digits that still join them into one number
/// (`4111 - 1111` has three). Generous: a number written with odd grouping is still a
/// number; letters always break it.
pub const SEPARATORS_JOINED_MAX: usize = 4;

/// A digit run longer than this is taken to hold a card number without searching it:
/// almost every run that long holds some Luhn-valid window in a brand range anyway, and
/// the search stays linear in a bounded run.
pub const RUN_DIGITS_SEARCHED_MAX: usize = 256;

/// The value of an ASCII or a fullwidth digit (`４` from an IME is still a 4).
fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{ff10}'..='\u{ff19}' => u8::try_from(u32::from(c) - 0xff10).ok(),
        _ => None,
    }
}

/// Characters people and programs put between the groups of a number: whitespace
/// (including no-break spaces), dashes of every kind, dots, underscores, slashes,
/// commas, colons, quotes, `*`, `#`, `+`, `|`, `~`, and their fullwidth forms. Not the
/// track separators `=` `^`, the sentinels `%` `;` `?`, GS1's brackets or control
/// characters (GS): those delimit fields, and a track's or an element string's fields
/// are searched one by one.
fn is_separator(c: char) -> bool {
    (c.is_whitespace() && !c.is_control())
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '/'
                | '\\'
                | ','
                | ':'
                | '\''
                | '"'
                | '`'
                | '*'
                | '#'
                | '+'
                | '|'
                | '~'
                | '\u{b7}'
                | '\u{2010}'
                ..='\u{2015}'
                    | '\u{2212}'
                    | '\u{2024}'
                    | '\u{2027}'
                    | '\u{fe58}'
                    | '\u{fe63}'
                    | '\u{ff0d}'
                    | '\u{ff0e}'
                    | '\u{ff0f}'
                    | '\u{ff3f}'
        )
}

/// Calls `found` with every maximal run of digits in `text`, separators (at most
/// [`SEPARATORS_JOINED_MAX`] in a row, between two digits) removed; stops at the first
/// run for which `found` is true and returns true. The runs are held in a [`Zeroizing`]
/// buffer.
fn any_digit_run(text: &str, mut found: impl FnMut(&[u8]) -> bool) -> bool {
    let mut run: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(PAN_DIGITS_MAX + 1));
    let mut separators = 0usize;
    for c in text.chars().map(Some).chain([None]) {
        if let Some(d) = c.and_then(digit_value) {
            // Past the searched length only the length matters.
            if run.len() <= RUN_DIGITS_SEARCHED_MAX {
                run.push(b'0' + d);
            }
            separators = 0;
            continue;
        }
        if let Some(c) = c
            && !run.is_empty()
            && is_separator(c)
            && separators < SEPARATORS_JOINED_MAX
        {
            separators += 1;
            continue;
        }
        if !run.is_empty() && found(&run) {
            return true;
        }
        run.clear();
        separators = 0;
    }
    false
}

/// True when some 13 to 19 consecutive digits of `digits` (ASCII digits) are a payment
/// card number: the whole run, the run without its leading zeros, or any part of it
/// (`04111111111111111`, `12344111111111111111`). Runs over
/// [`RUN_DIGITS_SEARCHED_MAX`] digits count as holding one.
pub fn run_holds_pan(digits: &[u8]) -> bool {
    if digits.len() > RUN_DIGITS_SEARCHED_MAX {
        return true;
    }
    // For each end, walk left: the Luhn sum of every window ending there grows one digit
    // at a time (Luhn doubles every second digit counted from the right).
    for end in PAN_DIGITS_MIN..=digits.len() {
        let mut sum = 0u32;
        for (from_right, start) in (end.saturating_sub(PAN_DIGITS_MAX)..end).rev().enumerate() {
            let d = u32::from(digits[start].wrapping_sub(b'0'));
            sum += if from_right % 2 == 1 {
                let twice = 2 * d;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            };
            let len = from_right + 1;
            if len >= PAN_DIGITS_MIN
                && sum.is_multiple_of(10)
                && in_brand_range(&digits[start..end])
            {
                return true;
            }
        }
    }
    false
}

/// True when `text` holds a payment card number anywhere: digit runs are joined over
/// separators (spaces, dashes, dots, underscores, slashes, ...; see `is_separator`)
/// and searched with [`run_holds_pan`], so neither grouping nor leading zeros nor extra
/// digits around it hide a number.
pub fn contains_pan(text: &str) -> bool {
    any_digit_run(text, run_holds_pan)
}

/// True when a run of `text`, joined over separators as in [`contains_pan`] and without
/// its leading zeros, is itself a payment card number; parts of longer runs are not
/// searched. For fields whose bounds are known structure (a GS1 element's value, where a
/// 20-digit serial number is ordinary and would too often hold a Luhn-valid window).
pub fn contains_pan_run(text: &str) -> bool {
    any_digit_run(text, |run| {
        let start = run.iter().position(|&d| d != b'0').unwrap_or(run.len());
        is_pan(&run[start..])
    })
}

/// True when `text` is, separators and leading zeros aside, exactly 13 digits with a
/// valid GS1 check digit: an EAN-13 or a GTIN-like loyalty card, exempt from the PAN
/// search (13-digit Visa numbers are no longer issued; GTINs of German products start
/// with 40-44 and about one in ten would otherwise pass Luhn as "Visa").
pub fn is_gtin13_like(text: &str) -> bool {
    // Digit values, not ASCII: what the GS1 check digit is computed on.
    let mut digits: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::with_capacity(PAN_DIGITS_MAX));
    for c in text.chars() {
        match digit_value(c) {
            Some(0) if digits.is_empty() => {}
            Some(d) if digits.len() < 14 => digits.push(d),
            Some(_) => return false,
            None if is_separator(c) && !digits.is_empty() => {}
            None => return false,
        }
    }
    digits.len() == 13 && crate::check_digit::gs1_check_digit(&digits[..12]) == digits[12]
}

/// True when the stored free-text `value` holds payment-card data: what
/// [`screen_field`] refuses.
pub fn holds_payment_card(value: &str) -> bool {
    is_payment_card(value, is_gtin13_like(value))
}

/// The guard for a free-text field that is stored (member ids, card tokens, tier names,
/// sale and return ids), at the register and at central alike: refuses track 1 format B
/// and any payment card number ([`contains_pan`]), except a value that is a GTIN-13 as a
/// whole ([`is_gtin13_like`]). The error names `field` and never the digits.
///
/// Deliberately not run on SKUs (catalog product codes, basket lines): a SKU is
/// often a GTIN-14 or another long digit run, which passes the Luhn check about
/// one time in ten, so screening them would refuse ordinary products; a SKU names a
/// product, never a person or a payment.
pub fn screen_field(field: &str, value: &str) -> crate::Result<()> {
    if holds_payment_card(value) {
        return Err(crate::Error::PaymentCard {
            field: field.to_string(),
        });
    }
    Ok(())
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
        // Issue 10 changed this on purpose: a number inside a longer run of digits is
        // found (it used to take the whole run); only GS1 element values keep the
        // whole-run reading.
        assert!(contains_pan(&longer), "a number inside a longer run");
        assert!(
            !contains_pan_run(&longer),
            "the whole run counts, not a part of it"
        );
        assert!(!contains_pan("hello"));
    }

    /// The separators of issue 10, leading zeros and digits around the number.
    #[test]
    fn any_separator_leading_zeros_and_longer_runs() {
        let pan = synthetic_pan("4", 16);
        let groups = [&pan[..4], &pan[4..8], &pan[8..12], &pan[12..]];
        for separator in [
            ".", "_", "/", "\\", " ", "-", " - ", ",", ":", "'", "\u{a0}", "\u{2013}", "\u{2009}",
            "..", "*", "#", "+", "|",
        ] {
            let text = groups.join(separator);
            assert!(contains_pan(&text), "{separator:?}");
            assert!(screen_field("member.card", &text).is_err(), "{separator:?}");
        }
        assert!(contains_pan(&format!("0{pan}")));
        assert!(contains_pan(&format!("000{pan}")));
        assert!(
            contains_pan_run(&format!("000{pan}")),
            "leading zeros are not digits of a run"
        );
        assert!(contains_pan(&format!("123{pan}")));
        assert!(contains_pan(&format!("{pan}999")));
        assert!(contains_pan(&format!("M-{pan}-X")));
        let fullwidth: String = pan
            .chars()
            .map(|c| char::from_u32(0xff10 + u32::from(c as u8 - b'0')).unwrap())
            .collect();
        assert!(contains_pan(&fullwidth), "fullwidth digits");
        // Field delimiters and letters are not separators.
        assert!(!contains_pan(&groups.join("=")));
        assert!(!contains_pan(&groups.join("x")));
        assert!(
            !contains_pan(&groups.join("     ")),
            "more than four separators break a run"
        );
        // A run too long to search is refused whole.
        assert!(run_holds_pan(&[b'1'; RUN_DIGITS_SEARCHED_MAX + 1]));
        assert!(contains_pan(&"1".repeat(100_000)));
    }

    /// The search looks at every window: it agrees with a naive one.
    #[test]
    fn window_search_agrees_with_a_naive_one() {
        let naive = |d: &[u8]| {
            (0..d.len()).any(|s| {
                (PAN_DIGITS_MIN..=PAN_DIGITS_MAX).any(|n| d.get(s..s + n).is_some_and(is_pan))
            })
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let digits: Vec<u8> = (0..len)
                .map(|i| b'0' + ((x >> (i % 60)) as u8 ^ i as u8) % 10)
                .collect();
            assert_eq!(
                run_holds_pan(&digits),
                naive(&digits),
                "{:?}",
                String::from_utf8_lossy(&digits)
            );
        }
        let pan = synthetic_pan("5", 19);
        assert!(run_holds_pan(format!("77{pan}77").as_bytes()));
    }

    /// Honest data of this project passes: member cards, EAN-13 codes, sale ids, tiers.
    #[test]
    fn honest_fields_pass_the_screen() {
        for ok in [
            "9990000010013",
            "9990000010020",
            "9990000010037",
            "4006381333931",
            "04006381333931",
            "4006-3813-3393-1",
            "M-1001",
            "R1-0001",
            "S-2026-11-28-0001",
            "gold",
            "Gold 2026",
            "0190a4c8-1d2e-7abc-8def-0123456789ab",
            "2026-11-28T11:05:00+01:00",
        ] {
            assert!(screen_field("f", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_screen_names_the_field_never_the_digits() {
        let pan = synthetic_pan("4", 16);
        let err = screen_field("members[3].tier", &format!("{}.{}", &pan[..8], &pan[8..]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("members[3].tier: "), "{err}");
        assert!(!err.contains(&pan[8..]), "{err}");
        assert!(screen_field("f", &format!("%B{pan}^DOE/J^")).is_err());
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
