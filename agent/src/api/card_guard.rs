//! Defence in depth for "payment card numbers never reach disk, logs,
//! events or API answers": the drivers drop payment cards at the scanner,
//! but the POS can also name a member by card through the API. A member
//! reference that is a payment card number is refused here, before the
//! store (which would keep it as a card token in the ledger) and without
//! echoing it in the error.
//!
//! The recognition itself is the decoders' guard (`pos_codes::payment_card`),
//! so scanner and API agree on what a payment card is — including its one
//! exemption: a 13-digit number with a valid GS1 check digit is a GTIN-like
//! loyalty card, not a card number (13-digit Visa numbers are no longer issued).

use axum::http::StatusCode;
use pos_codes::check_digit::verify_gs1;
use pos_codes::payment_card::is_payment_card;

use crate::api::error::ApiError;
use crate::model::MemberRef;

/// Refuses `value` (found at `field`) when it holds a payment card number.
pub fn refuse_payment_card(field: &str, value: &str) -> Result<(), ApiError> {
    let gtin_like = value.len() == 13
        && value.bytes().all(|b| b.is_ascii_digit())
        && verify_gs1("member card", value).is_ok();
    if is_payment_card(value, gtin_like) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "payment_card",
            format!("{field}: this is a payment card number, not a member card; it was not stored"),
        ));
    }
    Ok(())
}

/// Checks a member reference of a request body.
pub fn check_member(field: &str, member: Option<&MemberRef>) -> Result<(), ApiError> {
    match member {
        Some(MemberRef::Card(card)) => refuse_payment_card(&format!("{field}.card"), card),
        Some(MemberRef::Id(id)) => refuse_payment_card(&format!("{field}.id"), id),
        None => Ok(()),
    }
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
