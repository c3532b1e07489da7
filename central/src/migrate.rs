//! `pos-central migrate --to postgres://…`: a SQLite central (a pilot)
//! copied into PostgreSQL (a chain), then verified, so the chain goes on
//! with every terminal's chain, balance, hold and conflict.
//!
//! The copy reads SQLite in one read transaction (one consistent moment:
//! stop `serve` first, or what registers upload after that moment stays
//! behind) and writes PostgreSQL in one transaction, table by table with
//! `COPY … FROM STDIN` in text format, so the server converts each value
//! to its column's type. The PostgreSQL schema has SQLite's tables,
//! columns and bounds (`crate::postgres::schema`), so rows copy one for
//! one. The target must be a fresh central: no terminal, no entry.
//!
//! Verification, in the same PostgreSQL transaction before it commits:
//! every table's row count, every (member, program) balance, and every
//! terminal's chain head (seq and hash) equal the source's; a difference
//! rolls the whole copy back and names what differed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::error::CentralError;

/// The tables, parents before children (foreign keys), and the columns
/// copied. `tier_history` is copied in SQLite's rowid order without
/// PostgreSQL's identity column, which then numbers it in the same order;
/// `conflicts` keeps its ids (the sequence is moved past them).
const TABLES: &[(&str, &[&str], &str)] = &[
    ("meta", &["key", "value"], "key"),
    (
        "terminals",
        &[
            "id",
            "token_hash",
            "last_seq",
            "last_hash",
            "last_contact",
            "created_at",
            "last_used_ms",
            "revoked_at",
            "previous_token_hash",
            "previous_valid_until_ms",
        ],
        "id",
    ),
    ("programs", &["id", "first_version"], "id"),
    (
        "members",
        &["id", "birthday", "blocked", "tiers", "rev"],
        "id",
    ),
    ("cards", &["card", "member"], "card"),
    (
        "balances",
        &["member", "program", "opening", "balance"],
        "member, program",
    ),
    (
        "tier_history",
        &["member", "program", "tier", "since"],
        "rowid",
    ),
    (
        "bundles",
        &["version", "format", "bytes", "signature", "published_at"],
        "version",
    ),
    (
        "bundle_programs",
        &["version", "program"],
        "version, program",
    ),
    (
        "holds",
        &[
            "terminal_id",
            "sale_id",
            "program",
            "member",
            "points",
            "state",
            "expires_at",
        ],
        "terminal_id, sale_id, program",
    ),
    (
        "products",
        &["sku", "name", "category", "price", "rev"],
        "sku",
    ),
    (
        "entries",
        &[
            "terminal_id",
            "seq",
            "entry_id",
            "hash",
            "prev_hash",
            "kind",
            "program",
            "member",
            "credited_member",
            "points",
            "sale_id",
            "return_id",
            "rules_version",
            "occurred_at",
            "detail",
            "status",
            "reason",
            "received_at",
            "credited",
        ],
        "terminal_id, seq",
    ),
    (
        "conflicts",
        &[
            "id",
            "kind",
            "terminal_id",
            "seq",
            "entry_id",
            "member",
            "program",
            "shortfall",
            "detail",
            "at",
            "count",
            "last_at",
        ],
        "id",
    ),
    (
        "terminal_reports",
        &["terminal_id", "report"],
        "terminal_id",
    ),
    (
        "channel_orders",
        &[
            "terminal_id",
            "order_id",
            "request_hash",
            "answer",
            "member",
            "sale",
            "state",
            "created_at",
        ],
        "terminal_id, order_id",
    ),
    (
        "channel_returns",
        &[
            "terminal_id",
            "return_id",
            "order_id",
            "request_hash",
            "answer",
            "created_at",
        ],
        "terminal_id, return_id",
    ),
];

/// Rows buffered before they are sent on to the server.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// What was copied and checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Rows per table, in copy order.
    pub rows: Vec<(String, u64)>,
    pub balances_checked: u64,
    pub terminals_checked: u64,
}

