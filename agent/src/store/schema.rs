//! Opening the database: recognising our own file, refusing anything else
//! untouched, applying the pragmas (in one place) and the migrations (in one
//! transaction).
//!
//! Order matters: every check runs on a connection that has not written
//! anything, so a foreign, corrupted or newer file is refused byte for byte
//! unchanged. Only then are pragmas that write (WAL) applied.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::store::error::{StoreError, StoreResult};

/// `PRAGMA application_id` of a pos-agent store ("POSA" in ASCII): lets us
/// recognise our own file and refuse a foreign SQLite database.
pub const APPLICATION_ID: i32 = 0x504F_5341;

/// How long a connection waits for a lock before SQLITE_BUSY. Only the
/// writer writes, so waits are short (a checkpoint, or an external
/// `sqlite3` shell); 5 s rides those out without hanging a request forever.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The 16-byte header every SQLite 3 file starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Smallest possible SQLite file: the 100-byte database header.
const SQLITE_HEADER_BYTES: u64 = 100;

/// Migrations, in order; migration `i` moves `user_version` from `i` to
/// `i + 1`. Never edit a released migration: append a new one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("initial schema", MIGRATION_1),
    ("signed rules bundles", MIGRATION_2),
    ("central's corrections", MIGRATION_3),
];

/// The schema version this build writes.
pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Every table a pos-agent store may hold (across all versions). A table
/// not listed means the file is someone else's.
const KNOWN_TABLES: &[&str] = &[
    "meta",
    "migrations",
    "rules",
    "members",
    "member_cards",
    "member_programs",
    "catalog",
    "sales",
    "sale_lines",
    "sale_redemptions",
    "returns",
    "return_lines",
    "ledger",
    "ledger_superseded",
    "rebases",
    "dead_letters",
    "sync_state",
    "ledger_credited",
];

const MIGRATION_1: &str = r#"
-- Facts about this database: which terminal's ledger it holds.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One row per applied migration, next to PRAGMA user_version, so an
-- operator can see when the schema moved.
CREATE TABLE migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
) STRICT;

-- Every rules bundle version ever cached: returns recompute with the
-- sale's own version.
CREATE TABLE rules (
    version     INTEGER PRIMARY KEY,
    bundle      TEXT NOT NULL,      -- JSON
    source      TEXT NOT NULL,      -- 'import:<file>' or 'central'
    received_at TEXT NOT NULL
) STRICT;

-- Member cache (central -> register).
CREATE TABLE members (
    id         TEXT PRIMARY KEY,
    birthday   TEXT,
    blocked    INTEGER NOT NULL CHECK (blocked IN (0, 1)),
    fetched_at TEXT NOT NULL
) STRICT;

CREATE TABLE member_cards (
    card      TEXT PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE
) STRICT;
CREATE INDEX member_cards_member ON member_cards(member_id);

CREATE TABLE member_programs (
    member_id TEXT NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    program   TEXT NOT NULL,
    tier      TEXT,
    available INTEGER NOT NULL,
    pending   INTEGER NOT NULL,
    PRIMARY KEY (member_id, program)
) STRICT;

-- Catalog cache (central -> register).
CREATE TABLE catalog (
    sku        TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    category   TEXT,
    price      TEXT NOT NULL,       -- decimal string
    fetched_at TEXT NOT NULL
) STRICT;

-- Committed sales. `request` is the canonical JSON of the parsed request
-- (idempotency compares it), `basket` the full points basket that was
-- quoted (member snapshot, earned_today, paid_with_points: what returns
-- recompute with), `answer` the exact bytes answered.
CREATE TABLE sales (
    sale_id       TEXT PRIMARY KEY,
    request       TEXT NOT NULL,
    basket        TEXT NOT NULL,
    member        TEXT,
    rules_version INTEGER NOT NULL REFERENCES rules(version),
    amount        TEXT NOT NULL,    -- decimal string, all lines
    answer        TEXT NOT NULL,
    committed_at  TEXT NOT NULL
) STRICT;

CREATE TABLE sale_lines (
    sale_id    TEXT NOT NULL REFERENCES sales(sale_id),
    line       INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    category   TEXT,
    qty        TEXT NOT NULL,
    unit_price TEXT NOT NULL,
    discount   TEXT NOT NULL,
    PRIMARY KEY (sale_id, line)
) STRICT;

