//! From one scan or swipe to a [`Decoded`] reading: the JSON that `pos-agent decode`
//! prints and that scan events carry (agent spec §4).
//!
//! Order of decisions, the same for barcodes and swipes:
//! 1. the payment-card guard ([`crate::payment_card`]): a payment card becomes
//!    [`Decoded::PaymentCard`], which serialises as `{"payment_card": true}` only;
//! 2. member cards by configured prefix;
//! 3. the symbology's own decoding (GTIN, GS1 element strings, variable measure, text).
//!
//! Decoding never fails as a function: a bad scan is a reading with `"valid": false` and
//! an `"error"` saying what is wrong and where, because the POS still wants to show it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::aim::{Carrier, Symbology, split_aim};
use crate::check_digit::verify_gs1;
use crate::error::{Error, Result};
use crate::gs1::{self, ElementStrings, GS};
use crate::gtin::{expand_upce, normalise_gtin14};
use crate::payment_card::{
    contains_pan_run, has_track1_format_b, holds_payment_card, is_payment_card,
};
use crate::track::parse_tracks;
use crate::variable_measure::{
    IN_STORE_PREFIX_RULE, VariableMeasure, VariableMeasureLayout, is_in_store_prefix,
};

/// Longest scan the decoder reads: the 4 KiB of agent spec §4. The framing limit of
/// `pos-drivers` is this constant, so one frame is one decode.
pub const SCAN_BYTES_MAX: usize = 4096;

/// Longest member-card prefix (`[cards] loyalty_prefixes` and `track_prefixes`): it
/// leaves room for a card number after it in an EAN-13. The config and the decoder
/// once disagreed (12 in the config, 18 here); 12 is the limit start-up has always
/// enforced, so it is the one kept.
pub const MEMBER_PREFIX_DIGITS_MAX: usize = 12;

/// True when `prefix` may be configured as a member-card prefix: 1 to
/// [`MEMBER_PREFIX_DIGITS_MAX`] ASCII digits. The config reads its prefixes with this,
/// so what it accepts the decoder accepts too.
pub fn is_member_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= MEMBER_PREFIX_DIGITS_MAX
        && prefix.bytes().all(|b| b.is_ascii_digit())
}

/// What the decoder needs from the configuration. The agent maps its config onto this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeSettings {
    /// Barcodes made of digits that start with one of these are member cards
    /// (`[cards] loyalty_prefixes`).
    #[serde(default)]
    pub loyalty_prefixes: Vec<String>,
    /// Track 2 account numbers that start with one of these are member cards.
    #[serde(default)]
    pub track_member_prefixes: Vec<String>,
    /// In-store variable-measure layouts, tried in order; the first whose prefix matches
    /// an EAN-13 with a valid check digit reads it.
    #[serde(default)]
    pub variable_measure: Vec<VariableMeasureLayout>,
}

impl DecodeSettings {
    /// Checks prefixes and layouts; run at start-up and in `check-config`.
    pub fn validate(&self) -> Result<()> {
        for (name, prefixes) in [
            ("loyalty_prefixes", &self.loyalty_prefixes),
            ("track_member_prefixes", &self.track_member_prefixes),
        ] {
            for (i, prefix) in prefixes.iter().enumerate() {
                if !is_member_prefix(prefix) {
                    return Err(Error::settings(
                        format!("{name}[{i}]"),
                        format!("must be 1-{MEMBER_PREFIX_DIGITS_MAX} digits"),
                    ));
                }
            }
        }
        for (i, layout) in self.variable_measure.iter().enumerate() {
            // A settings rule, not a layout one: `VariableMeasureLayout::validate` checks
            // only what reading a code needs.
            if !is_in_store_prefix(&layout.prefix) {
                return Err(Error::settings(
                    format!("variable_measure[{i}]: variable_measure.prefix"),
                    IN_STORE_PREFIX_RULE,
                ));
            }
            layout.validate().map_err(|e| match e {
                Error::Settings { setting, message } => Error::Settings {
                    setting: format!("variable_measure[{i}]: {setting}"),
                    message,
                },
                other => other,
            })?;
        }
        Ok(())
    }
}

/// The outcome of decoding one scan or swipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A payment card: dropped. Carries nothing of the card, on purpose.
    PaymentCard,
    /// Anything else.
    Reading(Box<Reading>),
}

