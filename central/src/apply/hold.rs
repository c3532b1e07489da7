//! Online redemption holds (sync spec §4): while a register's member data
//! is fresh it asks central to reserve the points of a redemption; the
//! sale's later redeem entry settles the hold ([`super::decide`]).

use pos_points::{Basket, Bundle, redeem};
use pos_sync::protocol::{HoldAnswer, HoldRequest};

use super::{Account, SyncTx};
use crate::error::CentralError;

/// An online redemption hold lapses after 2 h if no ledger entry settled it
/// and the register did not release it: long enough for a register to sync
/// the sale after a short outage, short enough that an abandoned sale does
/// not lock a member's points for a day.
pub const HOLD_TTL_SECS: i64 = 2 * 3_600;
/// Most points one hold may reserve.
pub const HOLD_POINTS_MAX: i64 = 1_000_000_000;
/// Most open holds one terminal may have (`docs/sync-v2.md` §5): a register
/// has a handful of sales open at once; a token that asks for more is
/// reserving points, not selling.
pub const HOLDS_OPEN_PER_TERMINAL_MAX: u64 = 64;
/// Most open holds on one member, across terminals: a member pays at one
/// till at a time, and one stolen token cannot lock a member's points from
/// many sales.
pub const HOLDS_OPEN_PER_MEMBER_MAX: u64 = 4;
/// A hold's row is kept this long after its expiry, whether it lapsed,
/// settled or was released: a record for whoever looks into a disputed
/// redemption. After that it only grows the table, and it is deleted. An
/// expired hold reserves nothing, so deleting it changes no balance.
pub const HOLD_KEPT_SECS: i64 = 7 * 24 * 3_600;
/// Most old hold rows deleted per hold placed: the purge rides on each
/// placement, so its cost per placement stays bounded however long central
/// went without one.
pub const HOLD_PURGE_ROWS_MAX: i64 = 100;

/// A hold's state (the `holds.state` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HoldState {
    Open,
    /// The sale's redeem entry arrived and spent the points.
    Settled,
    Released,
}

impl HoldState {
    pub const ALL: [HoldState; 3] = [HoldState::Open, HoldState::Settled, HoldState::Released];

    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Open => "open",
            HoldState::Settled => "settled",
            HoldState::Released => "released",
        }
    }

    pub fn parse(text: &str) -> Option<HoldState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Which hold: one per (terminal, sale, program).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldKey<'a> {
    pub terminal_id: &'a str,
    pub sale_id: &'a str,
    pub program: &'a str,
}

/// A hold row as loaded, whatever its state and expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredHold {
    pub state: HoldState,
    pub points: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A hold to place, with the purge of old rows that rides on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHold<'a> {
    pub key: HoldKey<'a>,
    /// The member the points are reserved from (a card token resolved).
    pub member: &'a str,
    pub points: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Hold rows that expired before this (Unix seconds) may be deleted…
    pub purge_before: i64,
    /// …at most this many.
    pub purge_max: i64,
}

/// The open holds, unexpired now, beside the one a request names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenHolds {
    /// Of the requesting terminal.
    pub terminal: u64,
    /// On the member, by any terminal.
    pub member: u64,
}

/// What to do with a hold request once its member may hold points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldDecision {
    /// Answer without writing anything.
    Answer(HoldAnswer),
    /// Place the hold until `expires_at` (Unix seconds); `available` is
    /// what is left after it.
    Place { available: i64, expires_at: i64 },
}