CREATE TABLE sale_redemptions (
    sale_id TEXT NOT NULL REFERENCES sales(sale_id),
    program TEXT NOT NULL,
    points  INTEGER NOT NULL CHECK (points > 0),
    PRIMARY KEY (sale_id, program)
) STRICT;

CREATE TABLE returns (
    return_id    TEXT PRIMARY KEY,
    sale_id      TEXT NOT NULL REFERENCES sales(sale_id),
    request      TEXT NOT NULL,
    answer       TEXT NOT NULL,
    committed_at TEXT NOT NULL
) STRICT;
CREATE INDEX returns_sale ON returns(sale_id);

CREATE TABLE return_lines (
    return_id TEXT NOT NULL REFERENCES returns(return_id),
    line      INTEGER NOT NULL,
    qty       TEXT NOT NULL,
    PRIMARY KEY (return_id, line)
) STRICT;

-- The ledger (sync spec §1). Append-only: rows are only ever inserted,
-- except that a rebase (seq_reused) moves unsynced rows to new seqs
-- (old seq/hash kept in ledger_superseded, the rebase in `rebases`).
-- `status`: 0 unsynced, 1 synced, 2 dead letter.
-- `local_date` is the date of occurred_at as written (earned_today);
-- `created_unix_ms` the register clock at commit (offline allowance).
CREATE TABLE ledger (
    seq             INTEGER PRIMARY KEY CHECK (seq >= 1),
    entry_id        TEXT NOT NULL UNIQUE,
    terminal_id     TEXT NOT NULL,
    prev_hash       BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB NOT NULL CHECK (length(hash) = 32),
    kind            TEXT NOT NULL,
    program         TEXT NOT NULL,
    member          TEXT NOT NULL,
    points          INTEGER NOT NULL,
    sale_id         TEXT REFERENCES sales(sale_id),
    return_id       TEXT REFERENCES returns(return_id),
    rules_version   INTEGER NOT NULL,
    occurred_at     TEXT NOT NULL,
    detail          TEXT NOT NULL,
    local_date      TEXT NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    status          INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2))
) STRICT;
-- Covering indexes for the per-sale reads (earned_today, balances), so a
-- member with many entries costs index entries, not table rows.
CREATE INDEX ledger_member_date ON ledger(member, local_date, kind, program, points);
CREATE INDEX ledger_member_status ON ledger(member, status, program, points);
CREATE INDEX ledger_sale ON ledger(sale_id);
CREATE INDEX ledger_status_seq ON ledger(status, seq);

-- Each seq_reused rebase: the chain continues after the server's entry
-- `server_high` (hash `server_hash`) instead of after local `after_seq`.
-- `db verify` resumes the chain there.
CREATE TABLE rebases (
    id          INTEGER PRIMARY KEY,
    after_seq   INTEGER NOT NULL,   -- last local entry kept as it was
    server_high INTEGER NOT NULL,
    server_hash BLOB NOT NULL CHECK (length(server_hash) = 32),
    moved       INTEGER NOT NULL,
    at          TEXT NOT NULL
) STRICT;

-- Old versions of entries re-numbered by a rebase, for audit.
CREATE TABLE ledger_superseded (
    rebase_id INTEGER NOT NULL REFERENCES rebases(id),
    old_seq   INTEGER NOT NULL,
    new_seq   INTEGER NOT NULL,
    entry_id  TEXT NOT NULL,
    old_hash  BLOB NOT NULL,
    PRIMARY KEY (rebase_id, old_seq)
) STRICT;

-- Entries central rejected, with its reason (status = 2 in ledger).
CREATE TABLE dead_letters (
    seq    INTEGER PRIMARY KEY REFERENCES ledger(seq),
    reason TEXT NOT NULL,
    at     TEXT NOT NULL
) STRICT;

-- Sync cursors and times, by name (see store::sync for the names).
CREATE TABLE sync_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
"#;

/// Every rules bundle keeps the bytes, format and Ed25519 signature exactly
/// as central sent them, so each load can verify them again
/// (`docs/signed-rules.md`). Rows cached before this migration keep NULLs:
/// they are unsigned, and a register with `[central]` does not use them
/// until central's signed bytes complete them.
const MIGRATION_2: &str = r#"
ALTER TABLE rules ADD COLUMN signed_bytes BLOB;
ALTER TABLE rules ADD COLUMN signed_format TEXT
    CHECK (signed_format IS NULL OR signed_format IN ('json', 'toml'));
