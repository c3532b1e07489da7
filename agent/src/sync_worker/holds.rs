//! Online redemption holds (sync spec §4): while member data is fresh, a
//! redemption is first authorised by central, which reserves the points
//! (a hold keyed by terminal, sale and program) until the sale's redeem
//! entry arrives and settles it. Two registers can then not both spend the
//! same points while central is reachable; offline, the points spec's
//! offline allowance bounds the risk instead.
//!
//! Best effort by design: a hold is asked for only when a client exists,
//! the member data is fresh and the sale is new; if central does not answer
//! within [`HOLD_TIMEOUT_MS`] (or errs), the sale goes on under the offline
//! rules. Only a definite "insufficient" or "blocked" from central refuses
//! it. So a redemption waits at most [`HOLD_TIMEOUT_MS`] for central, and a
//! sale without redemption never does.

use std::sync::Mutex;
use std::time::Duration;

use pos_sync::protocol::{HoldAnswer, HoldRelease, HoldRequest};
use pos_sync::{SyncClient, SyncError};

use crate::model::{Freshness, MemberRef, Redemption, SaleRequest};
use crate::store::{Store, StoreError};
use crate::sync_worker::SyncMonitor;

/// Longest a redemption waits for central's answer to a hold.
pub const HOLD_TIMEOUT_MS: u64 = 2_000;
/// Most holds tracked as this register's own at once; beyond it the
/// oldest are forgotten (their points are then counted twice in the cache
/// until central settles them: conservative, never overspending).
pub const OWN_HOLDS_MAX: usize = 1_024;

/// One hold this register asked for, until its redeem entry is settled.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnHold {
    member: String,
    program: String,
    sale_id: String,
    points: i64,
}

/// The holds this register asked for whose redeem entries central has not
/// settled yet.
///
/// Why: central's `available` (in member downloads and upload answers)
/// already subtracts open holds, and this register also subtracts its own
/// redemption locally (the unsynced redeem entry): counted twice, the
/// member's points would look short, and a sale could even be refused by
/// its own hold if a member download lands between the hold and the
/// commit. So the worker adds these back to central's figure before
/// caching it.
#[derive(Debug, Default)]
pub struct OwnHolds {
    holds: Mutex<Vec<OwnHold>>,
}

impl OwnHolds {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OwnHold>> {
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add(&self, hold: OwnHold) {
        let mut holds = self.lock();
        holds.retain(|h| !(h.sale_id == hold.sale_id && h.program == hold.program));
        if holds.len() >= OWN_HOLDS_MAX {
            holds.remove(0);
        }
        holds.push(hold);
    }

    /// The hold of (sale, program) is settled or released.
    pub fn remove(&self, sale_id: &str, program: &str) {
        self.lock()
            .retain(|h| !(h.sale_id == sale_id && h.program == program));
    }

    /// Points held for `member` in `program` by this register.
    pub fn points(&self, member: &str, program: &str) -> i64 {
        self.lock()
            .iter()
            .filter(|h| h.member == member && h.program == program)
            .fold(0i64, |sum, h| sum.saturating_add(h.points))
    }
}

/// Holds placed for one sale, to release if the sale is then not committed.
#[derive(Debug, Default)]
pub struct PlacedHolds {
    client: Option<SyncClient>,
    holds: Vec<HoldRelease>,
    /// Where they are tracked as this register's own.
    monitor: Option<SyncMonitor>,
}

impl PlacedHolds {
    /// How many holds central granted.
    pub fn len(&self) -> usize {
        self.holds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }

    /// Releases the holds in the background (the sale was refused or
    /// failed): best effort, they expire at central anyway.
    pub fn release(self) {
        if let Some(monitor) = &self.monitor {
            for hold in &self.holds {
                monitor.own_holds().remove(&hold.sale_id, &hold.program);
            }
        }
        let Some(client) = self.client else { return };
        if self.holds.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for hold in self.holds {
                let released = tokio::time::timeout(
                    Duration::from_millis(HOLD_TIMEOUT_MS),
                    client.release_hold(&hold),
                )
                .await;
                if !matches!(released, Ok(Ok(()))) {
                    tracing::info!(message = "Could not release a hold; it expires at central.", sale_id = %hold.sale_id, program = %hold.program);
                }
            }
        });
    }
}

/// Whom a sale's holds are asked for, once [`SyncMonitor::hold_target`]
/// found that they should be.
struct HoldTarget {
    client: SyncClient,
    /// The member as the sale names them (id or card), as central is asked.
    member: String,
    /// Central's id for the member, as this register's own holds count it.
    member_id: String,
}

/// What central said to one redemption's hold.
enum Held {
    Granted(HoldRelease),
    /// A definite no: the sale is refused with this code and message.
    Refused(&'static str, String),
    /// No answer (offline, timed out, an error): the offline rules decide.
    Unanswered,
}

impl SyncMonitor {
    /// Asks central to hold the points of every redemption of `request`
    /// (see the module docs for when). `Err` only when central definitely
    /// refuses: the same `Refused` error the store gives, so the API
    /// answers it the same way (409).
    pub async fn authorise_redemptions(
        &self,
        store: &Store,
        request: &SaleRequest,
    ) -> Result<PlacedHolds, StoreError> {
        let mut placed = PlacedHolds::default();
        let Some(target) = self.hold_target(store, request).await else {
            return Ok(placed);
        };
        placed.client = Some(target.client.clone());
        placed.monitor = Some(self.clone());
        for (index, redemption) in request.redeem.iter().enumerate() {
            match self.hold(&target, store, request, redemption).await {
                Held::Granted(release) => placed.holds.push(release),
                Held::Unanswered => return Ok(placed),
                Held::Refused(code, message) => {
                    self.own_holds()
                        .remove(&request.sale_id, &redemption.program);
                    placed.release();
                    return Err(StoreError::Refused {
                        index,
                        program: redemption.program.clone(),
                        points: redemption.points,
                        code,
                        message,
                    });
                }
            }
        }
        Ok(placed)
    }

