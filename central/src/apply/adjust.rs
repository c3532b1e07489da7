//! An administrator's manual adjustment (issue 9): checked here, apart from
//! any database, then chained by the backend as an entry of kind `adjust`
//! of the pseudo-terminal [`crate::tokens::CENTRAL_TERMINAL`].
//!
//! Why a pseudo-terminal rather than a table of its own: an adjustment then
//! is a ledger entry like every other, so `GET /v1/admin/ledger`, the
//! member's balance (`opening + applied`), the members download and any
//! reconciliation over `entries` include it without a second code path,
//! and its hash chain makes central's own entries as tamper-evident as a
//! register's. Registers can never write under it: the id has an `@`,
//! which `terminal add` refuses, and authentication refuses it.

use serde::Deserialize;

use crate::error::CentralError;
use crate::guard::is_payment_card;

/// Largest |points| of one adjustment: 10^9, the bound of any entry.
pub const ADJUST_POINTS_MAX: i64 = 1_000_000_000;
/// A balance never leaves ±2^53 (exact in every JSON reader).
pub const BALANCE_ABS_MAX: i64 = 1 << 53;
/// Longest reason, in bytes.
pub const REASON_BYTES_MAX: usize = 500;
/// Longest author, in bytes.
pub const AUTHOR_BYTES_MAX: usize = 100;

/// `POST /v1/admin/adjustments` as sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    pub member: String,
    pub program: String,
    pub points: i64,
    pub reason: String,
    pub author: String,
}

/// An adjustment whose fields passed [`AdjustmentRequest::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    pub member: String,
    pub program: String,
    pub points: i64,
    pub reason: String,
    pub author: String,
}

impl AdjustmentRequest {
    /// The adjustment, or 400 naming the first field that is wrong.
    pub fn check(self) -> Result<Adjustment, CentralError> {
        let member = id_field("member", &self.member)?;
        let program = id_field("program", &self.program)?;
        if self.points == 0
            || self
                .points
                .checked_abs()
                .is_none_or(|p| p > ADJUST_POINTS_MAX)
        {
            return Err(invalid(
                "points",
                format!(
                    "{}: give a non-zero amount within ±{ADJUST_POINTS_MAX}",
                    self.points
                ),
            ));
        }
        let reason = text_field("reason", &self.reason, REASON_BYTES_MAX)?;
        let author = text_field("author", &self.author, AUTHOR_BYTES_MAX)?;
        Ok(Adjustment {
            member,
            program,
            points: self.points,
            reason,
            author,
        })
    }
}

impl Adjustment {
    /// The entry's `detail`: who adjusted and why, as JSON.
    pub fn detail(&self) -> String {
        serde_json::json!({"reason": self.reason, "author": self.author}).to_string()
    }
}

/// The `applied` sum after adding `points` to an account holding
/// `opening + applied`, or 400 when the balance would leave
/// ±[`BALANCE_ABS_MAX`]; checked arithmetic throughout.
pub fn applied_after(opening: i64, applied: i64, points: i64) -> Result<i64, CentralError> {
    let out_of_range = || {
        invalid(
            "points",
            format!("{points}: the balance would leave ±{BALANCE_ABS_MAX}"),
        )
    };
    let new_applied = applied.checked_add(points).ok_or_else(out_of_range)?;
    let balance = opening.checked_add(new_applied).ok_or_else(out_of_range)?;
    if balance.checked_abs().is_none_or(|b| b > BALANCE_ABS_MAX) {
        return Err(out_of_range());
    }
    Ok(new_applied)
}

fn invalid(field: &str, what: String) -> CentralError {
    CentralError::Invalid(format!("{field}: {what}"))
}

fn id_field(field: &str, value: &str) -> Result<String, CentralError> {
    let max = pos_sync::protocol::ID_BYTES_MAX;
    if value.is_empty() || value.len() > max || value.trim() != value {
        return Err(invalid(
            field,
            format!("give 1 to {max} bytes without surrounding spaces"),
        ));
    }
    if value.chars().any(char::is_control) || is_payment_card(value) {
        return Err(invalid(
            field,
            "control characters or payment-card data are not allowed".into(),
        ));
    }
    Ok(value.to_string())
}

fn text_field(field: &str, value: &str, max: usize) -> Result<String, CentralError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, "required: say who and why".into()));
    }
    if value.len() > max {
        return Err(invalid(field, format!("at most {max} bytes")));
    }
    if value.chars().any(char::is_control) || is_payment_card(value) {
        return Err(invalid(
            field,
            "control characters or payment-card data are not allowed".into(),
        ));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AdjustmentRequest {
        AdjustmentRequest {
            member: "M-1".into(),
            program: "main".into(),
            points: 250,
            reason: " goodwill: broken coffee machine ".into(),
            author: "ana".into(),
        }
    }

    fn refused(fill: impl FnOnce(&mut AdjustmentRequest)) -> String {
        let mut r = request();
        fill(&mut r);
        r.check().unwrap_err().to_string()
    }

    #[test]
    fn a_good_request_is_kept_with_its_reason_trimmed() {
        let a = request().check().unwrap();
        assert_eq!(a.reason, "goodwill: broken coffee machine");
        assert_eq!(
            a.detail(),
            r#"{"author":"ana","reason":"goodwill: broken coffee machine"}"#
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        assert!(refused(|r| r.reason = "  ".into()).starts_with("reason: required"));
        assert!(refused(|r| r.author = String::new()).starts_with("author: required"));
        assert!(refused(|r| r.author = "a".repeat(101)).starts_with("author: at most 100"));
        assert!(refused(|r| r.reason = "r".repeat(501)).starts_with("reason: at most 500"));
        assert!(refused(|r| r.points = 0).starts_with("points: 0"));
        assert!(refused(|r| r.points = ADJUST_POINTS_MAX + 1).starts_with("points:"));
        assert!(refused(|r| r.points = i64::MIN).starts_with("points:"));
        assert!(refused(|r| r.member = String::new()).starts_with("member:"));
        assert!(refused(|r| r.member = "4111111111111111".into()).starts_with("member:"));
        assert!(refused(|r| r.reason = "card 4111111111111111".into()).starts_with("reason:"));
        assert!(refused(|r| r.program = "ma\nin".into()).starts_with("program:"));
        let a = request();
        assert_eq!(
            AdjustmentRequest {
                points: -ADJUST_POINTS_MAX,
                ..a
            }
            .check()
            .unwrap()
            .points,
            -ADJUST_POINTS_MAX
        );
    }

    #[test]
    fn the_balance_stays_within_its_bound() {
        assert_eq!(applied_after(100, 20, -50).unwrap(), -30);
        assert_eq!(applied_after(BALANCE_ABS_MAX - 1, 0, 1).unwrap(), 1);
        assert!(applied_after(BALANCE_ABS_MAX, 0, 1).is_err());
        assert!(applied_after(-BALANCE_ABS_MAX, 0, -1).is_err());
        assert!(applied_after(0, i64::MAX, 1).is_err());
        assert!(applied_after(i64::MAX, 1, -2).is_err());
    }
}
