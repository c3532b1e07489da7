//! Magnetic-stripe decoding: never panics, always serialises, a track 1
//! format B is always dropped, a member card is never a PAN.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_codes::payment_card::{contains_pan, has_track1_format_b};
use pos_codes::track::parse_tracks;
use pos_codes::{DecodeSettings, Decoded, decode_track};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_tracks(text);
    let settings: DecodeSettings =
        serde_json::from_str(r#"{"track_member_prefixes": ["999", "6"]}"#)
            .expect("the fuzz settings are valid JSON");
    let decoded = decode_track(text, &settings);
    serde_json::to_string(&decoded).expect("a decoded swipe always serialises");
    if has_track1_format_b(text) {
        assert_eq!(decoded, Decoded::PaymentCard, "track 1 format B passed");
    }
    if let Some(card) = decoded.reading().and_then(|r| r.member_card.as_deref()) {
        assert!(!contains_pan(card), "a PAN became a member card");
    }
});
