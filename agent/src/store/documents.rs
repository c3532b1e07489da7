//! The documents an upload batch carries (protocol v2, `docs/sync-v2.md`
//! §2): for each sale an entry names, the basket exactly as it was quoted
//! and what it paid with points; for each return, that sale, what remained
//! of each line before the return, and what the return took back.
//!
//! Everything is read from rows the sale or return wrote in its own
//! transaction (`sales.basket`, `sale_redemptions`, `sale_lines`,
//! `return_lines`), never recomputed, so central checks the register's
//! figures against the very basket the register quoted.

use std::collections::BTreeMap;

use pos_sync::LedgerEntry;
use pos_sync::protocol::{
    Document, DocumentKey, LineQty, ProgramPoints, ReturnDocument, SaleDocument,
};
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::error::{StoreError, StoreResult};

/// The documents `entries` name, by key. An entry whose sale or return is
/// not in the store (impossible by the schema's references) is a store
/// error, not a batch sent without its document.
pub(crate) fn for_entries(
    conn: &Connection,
    entries: &[LedgerEntry],
) -> StoreResult<BTreeMap<DocumentKey, Document>> {
    // One read transaction for the whole batch: one snapshot (every
    // document as of the same moment) and one lock instead of one per query.
    let tx = conn.unchecked_transaction()?;
    let conn: &Connection = &tx;
    let mut documents = BTreeMap::new();
    for key in entries.iter().filter_map(DocumentKey::of) {
        if documents.contains_key(&key) {
            continue;
        }
        let document = match &key {
            DocumentKey::Sale(sale_id) => Document::Sale(sale_document(conn, sale_id)?),
            DocumentKey::Return(return_id) => Document::Return(return_document(conn, return_id)?),
        };
        documents.insert(key, document);
    }
    Ok(documents)
}

fn sale_document(conn: &Connection, sale_id: &str) -> StoreResult<SaleDocument> {
    // Cached statements throughout: a catch-up reads a document per sale.
    let (basket, rules_version): (String, i64) = conn
        .prepare_cached("SELECT basket, rules_version FROM sales WHERE sale_id = ?1")?
        .query_row([sale_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| missing(format!("sale {sale_id} named by a ledger entry")))?;
    let mut redeemed = conn.prepare_cached(
        "SELECT program, points FROM sale_redemptions WHERE sale_id = ?1 ORDER BY program",
    )?;
    let redeemed = redeemed
        .query_map([sale_id], |r| {
            Ok(ProgramPoints {
                program: r.get(0)?,
                points: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SaleDocument {
        sale_id: sale_id.to_string(),
        rules_version: u64::try_from(rules_version)
            .map_err(|_| missing(format!("sale {sale_id} with rules version {rules_version}")))?,
        basket,
        redeemed,
    })
}

fn return_document(conn: &Connection, return_id: &str) -> StoreResult<ReturnDocument> {
    let (sale_id, order): (String, i64) = conn
        .prepare_cached("SELECT sale_id, rowid FROM returns WHERE return_id = ?1")?
        .query_row([return_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| missing(format!("return {return_id} named by a ledger entry")))?;
    Ok(ReturnDocument {
        return_id: return_id.to_string(),
        sale: sale_document(conn, &sale_id)?,
        remaining_before: remaining_before(conn, &sale_id, order)?,
        lines: return_lines(conn, return_id)?,
        sale_id,
    })
}

/// For every line of the sale, its quantity less what the returns recorded
/// before this one (`rowid` order is commit order) took back.
fn remaining_before(conn: &Connection, sale_id: &str, order: i64) -> StoreResult<Vec<LineQty>> {
    let mut sold =
        conn.prepare_cached("SELECT line, qty FROM sale_lines WHERE sale_id = ?1 ORDER BY line")?;
    let mut returned = conn.prepare_cached(
        "SELECT rl.qty FROM return_lines rl JOIN returns r ON r.return_id = rl.return_id
         WHERE r.sale_id = ?1 AND r.rowid < ?2 AND rl.line = ?3",
    )?;
    let lines = sold
        .query_map([sale_id], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut remaining = Vec::with_capacity(lines.len());
    for (line, qty) in lines {
        let mut left = decimal(&qty)?;
        let taken = returned
            .query_map(params![sale_id, order, line], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for qty in taken {
            left -= decimal(&qty)?;
        }
        remaining.push(LineQty { line, qty: left });
    }
    Ok(remaining)
}

fn return_lines(conn: &Connection, return_id: &str) -> StoreResult<Vec<LineQty>> {
    let mut lines = conn
        .prepare_cached("SELECT line, qty FROM return_lines WHERE return_id = ?1 ORDER BY line")?;
    let rows = lines
        .query_map([return_id], |r| {
            Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(line, qty)| {
            Ok(LineQty {
                line,
                qty: decimal(&qty)?,
            })
        })
        .collect()
}

fn decimal(text: &str) -> StoreResult<Decimal> {
    text.parse()
        .map_err(|_| missing(format!("quantity {text:?} that is not a decimal")))
}

fn missing(what: String) -> StoreError {
    StoreError::Damaged(format!("the store holds {what} it cannot read back"))
}
