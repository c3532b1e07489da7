//! The PostgreSQL schema, one migration per entry, as on SQLite: the table
//! `schema_version` records how many have run. Never edit a released
//! migration: append one.
//!
//! The tables are SQLite's final schema (`crate::sqlite::schema`, all its
//! migrations applied) with the same names, columns and bounds, so a
//! SQLite central copies row for row (`pos-central migrate`): times stay
//! RFC 3339 text, ids and hashes bytes, integers 64-bit. What differs:
//!
//! - the conflict collapse is a unique index and `INSERT … ON CONFLICT`
//!   (`intake`), not a trigger; the index hashes `detail` (md5) so a long
//!   detail stays within a B-tree entry, and treats NULLs as equal, as
//!   SQLite's `IS` did;
//! - `tier_history` orders by an identity column where SQLite had rowid;
//! - `account_locks` holds the rows the locking scheme locks (one per
//!   member or card name), `COLLATE "C"` so PostgreSQL sorts names as Rust
//!   does.

use postgres::Client;

use crate::error::CentralError;

/// A lock key only the migration takes: two instances starting at once
/// migrate one after the other.
const MIGRATION_LOCK: i64 = 0x706f_735f_6d69_6772; // "pos_migr"

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('rev', 0);
CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    token_hash BYTEA NOT NULL UNIQUE,
    last_seq BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_hash BYTEA NOT NULL,
    last_contact TEXT,
    created_at TEXT NOT NULL,
    last_used_ms BIGINT,
    revoked_at TEXT,
    previous_token_hash BYTEA,
    previous_valid_until_ms BIGINT
);
CREATE INDEX terminals_previous_token ON terminals (previous_token_hash)
    WHERE previous_token_hash IS NOT NULL;
-- Central's pseudo-terminal for adjustments; nobody holds a preimage of
-- its token hash, and authentication refuses the id.
INSERT INTO terminals (id, token_hash, last_seq, last_hash, created_at)
VALUES ('@central', sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')),
        0, '\x0000000000000000000000000000000000000000000000000000000000000000',
        to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
-- Every seq a terminal consumed, including rejected and duplicate ones.
CREATE TABLE entries (
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    seq BIGINT NOT NULL,
    entry_id BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    prev_hash BYTEA,
    kind TEXT,
    program TEXT,
    member TEXT,
    credited_member TEXT,
    points BIGINT,
    sale_id TEXT,
    return_id TEXT,
    rules_version BIGINT,
    occurred_at TEXT,
    detail TEXT,
    status TEXT NOT NULL CHECK (status IN ('applied', 'overdraft', 'rejected', 'duplicate')),
    reason TEXT,
    received_at TEXT NOT NULL,
    credited BIGINT,
    PRIMARY KEY (terminal_id, seq)
);
-- Entry ids count once per terminal.
CREATE UNIQUE INDEX entries_counted_id ON entries (terminal_id, entry_id)
    WHERE status IN ('applied', 'overdraft');
CREATE INDEX entries_credited_member ON entries (credited_member);
CREATE INDEX entries_sale ON entries (terminal_id, sale_id, program);
CREATE INDEX entries_member_day ON entries (credited_member, program, substr(occurred_at, 1, 10));
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    birthday TEXT,
    blocked BOOLEAN NOT NULL DEFAULT false,
    tiers TEXT NOT NULL DEFAULT '{}',
    rev BIGINT NOT NULL
);
CREATE INDEX members_rev ON members (rev);
CREATE TABLE cards (
    card TEXT PRIMARY KEY,
    member TEXT NOT NULL REFERENCES members(id)
);
CREATE INDEX cards_member ON cards (member);
-- A balance is kept by Rust's checked arithmetic and bounded by ±2^53
-- (BALANCE_ABS_MAX); `opening` stays as imported.
CREATE TABLE balances (
    member TEXT NOT NULL,
    program TEXT NOT NULL,
    opening BIGINT NOT NULL DEFAULT 0
        CHECK (opening BETWEEN -9007199254740992 AND 9007199254740992),
    balance BIGINT NOT NULL DEFAULT 0
        CHECK (balance BETWEEN -9007199254740992 AND 9007199254740992),
    PRIMARY KEY (member, program)
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT,
    price TEXT NOT NULL,
    rev BIGINT NOT NULL
);
CREATE INDEX products_rev ON products (rev);
CREATE TABLE bundles (
    version BIGINT PRIMARY KEY CHECK (version >= 0),
    format TEXT NOT NULL,
    bytes BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    published_at TEXT NOT NULL
);
CREATE TABLE programs (id TEXT PRIMARY KEY, first_version BIGINT NOT NULL);
CREATE TABLE bundle_programs (
    version BIGINT NOT NULL REFERENCES bundles(version),
    program TEXT NOT NULL,
    PRIMARY KEY (version, program)
);
CREATE TABLE holds (
    terminal_id TEXT NOT NULL,
    sale_id TEXT NOT NULL,
    program TEXT NOT NULL,
    member TEXT NOT NULL,
    points BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (terminal_id, sale_id, program)
);
CREATE INDEX holds_open ON holds (member, program) WHERE state = 'open';
CREATE INDEX holds_terminal_open ON holds (terminal_id) WHERE state = 'open';
CREATE INDEX holds_expiry ON holds (expires_at);
CREATE TABLE conflicts (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    seq BIGINT,
    entry_id BYTEA,
    member TEXT,
    program TEXT,
    shortfall BIGINT,
    detail TEXT NOT NULL,
    at TEXT NOT NULL,
    count BIGINT NOT NULL DEFAULT 1 CHECK (count >= 1),
    last_at TEXT
);
CREATE UNIQUE INDEX conflicts_repeat ON conflicts (terminal_id, kind, member, program, md5(detail))
    NULLS NOT DISTINCT;
