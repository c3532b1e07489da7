//! Rules bundles, JSON and TOML: parsing never panics, a bundle that parses
//! serialises back to JSON that parses equal, and quotes the example baskets
//! without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_points::{Basket, Bundle, Format, quote};

const BASKETS: [&str; 2] = [
    include_str!("../../examples/basket.json"),
    include_str!("../../examples/basket-guest.json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if head & 1 == 0 {
        Format::Json
    } else {
        Format::Toml
    };
    let Ok(bundle) = Bundle::parse(text, format) else {
        return;
    };
    let json = serde_json::to_string(&bundle).expect("a bundle serialises");
    let again = Bundle::parse(&json, Format::Json).expect("a serialised bundle parses");
    assert_eq!(again, bundle, "the JSON round trip changed the bundle");
    for program in &bundle.programs {
        assert_eq!(program.evaluation_order().len(), program.rules.len());
    }
    for basket in BASKETS {
        if let Ok(basket) = Basket::parse_json(basket) {
            let _ = quote(&bundle, &basket);
        }
    }
});
