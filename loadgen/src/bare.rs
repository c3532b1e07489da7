//! The floor the load run is measured against: the same rows inserted
//! straight into PostgreSQL, into a table shaped like central's `entries`
//! (its columns, primary key and indexes, as in central's SQLite schema),
//! one transaction per batch as central commits one per upload, over one
//! connection. No token, chain, document, verification, balance, HTTP or
//! TLS: what the database alone costs for these rows.
//!
//! The caller brings the connection ([`postgres::Client`], synchronous: run
//! it outside an async runtime or on `spawn_blocking`); the table is
//! created fresh (`bare_entries` by default) and dropped afterwards.

use std::time::{Duration, Instant};

use pos_sync::LedgerEntry;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};

use crate::error::LoadError;
use crate::plan::{Outbox, Plan, outage_time};

/// How the rows go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// One multi-row `INSERT ... VALUES (...), (...)` per batch (what a
    /// backend writing rows with parameters does at best).
    Insert,
    /// `COPY ... FROM STDIN (FORMAT binary)` per batch: the fastest way in.
    Copy,
}

/// What the baseline measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bare {
    pub method: Method,
    pub rows: u64,
    /// Time inside the database calls (rows generated outside it).
    pub elapsed_ms: u64,
    pub rows_per_s: u64,
}

/// Columns of the table, in central's order (`central/src/sqlite/schema.rs`).
const COLUMNS: &str = "terminal_id, seq, entry_id, hash, prev_hash, kind, program, member, \
    credited_member, points, sale_id, return_id, rules_version, occurred_at, detail, status, \
    reason, received_at, credited";
const COLUMNS_COUNT: usize = 19;

fn schema(table: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (
            terminal_id TEXT NOT NULL, seq BIGINT NOT NULL, entry_id BYTEA NOT NULL,
            hash BYTEA NOT NULL, prev_hash BYTEA, kind TEXT, program TEXT, member TEXT,
            credited_member TEXT, points BIGINT, sale_id TEXT, return_id TEXT,
            rules_version BIGINT, occurred_at TEXT, detail TEXT, status TEXT NOT NULL,
            reason TEXT, received_at TEXT NOT NULL, credited BIGINT,
            PRIMARY KEY (terminal_id, seq));
         CREATE INDEX {table}_credited_member ON {table} (credited_member);
         CREATE INDEX {table}_sale ON {table} (terminal_id, sale_id, program);
         CREATE INDEX {table}_member_day ON {table}
            (credited_member, program, substr(occurred_at, 1, 10));
         CREATE UNIQUE INDEX {table}_counted_id ON {table} (terminal_id, entry_id)
            WHERE status IN ('applied', 'overdraft');"
    )
}

/// One row's values as central stores an applied entry.
struct Row {
    entry_id: Vec<u8>,
    hash: Vec<u8>,
    prev_hash: Vec<u8>,
    seq: i64,
    points: i64,
    rules_version: i64,
    entry: LedgerEntry,
}

impl Row {
    fn new(entry: LedgerEntry) -> Row {
        Row {
            entry_id: entry.entry_id.as_bytes().to_vec(),
            hash: entry.hash.0.to_vec(),
            prev_hash: entry.prev_hash.0.to_vec(),
            seq: i64::try_from(entry.seq).unwrap_or(i64::MAX),
            points: entry.points,
            rules_version: i64::try_from(entry.rules_version).unwrap_or(i64::MAX),
            entry,
        }
    }

    fn values<'a>(
        &'a self,
        received_at: &'a (dyn ToSql + Sync),
    ) -> [&'a (dyn ToSql + Sync); COLUMNS_COUNT] {
        // The generator only queues earns, which central stores applied.
        const EARN: &str = "earn";
        const APPLIED: &str = "applied";
        const NONE_TEXT: Option<&str> = None;
        const NONE_INT: Option<i64> = None;
        let e = &self.entry;
        [
            &e.terminal_id,
            &self.seq,
            &self.entry_id,
            &self.hash,
            &self.prev_hash,
            &EARN,
            &e.program,
            &e.member,
            &e.member,
            &self.points,
            &e.sale_id,
            &NONE_TEXT,
            &self.rules_version,
            &e.occurred_at,
            &e.detail,
            &APPLIED,
            &NONE_TEXT,
            received_at,
            &NONE_INT,
        ]
    }
}

/// Inserts the rows of `plan`'s entries (the same registers, chains and
/// members the load run sends) into a fresh `table`, batch by batch, and
/// drops the table afterwards.
pub fn insert_rows(
    client: &mut postgres::Client,
    plan: &Plan,
    method: Method,
    table: &str,
) -> Result<Bare, LoadError> {
    plan.check()?;
    if !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') || table.is_empty() {
        return Err(LoadError::Plan(format!(
            "table name {table:?}: lowercase letters and _ only"
        )));
    }
    client.batch_execute(&schema(table))?;
    let occurred_at = outage_time();
    let received_at = jiff::Timestamp::now().to_string();
    let mut elapsed = Duration::ZERO;
    let mut rows = 0;
    for index in 0..plan.registers {
        let mut outbox = Outbox::new(plan, index, &occurred_at);
        while let Some(batch) = outbox.next_batch() {
            let batch: Vec<Row> = batch.entries.into_iter().map(Row::new).collect();
            let started = Instant::now();
            match method {
                Method::Insert => insert_batch(client, table, &batch, &received_at)?,
                Method::Copy => copy_batch(client, table, &batch, &received_at)?,
            }
            elapsed += started.elapsed();
            rows += batch.len() as u64;
        }
    }
    client.batch_execute(&format!("DROP TABLE {table}"))?;
    let elapsed_ms = elapsed.as_millis().max(1) as u64;
    Ok(Bare {
        method,
        rows,
        elapsed_ms,
        rows_per_s: rows.saturating_mul(1_000) / elapsed_ms,
    })
}

fn insert_batch(
    client: &mut postgres::Client,
    table: &str,
    batch: &[Row],
    received_at: &(dyn ToSql + Sync),
) -> Result<(), LoadError> {
    let mut sql = format!("INSERT INTO {table} ({COLUMNS}) VALUES ");
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(batch.len() * COLUMNS_COUNT);
    for (i, row) in batch.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..COLUMNS_COUNT {
            if c > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", i * COLUMNS_COUNT + c + 1));
        }
        sql.push(')');
        params.extend(row.values(received_at));
    }
    let mut tx = client.transaction()?;
    tx.execute(sql.as_str(), &params)?;
    tx.commit()?;
    Ok(())
}

fn copy_batch(
    client: &mut postgres::Client,
    table: &str,
    batch: &[Row],
    received_at: &(dyn ToSql + Sync),
) -> Result<(), LoadError> {
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::BYTEA,
        Type::BYTEA,
        Type::BYTEA,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
    ];
    let mut tx = client.transaction()?;
    let sink = tx.copy_in(&format!(
        "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for row in batch {
        writer.write(&row.values(received_at))?;
    }
    writer.finish()?;
    tx.commit()?;
    Ok(())
}
