//! Defence in depth for "payment card numbers never reach disk": the
//! register's drivers drop payment cards at the scanner, but a member can
//! also be named through the POS API. Central screens every member field it
//! receives with the same guard (`pos-codes`' payment-card rules) before
//! anything is stored; a hit is refused without echoing the number.

use pos_codes::payment_card::{contains_pan, has_track1_format_b};
use pos_sync::protocol::ReceivedBatch;

/// The reason given (and stored) for a screened entry: never the number.
pub const PAYMENT_CARD_REASON: &str =
    "payment card number in the member field: refused and not stored";

/// Whether `text` holds payment-card data.
pub fn is_payment_card(text: &str) -> bool {
    has_track1_format_b(text) || contains_pan(text)
}

/// Turns every entry whose member is payment-card data into a malformed one,
/// so only its seq, entry id and hash are kept (it is `rejected`).
pub fn screen_batch(batch: &mut ReceivedBatch) {
    for received in &mut batch.entries {
        let hit = matches!(&received.entry, Ok(e) if is_payment_card(&e.member));
        if hit {
            received.entry = Err(format!(
                "malformed entry seq {}: {PAYMENT_CARD_REASON}",
                received.seq
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_cards_are_caught_and_loyalty_cards_are_not() {
        // A Luhn-valid Visa-range test number (a well-known test PAN).
        assert!(is_payment_card("4111111111111111"));
        assert!(is_payment_card("%B4111111111111111^DOE/J^2512"));
        assert!(!is_payment_card("9990000010013"));
        assert!(!is_payment_card("M-1001"));
    }
}
