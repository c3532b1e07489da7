//! Defence in depth for "payment card numbers never reach disk": the
//! register's drivers drop payment cards at the scanner, and its API
//! refuses them, but central screens what it receives all the same, with
//! the one guard of `pos-codes` ([`pos_codes::payment_card::screen_field`]):
//! uploads as they are decoded (`pos_sync::wire::decode_upload` turns an
//! entry naming a card number into a malformed one), member snapshots as
//! they are parsed ([`crate::snapshot`]), holds and adjustments here. A hit
//! is refused without echoing the number.

/// The reason given (and stored) for a screened entry: never the number.
pub const PAYMENT_CARD_REASON: &str =
    "payment card number in the member field: refused and not stored";

/// Whether `text` holds payment-card data (the register's definition:
/// separators, leading zeros and digits around the number included).
pub fn is_payment_card(text: &str) -> bool {
    pos_codes::payment_card::holds_payment_card(text)
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
        assert!(is_payment_card("4111.1111.1111.1111"));
        assert!(is_payment_card("4111_1111_1111_1111"));
        assert!(is_payment_card("04111111111111111"));
        assert!(
            !is_payment_card("4006381333931"),
            "a GTIN-13, as at the register"
        );
    }
}
