//! The schema and the connection settings central's database runs with.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::CentralError;

/// How long a writer waits for a lock held by another connection (the CLI's
/// `terminal add` while `serve` runs) before failing: 5 s.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The schema, one migration per entry; `PRAGMA user_version` records how
/// many have run. Never edit a released migration: append one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('rev', 0);
CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL UNIQUE,
    last_seq INTEGER NOT NULL DEFAULT 0,
    last_hash BLOB NOT NULL,
    last_contact TEXT,
    created_at TEXT NOT NULL
);
-- Every seq a terminal consumed, including rejected and duplicate ones, so
-- the chain is complete; rows are never updated.
CREATE TABLE entries (
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    seq INTEGER NOT NULL,
    entry_id BLOB NOT NULL,
    hash BLOB NOT NULL,
    prev_hash BLOB,
    kind TEXT,
    program TEXT,
    member TEXT,
    credited_member TEXT,
    points INTEGER,
    sale_id TEXT,
    return_id TEXT,
    rules_version INTEGER,
    occurred_at TEXT,
    detail TEXT,
    status TEXT NOT NULL CHECK (status IN ('applied', 'overdraft', 'rejected', 'duplicate')),
    reason TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (terminal_id, seq)
);
CREATE INDEX entries_entry_id ON entries (entry_id);
CREATE INDEX entries_credited_member ON entries (credited_member);
CREATE TABLE members (
    id TEXT PRIMARY KEY,
    birthday TEXT,
    blocked INTEGER NOT NULL DEFAULT 0,
    tiers TEXT NOT NULL DEFAULT '{}',
    rev INTEGER NOT NULL
);
CREATE INDEX members_rev ON members (rev);
CREATE TABLE cards (
    card TEXT PRIMARY KEY,
    member TEXT NOT NULL REFERENCES members(id)
);
CREATE INDEX cards_member ON cards (member);
-- balance = opening (imported) + applied (sum of applied ledger points).
CREATE TABLE balances (
    member TEXT NOT NULL,
    program TEXT NOT NULL,
    opening INTEGER NOT NULL DEFAULT 0,
    applied INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (member, program)
);
CREATE TABLE products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT,
    price TEXT NOT NULL,
    rev INTEGER NOT NULL
);
CREATE INDEX products_rev ON products (rev);
CREATE TABLE bundles (
    version INTEGER PRIMARY KEY,
    format TEXT NOT NULL,
    bytes BLOB NOT NULL,
    signature BLOB NOT NULL,
    published_at TEXT NOT NULL
);
CREATE TABLE programs (id TEXT PRIMARY KEY, first_version INTEGER NOT NULL);
CREATE TABLE holds (
    terminal_id TEXT NOT NULL,
    sale_id TEXT NOT NULL,
    program TEXT NOT NULL,
    member TEXT NOT NULL,
    points INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'settled', 'released')),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (terminal_id, sale_id, program)
);
CREATE INDEX holds_open ON holds (member, program) WHERE state = 'open';
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    seq INTEGER,
    entry_id BLOB,
    member TEXT,
    program TEXT,
    shortfall INTEGER,
    detail TEXT NOT NULL,
    at TEXT NOT NULL
);
"#,
    // 2: holds are purged by expiry (HOLD_KEPT_SECS).
    r#"
CREATE INDEX holds_expiry ON holds (expires_at);
"#,
    // 3 (issue 9, admin): token lifecycle, collapsed conflicts, and the
    // pseudo-terminal adjustments are recorded under.
    //
    // Token times are Unix milliseconds: compared on every request, never
    // parsed. `previous_token_hash` is the token a rotation replaced, valid
    // until `previous_valid_until_ms`; a revoked terminal keeps its hashes so
    // its token is answered "revoked", not "unknown".
    //
    // A conflict repeated with the same (terminal, kind, member, program,
    // detail) is one row: the trigger counts the repeat on the row already
    // there and drops the insert, so every writer of `conflicts` collapses
    // without knowing it. `at` stays the first time seen; `last_at`, `seq`,
    // `entry_id` and `shortfall` are the latest repeat's.
    //
    // `@central` owns the administrators' adjustments (`kind = 'adjust'`):
    // its entries chain like a register's, so the ledger, the balances and
    // the member downloads treat them as every other entry. Its token hash
    // is random (nobody holds a preimage) and authentication refuses the id.
    r#"
ALTER TABLE terminals ADD COLUMN last_used_ms INTEGER;
ALTER TABLE terminals ADD COLUMN revoked_at TEXT;
ALTER TABLE terminals ADD COLUMN previous_token_hash BLOB;
ALTER TABLE terminals ADD COLUMN previous_valid_until_ms INTEGER;
CREATE INDEX terminals_previous_token ON terminals (previous_token_hash)
    WHERE previous_token_hash IS NOT NULL;
ALTER TABLE conflicts ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
ALTER TABLE conflicts ADD COLUMN last_at TEXT;
CREATE INDEX conflicts_repeat ON conflicts (terminal_id, kind, member, program);
CREATE TRIGGER conflicts_collapse BEFORE INSERT ON conflicts
WHEN EXISTS (SELECT 1 FROM conflicts c
             WHERE c.terminal_id = NEW.terminal_id AND c.kind = NEW.kind
               AND c.member IS NEW.member AND c.program IS NEW.program
               AND c.detail = NEW.detail)
BEGIN
    UPDATE conflicts SET count = count + 1, last_at = NEW.at, seq = NEW.seq,
                         entry_id = NEW.entry_id, shortfall = NEW.shortfall
    WHERE terminal_id = NEW.terminal_id AND kind = NEW.kind
      AND member IS NEW.member AND program IS NEW.program AND detail = NEW.detail;
    SELECT RAISE(IGNORE);
