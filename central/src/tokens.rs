//! A terminal token's lifecycle (issue 9): which stored token a request's
//! hash matches, and whether that still lets it in. Pure functions of a
//! loaded row and the clock; the backend loads and stores.
//!
//! A token is active until its terminal is revoked (then every token of
//! the terminal gets 401 saying so) or rotated: a rotation makes a new
//! token and keeps the one it replaced valid for a grace period, so a
//! register can be given its new token without missing a sync; after it,
//! the old one gets 401 saying it was replaced.

use serde::Serialize;

use crate::error::CentralError;

/// How long a rotated-out token stays valid by default: 24 h, a day for
/// the new token to reach the register.
pub const ROTATE_GRACE_SECS: u64 = 24 * 3_600;
/// Longest grace period a rotation may give: 30 days.
pub const ROTATE_GRACE_SECS_MAX: u64 = 30 * 24 * 3_600;
/// Last use is recorded at most this often per terminal (1 min), so an
/// authentication costs no write on the busy path.
pub const LAST_USE_RESOLUTION_MS: i64 = 60_000;
/// The pseudo-terminal central's own entries (adjustments) are chained
/// under; `@` is not allowed in a registered terminal id.
pub const CENTRAL_TERMINAL: &str = "@central";
/// The prefix of a channel's pseudo-terminal (`@channel/web`): a channel's
/// orders are chained under it ([`crate::apply::channel`]), and its token
/// is that row's token, admitted only on the channel routes.
pub const CHANNEL_PREFIX: &str = "@channel/";
/// Longest channel name.
pub const CHANNEL_NAME_BYTES_MAX: usize = 32;

/// Which API a token is presented to: a register's token is admitted on
/// the sync routes only, a channel's on the channel routes only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Terminal,
    Channel,
}

impl Scope {
    /// The id an authenticated token belongs to, when it may use this
    /// scope's routes; 401 otherwise (saying no more than an unknown
    /// token would: a probe learns nothing of the other scope).
    pub fn admit(self, id: String) -> Result<String, CentralError> {
        let is_channel = id.starts_with(CHANNEL_PREFIX);
        let allowed = match self {
            Scope::Terminal => !id.starts_with('@'),
            Scope::Channel => is_channel,
        };
        if allowed {
            Ok(id)
        } else {
            Err(CentralError::Unauthorized(match self {
                Scope::Terminal => "unknown terminal token".into(),
                Scope::Channel => "not a channel token".into(),
            }))
        }
    }
}

/// The pseudo-terminal of channel `name`, or 400 when the name is not
/// `[a-z0-9_-]{1,32}`.
pub fn channel_terminal(name: &str) -> Result<String, CentralError> {
    let ok = !name.is_empty()
        && name.len() <= CHANNEL_NAME_BYTES_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(format!("{CHANNEL_PREFIX}{name}"))
    } else {
        Err(CentralError::Invalid(format!(
            "channel {name:?}: give 1 to {CHANNEL_NAME_BYTES_MAX} of a-z, 0-9, _ and -"
        )))
    }
}

/// The stored token state of the terminal whose current or previous token
/// hash matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub terminal_id: String,
    /// The hash matched the current token (else the rotated-out one).
    pub current: bool,
    pub revoked_at: Option<String>,
    /// Unix ms until which the rotated-out token is valid.
    pub previous_valid_until_ms: Option<i64>,
    /// Unix ms of the last recorded use.
    pub last_used_ms: Option<i64>,
}

/// What `terminal list` and `GET /v1/admin/terminals` say of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenState {
    Active,
    /// Rotated, the previous token still within its grace period.
    Rotating,
    Revoked,
}

impl TokenState {
    pub fn of(revoked: bool, previous_valid_until_ms: Option<i64>, now_ms: i64) -> TokenState {
        if revoked {
            TokenState::Revoked
        } else if previous_valid_until_ms.is_some_and(|until| now_ms < until) {
            TokenState::Rotating
        } else {
            TokenState::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Rotating => "rotating",
            TokenState::Revoked => "revoked",
        }
    }
}