impl Serialize for Decoded {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Decoded::PaymentCard => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("payment_card", &true)?;
                map.end()
            }
            Decoded::Reading(reading) => reading.serialize(serializer),
        }
    }
}

impl Decoded {
    /// The reading, unless this was a payment card.
    pub fn reading(&self) -> Option<&Reading> {
        match self {
            Decoded::PaymentCard => None,
            Decoded::Reading(reading) => Some(reading),
        }
    }

    /// True for a member card.
    pub fn is_member_card(&self) -> bool {
        self.reading().is_some_and(|r| r.member_card.is_some())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a scan or swipe says. Fields that do not apply are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reading {
    pub symbology: Symbology,
    /// The AIM identifier as sent, e.g. `"]E0"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aim: Option<String>,
    /// The AIM identifier says the data is GS1 element strings.
    #[serde(skip_serializing_if = "is_false")]
    pub gs1_data: bool,
    /// The product's GTIN as 14 digits (from EAN/UPC/ITF-14, or AI 01).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    /// The UPC-A a UPC-E expands to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upca: Option<String>,
    /// A 2- or 5-digit EAN/UPC add-on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    /// GS1 element strings: AI → value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ais: Option<BTreeMap<String, String>>,
    /// Values with implied decimals from the element strings (310n kg, 392n price).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, Decimal>>,
    /// An in-store variable-measure code read by a configured layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable_measure: Option<VariableMeasure>,
    /// The member card token (its digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_card: Option<String>,
    /// A track 2 account number that is neither a payment nor a member card (gift card,
    /// staff card).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The data as text, when nothing above represents it (plain Code 128, QR text,
    /// non-format-B track 1) or when it did not decode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    pub valid: bool,
    /// Why `valid` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reading {
    fn new(symbology: Symbology, aim: Option<String>) -> Self {
        Reading {
            symbology,
            aim,
            gs1_data: false,
            gtin: None,
            upca: None,
            addon: None,
            ais: None,
            values: None,
            variable_measure: None,
            member_card: None,
            account: None,
            data: None,
            valid: true,
            error: None,
        }
    }

    fn invalid(mut self, error: &Error, data: &str) -> Self {
        self.valid = false;
        self.error = Some(error.to_string());
        self.data = Some(printable(data));
        self
    }
}

/// The data with control characters shown as `<GS>` etc., so a reading prints readably.
fn printable(data: &str) -> String {
    data.chars()
        .map(|c| match c {
            GS => "<GS>".to_string(),
            c if c.is_control() => format!("<{:02X}>", u32::from(c)),
            c => c.to_string(),
        })
        .collect()
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn member_prefix_match(prefixes: &[String], digits: &str) -> bool {
    all_digits(digits) && prefixes.iter().any(|p| digits.starts_with(p.as_str()))
}

/// True when the whole scan is a GTIN: exempt from the PAN search (see
/// [`crate::payment_card`]). An EAN/UPC symbol (AIM `]E0`, `]E3`, `]E4`) holds at most 13
/// digits plus add-on and is a GTIN whatever its check digit says (a wrong one is reported
/// as such); an ITF-14 or a bare 13-digit scan needs a valid GS1 check digit to count.
fn is_gtin_scan(carrier: Option<Carrier>, body: &str) -> bool {
    if !all_digits(body) {
        return false;
    }
    match carrier {
        Some(Carrier::EanUpc | Carrier::Ean8 | Carrier::EanUpcWithAddOn) => body.len() <= 18,
        Some(Carrier::Itf) => body.len() == 14 && verify_gs1("GTIN", body).is_ok(),
        None => body.len() == 13 && verify_gs1("GTIN", body).is_ok(),
        _ => false,
    }
}

/// Decodes one barcode scan (AIM identifier optional).
pub fn decode_barcode(data: &str, settings: &DecodeSettings) -> Decoded {
    if data.len() > SCAN_BYTES_MAX {
        return too_long_scan(data);
    }
    let (aim, body) = match split_aim(data) {
        Ok(split) => split,
        Err(error) => {
            if is_payment_card(data, false) {
                return Decoded::PaymentCard;
            }
            let reading = Reading::new(Symbology::Unknown, None).invalid(&error, data);
            return Decoded::Reading(Box::new(reading));
        }
    };
    let carrier = aim.map(|a| a.carrier());
    let gs1 = match carrier {
        Some(Carrier::Gs1(symbology)) => Some((symbology, gs1::parse_scan_data(body))),
        None if body.starts_with('(') => Some((Symbology::Gs1, gs1::parse_bracketed(body))),
        None if body.contains(GS) => Some((Symbology::Gs1, gs1::parse_scan_data(body))),
        _ => None,
    };
    let parsed = gs1.as_ref().map(|(_, parsed)| parsed.as_ref().ok());
    if is_payment_scan(carrier, body, parsed) {
        // The parsed copies may hold the number: wipe them before they are freed.
        if let Some((_, Ok(mut parsed))) = gs1 {
            parsed.ais.values_mut().for_each(Zeroize::zeroize);
        }
        return Decoded::PaymentCard;
    }
    let aim_text = aim.map(|a| a.text());
    let reading = if let Some((symbology, parsed)) = gs1 {
        let mut reading = Reading::new(symbology, aim_text);
        reading.gs1_data = aim.is_some_and(|a| a.is_gs1());
        element_strings(reading, body, parsed)
    } else {
        not_element_strings(carrier, aim_text, body, settings)
    };
    Decoded::Reading(Box::new(reading))
}

/// A scan over [`SCAN_BYTES_MAX`]: too long to show, and it may hold anything, so it is
/// not echoed.
fn too_long_scan(data: &str) -> Decoded {
    if is_payment_card(data, false) {
        return Decoded::PaymentCard;
    }
    let error = Error::TooLong {
        found: data.len(),
        limit: SCAN_BYTES_MAX,
    };
    let mut reading = Reading::new(Symbology::Unknown, None);
    reading.valid = false;
    reading.error = Some(error.to_string());
    Decoded::Reading(Box::new(reading))
}

/// The payment-card guard on a scan's body (after its AIM identifier); `gs1`: whether
/// the body is read as GS1 element strings, and what they parsed to.
///
/// The guard reads the body: a digit AIM modifier (`]C0`) must not join the number.
/// GS1 element strings that parse are searched element by element, free-text elements
/// only (the value, and AI + value, since a card number read as GS1 may start with an
/// AI such as 400): numeric elements are defined numbers (a 392n price "3928…" would
/// otherwise hit the Diners range 39). Known gap, accepted: a card number that is
/// exactly one valid numeric element (e.g. 41x + 13 digits with a valid GS1 check
/// digit) inside a GS1-flagged symbol is not caught; card numbers are not printed so.
fn is_payment_scan(
    carrier: Option<Carrier>,
    body: &str,
    gs1: Option<Option<&ElementStrings>>,
) -> bool {
    match gs1 {
        Some(Some(parsed)) => {
            has_track1_format_b(body)
                || parsed.ais.iter().any(|(ai, value)| {
                    !gs1::is_numeric_ai(ai)
                        && (contains_pan_run(value)
                            || contains_pan_run(&Zeroizing::new(format!("{ai}{value}"))))
                })
        }
        _ => is_payment_card(body, is_gtin_scan(carrier, body)),
    }
}

/// A scan that is not GS1 element strings: empty, a member card, or the symbology's own.
fn not_element_strings(
    carrier: Option<Carrier>,
    aim_text: Option<String>,
    body: &str,
    settings: &DecodeSettings,
) -> Reading {
    if body.is_empty() {
        let error = Error::Length {
            what: "scan data".into(),
            expected: "at least 1 character after the AIM identifier".into(),
            found: 0,
        };
        let symbology = symbology_for(carrier, body);
        return Reading::new(symbology, aim_text).invalid(&error, body);
    }
    // A member card is stored (the ledger, central): it must pass the guard of
    // stored fields too. A whole-scan GTIN is exempt from the scan's PAN search,
    // but an EAN-13 with its add-on under a loyalty prefix of a brand range can
    // hold a Luhn-valid run; it is then read as the product it is.
    if member_prefix_match(&settings.loyalty_prefixes, body) && !holds_payment_card(body) {
        let mut reading = Reading::new(symbology_for(carrier, body), aim_text);
        reading.member_card = Some(body.to_string());
        return reading;
    }
    decode_body(carrier, aim_text, body, settings)
}

/// The symbology name for a member card barcode (no decoding needed beyond the name).
fn symbology_for(carrier: Option<Carrier>, body: &str) -> Symbology {
    match carrier {
        Some(Carrier::EanUpc) | None => match body.len() {
            13 => Symbology::Ean13,
            12 => Symbology::Upca,
            8 if carrier.is_some() => Symbology::Upce,
            8 => Symbology::Ean8,
            _ => Symbology::Unknown,
        },
        Some(Carrier::Ean8) => Symbology::Ean8,
        Some(Carrier::EanUpcWithAddOn) => Symbology::Ean13,
        Some(Carrier::AddOn) => Symbology::EanAddon,
        Some(Carrier::Itf) => Symbology::Itf,
        Some(Carrier::Gs1(s) | Carrier::Other(s)) => s,
    }
}

fn decode_body(
    carrier: Option<Carrier>,
    aim: Option<String>,
    body: &str,
    settings: &DecodeSettings,
) -> Reading {
    match carrier {
        Some(Carrier::Gs1(symbology)) => {
            // Decoded by the caller; kept total for the match.
            element_strings(
                Reading::new(symbology, aim),
                body,
                gs1::parse_scan_data(body),
            )
        }
        Some(Carrier::EanUpc) => ean_upc(aim, body, true, settings),
        Some(Carrier::Ean8) => {
            let reading = Reading::new(Symbology::Ean8, aim);
            gtin(reading, "EAN-8", body, 8)
        }
        Some(Carrier::EanUpcWithAddOn) => {
            // E3: the main symbol (13 digits, EAN-13 form) followed by its add-on.
            let reading = Reading::new(Symbology::Ean13, aim);
            match body.len() {
                15 | 18 if all_digits(body) => {
                    let mut reading = gtin(reading, "EAN-13", &body[..13], 13);
                    reading.addon = Some(body[13..].to_string());
                    reading
                }
                n => reading.invalid(
                    &Error::Length {
                        what: "EAN/UPC with add-on".into(),
                        expected: "15 or 18 digits".into(),
                        found: n,
                    },
                    body,
                ),
            }
        }
        Some(Carrier::AddOn) => {
            let mut reading = Reading::new(Symbology::EanAddon, aim);
            reading.addon = Some(body.to_string());
            reading
        }
        Some(Carrier::Itf) if body.len() == 14 => {
            let reading = Reading::new(Symbology::Itf14, aim);
            gtin(reading, "ITF-14", body, 14)
        }
        Some(Carrier::Itf) => text(Reading::new(Symbology::Itf, aim), body),
        Some(Carrier::Other(symbology)) => text(Reading::new(symbology, aim), body),
        None => {
            if all_digits(body) && matches!(body.len(), 8 | 12 | 13) {
                ean_upc(None, body, false, settings)
            } else if all_digits(body) && body.len() == 14 {
                gtin(Reading::new(Symbology::Itf14, None), "GTIN-14", body, 14)
            } else {
                text(Reading::new(Symbology::Unknown, None), body)
            }
        }
    }
}

fn text(mut reading: Reading, body: &str) -> Reading {
    reading.data = Some(printable(body));
    reading
}

fn element_strings(mut reading: Reading, body: &str, parsed: Result<ElementStrings>) -> Reading {
    match parsed {
        Ok(parsed) => {
            reading.gtin = parsed.ais.get("01").cloned();
            if !parsed.values.is_empty() {
                reading.values = Some(parsed.values);
            }
            reading.ais = Some(parsed.ais);
            reading
        }
        Err(error) => reading.invalid(&error, body),
    }
}

fn gtin(mut reading: Reading, what: &str, body: &str, len: usize) -> Reading {
    if body.len() != len {
        let error = Error::Length {
            what: what.into(),
            expected: format!("{len} digits"),
            found: body.chars().count(),
        };
        return reading.invalid(&error, body);
    }
    match normalise_gtin14(what, body) {
        Ok(gtin) => {
            reading.gtin = Some(gtin);
            reading
        }
        Err(error) => reading.invalid(&error, body),
    }
}

/// EAN-13, UPC-A or UPC-E by length. `upce_if_8`: an 8-digit `]E0` is a UPC-E (EAN-8 has
/// its own `]E4`); without an identifier 8 digits are read as EAN-8, or as UPC-E when only
/// that check digit fits.
fn ean_upc(aim: Option<String>, body: &str, upce_if_8: bool, settings: &DecodeSettings) -> Reading {
    match body.len() {
        13 => {
            let reading = gtin(Reading::new(Symbology::Ean13, aim), "EAN-13", body, 13);
            if !reading.valid {
                return reading;
            }
            let Some(layout) = settings.variable_measure.iter().find(|l| l.matches(body)) else {
                return reading;
            };
            let mut reading = reading;
            reading.gtin = None; // an in-store code is not a GTIN: it embeds the value
            match layout.read(body) {
                Ok(measure) => {
                    reading.variable_measure = Some(measure);
                    reading
                }
                Err(error) => reading.invalid(&error, body),
            }
        }
        12 => gtin(Reading::new(Symbology::Upca, aim), "UPC-A", body, 12),
        8 if upce_if_8 => {
            let mut reading = Reading::new(Symbology::Upce, aim);
            match expand_upce(body) {
                Ok(upca) => {
                    reading.gtin = Some(format!("00{upca}"));
                    reading.upca = Some(upca);
                    reading
                }
                Err(error) => reading.invalid(&error, body),
            }
        }
        8 => {
            let ean8 = gtin(Reading::new(Symbology::Ean8, aim.clone()), "EAN-8", body, 8);
            // Without an identifier, 8 digits that fail as EAN-8 but pass as UPC-E are
            // read as UPC-E; when both pass, EAN-8 wins (the commoner symbol in Europe).
            if !ean8.valid && expand_upce(body).is_ok() {
                ean_upc(aim, body, true, settings)
            } else {
                ean8
            }
        }
        n => Reading::new(Symbology::Ean13, aim).invalid(
            &Error::Length {
                what: "EAN/UPC".into(),
                expected: "8, 12 or 13 digits".into(),
                found: n,
            },
            body,
        ),
    }
}

/// Decodes one magnetic-stripe swipe (track 1 and/or track 2).
pub fn decode_track(data: &str, settings: &DecodeSettings) -> Decoded {
    if is_payment_card(data, false) {
        return Decoded::PaymentCard;
    }
    if data.len() > SCAN_BYTES_MAX {
        let mut reading = Reading::new(Symbology::Track2, None);
        reading.valid = false;
        reading.error = Some(
            Error::TooLong {
                found: data.len(),
                limit: SCAN_BYTES_MAX,
            }
            .to_string(),
        );
        return Decoded::Reading(Box::new(reading));
    }
    let reading = match parse_tracks(data) {
        Ok(tracks) => match (tracks.track2, tracks.track1) {
            (Some(t2), _) => {
                let mut reading = Reading::new(Symbology::Track2, None);
                if member_prefix_match(&settings.track_member_prefixes, &t2.pan) {
                    reading.member_card = Some(t2.pan);
                } else {
                    reading.account = Some(t2.pan);
                }
                reading
            }
            (None, Some(t1)) => {
                let reading = Reading::new(Symbology::Track1, None);
                text(reading, &format!("{}{}", t1.format_code, t1.data))
            }
            (None, None) => Reading::new(Symbology::Track2, None).invalid(
                &Error::Track {
                    track: 2,
                    message: "no track data".into(),
                },
                data,
            ),
        },
        Err(error) => {
            let symbology = if data.trim_start().starts_with('%') {
                Symbology::Track1
            } else {
                Symbology::Track2
            };
            Reading::new(symbology, None).invalid(&error, data)
        }
    };
    Decoded::Reading(Box::new(reading))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variable_measure::Measure;
    use pos_testkit::check_digit::synthetic_pan;
    use serde_json::{Value, json};

    fn settings() -> DecodeSettings {
        DecodeSettings {
            loyalty_prefixes: vec!["999".into()],
            track_member_prefixes: vec!["6299".into(), "999".into()],
            variable_measure: vec![VariableMeasureLayout {
                prefix: "21".into(),
                item_digits: 5,
                value: Measure::Price,
                value_digits: 5,
                decimals: 2,
                value_check_digit: false,
            }],
        }
    }

    fn barcode(data: &str) -> Value {
        serde_json::to_value(decode_barcode(data, &settings())).unwrap()
    }

    fn track(data: &str) -> Value {
        serde_json::to_value(decode_track(data, &settings())).unwrap()
    }

    #[test]
    fn spec_example_ean13() {
        assert_eq!(
            barcode("]E04006381333931"),
            json!({"symbology": "ean13", "aim": "]E0", "gtin": "04006381333931", "valid": true})
        );
        assert_eq!(barcode("4006381333931")["gtin"], "04006381333931");
    }

    #[test]
    fn invalid_check_digit_says_why() {
        let v = barcode("]E04006381333932");
        assert_eq!(v["valid"], false);
        let error = v["error"].as_str().unwrap();
        assert!(error.contains("check digit is 2, expected 1"), "{error}");
    }

    #[test]
    fn ean8_upca_upce_itf14() {
        assert_eq!(barcode("]E496385074")["gtin"], "00000096385074");
        assert_eq!(barcode("]E0036000291452")["symbology"], "upca");
        let upce = barcode("]E004252614");
        assert_eq!(upce["symbology"], "upce");
        assert_eq!(upce["upca"], "042100005264");
        assert_eq!(upce["gtin"], "00042100005264");
        assert_eq!(barcode("]I110614141000415")["gtin"], "10614141000415");
        assert_eq!(barcode("]E3400638133393112")["addon"], "12");
        // Bare 8 digits: EAN-8 when its check digit fits, else UPC-E when that fits.
        assert_eq!(barcode("96385074")["symbology"], "ean8");
        assert_eq!(barcode("04252614")["symbology"], "upce");
        assert_eq!(barcode("04252615")["symbology"], "ean8");
        assert_eq!(barcode("04252615")["valid"], false);
    }

    #[test]
    fn gs1_element_strings_all_spellings() {
        let scan = barcode("]C10109501101530003\u{1d}1726123110ABC");
        // 17 is fixed length, so "10ABC" right after it needs no separator.
        let expected_ais = json!({"01": "09501101530003", "17": "261231", "10": "ABC"});
        assert_eq!(scan["ais"], expected_ais);
        assert_eq!(scan["gs1_data"], true);
        assert_eq!(scan["symbology"], "gs1_128");
        assert_eq!(scan["gtin"], "09501101530003");
        assert_eq!(
            barcode("]d20109501101530003\u{1d}17261231\u{1d}10ABC\u{1d}")["ais"],
            expected_ais
        );
        assert_eq!(
            barcode("(01)09501101530003(17)261231(10)ABC")["ais"],
            expected_ais
        );
        let weighed = barcode("]e001095011015300033103001250");
        assert_eq!(weighed["values"]["3103"], "1.250");
        let bad = barcode("]Q30109501101530003\u{1d}17261331");
        assert_eq!(bad["valid"], false);
        assert!(bad["error"].as_str().unwrap().contains("(17)"));
    }

    #[test]
    fn gs1_numeric_elements_are_not_card_numbers_but_text_elements_are_searched() {
        // "3928" + 13 digits is 17 digits in the Diners range 39 and passes Luhn.
        let price = barcode("]C139281036423151572");
        assert_eq!(price["valid"], true, "{price}");
        assert_eq!(price["values"]["3928"], "10364.23151572");
        let pan = synthetic_pan("4", 16);
        assert_eq!(
            barcode(&format!("]C10109501101530003\u{1d}21{pan}")),
            json!({"payment_card": true})
        );
        assert_eq!(
            barcode(&format!("(10){pan}")),
            json!({"payment_card": true})
        );
        // Unparseable GS1 data falls back to the whole-body search.
        assert_eq!(barcode(&format!("]C1{pan}")), json!({"payment_card": true}));
    }

    #[test]
    fn variable_measure_code() {
        // 21 12345 01299 + EAN check digit.
        let body = "211234501299";
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        let code = format!("{body}{}", crate::check_digit::gs1_check_digit(&digits));
        let v = barcode(&format!("]E0{code}"));
        assert_eq!(
            v["variable_measure"],
            json!({"item": "12345", "measure": "price", "value": "12.99"})
        );
        assert!(v.get("gtin").is_none());
    }

    #[test]
    fn member_cards() {
        assert_eq!(
            barcode("9990000010013"),
            json!({"symbology": "ean13", "member_card": "9990000010013", "valid": true})
        );
        let swipe = track(";9990000010013=2912?");
        assert_eq!(swipe["member_card"], "9990000010013");
        assert_eq!(track(";1234567890?")["account"], "1234567890");
    }

    #[test]
    fn payment_cards_print_nothing_else() {
        let expected = json!({"payment_card": true});
        for prefix in ["4", "51", "2221", "34", "6011", "3528", "36", "62"] {
            let pan = synthetic_pan(prefix, 16);
            assert_eq!(barcode(&pan), expected, "{prefix}");
            assert_eq!(barcode(&format!("]C0{pan}")), expected, "{prefix}");
            assert_eq!(barcode(&format!("]Q1PAY:{pan}")), expected, "{prefix}");
            assert_eq!(track(&format!(";{pan}=2912101?")), expected, "{prefix}");
            assert_eq!(track(&format!("{pan}=2912101")), expected, "{prefix}");
        }
        assert_eq!(track("%B1234567^DOE/JOHN^2912101?"), expected);
        assert_eq!(barcode("%B1234567^DOE/JOHN^2912101?"), expected);
        // A loyalty prefix does not make a payment card number a member card.
        let pan = synthetic_pan("9792", 16);
        let mut with_prefix = settings();
        with_prefix.loyalty_prefixes.push("9792".into());
        let decoded = decode_barcode(&pan, &with_prefix);
        assert_eq!(decoded, Decoded::PaymentCard);
        assert!(!format!("{decoded:?}").contains(&pan));
    }

    #[test]
    fn ean13_that_passes_luhn_is_still_a_product() {
        // Find a German GTIN (prefix 400) that is also Luhn-valid in the Visa range.
        let code = (0..100_000u32)
            .map(|n| {
                let body = format!("400{n:09}");
                let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
                format!("{body}{}", crate::check_digit::gs1_check_digit(&digits))
            })
            .find(|c| crate::payment_card::is_pan(c.as_bytes()))
            .unwrap();
        assert_eq!(barcode(&code)["symbology"], "ean13");
        assert_eq!(barcode(&format!("]E0{code}"))["valid"], true);
        assert_eq!(
            barcode(&format!("]C0{code}")),
            json!({"payment_card": true})
        );
    }

    #[test]
    fn other_symbologies_keep_their_text() {
        let v = barcode("]A0HELLO-39");
        assert_eq!(v["symbology"], "code39");
        assert_eq!(v["data"], "HELLO-39");
        assert_eq!(barcode("]X")["valid"], false);
        assert_eq!(barcode("")["valid"], false);
        assert_eq!(barcode("]C0")["valid"], false);
    }

    #[test]
    fn track_errors_and_track1() {
        let v = track(";12E4?");
        assert_eq!(v["valid"], false);
        assert!(v["error"].as_str().unwrap().contains("position 3"));
        let t1 = track("%NSTAFF^0042?");
        assert_eq!(t1["symbology"], "track1");
        assert_eq!(t1["data"], "NSTAFF^0042");
    }

    #[test]
    fn settings_validation() {
        assert!(settings().validate().is_ok());
        let mut bad = settings();
        bad.loyalty_prefixes.push("99A".into());
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("loyalty_prefixes[1]"), "{err}");
        let mut bad = settings();
        bad.variable_measure[0].item_digits = 4;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("variable_measure[0]")
        );
    }

    #[test]
    fn settings_take_the_config_rules() {
        let mut long = settings();
        long.track_member_prefixes
            .push("1".repeat(MEMBER_PREFIX_DIGITS_MAX + 1));
        let err = long.validate().unwrap_err().to_string();
        assert!(err.contains("track_member_prefixes[2]"), "{err}");
        assert!(is_member_prefix(&"1".repeat(MEMBER_PREFIX_DIGITS_MAX)));
        for prefix in ["2", "30", "210", "01"] {
            let mut outside = settings();
            outside.variable_measure[0].prefix = prefix.into();
            outside.variable_measure[0].item_digits = 7 - u8::try_from(prefix.len()).unwrap();
            let err = outside.validate().unwrap_err().to_string();
            assert!(err.contains("in-store"), "{prefix}: {err}");
        }
    }

    /// Found by the `barcode` fuzz target: an EAN-13 with a 2-digit add-on,
    /// exempt from the scan's PAN search as a whole-scan GTIN, became a 15-digit
    /// member card holding a Luhn-valid Visa-range run under a loyalty prefix
    /// "4". A member card is stored, so it passes the stored-field guard too;
    /// this scan is read as the product it is.
    #[test]
    fn regression_an_ean_with_add_on_is_no_member_card_holding_a_pan() {
        let settings = DecodeSettings {
            loyalty_prefixes: vec!["4".into()],
            ..settings()
        };
        let decoded = decode_barcode("]E0400620116696569", &settings);
        let reading = decoded
            .reading()
            .expect("not a payment card: an EAN symbol");
        assert_eq!(reading.member_card, None);
        // The same loyalty prefix still reads an honest card.
        let decoded = decode_barcode("4006381333931", &settings);
        assert!(decoded.is_member_card(), "{decoded:?}");
    }
}
