//! The loads and stores of online holds ([`HoldTx`]); what is granted is
//! [`crate::apply::hold`]'s decision.

use pos_sync::protocol::HoldRelease;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{bundles, next_rev, u64_of};
use crate::apply::hold::{HoldKey, HoldState, HoldTx, NewHold, OpenHolds, StoredHold};
use crate::error::CentralError;

impl HoldTx for Transaction<'_> {
    fn program_known(&self, program: &str) -> Result<bool, CentralError> {
        Ok(self.query_row(
            "SELECT EXISTS (SELECT 1 FROM programs WHERE id = ?1)",
            [program],
            |r| r.get(0),
        )?)
    }

    fn newest_rules(&self) -> Result<Option<pos_points::Bundle>, CentralError> {
        bundles::newest(self, None)?
            .map(|signed| crate::rules::parse(&signed.bytes, signed.format))
            .transpose()
    }

    fn member_blocked(&self, member: &str) -> Result<bool, CentralError> {
        Ok(self
            .query_row("SELECT blocked FROM members WHERE id = ?1", [member], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(false))
    }

    fn hold_state(&self, key: &HoldKey<'_>) -> Result<Option<StoredHold>, CentralError> {
        let row: Option<(String, i64, i64)> = self
            .query_row(
                "SELECT state, points, expires_at FROM holds
                 WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3",
                params![key.terminal_id, key.sale_id, key.program],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        row.map(|(state, points, expires_at)| {
            let state = HoldState::parse(&state)
                .ok_or_else(|| CentralError::Corrupt(format!("hold state {state:?}")))?;
            Ok(StoredHold {
                state,
                points,
                expires_at,
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
        let (terminal, member): (i64, i64) = self
            .prepare_cached(
                "SELECT
                   (SELECT COUNT(*) FROM holds
                     WHERE terminal_id = ?1 AND state = 'open' AND expires_at > ?5
                       AND NOT (sale_id = ?2 AND program = ?3)),
                   (SELECT COUNT(*) FROM holds
                     WHERE member = ?4 AND state = 'open' AND expires_at > ?5
                       AND NOT (terminal_id = ?1 AND sale_id = ?2 AND program = ?3))",
            )?
            .query_row(
                params![key.terminal_id, key.sale_id, key.program, member, now_secs],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
        Ok(OpenHolds {
            terminal: u64_of(terminal, "open holds")?,
            member: u64_of(member, "open holds")?,
        })
    }

    fn store_hold(&self, hold: &NewHold<'_>) -> Result<(), CentralError> {
        self.prepare_cached(
            "DELETE FROM holds WHERE rowid IN
               (SELECT rowid FROM holds WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)",
        )?
        .execute(params![hold.purge_before, hold.purge_max])?;
        self.execute(
            "INSERT INTO holds (terminal_id, sale_id, program, member, points, state, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)
             ON CONFLICT (terminal_id, sale_id, program) DO UPDATE SET member = excluded.member,
                points = excluded.points, state = 'open', expires_at = excluded.expires_at",
            params![
                hold.key.terminal_id,
                hold.key.sale_id,
                hold.key.program,
                hold.member,
                hold.points,
                hold.expires_at
            ],
        )?;
        let rev = next_rev(self)?;
        self.execute(
            "INSERT INTO members (id, rev) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
            params![hold.member, rev],
        )?;
        Ok(())
    }
}

/// Releases an open hold (its sale was abandoned); false when there was
/// none. The member changes: the points are available again.
pub(super) fn release(tx: &Transaction<'_>, release: &HoldRelease) -> Result<bool, CentralError> {
    let member: Option<String> = tx
        .query_row(
            "UPDATE holds SET state = 'released'
             WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3 AND state = 'open'
             RETURNING member",
            params![release.terminal_id, release.sale_id, release.program],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(member) = &member {
        let rev = next_rev(tx)?;
        tx.execute(
            "UPDATE members SET rev = ?1 WHERE id = ?2",
            params![rev, member],
        )?;
    }
    Ok(member.is_some())
}