/// The terminal a matched token lets in at `now_ms`, or 401 naming why not.
pub fn admit(row: &TokenRow, now_ms: i64) -> Result<&str, CentralError> {
    let id = row.terminal_id.as_str();
    if id == CENTRAL_TERMINAL {
        return Err(CentralError::Unauthorized("unknown terminal token".into()));
    }
    if let Some(at) = &row.revoked_at {
        return Err(CentralError::Unauthorized(format!(
            "the token of terminal {id:?} was revoked at {at}"
        )));
    }
    if row.current {
        return Ok(id);
    }
    match row.previous_valid_until_ms {
        Some(until) if now_ms < until => Ok(id),
        until => Err(CentralError::Unauthorized(format!(
            "this token of terminal {id:?} was replaced by a rotation and its grace period ended{}",
            until
                .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .map(|t| format!(" at {t}"))
                .unwrap_or_default()
        ))),
    }
}

/// Whether an admitted request should record its use (at most once per
/// [`LAST_USE_RESOLUTION_MS`]).
pub fn use_is_news(last_used_ms: Option<i64>, now_ms: i64) -> bool {
    last_used_ms.is_none_or(|last| now_ms.saturating_sub(last) >= LAST_USE_RESOLUTION_MS)
}

/// The grace period of a rotation in ms, refused beyond
/// [`ROTATE_GRACE_SECS_MAX`].
pub fn grace_ms(grace_secs: u64) -> Result<i64, CentralError> {
    if grace_secs > ROTATE_GRACE_SECS_MAX {
        return Err(CentralError::Invalid(format!(
            "grace period {grace_secs} s: at most {ROTATE_GRACE_SECS_MAX} s (30 days)"
        )));
    }
    // At most 2.6e9 ms: fits.
    Ok(i64::try_from(grace_secs.saturating_mul(1_000)).unwrap_or(i64::MAX))
}

/// Unix ms as RFC 3339, for listings.
pub fn rfc3339_of_ms(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(current: bool) -> TokenRow {
        TokenRow {
            terminal_id: "reg-1".into(),
            current,
            revoked_at: None,
            previous_valid_until_ms: Some(10_000),
            last_used_ms: None,
        }
    }

    #[test]
    fn a_current_token_is_admitted_and_a_previous_one_only_within_grace() {
        assert_eq!(admit(&row(true), 50_000).unwrap(), "reg-1");
        assert_eq!(admit(&row(false), 9_999).unwrap(), "reg-1");
        let late = admit(&row(false), 10_000).unwrap_err().to_string();
        assert!(late.contains("replaced by a rotation"), "{late}");
        assert!(late.contains("1970-01-01T00:00:10Z"), "{late}");
    }

    #[test]
    fn a_revoked_terminal_admits_no_token_and_says_so() {
        for current in [true, false] {
            let mut r = row(current);
            r.revoked_at = Some("2026-12-03T13:00:00Z".into());
            let e = admit(&r, 0).unwrap_err();
            assert!(matches!(e, CentralError::Unauthorized(_)));
            assert!(e.to_string().contains("revoked at 2026-12-03T13:00:00Z"));
        }
    }

    #[test]
    fn centrals_own_pseudo_terminal_is_never_admitted() {
        let mut r = row(true);
        r.terminal_id = CENTRAL_TERMINAL.into();
        assert_eq!(
            admit(&r, 0).unwrap_err().to_string(),
            "unknown terminal token"
        );
    }

    #[test]
    fn last_use_is_written_at_most_once_a_minute() {
        assert!(use_is_news(None, 0));
        assert!(!use_is_news(Some(1_000), 60_999));
        assert!(use_is_news(Some(1_000), 61_000));
    }

    #[test]
    fn states_and_grace_bounds() {
        assert_eq!(TokenState::of(false, None, 5), TokenState::Active);
        assert_eq!(TokenState::of(false, Some(6), 5), TokenState::Rotating);
        assert_eq!(TokenState::of(false, Some(5), 5), TokenState::Active);
        assert_eq!(TokenState::of(true, Some(6), 5), TokenState::Revoked);
        assert_eq!(grace_ms(ROTATE_GRACE_SECS).unwrap(), 86_400_000);
        assert!(grace_ms(ROTATE_GRACE_SECS_MAX + 1).is_err());
    }
}