ALTER TABLE rules ADD COLUMN signature BLOB
    CHECK (signature IS NULL OR length(signature) = 64);
"#;

/// What central credited for an entry when it corrected the register's
/// figure (protocol v2's `corrected {credited, reason}`,
/// `docs/sync-v2.md` §3–§4). Beside the ledger, not in it: the entry and its
/// hash stay as the register wrote them. Keyed by entry id, which a rebase
/// never changes (a corrected entry is synced, and only unsynced entries
/// are renumbered).
const MIGRATION_3: &str = r#"
CREATE TABLE ledger_credited (
    entry_id TEXT PRIMARY KEY REFERENCES ledger(entry_id),
    credited INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    at       TEXT NOT NULL
) STRICT;
"#;

/// Prepared statements kept per connection (see [`apply_pragmas`]).
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// Applies the connection pragmas. The ONE place they are set; every
/// connection (writer and readers) goes through here.
pub fn apply_pragmas(conn: &Connection, max_page_count: Option<u64>) -> StoreResult<()> {
    // Wait instead of failing at once when another connection holds a lock
    // (a checkpoint, an operator's sqlite3 shell).
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // A sale commit and an upload batch each run more distinct cached
    // statements than rusqlite's default cache of 16 holds; evicted ones
    // would be parsed again on every sale and every document.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // WAL: readers never block the writer nor the writer readers, and a
    // commit is one append + fsync of the WAL instead of two files.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Damaged(format!(
            "journal_mode WAL refused (got {mode})"
        )));
    }
    // FULL: the WAL is fsynced at every commit, so an acknowledged sale
    // survives power loss, not just a process crash (NORMAL would not).
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Enforce the REFERENCES clauses: no ledger entry for a sale that is
    // not there, no line of a missing sale.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Optional cap on the file size, in pages: a register's disk is shared
    // with the POS; also how tests provoke SQLITE_FULL.
    if let Some(pages) = max_page_count {
        let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get(0)
        })?;
    }
    Ok(())
}

/// What the checks found in an existing file.
enum Existing {
    /// No file, or an empty one: create the schema.
    Fresh,
    /// Our own store at this schema version.
    Ours { version: i64 },
}

/// Checks `path` without writing to it. Refuses a non-SQLite file, a
/// corrupted one, a foreign SQLite database and a newer schema.
fn inspect(path: &Path) -> StoreResult<Existing> {
    let Some(len) = sqlite_file_len(path)? else {
        return Ok(Existing::Fresh);
    };
    // Read-write without CREATE: a read-only connection cannot open a WAL
    // database whose -shm is missing (after a crash), and opening does not
    // write: only our statements would, and we issue none that write here.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| corrupt(path, e))?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
        .map_err(|e| corrupt(path, e))?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|e| corrupt(path, e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| corrupt(path, e))?;
    let tables = table_names(&conn).map_err(|e| corrupt(path, e))?;
    if app_id != APPLICATION_ID && app_id == 0 && version == 0 && tables.is_empty() {
        // An empty SQLite file (e.g. made by `sqlite3 agent.db ""`).
        return Ok(Existing::Fresh);
    }
    check_ours(path, app_id, version, tables)?;
    check_pages(&conn, path, len)?;
    Ok(Existing::Ours { version })
}

/// The file's length when it holds something, `None` when it is absent or
/// empty; refuses a file that does not start with the SQLite header.
fn sqlite_file_len(path: &Path) -> StoreResult<Option<u64>> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if len == 0 {
        return Ok(None);
    }
    let mut header = [0u8; 16];
    let mut file = std::fs::File::open(path).map_err(io)?;
    if len < SQLITE_HEADER_BYTES || file.read_exact(&mut header).is_err() || &header != SQLITE_MAGIC
    {
        return Err(StoreError::NotSqlite {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(len))
}

/// Our application id, a schema no newer than this build's, and no table
/// this build does not know.
fn check_ours(path: &Path, app_id: i32, version: i64, tables: Vec<String>) -> StoreResult<()> {
    if app_id != APPLICATION_ID {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            detail: format!(
                "application_id is {app_id:#x}, not pos-agent's {APPLICATION_ID:#x}; tables: {}",
                preview(&tables)
            ),
        });
    }
    if version > schema_version() {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: schema_version(),
        });
    }
    let unknown: Vec<String> = tables
        .into_iter()
        .filter(|t| !KNOWN_TABLES.contains(&t.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            detail: format!("unknown tables: {}", preview(&unknown)),
        });
    }
    Ok(())
}

