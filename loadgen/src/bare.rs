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

use std::collections::HashMap;
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
    /// One `INSERT ... SELECT * FROM unnest($1, ..., $19)` per batch, a
    /// column array per parameter: one small statement whatever the batch.
    Unnest,
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
    let mut prepared = HashMap::new();
    for index in 0..plan.registers {
        let mut outbox = Outbox::new(plan, index, &occurred_at);
        while let Some(batch) = outbox.next_batch() {
            let batch: Vec<Row> = batch.entries.into_iter().map(Row::new).collect();
            let started = Instant::now();
            match method {
                Method::Insert => {
                    let statement = insert_statement(client, table, batch.len(), &mut prepared)?;
                    insert_batch(client, &statement, &batch, &received_at)?;
                }
                Method::Unnest => unnest_batch(client, table, &batch, &received_at)?,
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

/// The multi-row `INSERT` of `rows` rows, prepared once per length and
/// kept (as a backend keeps its statements): parsing and planning a
/// statement of 19,000 parameters for every batch would measure the
/// planner, not the insert.
fn insert_statement(
    client: &mut postgres::Client,
    table: &str,
    rows: usize,
    prepared: &mut HashMap<usize, postgres::Statement>,
) -> Result<postgres::Statement, LoadError> {
    if let Some(statement) = prepared.get(&rows) {
        return Ok(statement.clone());
    }
    let mut sql = format!("INSERT INTO {table} ({COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        let params: Vec<String> = (0..COLUMNS_COUNT)
            .map(|c| format!("${}", i * COLUMNS_COUNT + c + 1))
            .collect();
        sql.push('(');
        sql.push_str(&params.join(","));
        sql.push(')');
    }
    let statement = client.prepare(&sql)?;
    prepared.insert(rows, statement.clone());
    Ok(statement)
}

fn insert_batch(
    client: &mut postgres::Client,
    statement: &postgres::Statement,
    batch: &[Row],
    received_at: &(dyn ToSql + Sync),
) -> Result<(), LoadError> {
    let params: Vec<&(dyn ToSql + Sync)> = batch
        .iter()
        .flat_map(|row| row.values(received_at))
        .collect();
    let mut tx = client.transaction()?;
    tx.execute(statement, &params)?;
    tx.commit()?;
    Ok(())
}

/// The column types, in [`COLUMNS`] order.
const TYPES: [Type; COLUMNS_COUNT] = [
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

fn unnest_batch(
    client: &mut postgres::Client,
    table: &str,
    batch: &[Row],
    received_at: &str,
) -> Result<(), LoadError> {
    let e = |f: fn(&Row) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
    let n = |f: fn(&Row) -> i64| batch.iter().map(f).collect::<Vec<i64>>();
    let b = |f: fn(&Row) -> &[u8]| batch.iter().map(f).collect::<Vec<&[u8]>>();
    let none_text: Vec<Option<&str>> = vec![None; batch.len()];
    let none_int: Vec<Option<i64>> = vec![None; batch.len()];
    let sale: Vec<Option<&str>> = batch.iter().map(|r| r.entry.sale_id.as_deref()).collect();
    let constant = |v: &'static str| vec![v; batch.len()];
    let (terminal, member) = (e(|r| &r.entry.terminal_id), e(|r| &r.entry.member));
    let columns: [&(dyn ToSql + Sync); COLUMNS_COUNT] = [
        &terminal,
        &n(|r| r.seq),
        &b(|r| &r.entry_id),
        &b(|r| &r.hash),
        &b(|r| &r.prev_hash),
        &constant("earn"),
        &e(|r| &r.entry.program),
        &member,
        &member,
        &n(|r| r.points),
        &sale,
        &none_text,
        &n(|r| r.rules_version),
        &e(|r| &r.entry.occurred_at),
        &e(|r| &r.entry.detail),
        &constant("applied"),
        &none_text,
        &vec![received_at; batch.len()],
        &none_int,
    ];
    let casts: Vec<String> = TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{}[]", i + 1, t.name()))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({COLUMNS}) SELECT * FROM unnest({})",
        casts.join(", ")
    );
    let mut tx = client.transaction()?;
    tx.execute(sql.as_str(), &columns)?;
    tx.commit()?;
    Ok(())
}

fn copy_batch(
    client: &mut postgres::Client,
    table: &str,
    batch: &[Row],
    received_at: &(dyn ToSql + Sync),
) -> Result<(), LoadError> {
    let mut tx = client.transaction()?;
    let sink = tx.copy_in(&format!(
        "COPY {table} ({COLUMNS}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, &TYPES);
    for row in batch {
        writer.write(&row.values(received_at))?;
    }
    writer.finish()?;
    tx.commit()?;
    Ok(())
}
