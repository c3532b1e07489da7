//! GS1 element strings (GS1 General Specifications §3 and §7.8): the Application
//! Identifier (AI) / value pairs inside GS1-128, GS1 DataBar, GS1 Data Matrix and GS1 QR.
//!
//! Two input forms are read:
//! * scan data, as a scanner transmits it: element strings one after another, with the
//!   FNC1 separator transmitted as the GS byte (0x1D) after every element whose AI is not
//!   in the "predefined length" table (§7.8.4, Figure 7.8.5-2), unless it is the last;
//! * the human-readable form `(01)04006381333931(17)261231`.
//!
//! Behaviour at the edges follows GS1's reference implementation (the GS1 Barcode Syntax
//! Engine): a GS right after a predefined-length element, a leading GS (FNC1 in first
//! position transmitted by some scanners) and a trailing GS are tolerated; an element
//! whose AI needs a separator but is followed by more data is "too long"; an unknown AI
//! is an error, since without knowing it the string cannot be split.
//!
//! Hand-written: no maintained Rust crate parses GS1 element strings with validation.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::check_digit::verify_gs1;
use crate::error::{Error, Result};

/// The GS (group separator) byte that stands for FNC1 in transmitted scan data.
pub const GS: char = '\u{1d}';

/// How many element strings one scan may hold; real labels carry fewer than ten.
pub const ELEMENTS_MAX: usize = 64;

/// The parsed element strings of one scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElementStrings {
    /// AI → value, as transmitted.
    pub ais: BTreeMap<String, String>,
    /// Values with an implied decimal point, for AIs 310n (net weight, kg) and 392n (price,
    /// single monetary area): AI → exact decimal.
    pub values: BTreeMap<String, Decimal>,
}

/// The character set of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    /// Digits only.
    Numeric,
    /// GS1 AI encodable character set 82 (§7.11, Figure 7.11-1).
    Cset82,
}

/// What the General Specifications say about one AI's value.
#[derive(Debug, Clone, Copy)]
struct AiSpec {
    /// Number of characters of the AI itself (2, 3 or 4).
    ai_len: usize,
    charset: Charset,
    min: usize,
    max: usize,
    /// The value ends with a GS1 check digit over the whole value.
    check_digit: bool,
    /// The value is a date YYMMDD in which DD may be 00.
    date: bool,
    /// The value is a number whose implied decimal places are the AI's last digit.
    implied_decimals: bool,
}

const fn fixed_numeric(ai_len: usize, len: usize) -> AiSpec {
    AiSpec {
        ai_len,
        charset: Charset::Numeric,
        min: len,
        max: len,
        check_digit: false,
        date: false,
        implied_decimals: false,
    }
}
const fn var(ai_len: usize, charset: Charset, max: usize) -> AiSpec {
    AiSpec {
        ai_len,
        charset,
        min: 1,
        max,
        check_digit: false,
        date: false,
        implied_decimals: false,
    }
}
const fn with_check(spec: AiSpec) -> AiSpec {
    AiSpec {
        check_digit: true,
        ..spec
    }
}