impl std::fmt::Display for Migrated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (table, n) in &self.rows {
            writeln!(f, "{table:<18} {n:>10} rows")?;
        }
        write!(
            f,
            "verified: row counts, {} balances, {} terminal chain heads",
            self.balances_checked, self.terminals_checked
        )
    }
}

fn pg_err(what: &str, e: postgres::Error) -> CentralError {
    CentralError::Unavailable(format!("PostgreSQL, {what}: {e}"))
}

/// Copies the SQLite central at `source` into the empty PostgreSQL
/// database at `url` (its schema made first), and verifies the copy.
pub fn migrate_to(source: &Path, url: &str) -> Result<Migrated, CentralError> {
    // Opening the backend migrates its schema (and checks the URL, named
    // without its password in any error).
    drop(crate::postgres::PgStorage::open(url, 1)?);
    crate::postgres::off_runtime(|| {
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
            CentralError::Unavailable(format!(
                "connecting to {}: {e}",
                crate::postgres::redacted(url)
            ))
        })?;
        migrate(source, &mut client)
    })
}

/// Copies the SQLite central at `source` into the migrated, empty
/// PostgreSQL central `target` connects to, and verifies the copy; nothing
/// is committed unless everything matched.
pub fn migrate(source: &Path, target: &mut postgres::Client) -> Result<Migrated, CentralError> {
    let mut sqlite = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| CentralError::Corrupt(format!("opening {}: {e}", source.display())))?;
    let snapshot = sqlite.transaction()?;
    let mut tx = target
        .transaction()
        .map_err(|e| pg_err("starting the PostgreSQL transaction", e))?;
    refuse_unless_fresh(&mut tx)?;
    // The fresh schema's own rows (its `meta` counter, its pseudo-terminal)
    // give way to the source's.
    tx.batch_execute("DELETE FROM meta; DELETE FROM terminals;")
        .map_err(|e| pg_err("clearing the fresh schema's rows", e))?;
    let mut migrated = Migrated::default();
    for (table, columns, order) in TABLES {
        let n = copy_table(&snapshot, &mut tx, table, columns, order)?;
        migrated.rows.push((table.to_string(), n));
    }
    tx.batch_execute(
        "SELECT setval(pg_get_serial_sequence('conflicts', 'id'),
                       GREATEST((SELECT COALESCE(MAX(id), 0) FROM conflicts), 1),
                       (SELECT COUNT(*) > 0 FROM conflicts))",
    )
    .map_err(|e| pg_err("moving the conflicts id sequence", e))?;
    verify(&snapshot, &mut tx, &mut migrated)?;
    tx.commit().map_err(|e| pg_err("committing the copy", e))?;
    Ok(migrated)
}

/// A target with a terminal of its own or an entry is a central already in
/// use: merging two centrals is not a migration.
fn refuse_unless_fresh(tx: &mut postgres::Transaction<'_>) -> Result<(), CentralError> {
    let row = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM terminals WHERE id != '@central'),
                    (SELECT COUNT(*) FROM entries), (SELECT COUNT(*) FROM members)",
            &[],
        )
        .map_err(|e| pg_err("reading the target", e))?;
    let (terminals, entries, members): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if terminals + entries + members > 0 {
        return Err(CentralError::Conflict(format!(
            "the target already holds {terminals} terminals, {entries} entries and {members} \
             members: migrate into a new, empty database"
        )));
    }
    Ok(())
}

