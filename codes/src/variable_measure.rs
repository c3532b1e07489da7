//! GS1 variable-measure in-store codes: EAN-13s with a restricted-circulation prefix (e.g.
//! 20–29 in most countries) that carry an item reference and a price or weight instead of
//! a GTIN (GS1 General Specifications §2.1.11 and §7.9.2–7.9.3). The layout is a national
//! or retailer choice, so it comes from settings.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::check_digit::price_check_digit;
use crate::error::{Error, Result};

/// Digits in an EAN-13, the only carrier of these codes.
pub const EAN13_DIGITS: u8 = 13;

/// Digits of an in-store prefix (see [`is_in_store_prefix`]).
pub const IN_STORE_PREFIX_DIGITS: u8 = 2;

/// Values that may carry a GS1 price/weight check digit: the General Specifications
/// define it for 4- and 5-digit values only.
pub const VALUE_CHECK_DIGIT_VALUE_DIGITS: std::ops::RangeInclusive<u8> = 4..=5;

/// What [`is_in_store_prefix`] accepts, for error messages.
pub const IN_STORE_PREFIX_RULE: &str = "must be \"02\" or \"20\" to \"29\" (GS1 in-store prefixes)";

/// True for the GS1 prefixes reserved for in-store variable-measure codes: `"02"` and
/// `"20"` to `"29"` (GS1 General Specifications §2.1.11). The config once took only
/// these and the decoder any digits; agent spec §4 asks for GS1 *in-store* codes, which
/// are these prefixes, so the narrower rule is the one kept, checked in
/// [`crate::DecodeSettings::validate`] and by the config. [`VariableMeasureLayout::validate`] stays structural (any digits)
/// because it guards only the slicing of [`VariableMeasureLayout::read`].
pub fn is_in_store_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    prefix == "02"
        || (bytes.len() == usize::from(IN_STORE_PREFIX_DIGITS)
            && bytes[0] == b'2'
            && bytes[1].is_ascii_digit())
}

/// What the embedded value measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// A price in the store's currency.
    Price,
    /// A weight in kilograms.
    Weight,
}

/// Where the item reference and value sit inside the EAN-13:
/// `prefix | item_digits | [value check digit] | value_digits | EAN check digit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableMeasureLayout {
    /// Digits the barcode must start with, e.g. `"21"`.
    pub prefix: String,
    /// Item reference digits right after the prefix.
    pub item_digits: u8,
    /// What the value is.
    pub value: Measure,
    /// Digits of the value.
    pub value_digits: u8,
    /// Implied decimal places of the value (2 for cents, 3 for grams as kg).
    pub decimals: u8,
    /// A GS1 price/weight check digit sits right before the value (4- or 5-digit values
    /// only: the General Specifications define no other).
    pub value_check_digit: bool,
}

/// The content of a variable-measure code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariableMeasure {
    /// The item reference digits (the product key for the catalogue).
    pub item: String,
    /// What `value` is.
    pub measure: Measure,
    /// The value with its decimals applied, exact.
    pub value: Decimal,
}