/// The AI at the start of `s` and its rules, if it is one we know.
///
/// Covers the AIs named in the agent spec (00, 01, 02, 10, 11–17, 21, 310n, 392n, 8018)
/// and the common retail and logistics ones next to them: 03, 20, 22, 235, 240, 241,
/// 243, 250, 251, 254, 30, 31nn–36nn, 37, 390n–395n, 400–403, 410–417, 420, 422, 7003,
/// 8004, 8005, 8012, 8017, 8020, 90–99. AI 14 is not assigned by GS1, so it is unknown.
fn lookup(s: &str) -> Option<AiSpec> {
    use Charset::{Cset82, Numeric};
    let b = s.as_bytes();
    let digit = |i: usize| digit_at(b, i);
    let two = (digit(0)?, digit(1)?);
    let spec = match two {
        (b'0', b'0') => with_check(fixed_numeric(2, 18)),
        (b'0', b'1' | b'2' | b'3') => with_check(fixed_numeric(2, 14)),
        (b'1', b'0') => var(2, Cset82, 20),
        (b'1', b'1' | b'2' | b'3' | b'5' | b'6' | b'7') => AiSpec {
            date: true,
            ..fixed_numeric(2, 6)
        },
        (b'2', b'0') => fixed_numeric(2, 2),
        (b'2', b'1' | b'2') => var(2, Cset82, 20),
        (b'2', b'3') if digit(2)? == b'5' => var(3, Cset82, 28),
        (b'2', b'4') if matches!(digit(2)?, b'0' | b'1') => var(3, Cset82, 30),
        (b'2', b'4') if digit(2)? == b'3' => var(3, Cset82, 20),
        (b'2', b'5') if matches!(digit(2)?, b'0' | b'1') => var(3, Cset82, 30),
        (b'2', b'5') if digit(2)? == b'4' => var(3, Cset82, 20),
        (b'3', b'0') => var(2, Numeric, 8),
        (b'3', b'7') => var(2, Numeric, 8),
        (b'3', b'1'..=b'6') => return lookup_measure(two.1, b),
        (b'3', b'9') => return lookup_amount(b),
        (b'4', b'0'..=b'2') => return lookup_4xx(two.1, digit(2)?),
        (b'7', b'0') if (digit(2)?, digit(3)?) == (b'0', b'3') => fixed_numeric(4, 10),
        (b'8', b'0') => return lookup_80xx(digit(2)?, digit(3)?),
        (b'9', b'0') => var(2, Cset82, 30),
        (b'9', b'1'..=b'9') => var(2, Cset82, 90),
        _ => return None,
    };
    Some(spec)
}

/// The ASCII digit at `i`, if there is one.
fn digit_at(b: &[u8], i: usize) -> Option<u8> {
    b.get(i).copied().filter(u8::is_ascii_digit)
}

/// 31nn–36nn: trade measures with n implied decimals (`second` is the AI's second digit).
fn lookup_measure(second: u8, b: &[u8]) -> Option<AiSpec> {
    let third = digit_at(b, 2)?;
    let known = match second {
        b'1' => third <= b'6',
        b'2' => true,
        b'3' => third <= b'7',
        b'4' => true,
        b'5' => third <= b'7',
        _ => true,
    };
    if !known || digit_at(b, 3)? > b'5' {
        return None;
    }
    Some(AiSpec {
        implied_decimals: true,
        ..fixed_numeric(4, 6)
    })
}

/// 390n–395n: amounts, prices and coupon values.
fn lookup_amount(b: &[u8]) -> Option<AiSpec> {
    use Charset::Numeric;
    let n = digit_at(b, 3)?;
    Some(match digit_at(b, 2)? {
        // Amount payable (390n) and price (392n), single monetary area.
        b'0' | b'2' => AiSpec {
            implied_decimals: true,
            ..var(4, Numeric, 15)
        },
        // The same with an ISO 4217 currency code first: N3 + N..15.
        b'1' | b'3' => AiSpec {
            min: 4,
            ..var(4, Numeric, 18)
        },
        // Percentage discount of a coupon, n 0-3.
        b'4' if n <= b'3' => fixed_numeric(4, 4),
        // Price per unit of measure, n 0-5.
        b'5' if n <= b'5' => fixed_numeric(4, 6),
        _ => return None,
    })
}

/// 400–422: order numbers, locations (GLNs) and countries.
fn lookup_4xx(second: u8, third: u8) -> Option<AiSpec> {
    use Charset::Cset82;
    Some(match (second, third) {
        (b'0', b'0' | b'1' | b'3') => var(3, Cset82, 30),
        (b'0', b'2') => with_check(fixed_numeric(3, 17)),
        (b'1', b'0'..=b'7') => with_check(fixed_numeric(3, 13)),
        (b'2', b'0') => var(3, Cset82, 20),
        (b'2', b'2') => fixed_numeric(3, 3),
        _ => return None,
    })
}

