//! From a decoded product scan to what the checkout needs: the catalog keys
//! to try, in order, and the quantity or price a label embeds. Pure (no
//! store), so the order is unit-tested.
//!
//! # Key order
//!
//! A catalog may key a product by any of the forms a GTIN is written in, so
//! a scanned GTIN is tried, first match wins, as:
//! 1. the GTIN-14 as the decoder normalised it (`04006381333931`): the
//!    canonical form, what GS1 data pools and AI 01 carry;
//! 2. its EAN-13 form (one leading zero dropped: `4006381333931`), the
//!    commonest way European catalogs store it;
//! 3. its UPC-A form (two leading zeros dropped), for North American items
//!    and expanded UPC-E;
//! 4. its EAN-8 form (six leading zeros dropped);
//! 5. the raw data of a non-GTIN symbol (a Code 128 shelf code such as
//!    `GROC-1`), as scanned.
//!
//! Forms 2–4 are only tried when the dropped digits are zeros, so each is the
//! same number. For a GTIN symbol the raw data is one of forms 2–4 already
//! (an EAN-13 scan is its EAN-13 form), with one exception: a UPC-E is
//! looked up by its UPC-A expansion, not by its 8 compressed digits, which
//! the decoder does not keep. GS1 element strings are looked up by their
//! AI (01) GTIN. A variable-measure (in-store) code is keyed by its item
//! reference digits only: it embeds a price or weight instead of a GTIN.
//!
//! # Quantity and price
//!
//! * An in-store code with an embedded **price**: one piece at that price.
//! * An in-store code with an embedded **weight** (kg): that weight as the
//!   quantity, at the catalog's price (per kg).
//! * GS1 element strings: a 392n price wins (the label's total for the
//!   pack: one piece at that price), else a 310n net weight is the quantity.
//! * Anything else: one piece at the catalog price.

use pos_codes::{Measure, Reading};
use rust_decimal::Decimal;

use crate::store::ID_BYTES_MAX;

/// GTIN-14 digits.
const GTIN14_DIGITS: usize = 14;

/// What a product scan asks of the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductScan {
    /// Catalog skus to try, in order; the first that exists wins. Never
    /// empty.
    pub keys: Vec<String>,
    /// Pieces, or kilograms for a weighed item.
    pub qty: Decimal,
    /// The line's unit price when the label embeds it (instead of the
    /// catalog's).
    pub price: Option<Decimal>,
}

/// The lookup a scan needs, or `None` when the reading carries no product
/// key at all (an add-on alone, a track 2 account number).
pub fn product_scan(reading: &Reading) -> Option<ProductScan> {
    if let Some(vm) = &reading.variable_measure {
        let keys = usable(vec![vm.item.clone()]);
        if keys.is_empty() {
            return None;
        }
        let (qty, price) = match vm.measure {
            Measure::Price => (Decimal::ONE, Some(vm.value)),
            Measure::Weight => (vm.value, None),
        };
        return Some(ProductScan { keys, qty, price });
    }
    let mut keys = Vec::new();
    if let Some(gtin) = &reading.gtin {
        keys.extend(gtin_forms(gtin));
    }
    if let Some(data) = &reading.data {
        keys.push(data.clone());
    }
    let keys = usable(keys);
    if keys.is_empty() {
        return None;
    }
    let (qty, price) = embedded_measure(reading);
    Some(ProductScan { keys, qty, price })
}

/// GTIN-14 then its shorter forms, each only when the dropped digits are
/// zeros (see the module docs).
fn gtin_forms(gtin: &str) -> Vec<String> {
    if gtin.len() != GTIN14_DIGITS || !gtin.bytes().all(|b| b.is_ascii_digit()) {
        // Not what the decoder produces; try it as it is rather than guess.
        return vec![gtin.to_string()];
    }
    let mut forms = vec![gtin.to_string()];
    for drop in [1, 2, 6] {
        if gtin.as_bytes()[..drop].iter().all(|&b| b == b'0') {
            forms.push(gtin[drop..].to_string());
        }
    }
    forms
}

/// Quantity and price from GS1 AIs 392n (price) and 310n (net weight).
fn embedded_measure(reading: &Reading) -> (Decimal, Option<Decimal>) {
    let Some(values) = &reading.values else {
        return (Decimal::ONE, None);
    };
    let find = |prefix: &str| {
        values
            .iter()
            .find(|(ai, _)| ai.starts_with(prefix))
            .map(|(_, v)| *v)
    };
    match (find("392"), find("310")) {
        (Some(price), _) => (Decimal::ONE, Some(price)),
        (None, Some(weight)) => (weight.normalize(), None),
        (None, None) => (Decimal::ONE, None),
    }
}

