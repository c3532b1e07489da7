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

use std::time::Duration;

use pos_sync::protocol::{HoldAnswer, HoldRelease, HoldRequest};
use pos_sync::{SyncClient, SyncError};

use crate::model::{Freshness, MemberRef, SaleRequest};
use crate::store::{Store, StoreError};
use crate::sync_worker::SyncMonitor;

/// Longest a redemption waits for central's answer to a hold.
pub const HOLD_TIMEOUT_MS: u64 = 2_000;

/// Holds placed for one sale, to release if the sale is then not committed.
#[derive(Debug, Default)]
pub struct PlacedHolds {
    client: Option<SyncClient>,
    holds: Vec<HoldRelease>,
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
        if request.redeem.is_empty() {
            return Ok(placed);
        }
        let Some(client) = self.client() else {
            return Ok(placed);
        };
        let member = match &request.member {
            Some(MemberRef::Id(id)) => id.clone(),
            Some(MemberRef::Card(card)) => card.clone(),
            None => return Ok(placed),
        };
        // A replayed sale was authorised (or not) the first time.
        if store.sale(&request.sale_id).await.is_ok() {
            return Ok(placed);
        }
        match store.member(&member).await {
            Ok(m) if m.freshness == Freshness::Fresh => {}
            _ => return Ok(placed),
        }
        placed.client = Some(client.clone());
        for (index, r) in request.redeem.iter().enumerate() {
            let hold = HoldRequest {
                terminal_id: store.terminal_id().to_string(),
                member: member.clone(),
                program: r.program.clone(),
                sale_id: request.sale_id.clone(),
                points: r.points,
            };
            let answer = tokio::time::timeout(
                Duration::from_millis(HOLD_TIMEOUT_MS),
                client.place_hold(&hold),
            )
            .await
            .unwrap_or_else(|_| {
                Err(SyncError::Network(format!(
                    "no answer within {HOLD_TIMEOUT_MS} ms"
                )))
            });
            let refusal = match answer {
                Ok(HoldAnswer::Granted { .. }) => {
                    placed.holds.push(HoldRelease {
                        terminal_id: hold.terminal_id,
                        sale_id: hold.sale_id,
                        program: hold.program,
                    });
                    continue;
                }
                Ok(HoldAnswer::Insufficient { available }) => (
                    "insufficient_points",
                    format!("central holds only {available} available points for this member"),
                ),
                Ok(HoldAnswer::Blocked) => (
                    "member_blocked",
                    "central says the member is blocked".to_string(),
                ),
                Err(error) => {
                    // Offline or confused: the offline rules decide.
                    tracing::info!(message = "No hold from central; the redemption goes on under the offline rules.", %error, sale_id = %request.sale_id);
                    return Ok(placed);
                }
            };
            let (code, message) = refusal;
            placed.release();
            return Err(StoreError::Refused {
                index,
                program: r.program.clone(),
                points: r.points,
                code,
                message,
            });
        }
        Ok(placed)
    }
}
