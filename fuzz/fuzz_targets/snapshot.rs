//! Central's member and catalog snapshots, CSV and JSON: parsing never
//! panics, and what parses holds no payment card number.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pos_central::guard::is_payment_card;
use pos_central::snapshot::{CatalogSnapshot, CheckedSnapshot, MembersSnapshot};
use pos_central::snapshot_csv;

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let members = match head & 3 {
        0 => snapshot_csv::members(text).ok(),
        1 => MembersSnapshot::parse(text).ok(),
        2 => {
            let _ = snapshot_csv::catalog(text);
            None
        }
        _ => {
            let _ = CatalogSnapshot::parse(text);
            None
        }
    };
    for member in members.iter().flat_map(|s| &s.members) {
        assert!(!is_payment_card(&member.id), "a PAN as a member id");
        for card in &member.cards {
            assert!(!is_payment_card(card), "a PAN as a card");
        }
        for program in member.programs.values() {
            if let Some(tier) = &program.tier {
                assert!(!is_payment_card(tier), "a PAN as a tier");
            }
        }
    }
});