    /// Whether `request` gets holds at all: it redeems, central is
    /// configured, it names a member whose data is fresh, and it is new.
    async fn hold_target(&self, store: &Store, request: &SaleRequest) -> Option<HoldTarget> {
        if request.redeem.is_empty() {
            return None;
        }
        let client = self.client()?;
        let member = match &request.member {
            Some(MemberRef::Id(id)) => id.clone(),
            Some(MemberRef::Card(card)) => card.clone(),
            None => return None,
        };
        // A replayed sale was authorised (or not) the first time.
        if store.sale(&request.sale_id).await.is_ok() {
            return None;
        }
        // Central's id for the member (a known card resolves to it).
        let member_id = match store.member(&member).await {
            Ok(m) if m.freshness == Freshness::Fresh => m.member,
            _ => return None,
        };
        Some(HoldTarget {
            client,
            member,
            member_id,
        })
    }

    /// Asks central to hold one redemption's points, within
    /// [`HOLD_TIMEOUT_MS`].
    async fn hold(
        &self,
        target: &HoldTarget,
        store: &Store,
        request: &SaleRequest,
        redemption: &Redemption,
    ) -> Held {
        // A basket that does not build is refused by the sale itself when
        // it commits; the hold is simply not asked for.
        let Ok(basket) = store.hold_basket(request).await else {
            return Held::Unanswered;
        };
        let hold = HoldRequest {
            terminal_id: store.terminal_id().to_string(),
            member: target.member.clone(),
            program: redemption.program.clone(),
            sale_id: request.sale_id.clone(),
            points: redemption.points,
            basket,
        };
        // Tracked before asking, so a member download that sees the hold
        // at central can never miss it here.
        self.own_holds().add(OwnHold {
            member: target.member_id.clone(),
            program: redemption.program.clone(),
            sale_id: request.sale_id.clone(),
            points: redemption.points,
        });
        let answer = tokio::time::timeout(
            Duration::from_millis(HOLD_TIMEOUT_MS),
            target.client.place_hold(&hold),
        )
        .await
        .unwrap_or_else(|_| {
            Err(SyncError::Network(format!(
                "no answer within {HOLD_TIMEOUT_MS} ms"
            )))
        });
        match answer {
            Ok(HoldAnswer::Granted { .. }) => Held::Granted(HoldRelease {
                terminal_id: hold.terminal_id,
                sale_id: hold.sale_id,
                program: hold.program,
            }),
            Ok(HoldAnswer::Insufficient { available }) => Held::Refused(
                "insufficient_points",
                format!("central holds only {available} available points for this member"),
            ),
            Ok(HoldAnswer::Refused { reason }) => Held::Refused("hold_refused", reason),
            Ok(HoldAnswer::Blocked) => Held::Refused(
                "member_blocked",
                "central says the member is blocked".to_string(),
            ),
            Err(error) => {
                // Offline or confused: the offline rules decide. The hold
                // may exist at central all the same (a lost answer), so it
                // stays tracked until the entry syncs.
                tracing::info!(message = "No hold from central; the redemption goes on under the offline rules.", %error, sale_id = %request.sale_id);
                Held::Unanswered
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(member: &str, program: &str, sale_id: &str, points: i64) -> OwnHold {
        OwnHold {
            member: member.into(),
            program: program.into(),
            sale_id: sale_id.into(),
            points,
        }
    }

    #[test]
    fn own_holds_add_up_per_member_and_program_until_settled() {
        let own = OwnHolds::default();
        own.add(hold("M-1", "main", "S-1", 300));
        own.add(hold("M-1", "main", "S-2", 200));
        own.add(hold("M-1", "other", "S-2", 50));
        own.add(hold("M-2", "main", "S-3", 70));
        assert_eq!(own.points("M-1", "main"), 500);
        assert_eq!(own.points("M-1", "other"), 50);
        // Asking again for the same sale and program replaces, not stacks.
        own.add(hold("M-1", "main", "S-1", 400));
        assert_eq!(own.points("M-1", "main"), 600);
        own.remove("S-1", "main");
        assert_eq!(own.points("M-1", "main"), 200);
        own.remove("S-2", "main");
        assert_eq!(own.points("M-1", "main"), 0);
        assert_eq!(own.points("M-2", "main"), 70);
    }

    #[test]
    fn only_the_newest_holds_are_tracked() {
        let own = OwnHolds::default();
        for n in 0..OWN_HOLDS_MAX + 10 {
            own.add(hold("M-1", "main", &format!("S-{n}"), 1));
        }
        assert_eq!(own.points("M-1", "main"), OWN_HOLDS_MAX as i64);
    }
}