CREATE TABLE tier_history (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    member TEXT NOT NULL,
    program TEXT NOT NULL,
    tier TEXT,
    since TEXT NOT NULL
);
CREATE INDEX tier_history_member ON tier_history (member, program, since);
CREATE TABLE account_locks (name TEXT COLLATE "C" PRIMARY KEY);
"#,
    // 2: the fleet view (docs/sync-v2.md §8), as SQLite's migration 7.
    r#"
CREATE TABLE terminal_reports (
    terminal_id TEXT PRIMARY KEY REFERENCES terminals(id),
    report TEXT NOT NULL CHECK (length(report) <= 65536)
);
"#,
    // 3: orders and returns of other channels, as SQLite's migration 8.
    r#"
CREATE TABLE channel_orders (
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    order_id TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    answer TEXT NOT NULL,
    member TEXT NOT NULL,
    sale TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (terminal_id, order_id)
);
CREATE TABLE channel_returns (
    terminal_id TEXT NOT NULL,
    return_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (terminal_id, return_id),
    FOREIGN KEY (terminal_id, order_id) REFERENCES channel_orders (terminal_id, order_id)
);
"#,
];

/// Migrates the schema in one transaction, under a lock only migrations
/// take.
pub(super) fn migrate(client: &mut Client) -> Result<(), CentralError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INT NOT NULL)")?;
    let done: Option<i32> = tx
        .query_opt("SELECT version FROM schema_version", &[])?
        .map(|r| r.try_get(0))
        .transpose()?;
    let done = done.map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX));
    if done > MIGRATIONS.len() {
        return Err(CentralError::Corrupt(format!(
            "database schema version {done} is newer than this program ({})",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[done..] {
        tx.batch_execute(sql)?;
    }
    let version = MIGRATIONS.len() as i32;
    tx.execute("DELETE FROM schema_version", &[])?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&version],
    )?;
    tx.commit()?;
    Ok(())
}