END;
INSERT INTO terminals (id, token_hash, last_seq, last_hash, created_at)
VALUES ('@central', randomblob(32), 0, zeroblob(32), strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));
"#,
    // 4: verified intake (docs/sync-v2.md §3): the points an entry moved
    // when central corrected them (NULL: the entry's own), its sale's
    // earlier entries by terminal, and every tier a member held since when.
    // Tiers known before the history began count as held from the start.
    r#"
ALTER TABLE entries ADD COLUMN credited INTEGER;
CREATE INDEX entries_sale ON entries (terminal_id, sale_id, program);
CREATE INDEX entries_member_day ON entries (credited_member, program, substr(occurred_at, 1, 10));
CREATE TABLE tier_history (
    member TEXT NOT NULL,
    program TEXT NOT NULL,
    tier TEXT,
    since TEXT NOT NULL
);
CREATE INDEX tier_history_member ON tier_history (member, program, since);
INSERT INTO tier_history (member, program, tier, since)
    SELECT m.id, t.key, t.value, '1970-01-01T00:00:00Z'
    FROM members m, json_each(m.tiers) t WHERE t.value IS NOT NULL;
"#,
    // 5 (issue 9, intake, docs/sync-v2.md §4, §7): a balance is one column kept by
    // Rust's checked arithmetic (crate::apply::add_points) and bounded here
    // by ±BALANCE_ABS_MAX (2^53), so SQL never adds points and can never
    // hold more; `opening` stays as imported, for re-imports. Old rows are
    // clamped to the bounds term by term, without any sum that could
    // overflow. Entry ids count once per terminal: another terminal's entry
    // with the same id is another entry. An entry's program must be in the
    // bundle its rules version names: `bundle_programs` says which are;
    // bundles published before this migration are taken to hold every
    // program published up to their version (what central checked then).
    r#"
CREATE TABLE balances_bounded (
    member TEXT NOT NULL,
    program TEXT NOT NULL,
    opening INTEGER NOT NULL DEFAULT 0 CHECK (typeof(opening) = 'integer'
        AND opening BETWEEN -9007199254740992 AND 9007199254740992),
    balance INTEGER NOT NULL DEFAULT 0 CHECK (typeof(balance) = 'integer'
        AND balance BETWEEN -9007199254740992 AND 9007199254740992),
    PRIMARY KEY (member, program)
);
INSERT INTO balances_bounded (member, program, opening, balance)
SELECT member, program,
       MAX(-9007199254740992, MIN(9007199254740992, CAST(opening AS INTEGER))),
       MAX(-9007199254740992, MIN(9007199254740992,
           MAX(-9007199254740992, MIN(9007199254740992, CAST(opening AS INTEGER)))
         + MAX(-9007199254740992, MIN(9007199254740992, CAST(applied AS INTEGER)))))
FROM balances;
DROP TABLE balances;
ALTER TABLE balances_bounded RENAME TO balances;
DROP INDEX entries_entry_id;
CREATE UNIQUE INDEX entries_counted_id ON entries (terminal_id, entry_id)
    WHERE status IN ('applied', 'overdraft');
CREATE TABLE bundle_programs (
    version INTEGER NOT NULL REFERENCES bundles(version),
    program TEXT NOT NULL,
    PRIMARY KEY (version, program)
);
INSERT INTO bundle_programs (version, program)
SELECT b.version, p.id FROM bundles b JOIN programs p ON p.first_version <= b.version;
"#,
    // 6: the collapse trigger of migration 3 looks a repeat up by its whole
    // key, detail included, so the lookup is one index probe however many
    // conflicts a member has (a register back after days offline records a
    // clock-skew conflict per entry, each with its own detail: without
    // `detail` in the index every insert scanned all of the member's).
    r#"
DROP INDEX conflicts_repeat;
CREATE INDEX conflicts_repeat ON conflicts (terminal_id, kind, member, program, detail);
"#,
    // 7: the fleet view (docs/sync-v2.md §8): each register's newest
    // report, as JSON (a FleetReport), bounded.
    r#"
CREATE TABLE terminal_reports (
    terminal_id TEXT PRIMARY KEY REFERENCES terminals(id),
    report TEXT NOT NULL CHECK (length(report) <= 65536)
);
"#,
    // 8: orders and returns of other channels (docs/channels.md), keyed as
    // they are idempotent: by the channel's pseudo-terminal and the id the
    // channel gave. `sale` is the sale document the order's entries
    // carried (JSON), `state` what its returns took so far (JSON).
    r#"
CREATE TABLE channel_orders (
    terminal_id TEXT NOT NULL REFERENCES terminals(id),
    order_id TEXT NOT NULL,
    request_hash BLOB NOT NULL,
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
    request_hash BLOB NOT NULL,
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (terminal_id, return_id),
    FOREIGN KEY (terminal_id, order_id) REFERENCES channel_orders (terminal_id, order_id)
);
"#,
];

/// Sets the pragmas central relies on and migrates the schema.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), CentralError> {
    // WAL: readers (admin listings) never block the batch writer, and a
    // commit is one sequential append.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a batch acknowledged to a register is on disk even after a
    // power cut; the register will never send those entries again.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The CLI (`terminal add`) may write while `serve` holds the lock:
    // wait rather than fail at once.
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // Off by default in SQLite; we want the REFERENCES to hold.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    migrate(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), CentralError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let done = usize::try_from(done).unwrap_or(usize::MAX);
    if done > MIGRATIONS.len() {
        return Err(CentralError::Corrupt(format!(
            "database schema version {done} is newer than this program ({})",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[done..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}