/// 8004–8020: the 80nn AIs known here (asset, service relation, payment slip, ...).
fn lookup_80xx(third: u8, fourth: u8) -> Option<AiSpec> {
    use Charset::Cset82;
    Some(match (third, fourth) {
        (b'0', b'4') => var(4, Cset82, 30),
        (b'0', b'5') => fixed_numeric(4, 6),
        (b'1', b'2') => var(4, Cset82, 20),
        (b'1', b'7' | b'8') => with_check(fixed_numeric(4, 18)),
        (b'2', b'0') => var(4, Cset82, 25),
        _ => return None,
    })
}

/// True for a known AI whose value is digits only (GTINs, dates, measures, prices):
/// such values are defined numbers, never free text that could carry a card number.
pub fn is_numeric_ai(ai: &str) -> bool {
    lookup(ai).is_some_and(|spec| spec.ai_len == ai.len() && spec.charset == Charset::Numeric)
}

/// True when the AI's first two digits are in the predefined-length table (§7.8.5,
/// Figure 7.8.5-2), so no FNC1 separator follows it.
fn predefined_length(ai: &str) -> bool {
    matches!(
        ai.get(..2),
        Some(
            "00" | "01"
                | "02"
                | "03"
                | "04"
                | "11"
                | "12"
                | "13"
                | "14"
                | "15"
                | "16"
                | "17"
                | "18"
                | "19"
                | "20"
                | "31"
                | "32"
                | "33"
                | "34"
                | "35"
                | "36"
                | "41"
        )
    )
}

/// True for characters of GS1 AI encodable character set 82.
fn in_cset82(c: char) -> bool {
    matches!(c, '!' | '"' | '%'..='?' | 'A'..='Z' | '_' | 'a'..='z')
}

fn value_error(ai: &str, message: impl Into<String>) -> Error {
    Error::Gs1Value {
        ai: ai.to_string(),
        message: message.into(),
    }
}

