//! Barcode decoding (AIM identifiers, EAN/UPC, GS1 element strings, variable
//! measure, member cards): never panics, always serialises, a track 1 format B
//! is always dropped as a payment card, and a member card is never a PAN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_codes::check_digit::verify_gs1;
use pos_codes::payment_card::{has_track1_format_b, is_payment_card};
use pos_codes::{DecodeSettings, Decoded, decode_barcode};

fn settings() -> DecodeSettings {
    // A loyalty prefix inside a brand range ("4") on purpose: the guard must
    // still win over it.
    serde_json::from_str(
        r#"{"loyalty_prefixes": ["999", "4"], "track_member_prefixes": ["999"],
            "variable_measure": [
              {"prefix": "21", "item_digits": 5, "value": "price", "value_digits": 5,
               "decimals": 2, "value_check_digit": false},
              {"prefix": "28", "item_digits": 4, "value": "weight", "value_digits": 5,
               "decimals": 3, "value_check_digit": true}]}"#,
    )
    .expect("the fuzz settings are valid JSON")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let settings = settings();
    let decoded = decode_barcode(text, &settings);
    serde_json::to_string(&decoded).expect("a decoded scan always serialises");
    if has_track1_format_b(text) {
        assert_eq!(decoded, Decoded::PaymentCard, "track 1 format B passed");
    }
    if let Some(card) = decoded.reading().and_then(|r| r.member_card.as_deref()) {
        let gtin_like = card.len() == 13 && verify_gs1("card", card).is_ok();
        assert!(
            !is_payment_card(card, gtin_like),
            "a PAN became a member card"
        );
    }
});
