//! Property tests: the decoders never panic, agree with the GS1 rules on generated
//! inputs, and never let a generated payment card number through.

use std::collections::BTreeMap;

use pos_codes::check_digit::gs1_check_digit;
use pos_codes::gs1::{parse_bracketed, parse_scan_data};
use pos_codes::gtin::normalise_gtin14;
use pos_codes::{DecodeSettings, Decoded, decode_barcode, decode_track};
use proptest::prelude::*;

use pos_testkit::check_digit::luhn_complete;

fn digits(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b - b'0').collect()
}

fn with_check(body: &str) -> String {
    format!("{body}{}", gs1_check_digit(&digits(body)))
}

fn settings() -> DecodeSettings {
    DecodeSettings {
        loyalty_prefixes: vec!["999".into(), "4".into(), "5".into()],
        track_member_prefixes: vec!["4".into(), "6".into()],
        variable_measure: Vec::new(),
    }
}

/// A GS1 element as (AI, value), valid by construction.
fn element() -> impl Strategy<Value = (String, String)> {
    let cset82 = "[!\"%&'()*+,./0-9:;<=>?A-Z_a-z-]{1,20}";
    prop_oneof![
        "[0-9]{13}".prop_map(|b| ("01".to_string(), with_check(&b))),
        "[0-9]{17}".prop_map(|b| ("00".to_string(), with_check(&b))),
        "[0-9]{17}".prop_map(|b| ("8018".to_string(), with_check(&b))),
        (0u32..100, 1u32..13, 0u32..29)
            .prop_map(|(y, m, d)| { ("17".to_string(), format!("{y:02}{m:02}{d:02}")) }),
        cset82.prop_map(|v| ("10".to_string(), v)),
        cset82.prop_map(|v| ("21".to_string(), v)),
        (0u8..6, "[0-9]{6}").prop_map(|(n, v)| (format!("310{n}"), v)),
        (0u8..10, "[0-9]{1,15}").prop_map(|(n, v)| (format!("392{n}"), v)),
    ]
}

fn predefined(ai: &str) -> bool {
    ["00", "01", "17", "31"].iter().any(|p| ai.starts_with(p))
}

proptest! {
    #[test]
    fn decoders_never_panic(data in ".{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let latin1: String = bytes.iter().map(|&b| char::from(b)).collect();
        for input in [&data, &latin1] {
            for aim in ["", "]E0", "]C1", "]d2", "]Q3", "]e0", "]E4", "]E3", "]I1", "]A0", "]"] {
                let text = format!("{aim}{input}");
                let _ = serde_json::to_string(&decode_barcode(&text, &settings())).unwrap();
            }
            let _ = serde_json::to_string(&decode_track(input, &settings())).unwrap();
            let _ = parse_bracketed(input);
            let _ = parse_scan_data(input);
        }
    }

    #[test]
    fn gs1_check_digit_accepts_the_right_digit_only(body in "[0-9]{7}|[0-9]{11}|[0-9]{12}|[0-9]{13}", wrong in 1u8..10) {
        let good = with_check(&body);
        let normalised = normalise_gtin14("GTIN", &good).unwrap();
        prop_assert_eq!(normalised.len(), 14);
        prop_assert!(normalised.ends_with(&good));
        let last = good.as_bytes()[good.len() - 1] - b'0';
        let bad = format!("{body}{}", (last + wrong) % 10);
        prop_assert!(normalise_gtin14("GTIN", &bad).is_err());
    }

    #[test]
    fn gs1_element_strings_round_trip(elements in proptest::collection::vec(element(), 1..6)) {
        // Unique AIs; the parser refuses an AI twice with different values.
        let mut unique: BTreeMap<String, String> = BTreeMap::new();
        let mut ordered = Vec::new();
        for (ai, value) in elements {
            if !unique.contains_key(&ai) {
                unique.insert(ai.clone(), value.clone());
                ordered.push((ai, value));
            }
        }
        // Dates are valid only where the day exists.
        let valid_date = |v: &str| {
            let (yy, mm, dd) = (v[0..2].parse::<u32>().unwrap(), v[2..4].parse::<u32>().unwrap(), v[4..6].parse::<u32>().unwrap());
            let days = match mm { 2 if yy % 4 == 0 => 29, 2 => 28, 4 | 6 | 9 | 11 => 30, _ => 31 };
            dd <= days
        };
        prop_assume!(ordered.iter().all(|(ai, v)| ai != "17" || valid_date(v)));
        let mut scan = String::new();
        let mut bracketed = String::new();
        for (i, (ai, value)) in ordered.iter().enumerate() {
            scan.push_str(ai);
            scan.push_str(value);
            if i + 1 < ordered.len() && !predefined(ai) {
                scan.push('\u{1d}');
            }
            bracketed.push_str(&format!("({ai}){value}"));
        }
        let parsed = parse_scan_data(&scan).unwrap();
        prop_assert_eq!(&parsed.ais, &unique);
        // In the bracketed form a value may not contain "(", which CSET 82 allows.
        if !unique.values().any(|v| v.contains('(')) {
            prop_assert_eq!(&parse_bracketed(&bracketed).unwrap().ais, &unique);
        }
        let decoded = serde_json::to_value(decode_barcode(&format!("]C1{scan}"), &DecodeSettings::default())).unwrap();
        prop_assert_eq!(&decoded["valid"], &serde_json::Value::Bool(true));
    }

    #[test]
    fn generated_payment_cards_are_always_rejected(
        prefix in prop_oneof![Just("4"), Just("51"), Just("55"), Just("2221"), Just("2720"), Just("34"), Just("37"),
                              Just("6011"), Just("65"), Just("3528"), Just("36"), Just("62"), Just("300")],
        len in 13usize..=19,
        fill in "[0-9]{18}",
        around in "[A-Za-z :]{0,5}",
    ) {
        let body = format!("{prefix}{fill}");
        let pan = luhn_complete(&body[..len - 1]);
        let settings = settings();
        let inputs = [
            format!("{around}{pan}{around}"),
            format!("]C0{pan}"),
            format!("]Q1{around}{pan}"),
        ];
        for input in &inputs {
            // The one documented exemption: a whole scan of 13 digits that is a valid
            // EAN-13 is a product (13-digit card numbers are no longer issued).
            let ean13 = input.len() == 13 && normalise_gtin14("EAN-13", input).is_ok();
            let expected_payment = !ean13;
            prop_assert_eq!(decode_barcode(input, &settings) == Decoded::PaymentCard, expected_payment, "{}", input);
        }
        for swipe in [format!(";{pan}=2912101?"), format!("%B{pan}^X/Y^2912?"), format!("{pan}=2912")] {
            let decoded = decode_track(&swipe, &settings);
            prop_assert_eq!(&decoded, &Decoded::PaymentCard);
            let json = serde_json::to_string(&decoded).unwrap();
            prop_assert_eq!(json, r#"{"payment_card":true}"#);
        }
    }
}
