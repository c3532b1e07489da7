//! Orders and returns of other channels: the loads and stores of
//! [`crate::apply::channel`] on a SQLite transaction.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::apply::channel::{ChannelTx, ReturnState, StoredOrder, StoredReturn};
use crate::error::CentralError;

impl ChannelTx for Transaction<'_> {
    fn lock_accounts(&self, _names: &[&str]) -> Result<(), CentralError> {
        // The one writer connection already excludes every other writer.
        Ok(())
    }

    fn stored_order(
        &self,
        terminal: &str,
        order_id: &str,
    ) -> Result<Option<StoredOrder>, CentralError> {
        let row = self
            .prepare_cached(
                "SELECT request_hash, answer, member, sale, state FROM channel_orders
                 WHERE terminal_id = ?1 AND order_id = ?2",
            )?
            .query_row([terminal, order_id], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .optional()?;
        row.map(|(hash, answer, member, sale, state)| {
            StoredOrder::from_columns(&hash, answer, member, &sale, &state)
        })
        .transpose()
    }

    fn store_order(
        &self,
        terminal: &str,
        order_id: &str,
        order: &StoredOrder,
        at: &str,
    ) -> Result<(), CentralError> {
        let (sale, state) = order.json_columns()?;
        self.prepare_cached(
            "INSERT INTO channel_orders
                 (terminal_id, order_id, request_hash, answer, member, sale, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            terminal,
            order_id,
            order.request_hash.as_slice(),
            order.answer,
            order.member,
            sale,
            state,
            at
        ])?;
        Ok(())
    }

    fn store_return_state(
        &self,
        terminal: &str,
        order_id: &str,
        state: &ReturnState,
    ) -> Result<(), CentralError> {
        self.prepare_cached(
            "UPDATE channel_orders SET state = ?3 WHERE terminal_id = ?1 AND order_id = ?2",
        )?
        .execute(params![terminal, order_id, state.to_json()?])?;
        Ok(())
    }

    fn stored_return(
        &self,
        terminal: &str,
        return_id: &str,
    ) -> Result<Option<StoredReturn>, CentralError> {
        let row = self
            .prepare_cached(
                "SELECT request_hash, answer FROM channel_returns
                 WHERE terminal_id = ?1 AND return_id = ?2",
            )?
            .query_row([terminal, return_id], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .optional()?;
        row.map(|(hash, answer)| StoredReturn::from_columns(&hash, answer))
            .transpose()
    }

    fn store_return(
        &self,
        terminal: &str,
        return_id: &str,
        order_id: &str,
        stored: &StoredReturn,
        at: &str,
    ) -> Result<(), CentralError> {
        self.prepare_cached(
            "INSERT INTO channel_returns
                 (terminal_id, return_id, order_id, request_hash, answer, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            terminal,
            return_id,
            order_id,
            stored.request_hash.as_slice(),
            stored.answer,
            at
        ])?;
        Ok(())
    }
}
