//! Defence in depth for "payment card numbers never reach disk, logs,
//! events or API answers": the drivers drop payment cards at the scanner,
//! but the POS can also name a member by card through the API. A member
//! reference that is a payment card number is refused here, before the
//! store (which would keep it as a card token in the ledger) and without
//! echoing it in the error.
//!
//! The recognition itself is the decoders' guard
//! ([`pos_codes::payment_card::screen_field`]), so scanner, API and central
//! agree on what a payment card is — separators, leading zeros and digits
//! around the number included — and on its one exemption: a value that is
//! a GTIN-13 as a whole is a GTIN-like loyalty card, not a card number
//! (13-digit Visa numbers are no longer issued).
//!
//! Every free-text field the register stores from a request goes through
//! here: member ids and cards, sale ids and return ids.

use axum::http::StatusCode;
use pos_codes::payment_card::screen_field;

use crate::api::error::ApiError;
use crate::model::{MemberRef, QuoteRequest, ReturnRequest, SaleRequest};

/// Refuses `value` (found at `field`) when it holds a payment card number.
/// The message names the field, never the digits.
pub fn refuse_payment_card(field: &str, value: &str) -> Result<(), ApiError> {
    screen_field(field, value).map_err(|error| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_card",
            error.to_string(),
        )
    })
}

/// Checks a member reference of a request body.
pub fn check_member(field: &str, member: Option<&MemberRef>) -> Result<(), ApiError> {
    match member {
        Some(MemberRef::Card(card)) => refuse_payment_card(&format!("{field}.card"), card),
        Some(MemberRef::Id(id)) => refuse_payment_card(&format!("{field}.id"), id),
        None => Ok(()),
    }
}

/// Checks the stored text of a quote: its member and sale id.
pub fn check_quote(request: &QuoteRequest) -> Result<(), ApiError> {
    if let Some(sale_id) = &request.sale_id {
        refuse_payment_card("sale_id", sale_id)?;
    }
    check_member("member", request.member.as_ref())
}

/// Checks the stored text of a sale: its member and sale id.
pub fn check_sale(request: &SaleRequest) -> Result<(), ApiError> {
    refuse_payment_card("sale_id", &request.sale_id)?;
    check_member("member", request.member.as_ref())
}

/// Checks the stored text of a return: the sale id of its path and its own id.
pub fn check_return(sale_id: &str, request: &ReturnRequest) -> Result<(), ApiError> {
    refuse_payment_card("path", sale_id)?;
    refuse_payment_card("return_id", &request.return_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic Visa-range number with a valid Luhn digit (not a real card).
    fn synthetic_pan() -> String {
        pos_testkit::check_digit::luhn_complete("411111111111111")
    }

    #[test]
    fn a_payment_card_is_refused_without_echoing_it() {
        let pan = synthetic_pan();
        let err = check_member("member", Some(&MemberRef::Card(pan.clone()))).unwrap_err();
        assert_eq!(
            (err.status, err.code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "payment_card")
        );
        assert!(err.message.starts_with("member.card:"), "{}", err.message);
        assert!(
            !err.message.contains(&pan[4..]),
            "the number was echoed: {}",
            err.message
        );
        assert!(check_member("member", Some(&MemberRef::Id(format!("%B{pan}^DOE/J^")))).is_err());
    }

    /// Issue 10: grouped any way, with leading zeros or digits around it,
    /// a card number is still one.
    #[test]
    fn separators_and_leading_zeros_do_not_hide_a_number() {
        let pan = synthetic_pan();
        let groups = [&pan[..4], &pan[4..8], &pan[8..12], &pan[12..]];
        for card in [
            groups.join("."),
            groups.join("_"),
            groups.join("/"),
            format!("0{pan}"),
            format!("{pan}0"),
        ] {
            let err = check_member("member", Some(&MemberRef::Card(card.clone()))).unwrap_err();
            assert_eq!(err.code, "payment_card", "{card}");
            assert!(!err.message.contains(&pan[4..8]), "{}", err.message);
        }
        let err = refuse_payment_card("sale_id", &groups.join(".")).unwrap_err();
        assert!(err.message.starts_with("sale_id: "), "{}", err.message);
    }

    #[test]
    fn loyalty_cards_and_ids_pass() {
        for ok in ["9990000010013", "M-1001", "4006381333931"] {
            assert!(
                check_member("member", Some(&MemberRef::Card(ok.into()))).is_ok(),
                "{ok}"
            );
        }
        assert!(check_member("member", None).is_ok());
    }
}
