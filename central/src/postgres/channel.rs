//! Orders and returns of other channels: the loads and stores of
//! [`crate::apply::channel`] on a PostgreSQL transaction. The channel's
//! pseudo-terminal row is locked first (`chain_head`), so two instances
//! handed the same order apply it once: the second finds it stored.

use super::{PgTx, locks};
use crate::apply::channel::{ChannelTx, ReturnState, StoredOrder, StoredReturn};
use crate::error::CentralError;

impl ChannelTx for PgTx<'_> {
    fn lock_accounts(&self, names: &[&str]) -> Result<(), CentralError> {
        locks::lock_names(self, names.iter().map(|n| n.to_string()))
    }

    fn stored_order(
        &self,
        terminal: &str,
        order_id: &str,
    ) -> Result<Option<StoredOrder>, CentralError> {
        let row = self.query_opt(
            "SELECT request_hash, answer, member, sale, state FROM channel_orders
             WHERE terminal_id = $1 AND order_id = $2",
            &[&terminal, &order_id],
        )?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get(0)?;
            let sale: String = r.try_get(3)?;
            let state: String = r.try_get(4)?;
            StoredOrder::from_columns(&hash, r.try_get(1)?, r.try_get(2)?, &sale, &state)
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
        self.execute(
            "INSERT INTO channel_orders
                 (terminal_id, order_id, request_hash, answer, member, sale, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &terminal,
                &order_id,
                &order.request_hash.as_slice(),
                &order.answer,
                &order.member,
                &sale,
                &state,
                &at,
            ],
        )?;
        Ok(())
    }

    fn store_return_state(
        &self,
        terminal: &str,
        order_id: &str,
        state: &ReturnState,
    ) -> Result<(), CentralError> {
        self.execute(
            "UPDATE channel_orders SET state = $3 WHERE terminal_id = $1 AND order_id = $2",
            &[&terminal, &order_id, &state.to_json()?],
        )?;
        Ok(())
    }

    fn stored_return(
        &self,
        terminal: &str,
        return_id: &str,
    ) -> Result<Option<StoredReturn>, CentralError> {
        let row = self.query_opt(
            "SELECT request_hash, answer FROM channel_returns
             WHERE terminal_id = $1 AND return_id = $2",
            &[&terminal, &return_id],
        )?;
        row.map(|r| {
            let hash: Vec<u8> = r.try_get(0)?;
            StoredReturn::from_columns(&hash, r.try_get(1)?)
        })
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
        self.execute(
            "INSERT INTO channel_returns
                 (terminal_id, return_id, order_id, request_hash, answer, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &terminal,
                &return_id,
                &order_id,
                &stored.request_hash.as_slice(),
                &stored.answer,
                &at,
            ],
        )?;
        Ok(())
    }
}