/// Drops keys that cannot be a sku (empty, longer than the store allows) and
/// repeats, keeping the order.
fn usable(keys: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        if !key.is_empty() && key.len() <= ID_BYTES_MAX && !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_codes::{DecodeSettings, Decoded, VariableMeasureLayout, decode_barcode};
    use std::str::FromStr;

    fn reading(data: &str, settings: &DecodeSettings) -> Reading {
        match decode_barcode(data, settings) {
            Decoded::Reading(r) => *r,
            Decoded::PaymentCard => panic!("{data} is not a payment card"),
        }
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("test decimal")
    }

    #[test]
    fn ean13_tries_gtin14_then_ean13() {
        let scan =
            product_scan(&reading("4006381333931", &DecodeSettings::default())).expect("a product");
        assert_eq!(scan.keys, ["04006381333931", "4006381333931"]);
        assert_eq!((scan.qty, scan.price), (Decimal::ONE, None));
    }

    #[test]
    fn upca_and_ean8_add_their_short_forms_in_order() {
        let upca =
            product_scan(&reading("036000291452", &DecodeSettings::default())).expect("a product");
        assert_eq!(
            upca.keys,
            ["00036000291452", "0036000291452", "036000291452"]
        );
        let ean8 =
            product_scan(&reading("96385074", &DecodeSettings::default())).expect("a product");
        assert_eq!(
            ean8.keys,
            [
                "00000096385074",
                "0000096385074",
                "000096385074",
                "96385074"
            ]
        );
    }

    #[test]
    fn text_symbols_are_looked_up_as_scanned() {
        let scan =
            product_scan(&reading("]C0GROC-1", &DecodeSettings::default())).expect("a product");
        assert_eq!(scan.keys, ["GROC-1"]);
    }

    #[test]
    fn overlong_text_is_no_key() {
        let long = "X".repeat(ID_BYTES_MAX + 1);
        assert_eq!(
            product_scan(&reading(&long, &DecodeSettings::default())),
            None
        );
    }

    #[test]
    fn in_store_codes_key_by_item_and_carry_price_or_weight() {
        let layout = |value, decimals| VariableMeasureLayout {
            prefix: "2".into(),
            item_digits: 6,
            value,
            value_digits: 5,
            decimals,
            value_check_digit: false,
        };
        let price = DecodeSettings {
            variable_measure: vec![layout(Measure::Price, 2)],
            ..DecodeSettings::default()
        };
        // 2 | 123456 | 01234 | check digit
        let code = with_check_digit("212345601234");
        let scan = product_scan(&reading(&code, &price)).expect("a product");
        assert_eq!(scan.keys, ["123456"]);
        assert_eq!((scan.qty, scan.price), (Decimal::ONE, Some(d("12.34"))));

        let weight = DecodeSettings {
            variable_measure: vec![layout(Measure::Weight, 3)],
            ..DecodeSettings::default()
        };
        let scan = product_scan(&reading(&code, &weight)).expect("a product");
        assert_eq!(scan.keys, ["123456"]);
        assert_eq!((scan.qty, scan.price), (d("1.234"), None));
    }

    #[test]
    fn gs1_price_wins_over_weight() {
        let settings = DecodeSettings::default();
        let both = product_scan(&reading(
            "]C1010950110153000339220125\u{1d}3103001250",
            &settings,
        ))
        .expect("a product");
        assert_eq!(both.keys[..2], ["09501101530003", "9501101530003"]);
        assert_eq!((both.qty, both.price), (Decimal::ONE, Some(d("1.25"))));
        let weighed =
            product_scan(&reading("]C101095011015300033103001250", &settings)).expect("a product");
        assert_eq!((weighed.qty, weighed.price), (d("1.25"), None));
    }

    #[test]
    fn addon_alone_is_no_product() {
        assert_eq!(
            product_scan(&reading("]E212", &DecodeSettings::default())),
            None
        );
    }

    /// Appends the GS1 check digit (test data built from readable parts).
    fn with_check_digit(body: &str) -> String {
        pos_testkit::check_digit::gs1_complete(body)
    }
}
