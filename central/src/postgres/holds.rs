//! The loads and stores of online holds ([`HoldTx`]) on PostgreSQL; what
//! is granted is [`crate::apply::hold`]'s decision. A placement runs with
//! its terminal's row and the member's account name locked
//! ([`super::PgStorage`]'s `place_hold`), so the open-hold limits and the
//! available points it reads stay true to its commit.

use pos_sync::protocol::HoldRelease;

use super::locks::{self, RevKind};
use super::{PgTx, bundles, u64_of};
use crate::apply::SyncTx;
use crate::apply::hold::{HoldKey, HoldState, HoldTx, NewHold, OpenHolds, StoredHold};
use crate::error::CentralError;

impl HoldTx for PgTx<'_> {
    fn program_known(&self, program: &str) -> Result<bool, CentralError> {
        Ok(self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM programs WHERE id = $1)",
                &[&program],
            )?
            .try_get(0)?)
    }

    fn newest_rules(&self) -> Result<Option<pos_points::Bundle>, CentralError> {
        bundles::newest(self, None)?
            .map(|signed| crate::rules::parse(&signed.bytes, signed.format))
            .transpose()
    }

    fn member_blocked(&self, member: &str) -> Result<bool, CentralError> {
        Ok(self
            .query_opt("SELECT blocked FROM members WHERE id = $1", &[&member])?
            .map(|r| r.try_get(0))
            .transpose()?
            .unwrap_or(false))
    }

    fn hold_state(&self, key: &HoldKey<'_>) -> Result<Option<StoredHold>, CentralError> {
        let row = self.query_opt(
            "SELECT state, points, expires_at FROM holds
             WHERE terminal_id = $1 AND sale_id = $2 AND program = $3",
            &[&key.terminal_id, &key.sale_id, &key.program],
        )?;
        row.map(|r| {
            let state: String = r.try_get(0)?;
            let state = HoldState::parse(&state)
                .ok_or_else(|| CentralError::Corrupt(format!("hold state {state:?}")))?;
            Ok(StoredHold {
                state,
                points: r.try_get(1)?,
                expires_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    fn open_holds(
        &self,
        key: &HoldKey<'_>,
        member: &str,
        now_secs: i64,
    ) -> Result<OpenHolds, CentralError> {
        let r = self.query_one(
            "SELECT
               (SELECT COUNT(*) FROM holds
                 WHERE terminal_id = $1 AND state = 'open' AND expires_at > $5
                   AND NOT (sale_id = $2 AND program = $3)),
               (SELECT COUNT(*) FROM holds
                 WHERE member = $4 AND state = 'open' AND expires_at > $5
                   AND NOT (terminal_id = $1 AND sale_id = $2 AND program = $3))",
            &[
                &key.terminal_id,
                &key.sale_id,
                &key.program,
                &member,
                &now_secs,
            ],
        )?;
        Ok(OpenHolds {
            terminal: u64_of(r.try_get(0)?, "open holds")?,
            member: u64_of(r.try_get(1)?, "open holds")?,
        })
    }

    fn store_hold(&self, hold: &NewHold<'_>) -> Result<(), CentralError> {
        // SKIP LOCKED: rows another transaction is settling stay for the
        // next placement's purge.
        self.execute(
            "DELETE FROM holds WHERE ctid IN
               (SELECT ctid FROM holds WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
                FOR UPDATE SKIP LOCKED)",
            &[&hold.purge_before, &hold.purge_max],
        )?;
        self.execute(
            "INSERT INTO holds (terminal_id, sale_id, program, member, points, state, expires_at)
             VALUES ($1, $2, $3, $4, $5, 'open', $6)
             ON CONFLICT (terminal_id, sale_id, program) DO UPDATE SET member = excluded.member,
                points = excluded.points, state = 'open', expires_at = excluded.expires_at",
            &[
                &hold.key.terminal_id,
                &hold.key.sale_id,
                &hold.key.program,
                &hold.member,
                &hold.points,
                &hold.expires_at,
            ],
        )?;
        self.changed(hold.member, RevKind::Upsert);
        Ok(())
    }
}

/// Releases an open hold (its sale was abandoned); false when there was
/// none. The member changes: the points are available again.
pub(super) fn release(tx: &PgTx<'_>, release: &HoldRelease) -> Result<bool, CentralError> {
    // Lock order: the terminal, then the hold's member.
    tx.chain_head(&release.terminal_id)?;
    let row = tx.query_opt(
        "SELECT member FROM holds
         WHERE terminal_id = $1 AND sale_id = $2 AND program = $3 AND state = 'open'",
        &[&release.terminal_id, &release.sale_id, &release.program],
    )?;
    let Some(row) = row else { return Ok(false) };
    let member: String = row.try_get(0)?;
    locks::lock_names(tx, [member.clone()])?;
    let released = tx.execute(
        "UPDATE holds SET state = 'released'
         WHERE terminal_id = $1 AND sale_id = $2 AND program = $3 AND state = 'open'",
        &[&release.terminal_id, &release.sale_id, &release.program],
    )?;
    if released > 0 {
        tx.changed(&member, RevKind::Update);
    }
    Ok(released > 0)
}