impl VariableMeasureLayout {
    /// Checks that the fields add up to an EAN-13 and that the value check digit is one
    /// the standard defines. Run on settings at start-up so a bad layout never meets a scan.
    pub fn validate(&self) -> Result<()> {
        if self.prefix.is_empty() || !self.prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::settings(
                "variable_measure.prefix",
                "must be one or more digits",
            ));
        }
        let total = self.prefix.len()
            + usize::from(self.item_digits)
            + usize::from(self.value_check_digit)
            + usize::from(self.value_digits)
            + 1;
        if total != usize::from(EAN13_DIGITS) {
            return Err(Error::settings(
                "variable_measure",
                format!(
                    "prefix ({}) + item_digits ({}) + value check digit ({}) + value_digits ({}) \
                     + EAN check digit (1) = {total}, must be {EAN13_DIGITS}",
                    self.prefix.len(),
                    self.item_digits,
                    u8::from(self.value_check_digit),
                    self.value_digits
                ),
            ));
        }
        if self.item_digits == 0 || self.value_digits == 0 {
            return Err(Error::settings(
                "variable_measure",
                "item_digits and value_digits must be at least 1",
            ));
        }
        if self.value_check_digit && !VALUE_CHECK_DIGIT_VALUE_DIGITS.contains(&self.value_digits) {
            return Err(Error::settings(
                "variable_measure.value_check_digit",
                "GS1 defines the value check digit for 4- or 5-digit values only",
            ));
        }
        if self.decimals > self.value_digits {
            return Err(Error::settings(
                "variable_measure.decimals",
                "must not exceed value_digits",
            ));
        }
        Ok(())
    }

    /// True when `ean13` starts with this layout's prefix.
    pub fn matches(&self, ean13: &str) -> bool {
        ean13.len() == usize::from(EAN13_DIGITS) && ean13.starts_with(&self.prefix)
    }

    /// Reads an EAN-13 (13 ASCII digits, EAN check digit already verified) with this
    /// layout. Errors: an invalid layout, or a value check digit that does not match.
    pub fn read(&self, ean13: &str) -> Result<VariableMeasure> {
        self.validate()?;
        if !self.matches(ean13) || !ean13.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Length {
                what: "variable-measure code".into(),
                expected: format!("13 digits starting with {}", self.prefix),
                found: ean13.len(),
            });
        }
        let item_start = self.prefix.len();
        let item_end = item_start + usize::from(self.item_digits);
        let value_start = item_end + usize::from(self.value_check_digit);
        let value_end = value_start + usize::from(self.value_digits);
        let value_text = &ean13[value_start..value_end];
        if self.value_check_digit {
            let digits: Vec<u8> = value_text.bytes().map(|b| b - b'0').collect();
            let found = ean13.as_bytes()[item_end] - b'0';
            let expected = price_check_digit(&digits)
                .expect("validate() allows value check digits for 4 or 5 digits only");
            if found != expected {
                return Err(Error::CheckDigit {
                    what: format!("variable-measure value check digit (position {item_end})"),
                    expected,
                    found,
                });
            }
        }
        let units: i64 = value_text
            .parse()
            .expect("at most 11 ASCII digits always parse as i64");
        Ok(VariableMeasure {
            item: ean13[item_start..item_end].to_string(),
            measure: self.value,
            value: Decimal::new(units, u32::from(self.decimals)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_digit::gs1_check_digit;

    fn layout(
        prefix: &str,
        item: u8,
        value_digits: u8,
        decimals: u8,
        check: bool,
    ) -> VariableMeasureLayout {
        VariableMeasureLayout {
            prefix: prefix.into(),
            item_digits: item,
            value: Measure::Price,
            value_digits,
            decimals,
            value_check_digit: check,
        }
    }

    /// Builds a code from its parts with real check digits (GS1's algorithms).
    fn build(prefix: &str, item: &str, value: &str, with_value_check: bool) -> String {
        let mut body = format!("{prefix}{item}");
        if with_value_check {
            let digits: Vec<u8> = value.bytes().map(|b| b - b'0').collect();
            body.push(char::from(b'0' + price_check_digit(&digits).unwrap()));
        }
        body.push_str(value);
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        body.push(char::from(b'0' + gs1_check_digit(&digits)));
        body
    }

    #[test]
    fn reads_price_without_value_check_digit() {
        let l = layout("21", 5, 5, 2, false);
        let code = build("21", "12345", "01299", false);
        let read = l.read(&code).unwrap();
        assert_eq!(read.item, "12345");
        assert_eq!(read.value.to_string(), "12.99");
        assert_eq!(read.measure, Measure::Price);
    }

    #[test]
    fn reads_value_with_4_digit_check_and_rejects_a_wrong_one() {
        let l = VariableMeasureLayout {
            value: Measure::Weight,
            ..layout("2", 6, 4, 3, true)
        };
        // GS1's 4-digit example value 2875 has price check digit 9.
        let code = build("2", "123456", "2875", true);
        assert_eq!(&code[7..8], "9");
        let read = l.read(&code).unwrap();
        assert_eq!(read.value.to_string(), "2.875");
        assert_eq!(read.measure, Measure::Weight);
        let mut bad = code.into_bytes();
        bad[7] = b'8';
        let bad = String::from_utf8(bad).unwrap();
        assert!(matches!(
            l.read(&bad),
            Err(Error::CheckDigit {
                expected: 9,
                found: 8,
                ..
            })
        ));
    }

    #[test]
    fn reads_value_with_5_digit_check() {
        let l = layout("2", 5, 5, 2, true);
        let code = build("2", "12345", "14685", true);
        assert_eq!(
            &code[6..7],
            "6",
            "GS1's 5-digit example 14685 has check digit 6"
        );
        assert_eq!(l.read(&code).unwrap().value.to_string(), "146.85");
    }

    #[test]
    fn rejects_impossible_layouts() {
        assert!(layout("21", 5, 5, 2, false).validate().is_ok());
        assert!(
            layout("21", 5, 4, 2, false).validate().is_err(),
            "12 digits"
        );
        assert!(
            layout("2", 4, 6, 2, true).validate().is_err(),
            "6-digit check"
        );
        assert!(layout("2a", 5, 5, 2, false).validate().is_err());
        assert!(layout("21", 5, 5, 6, false).validate().is_err());
        assert!(layout("", 6, 5, 2, false).validate().is_err());
    }
}