/// quick_check reads every page: catches a damaged file before we write
/// to it and make things worse. O(file size), once per start: measured
/// 0.6 s for 817 MB with the page cache warm, 16 s cold on a slow disk,
/// so its time is logged for whoever wonders why a start was slow.
fn check_pages(conn: &Connection, path: &Path, len: u64) -> StoreResult<()> {
    let started = std::time::Instant::now();
    let messages = quick_check(conn).map_err(|e| corrupt(path, e))?;
    tracing::info!(
        message = "Store checked (quick_check).",
        path = %path.display(),
        bytes = len,
        elapsed_ms = started.elapsed().as_millis()
    );
    if messages.first().map(String::as_str) != Some("ok") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: messages.join("; "),
        });
    }
    Ok(())
}

fn corrupt(path: &Path, error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotSqlite {
            path: path.to_path_buf(),
        },
        _ => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: error.to_string(),
        },
    }
}

fn preview(names: &[String]) -> String {
    const SHOWN_MAX: usize = 5;
    let mut text = names
        .iter()
        .take(SHOWN_MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN_MAX {
        text.push_str(&format!(" (and {} more)", names.len() - SHOWN_MAX));
    }
    if text.is_empty() {
        text.push_str("none");
    }
    text
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// How many problem lines a check reports: the first few name the damage.
pub const CHECK_MESSAGES_MAX: usize = 20;

/// `PRAGMA quick_check` lines (first [`CHECK_MESSAGES_MAX`]).
pub fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    check(conn, "quick_check")
}

/// `PRAGMA integrity_check` lines (first [`CHECK_MESSAGES_MAX`]).
pub fn integrity_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    check(conn, "integrity_check")
}

fn check(conn: &Connection, pragma: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({CHECK_MESSAGES_MAX})"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Opens (creating if need be) the writer connection of the store at
/// `path` for `terminal_id`: checks, pragmas, migrations.
pub fn open_writer(
    path: &Path,
    terminal_id: &str,
    max_page_count: Option<u64>,
    now_rfc3339: &str,
) -> StoreResult<Connection> {
    let existing = inspect(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    apply_pragmas(&conn, max_page_count)?;
    let from = match existing {
        Existing::Fresh => 0,
        Existing::Ours { version } => version,
    };
    migrate(&conn, from, now_rfc3339)?;
    check_terminal(&conn, path, terminal_id)?;
    Ok(conn)
}

/// Opens a reader connection on an already opened store.
pub fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    apply_pragmas(&conn, None)?;
    // Readers never write: refuse it at the SQLite level too.
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Applies the migrations after `from` in ONE transaction: either the
/// schema moves to the newest version completely or not at all.
fn migrate(conn: &Connection, from: i64, now_rfc3339: &str) -> StoreResult<()> {
    let target = schema_version();
    if from >= target {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> StoreResult<()> {
        let start = usize::try_from(from)
            .map_err(|_| StoreError::Damaged(format!("negative user_version {from}")))?;
        for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(start) {
            conn.execute_batch(sql)?;
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![index as i64 + 1, name, now_rfc3339],
            )?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        conn.pragma_update(None, "user_version", target)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            conn.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Records the terminal id on first use and refuses another one later: a
/// ledger chain belongs to one terminal.
fn check_terminal(conn: &Connection, path: &Path, terminal_id: &str) -> StoreResult<()> {
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'terminal_id'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match stored {
        Some(stored) if stored != terminal_id => Err(StoreError::TerminalMismatch {
            path: path.to_path_buf(),
            stored,
            configured: terminal_id.to_string(),
        }),
        Some(_) => Ok(()),
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('terminal_id', ?1)",
                [terminal_id],
            )?;
            Ok(())
        }
    }
}

/// Opens an existing store for `db verify`, with the same checks as the
/// writer but never creating or migrating anything.
pub fn open_for_verify(path: &Path) -> StoreResult<Connection> {
    match inspect(path)? {
        Existing::Fresh => Err(StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no pos-agent database here"),
        }),
        Existing::Ours { .. } => open_reader(path),
    }
}