/// The loads and stores of one transaction that holds need beyond those of
/// an upload batch.
pub trait HoldTx: SyncTx {
    fn program_known(&self, program: &str) -> Result<bool, CentralError>;
    /// Central's newest published bundle, parsed (None before the first).
    fn newest_rules(&self) -> Result<Option<Bundle>, CentralError>;
    /// The member's blocked flag (false for a member central does not know).
    fn member_blocked(&self, member: &str) -> Result<bool, CentralError>;
    fn hold_state(&self, key: &HoldKey<'_>) -> Result<Option<StoredHold>, CentralError>;
    /// The open holds unexpired at `now_secs` of the key's terminal and of
    /// `member`, the hold of `key` itself left out.
    fn open_holds(
        &self,
        key: &HoldKey<'_>,
        member: &str,
        now_secs: i64,
    ) -> Result<OpenHolds, CentralError>;
    /// Places (or replaces) a hold, deletes up to `purge_max` hold rows that
    /// expired before `purge_before`, and gives the member a new revision
    /// (its available points changed).
    fn store_hold(&self, hold: &NewHold<'_>) -> Result<(), CentralError>;
}

/// Refuses a request whose points are out of range.
pub fn check_points(points: i64) -> Result<(), CentralError> {
    if points <= 0 || points > HOLD_POINTS_MAX {
        return Err(CentralError::Invalid(format!(
            "hold points must be between 1 and {HOLD_POINTS_MAX}, got {points}"
        )));
    }
    Ok(())
}

/// Why the sale's basket does not justify holding `request.points`
/// (`docs/sync-v2.md` §5): the basket is another sale's, the program is not
/// in central's newest bundle `rules`, or points spec §6's static checks
/// (redeemable, minimum, step, share of the basket) refuse the amount on
/// that basket. A register sends the basket it is about to sell, so an
/// honest hold always passes; a token holding a member's whole balance on
/// an empty basket does not. A basket that does not parse is a bad request.
pub fn unjustified(rules: &Bundle, request: &HoldRequest) -> Result<Option<String>, CentralError> {
    let basket = Basket::parse_json(&request.basket)
        .map_err(|e| CentralError::Invalid(format!("hold basket: {e}")))?;
    if basket.sale_id.as_deref() != Some(request.sale_id.as_str()) {
        return Ok(Some(format!(
            "the basket is of sale {:?}, the hold of sale {:?}",
            basket.sale_id.as_deref().unwrap_or(""),
            request.sale_id
        )));
    }
    let Some(program) = rules.program(&request.program) else {
        return Ok(Some(format!(
            "program {:?} is not in rules version {}, central's newest",
            request.program, rules.version
        )));
    };
    Ok(redeem::check(program, request.points, basket.amount())
        .err()
        .map(|refusal| {
            format!(
                "rules version {} refuse {} points on this basket of {}: {}",
                rules.version,
                request.points,
                basket.amount(),
                refusal.code()
            )
        }))
}

/// Whether `points` can be held from `account`, given the sale's `existing`
/// hold and the other `open` holds: a retried request replaces its own
/// open hold rather than stacking a second one, and never lasts past the
/// expiry the sale's first hold got (`docs/sync-v2.md` §5).
pub fn decide_hold(
    points: i64,
    existing: Option<StoredHold>,
    account: Account,
    open: OpenHolds,
    now_secs: i64,
) -> HoldDecision {
    let own = match existing {
        // The sale's redeem entry already arrived and spent the points: a
        // late retry of its hold must not reserve them a second time.
        Some(h) if h.state == HoldState::Settled => {
            return HoldDecision::Answer(HoldAnswer::Granted {
                available: account.available(),
            });
        }
        Some(h) if h.state == HoldState::Open && h.expires_at > now_secs => h.points,
        _ => 0,
    };
    if let Some(reason) = refusal(existing, open, now_secs) {
        return HoldDecision::Answer(HoldAnswer::Refused { reason });
    }
    let available = account.available().saturating_add(own);
    if points > available {
        return HoldDecision::Answer(HoldAnswer::Insufficient { available });
    }
    HoldDecision::Place {
        available: available - points,
        expires_at: existing.map_or(now_secs + HOLD_TTL_SECS, |h| h.expires_at),
    }
}

/// Why a hold is refused whatever the member's points: too many open
/// holds, or the sale's hold asked for again after its first expiry.
fn refusal(existing: Option<StoredHold>, open: OpenHolds, now_secs: i64) -> Option<String> {
    if open.terminal >= HOLDS_OPEN_PER_TERMINAL_MAX {
        return Some(format!(
            "this terminal has {} open holds, the most it may have \
             (HOLDS_OPEN_PER_TERMINAL_MAX {HOLDS_OPEN_PER_TERMINAL_MAX}): settle or release one first",
            open.terminal
        ));
    }
    if open.member >= HOLDS_OPEN_PER_MEMBER_MAX {
        return Some(format!(
            "the member has {} open holds, the most one member may have \
             (HOLDS_OPEN_PER_MEMBER_MAX {HOLDS_OPEN_PER_MEMBER_MAX})",
            open.member
        ));
    }
    match existing {
        Some(h) if h.expires_at <= now_secs => Some(format!(
            "this sale's hold expired at {} (Unix seconds) and is never renewed \
             past its first expiry",
            h.expires_at
        )),
        _ => None,
    }
}

/// Places (or replaces) the hold of (terminal, sale, program) when the
/// member's available points cover it, inside the caller's transaction.
pub fn place_hold(
    tx: &impl HoldTx,
    request: &HoldRequest,
    now: jiff::Timestamp,
) -> Result<HoldAnswer, CentralError> {
    check_points(request.points)?;
    let now_secs = now.as_second();
    if !tx.program_known(&request.program)? {
        return Err(CentralError::Invalid(format!(
            "unknown program {:?}: not in any published bundle",
            request.program
        )));
    }
    let rules = tx.newest_rules()?.ok_or_else(|| {
        CentralError::Invalid("no rules published: nothing can be redeemed".into())
    })?;
    if let Some(reason) = unjustified(&rules, request)? {
        return Ok(HoldAnswer::Refused { reason });
    }
    let member = tx
        .card_owner(&request.member)?
        .unwrap_or_else(|| request.member.clone());
    if tx.member_blocked(&member)? {
        return Ok(HoldAnswer::Blocked);
    }
    let key = HoldKey {
        terminal_id: &request.terminal_id,
        sale_id: &request.sale_id,
        program: &request.program,
    };
    let existing = tx.hold_state(&key)?;
    let account = tx.account(&member, &request.program, now_secs)?;
    let open = tx.open_holds(&key, &member, now_secs)?;
    match decide_hold(request.points, existing, account, open, now_secs) {
        HoldDecision::Answer(answer) => Ok(answer),
        HoldDecision::Place {
            available,
            expires_at,
        } => {
            tx.store_hold(&NewHold {
                key,
                member: &member,
                points: request.points,
                expires_at,
                purge_before: now_secs - HOLD_KEPT_SECS,
                purge_max: HOLD_PURGE_ROWS_MAX,
            })?;
            Ok(HoldAnswer::Granted { available })
        }
    }
}

#[cfg(test)]
mod tests {
    use pos_sync::testing;

    use super::*;

    fn rules() -> Bundle {
        // One point per euro, at most the whole basket, steps of 1.
        Bundle::parse(&testing::bundle_json(3), pos_points::Format::Json).unwrap()
    }

    fn request(sale: &str, points: i64, basket: String) -> HoldRequest {
        HoldRequest {
            terminal_id: "reg-1".into(),
            member: "M-1".into(),
            program: "main".into(),
            sale_id: sale.into(),
            points,
            basket,
        }
    }

    #[test]
    fn a_basket_justifies_a_hold_up_to_what_the_rules_let_it_redeem() {
        let basket = testing::hold_basket("S-1", "M-1", 40);
        assert_eq!(
            unjustified(&rules(), &request("S-1", 40, basket.clone())).unwrap(),
            None
        );
        let reason = unjustified(&rules(), &request("S-1", 41, basket))
            .unwrap()
            .unwrap();
        assert_eq!(
            reason,
            "rules version 3 refuse 41 points on this basket of 40: exceeds_max_share"
        );
    }

    #[test]
    fn another_sales_basket_or_a_program_not_in_the_newest_rules_is_refused() {
        let other = testing::hold_basket("S-9", "M-1", 1_000);
        let reason = unjustified(&rules(), &request("S-1", 10, other))
            .unwrap()
            .unwrap();
        assert_eq!(
            reason,
            "the basket is of sale \"S-9\", the hold of sale \"S-1\""
        );
        let mut fuel = request("S-1", 10, testing::hold_basket("S-1", "M-1", 1_000));
        fuel.program = "fuel".into();
        let reason = unjustified(&rules(), &fuel).unwrap().unwrap();
        assert_eq!(
            reason,
            "program \"fuel\" is not in rules version 3, central's newest"
        );
    }

    #[test]
    fn a_hold_without_a_basket_is_a_bad_request() {
        let err = unjustified(&rules(), &request("S-1", 10, String::new())).unwrap_err();
        assert!(err.to_string().contains("hold basket"), "{err}");
    }

    const NOW: i64 = 1_000_000;

    fn account(available: i64) -> Account {
        Account {
            balance: available,
            ..Account::default()
        }
    }

    const NONE_OPEN: OpenHolds = OpenHolds {
        terminal: 0,
        member: 0,
    };

    fn hold(state: HoldState, points: i64, expires_at: i64) -> Option<StoredHold> {
        Some(StoredHold {
            state,
            points,
            expires_at,
        })
    }

    #[test]
    fn points_out_of_range_are_refused() {
        assert!(check_points(0).is_err());
        assert!(check_points(-5).is_err());
        assert!(check_points(HOLD_POINTS_MAX + 1).is_err());
        assert!(check_points(1).is_ok());
        assert!(check_points(HOLD_POINTS_MAX).is_ok());
    }

    #[test]
    fn a_covered_hold_is_placed_and_answers_what_is_left() {
        let d = decide_hold(30, None, account(100), NONE_OPEN, NOW);
        let want = HoldDecision::Place {
            available: 70,
            expires_at: NOW + HOLD_TTL_SECS,
        };
        assert_eq!(d, want);
    }

    #[test]
    fn an_uncovered_hold_answers_insufficient() {
        let d = decide_hold(130, None, account(100), NONE_OPEN, NOW);
        let want = HoldAnswer::Insufficient { available: 100 };
        assert_eq!(d, HoldDecision::Answer(want));
    }

    #[test]
    fn a_retry_replaces_its_own_open_hold() {
        // Of 100 points, 40 are held by the sale's own hold: a retry for
        // 100 may use them again.
        let mut a = account(100);
        a.held = 40;
        let d = decide_hold(100, hold(HoldState::Open, 40, NOW + 1), a, NONE_OPEN, NOW);
        // …and keeps the expiry the sale's hold got when first placed.
        let want = HoldDecision::Place {
            available: 0,
            expires_at: NOW + 1,
        };
        assert_eq!(d, want);
    }

    #[test]
    fn a_terminal_or_member_at_its_open_hold_limit_is_refused() {
        for open in [
            OpenHolds {
                terminal: HOLDS_OPEN_PER_TERMINAL_MAX,
                member: 0,
            },
            OpenHolds {
                terminal: 0,
                member: HOLDS_OPEN_PER_MEMBER_MAX,
            },
        ] {
            let d = decide_hold(10, None, account(100), open, NOW);
            let HoldDecision::Answer(HoldAnswer::Refused { reason }) = d else {
                panic!("expected refused, got {d:?}");
            };
            assert!(reason.contains("HOLDS_OPEN_PER_"), "{reason}");
        }
        let below = OpenHolds {
            terminal: HOLDS_OPEN_PER_TERMINAL_MAX - 1,
            member: HOLDS_OPEN_PER_MEMBER_MAX - 1,
        };
        let d = decide_hold(10, None, account(100), below, NOW);
        assert!(matches!(d, HoldDecision::Place { .. }), "{d:?}");
    }

    #[test]
    fn a_sales_hold_is_never_renewed_past_its_first_expiry() {
        // Asked again after it lapsed (or after a release past its expiry):
        // refused, not a fresh two hours.
        for state in [HoldState::Open, HoldState::Released] {
            let d = decide_hold(10, hold(state, 10, NOW), account(100), NONE_OPEN, NOW);
            let HoldDecision::Answer(HoldAnswer::Refused { reason }) = d else {
                panic!("expected refused, got {d:?}");
            };
            assert!(reason.contains("never renewed"), "{reason}");
        }
        // A released hold asked for again before its expiry keeps it.
        let d = decide_hold(
            10,
            hold(HoldState::Released, 10, NOW + 60),
            account(100),
            NONE_OPEN,
            NOW,
        );
        let want = HoldDecision::Place {
            available: 90,
            expires_at: NOW + 60,
        };
        assert_eq!(d, want);
    }

    #[test]
    fn an_expired_or_released_own_hold_gives_nothing_back() {
        for existing in [None, hold(HoldState::Released, 40, NOW + 1)] {
            let d = decide_hold(120, existing, account(100), NONE_OPEN, NOW);
            let want = HoldAnswer::Insufficient { available: 100 };
            assert_eq!(d, HoldDecision::Answer(want));
        }
    }

    #[test]
    fn a_settled_hold_is_granted_without_reserving_again() {
        let d = decide_hold(
            500,
            hold(HoldState::Settled, 40, NOW + 1),
            account(60),
            NONE_OPEN,
            NOW,
        );
        let want = HoldAnswer::Granted { available: 60 };
        assert_eq!(d, HoldDecision::Answer(want));
    }

    #[test]
    fn states_keep_their_stored_names() {
        for s in HoldState::ALL {
            assert_eq!(HoldState::parse(s.as_str()), Some(s));
        }
        assert_eq!(HoldState::parse("lapsed"), None);
    }
}
