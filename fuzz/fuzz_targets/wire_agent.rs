//! The wire decoder on the register's side (central's answers): never
//! panics, and an answer that decodes encodes back to one that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_sync::protocol::{
    ANSWER_BYTES_MAX, CatalogChanges, HoldAnswer, MemberChanges, RulesAnswer, UploadAnswer,
};
use pos_sync::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(message) = wire::decode::<T>(bytes, ANSWER_BYTES_MAX) {
        let again = wire::encode(&message).expect("a decoded message encodes");
        let back: T = wire::decode(&again, ANSWER_BYTES_MAX).expect("an encoded message decodes");
        assert_eq!(back, message);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    match head % 5 {
        0 => round_trip::<UploadAnswer>(rest),
        1 => round_trip::<RulesAnswer>(rest),
        2 => round_trip::<MemberChanges>(rest),
        3 => round_trip::<CatalogChanges>(rest),
        _ => round_trip::<HoldAnswer>(rest),
    }
});