fn copy_table(
    source: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
    columns: &[&str],
    order: &str,
) -> Result<u64, CentralError> {
    let list = columns.join(", ");
    let mut stmt = source.prepare(&format!("SELECT {list} FROM {table} ORDER BY {order}"))?;
    let mut rows = stmt.query([])?;
    let mut writer = tx
        .copy_in(&format!("COPY {table} ({list}) FROM STDIN"))
        .map_err(|e| pg_err(&format!("starting the copy of {table}"), e))?;
    let mut buf = String::new();
    let mut n = 0u64;
    while let Some(row) = rows.next()? {
        for i in 0..columns.len() {
            if i > 0 {
                buf.push('\t');
            }
            push_value(&mut buf, row.get_ref(i)?);
        }
        buf.push('\n');
        n += 1;
        if buf.len() >= COPY_CHUNK_BYTES {
            writer
                .write_all(buf.as_bytes())
                .map_err(|e| CentralError::io(format!("copying {table}"), e))?;
            buf.clear();
        }
    }
    writer
        .write_all(buf.as_bytes())
        .map_err(|e| CentralError::io(format!("copying {table}"), e))?;
    writer
        .finish()
        .map_err(|e| pg_err(&format!("copying {table}"), e))?;
    Ok(n)
}

/// One value in COPY's text format: `\N` for NULL, bytes as `\\x` + hex,
/// text with backslash, tab, newline and carriage return escaped.
fn push_value(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("\\N"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        // No column of central's schema is REAL; a value that is one is
        // written exactly as SQLite holds it and the server judges it.
        ValueRef::Real(r) => {
            let _ = write!(out, "{r}");
        }
        ValueRef::Text(bytes) => escape_text(out, &String::from_utf8_lossy(bytes)),
        ValueRef::Blob(bytes) => {
            out.push_str("\\\\x");
            out.push_str(&hex::encode(bytes));
        }
    }
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

fn verify(
    source: &rusqlite::Transaction<'_>,
    tx: &mut postgres::Transaction<'_>,
    migrated: &mut Migrated,
) -> Result<(), CentralError> {
    for (table, copied) in &migrated.rows {
        let count: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
            .map_err(|e| pg_err(&format!("counting {table}"), e))?
            .get(0);
        if u64::try_from(count).ok() != Some(*copied) {
            return Err(mismatch(format!(
                "{table}: {copied} rows copied, {count} in PostgreSQL"
            )));
        }
    }
    let mut balances: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut stmt = source.prepare("SELECT member, program, balance FROM balances")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        balances.insert((r.get(0)?, r.get(1)?), r.get(2)?);
    }
    let target = tx
        .query("SELECT member, program, balance FROM balances", &[])
        .map_err(|e| pg_err("reading the copied balances", e))?;
    for row in &target {
        let key: (String, String) = (row.get(0), row.get(1));
        let balance: i64 = row.get(2);
        if balances.get(&key) != Some(&balance) {
            return Err(mismatch(format!(
                "the balance of {} in {} is {balance} in PostgreSQL, {:?} in SQLite",
                key.0,
                key.1,
                balances.get(&key)
            )));
        }
    }
    migrated.balances_checked = target.len() as u64;
    let mut heads: BTreeMap<String, (i64, Vec<u8>)> = BTreeMap::new();
    let mut stmt = source.prepare("SELECT id, last_seq, last_hash FROM terminals")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        heads.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
    }
    let target = tx
        .query("SELECT id, last_seq, last_hash FROM terminals", &[])
        .map_err(|e| pg_err("reading the copied terminals", e))?;
    for row in &target {
        let id: String = row.get(0);
        let head: (i64, Vec<u8>) = (row.get(1), row.get(2));
        if heads.get(&id) != Some(&head) {
            return Err(mismatch(format!(
                "terminal {id}'s chain head differs (seq {} in PostgreSQL)",
                head.0
            )));
        }
    }
    migrated.terminals_checked = target.len() as u64;
    Ok(())
}

fn mismatch(what: String) -> CentralError {
    CentralError::Corrupt(format!(
        "the copy does not match its source, nothing was committed: {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let mut out = String::new();
        push_value(&mut out, ValueRef::Text(b"a\\b\tc\nd\re"));
        assert_eq!(out, "a\\\\b\\tc\\nd\\re");
        let mut out = String::new();
        push_value(&mut out, ValueRef::Blob(&[0x00, 0xab]));
        assert_eq!(out, "\\\\x00ab");
        let mut out = String::new();
        push_value(&mut out, ValueRef::Null);
        assert_eq!(out, "\\N");
    }
}