/// Checks a date YYMMDD, DD = 00 allowed (§7.12). The century follows GS1's sliding
/// window around the current year, which for any current year between 1951 and 2049
/// makes "YY divisible by 4" exactly the leap-year rule, so no clock is needed.
fn check_date(ai: &str, value: &str) -> Result<()> {
    let b = value.as_bytes();
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (yy, mm, dd) = (two(0), two(2), two(4));
    if !(1..=12).contains(&mm) {
        return Err(value_error(
            ai,
            format!("month {mm:02} at position 2 is not 01-12"),
        ));
    }
    let days = match mm {
        2 if yy.is_multiple_of(4) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if dd > days {
        return Err(value_error(
            ai,
            format!("day {dd:02} at position 4 does not exist in month {mm:02} of year {yy:02}"),
        ));
    }
    Ok(())
}

/// Validates one value against its AI's rules and records it.
fn accept(out: &mut ElementStrings, ai: &str, spec: &AiSpec, value: &str) -> Result<()> {
    let count = value.chars().count();
    if count < spec.min || count > spec.max {
        let expected = if spec.min == spec.max {
            format!("{}", spec.min)
        } else {
            format!("{}-{}", spec.min, spec.max)
        };
        return Err(value_error(
            ai,
            format!("value has {count} characters, expected {expected}"),
        ));
    }
    for (position, c) in value.chars().enumerate() {
        let ok = match spec.charset {
            Charset::Numeric => c.is_ascii_digit(),
            Charset::Cset82 => in_cset82(c),
        };
        if !ok {
            return Err(Error::Character {
                what: format!("AI ({ai}) value"),
                position,
                found: c,
                allowed: match spec.charset {
                    Charset::Numeric => "digits 0-9",
                    Charset::Cset82 => "GS1 character set 82",
                },
            });
        }
    }
    if spec.check_digit {
        verify_gs1(&format!("AI ({ai})"), value)?;
    }
    if spec.date {
        check_date(ai, value)?;
    }
    if spec.implied_decimals && (ai.starts_with("310") || ai.starts_with("392")) {
        let scale = u32::from(ai.as_bytes()[3] - b'0');
        let units: i64 = value
            .parse()
            .map_err(|_| value_error(ai, "value is not a number"))?;
        out.values
            .insert(ai.to_string(), Decimal::new(units, scale));
    }
    if let Some(previous) = out.ais.get(ai) {
        if previous != value {
            return Err(value_error(ai, "appears twice with different values"));
        }
        return Ok(());
    }
    if out.ais.len() >= ELEMENTS_MAX {
        return Err(Error::Gs1Syntax {
            position: 0,
            message: format!("more than {ELEMENTS_MAX} element strings"),
        });
    }
    out.ais.insert(ai.to_string(), value.to_string());
    Ok(())
}

/// Parses transmitted scan data: element strings concatenated, GS after variable-length
/// elements. `data` excludes the AIM identifier.
pub fn parse_scan_data(data: &str) -> Result<ElementStrings> {
    let mut out = ElementStrings::default();
    // A leading GS is FNC1 in first position, sent as data by some scanners.
    let mut pos = usize::from(data.starts_with(GS));
    if pos >= data.len() {
        return Err(Error::Gs1Syntax {
            position: pos,
            message: "no element strings".into(),
        });
    }
    while pos < data.len() {
        let rest = &data[pos..];
        let spec = lookup(rest).ok_or_else(|| Error::Gs1Syntax {
            position: pos,
            message: "no known AI starts here".into(),
        })?;
        let ai = &rest[..spec.ai_len];
        let value_start = spec.ai_len;
        let field_end = rest.find(GS).unwrap_or(rest.len());
        if field_end <= value_start {
            return Err(value_error(
                ai,
                format!("no data at position {}", pos + value_start),
            ));
        }
        // Values are ASCII when valid; index by chars so that a non-ASCII byte gives a
        // character error from `accept`, never a slicing panic.
        let field = &rest[value_start..field_end];
        let take = field
            .char_indices()
            .nth(spec.max)
            .map_or(field.len(), |(i, _)| i);
        let value = &field[..take];
        accept(&mut out, ai, &spec, value)?;
        pos += value_start + take;
        if pos < data.len() {
            if data[pos..].starts_with(GS) {
                pos += GS.len_utf8();
            } else if !predefined_length(ai) {
                return Err(value_error(
                    ai,
                    format!(
                        "value is longer than {} characters: no GS separator at position {pos}",
                        spec.max
                    ),
                ));
            }
        }
    }
    check_pairs(&out)?;
    Ok(out)
}

/// AIs that must never appear together (GS1 General Specifications §4.14.1,
/// invalid pairs). Only the pairs among the AIs read here that are certain
/// are listed: (01) identifies a trade item and (02) the trade items a
/// logistic unit contains, so one symbol cannot carry both. The rest of
/// §4.14 (other invalid pairs, mandatory associations such as (02) with
/// (37)) is not enforced yet.
const INVALID_PAIRS: &[(&str, &str)] = &[("01", "02")];

fn check_pairs(out: &ElementStrings) -> Result<()> {
    for (a, b) in INVALID_PAIRS {
        if out.ais.contains_key(*a) && out.ais.contains_key(*b) {
            return Err(value_error(
                b,
                format!("AI ({b}) may not appear together with AI ({a})"),
            ));
        }
    }
    Ok(())
}

/// Parses the human-readable form `(01)04006381333931(10)ABC`.
pub fn parse_bracketed(data: &str) -> Result<ElementStrings> {
    let mut out = ElementStrings::default();
    let mut pos = 0;
    if data.is_empty() {
        return Err(Error::Gs1Syntax {
            position: 0,
            message: "no element strings".into(),
        });
    }
    while pos < data.len() {
        let rest = &data[pos..];
        if !rest.starts_with('(') {
            return Err(Error::Gs1Syntax {
                position: pos,
                message: "expected `(` before an AI".into(),
            });
        }
        let close = rest.find(')').ok_or_else(|| Error::Gs1Syntax {
            position: pos,
            message: "`(` without `)`".into(),
        })?;
        let ai = &rest[1..close];
        let spec = lookup(ai)
            .filter(|spec| spec.ai_len == ai.len())
            .ok_or_else(|| Error::Gs1Syntax {
                position: pos + 1,
                message: format!("unknown AI ({ai})"),
            })?;
        let value_rest = &rest[close + 1..];
        let value_len = value_rest.find('(').unwrap_or(value_rest.len());
        let value = &value_rest[..value_len];
        if value.is_empty() {
            return Err(value_error(
                ai,
                format!("no data at position {}", pos + close + 1),
            ));
        }
        accept(&mut out, ai, &spec, value)?;
        pos += close + 1 + value_len;
    }
    check_pairs(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtin_and_contained_gtin_are_an_invalid_pair() {
        // Regression found by tools/decode_fuzz.py: (01) with (02) was accepted.
        let scan = parse_scan_data("0101234567890128020950600013435");
        assert!(
            matches!(&scan, Err(Error::Gs1Value { ai, .. }) if ai == "02"),
            "{scan:?}"
        );
        let bracketed = parse_bracketed("(01)01234567890128(02)09506000134352");
        assert!(bracketed.is_err(), "{bracketed:?}");
        // Each alone is fine.
        assert!(parse_scan_data("0101234567890128").is_ok());
        assert!(parse_scan_data("0209506000134352").is_ok());
    }

    fn ais(parsed: &ElementStrings) -> Vec<(&str, &str)> {
        parsed
            .ais
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn fixed_length_elements_need_no_separator() {
        // GS1 General Specifications example: GTIN, expiry date, batch.
        let parsed = parse_scan_data("0109501101530003170101311022ABC").unwrap();
        // 17 is predefined as 6 digits, so "10" right after it starts the batch.
        assert_eq!(
            ais(&parsed),
            vec![("01", "09501101530003"), ("10", "22ABC"), ("17", "010131")]
        );
    }

    #[test]
    fn variable_length_elements_need_a_separator() {
        let data = "010950110153000310ABC123\u{1d}21SERIAL7\u{1d}3103001250";
        let parsed = parse_scan_data(data).unwrap();
        assert_eq!(parsed.ais["10"], "ABC123");
        assert_eq!(parsed.ais["21"], "SERIAL7");
        assert_eq!(parsed.values["3103"].to_string(), "1.250");
    }

    #[test]
    fn tolerates_leading_trailing_and_redundant_separators() {
        let data = "\u{1d}0109501101530003\u{1d}17261231\u{1d}";
        let parsed = parse_scan_data(data).unwrap();
        assert_eq!(parsed.ais["17"], "261231");
    }

    #[test]
    fn price_392n_and_weight_310n_decimals() {
        let parsed = parse_scan_data("01095011015300033922001250\u{1d}3105012345").unwrap();
        assert_eq!(parsed.values["3922"].to_string(), "12.50");
        assert_eq!(parsed.values["3105"].to_string(), "0.12345");
        let parsed = parse_scan_data("3100000125").unwrap();
        assert_eq!(parsed.values["3100"].to_string(), "125");
        assert!(
            parse_scan_data("3106000125").is_err(),
            "310n has n 0-5 only"
        );
    }

    #[test]
    fn other_monetary_ais() {
        let parsed = parse_scan_data("3932978001250\u{1d}39410050\u{1d}3955001234").unwrap();
        assert_eq!(parsed.ais["3932"], "978001250");
        assert_eq!(parsed.ais["3941"], "0050");
        assert_eq!(parsed.ais["3955"], "001234");
        assert!(parse_scan_data("3944001").is_err(), "394n has n 0-3");
        assert!(
            parse_scan_data("3932978").is_err(),
            "currency without amount"
        );
    }

    #[test]
    fn sscc_gsrn_and_check_digits() {
        let parsed = parse_scan_data("00106141411234567897").unwrap();
        assert_eq!(parsed.ais["00"], "106141411234567897");
        assert!(matches!(
            parse_scan_data("00106141411234567898"),
            Err(Error::CheckDigit { .. })
        ));
        // 8018 is fixed length but not predefined: last element, or followed by GS.
        let gsrn = "8018950110153000000007";
        assert!(parse_scan_data(gsrn).is_ok(), "{gsrn}");
        assert!(parse_scan_data(&format!("{gsrn}\u{1d}10A")).is_ok());
        let err = parse_scan_data(&format!("{gsrn}10A")).unwrap_err();
        assert!(err.to_string().contains("8018"), "{err}");
        assert!(matches!(
            parse_scan_data("0109501101530004"),
            Err(Error::CheckDigit { .. })
        ));
    }

    #[test]
    fn dates_follow_yymmd0() {
        for ok in ["000229", "240229", "261200", "991231", "200131"] {
            assert!(parse_scan_data(&format!("17{ok}")).is_ok(), "{ok}");
        }
        for bad in [
            "250229", "261301", "260000", "260431", "200132", "2601", "26010A",
        ] {
            assert!(parse_scan_data(&format!("17{bad}")).is_err(), "{bad}");
        }
        for ai in ["11", "12", "13", "15", "16", "17"] {
            assert!(parse_scan_data(&format!("{ai}261200")).is_ok(), "{ai}");
        }
        assert!(
            parse_scan_data("14261231").is_err(),
            "AI 14 is not assigned"
        );
    }

    #[test]
    fn variable_values_are_limited_and_checked() {
        let twenty = "A".repeat(20);
        assert!(parse_scan_data(&format!("10{twenty}")).is_ok());
        let err = parse_scan_data(&format!("10{twenty}B")).unwrap_err();
        assert!(err.to_string().contains("(10)"), "{err}");
        assert!(parse_scan_data("10AB#C").is_err(), "# is not in CSET 82");
        assert!(parse_scan_data("10\u{1d}21A").is_err(), "empty value");
        assert!(parse_scan_data("99").is_err(), "AI without data");
        assert!(parse_scan_data("").is_err());
        assert!(parse_scan_data("\u{1d}").is_err());
        assert!(parse_scan_data("10Ä").is_err());
    }

    #[test]
    fn unknown_ai_is_an_error_with_position() {
        let err = parse_scan_data("0109501101530003\u{1d}89ABC").unwrap_err();
        assert!(err.to_string().contains("position 17"), "{err}");
    }

    #[test]
    fn repeated_ai_must_agree() {
        assert!(parse_scan_data("10A\u{1d}10A").is_ok());
        assert!(parse_scan_data("10A\u{1d}10B").is_err());
    }

    #[test]
    fn bracketed_form() {
        let parsed = parse_bracketed("(01)09501101530003(17)261231(10)AB-12(3922)1250").unwrap();
        assert_eq!(parsed.ais["01"], "09501101530003");
        assert_eq!(parsed.ais["10"], "AB-12");
        assert_eq!(parsed.values["3922"].to_string(), "12.50");
        assert!(parse_bracketed("(01)0950110153000").is_err());
        assert!(parse_bracketed("(1)12").is_err());
        assert!(parse_bracketed("(3103)12").is_err());
        assert!(parse_bracketed("01)x").is_err());
    }

    #[test]
    fn cset82_has_82_characters() {
        let count = (0u8..128).filter(|&b| in_cset82(char::from(b))).count();
        assert_eq!(count, 82);
    }
}
