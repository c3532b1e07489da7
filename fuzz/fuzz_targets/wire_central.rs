//! The wire decoder on central's side (upload batches, holds): never panics,
//! and a hold message that decodes encodes back to one that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_sync::protocol::{HoldRelease, HoldRequest};
use pos_sync::wire;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(message) = wire::decode::<T>(bytes, 1 << 20) {
        let again = wire::encode(&message).expect("a decoded message encodes");
        let back: T = wire::decode(&again, 1 << 20).expect("an encoded message decodes");
        assert_eq!(back, message);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    match head % 3 {
        0 => {
            if let Ok(batch) = wire::decode_upload(rest) {
                assert!(!batch.entries.is_empty());
                for (i, received) in batch.entries.iter().enumerate() {
                    assert_eq!(received.seq, batch.first_seq + i as u64);
                }
            }
        }
        1 => round_trip::<HoldRequest>(rest),
        _ => round_trip::<HoldRelease>(rest),
    }
});
