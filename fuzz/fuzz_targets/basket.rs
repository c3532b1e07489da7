//! Baskets as the API receives them: parsing never panics, a basket that
//! parses serialises back to JSON that parses equal, and quotes against the
//! example rules without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_points::{Basket, Bundle, Format, quote};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(basket) = Basket::parse_json(text) else {
        return;
    };
    let json = serde_json::to_string(&basket).expect("a basket serialises");
    let again = Basket::parse_json(&json).expect("a serialised basket parses");
    assert_eq!(again, basket, "the JSON round trip changed the basket");
    let bundle = Bundle::parse(include_str!("../../examples/rules.json"), Format::Json)
        .expect("the example rules parse");
    if let Ok(quote) = quote(&bundle, &basket) {
        serde_json::to_string(&quote).expect("a quote always serialises");
    }
});
