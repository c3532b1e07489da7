//! The embedded SQLite backend of [`Storage`].
//!
//! One connection behind a mutex: central's writes are serialised anyway
//! (SQLite has one writer), a batch of 1,000 entries is applied in one
//! transaction in milliseconds, and a single connection keeps the prepared
//! statement cache warm. A PostgreSQL backend would pool instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use pos_sync::protocol::{
    BatchOutcome, CHANGES_PAGE_MAX, CatalogChanges, EntryResult, HoldAnswer, HoldRelease,
    HoldRequest, MemberBalance, MemberChange, MemberChanges, MemberProgramState, ProductChange,
    ProgramBalance, ReceivedBatch, SignedBundle, UploadAnswer,
};
use pos_sync::{Digest32, EntryKind, LedgerEntry};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use crate::error::CentralError;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};
use crate::storage::{
    Conflict, LISTING_ROWS_MAX, LedgerFilter, NewBundle, Storage, StoredEntry, TerminalInfo,
    format_from_name, format_name,
};

/// How long a writer waits for a lock held by another connection (the CLI's
/// `terminal add` while `serve` runs) before failing: 5 s.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Receipt this far from `occurred_at` is a clock-skew conflict (sync spec §5): 24 h.
const CLOCK_SKEW_SECS_MAX: i64 = 24 * 3_600;
/// An online redemption hold lapses after 2 h if no ledger entry settled it
/// and the register did not release it: long enough for a register to sync
/// the sale after a short outage, short enough that an abandoned sale does
/// not lock a member's points for a day.
pub const HOLD_TTL_SECS: i64 = 2 * 3_600;
/// Most points one hold may reserve.
const HOLD_POINTS_MAX: i64 = 1_000_000_000;
/// A hold's row is kept this long after its expiry, whether it lapsed,
/// settled or was released: a record for whoever looks into a disputed
/// redemption. After that it only grows the table, and it is deleted. An
/// expired hold reserves nothing, so deleting it changes no balance.
pub const HOLD_KEPT_SECS: i64 = 7 * 24 * 3_600;
/// Most old hold rows deleted per hold placed: the purge rides on each
/// placement, so its cost per placement stays bounded however long central
/// went without one.
const HOLD_PURGE_ROWS_MAX: i64 = 100;

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
];

pub struct SqliteStorage {
    conn: Mutex<Connection>,
}

fn u64_of(v: i64, what: &str) -> Result<u64, CentralError> {
    u64::try_from(v).map_err(|_| CentralError::Corrupt(format!("{what} is negative: {v}")))
}

fn i64_of(v: u64, what: &str) -> Result<i64, CentralError> {
    i64::try_from(v).map_err(|_| CentralError::Invalid(format!("{what} {v} is too large")))
}

fn digest_of(bytes: Vec<u8>, what: &str) -> Result<Digest32, CentralError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| CentralError::Corrupt(format!("{what} is not 32 bytes")))?;
    Ok(Digest32(arr))
}

fn uuid_of(bytes: Vec<u8>) -> Result<Uuid, CentralError> {
    Uuid::from_slice(&bytes).map_err(|_| CentralError::Corrupt("entry_id is not 16 bytes".into()))
}

/// Points as one member-and-program's state during a batch.
#[derive(Clone, Copy, Debug, Default)]
struct Account {
    opening: i64,
    applied: i64,
    held: i64,
    dirty: bool,
}

impl Account {
    fn available(&self) -> i64 {
        self.opening
            .saturating_add(self.applied)
            .saturating_sub(self.held)
    }
}

/// A conflict waiting to be written at the end of the batch.
struct NewConflict {
    kind: &'static str,
    seq: Option<u64>,
    entry_id: Option<Uuid>,
    member: Option<String>,
    program: Option<String>,
    shortfall: Option<i64>,
    detail: String,
}

impl SqliteStorage {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStorage, CentralError> {
        let conn = Connection::open(path)?;
        Self::setup(conn)
    }

    /// An in-memory database, for tests.
    pub fn open_in_memory() -> Result<SqliteStorage, CentralError> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<SqliteStorage, CentralError> {
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
        migrate(&mut conn)?;
        Ok(SqliteStorage {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction
        // (rusqlite rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
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

fn next_rev(tx: &Transaction<'_>) -> Result<i64, CentralError> {
    Ok(tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'rev' RETURNING value",
        [],
        |r| r.get(0),
    )?)
}

fn resolve_member(tx: &Transaction<'_>, name: &str) -> Result<String, CentralError> {
    let member: Option<String> = tx
        .prepare_cached("SELECT member FROM cards WHERE card = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    Ok(member.unwrap_or_else(|| name.to_string()))
}

fn load_account(
    tx: &Transaction<'_>,
    member: &str,
    program: &str,
    now_secs: i64,
) -> Result<Account, CentralError> {
    let (opening, applied) = tx
        .prepare_cached("SELECT opening, applied FROM balances WHERE member = ?1 AND program = ?2")?
        .query_row([member, program], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    let held: i64 = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(points), 0) FROM holds
             WHERE member = ?1 AND program = ?2 AND state = 'open' AND expires_at > ?3",
        )?
        .query_row(params![member, program, now_secs], |r| r.get(0))?;
    Ok(Account {
        opening,
        applied,
        held,
        dirty: false,
    })
}

/// The balances of every program a member has, for answers and the admin API.
fn member_programs(
    conn: &Connection,
    member: &str,
    now_secs: i64,
) -> Result<Vec<ProgramBalance>, CentralError> {
    let mut stmt = conn.prepare_cached(
        "SELECT b.program, b.opening + b.applied,
                COALESCE((SELECT SUM(h.points) FROM holds h
                          WHERE h.member = b.member AND h.program = b.program
                            AND h.state = 'open' AND h.expires_at > ?2), 0)
         FROM balances b WHERE b.member = ?1 ORDER BY b.program",
    )?;
    let rows = stmt.query_map(params![member, now_secs], |r| {
        let balance: i64 = r.get(1)?;
        let held: i64 = r.get(2)?;
        Ok(ProgramBalance {
            program: r.get(0)?,
            balance,
            available: balance.saturating_sub(held),
            pending: 0,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One consumed seq, as written to `entries`.
struct EntryRow<'a> {
    seq: u64,
    entry_id: Uuid,
    hash: Digest32,
    /// The entry and the member credited, or None when it was malformed.
    entry: Option<(&'a LedgerEntry, &'a str)>,
    status: &'a str,
    reason: Option<&'a str>,
}

fn insert_entry(
    tx: &Transaction<'_>,
    terminal_id: &str,
    row: EntryRow<'_>,
    received_at: &str,
) -> Result<(), CentralError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO entries (terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
            credited_member, points, sale_id, return_id, rules_version, occurred_at, detail,
            status, reason, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    let EntryRow {
        seq,
        entry_id,
        hash,
        entry,
        status,
        reason,
    } = row;
    let seq = i64_of(seq, "seq")?;
    match entry {
        Some((e, credited)) => {
            let rules_version = i64_of(e.rules_version, "rules_version")?;
            stmt.execute(params![
                terminal_id,
                seq,
                entry_id.as_bytes().as_slice(),
                hash.0.as_slice(),
                e.prev_hash.0.as_slice(),
                e.kind.as_str(),
                e.program,
                e.member,
                credited,
                e.points,
                e.sale_id,
                e.return_id,
                rules_version,
                e.occurred_at,
                e.detail,
                status,
                reason,
                received_at
            ])?;
        }
        None => {
            stmt.execute(params![
                terminal_id,
                seq,
                entry_id.as_bytes().as_slice(),
                hash.0.as_slice(),
                None::<Vec<u8>>,
                None::<String>,
                None::<String>,
                None::<String>,
                None::<String>,
                None::<i64>,
                None::<String>,
                None::<String>,
                None::<i64>,
                None::<String>,
                None::<String>,
                status,
                reason,
                received_at
            ])?;
        }
    }
    Ok(())
}

fn insert_conflicts(
    tx: &Transaction<'_>,
    terminal_id: &str,
    conflicts: &[NewConflict],
    at: &str,
) -> Result<(), CentralError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO conflicts (kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for c in conflicts {
        let seq = c.seq.map(|s| i64_of(s, "seq")).transpose()?;
        stmt.execute(params![
            c.kind,
            terminal_id,
            seq,
            c.entry_id.map(|u| u.as_bytes().to_vec()),
            c.member,
            c.program,
            c.shortfall,
            c.detail,
            at
        ])?;
    }
    Ok(())
}

/// Seconds between the entry's own clock and central's receipt, if parseable.
fn skew_secs(occurred_at: &str, received: jiff::Timestamp) -> Option<i64> {
    let ts: jiff::Timestamp = occurred_at.parse().ok()?;
    Some(received.as_second() - ts.as_second())
}

impl Storage for SqliteStorage {
    fn add_terminal(&self, terminal_id: &str, token_hash: [u8; 32]) -> Result<(), CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM terminals WHERE id = ?1)",
            [terminal_id],
            |r| r.get(0),
        )?;
        if exists {
            return Err(CentralError::Conflict(format!(
                "terminal {terminal_id:?} already exists"
            )));
        }
        tx.execute(
            "INSERT INTO terminals (id, token_hash, last_seq, last_hash, created_at)
             VALUES (?1, ?2, 0, ?3, ?4)",
            params![
                terminal_id,
                token_hash.as_slice(),
                Digest32::ZERO.0.as_slice(),
                jiff::Timestamp::now().to_string()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn terminal_for_token(&self, token_hash: [u8; 32]) -> Result<Option<String>, CentralError> {
        let conn = self.conn();
        Ok(conn
            .prepare_cached("SELECT id FROM terminals WHERE token_hash = ?1")?
            .query_row([token_hash.as_slice()], |r| r.get(0))
            .optional()?)
    }

    fn terminals(&self) -> Result<Vec<TerminalInfo>, CentralError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, last_seq, last_hash, last_contact FROM terminals ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([LISTING_ROWS_MAX as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (terminal_id, last_seq, last_hash, last_contact) = row?;
            out.push(TerminalInfo {
                terminal_id,
                last_seq: u64_of(last_seq, "last_seq")?,
                last_hash: digest_of(last_hash, "last_hash")?,
                last_contact,
            });
        }
        Ok(out)
    }

    fn apply_batch(
        &self,
        batch: &ReceivedBatch,
        received_at: jiff::Timestamp,
    ) -> Result<UploadAnswer, CentralError> {
        let now_text = received_at.to_string();
        let now_secs = received_at.as_second();
        let terminal = batch.terminal_id.as_str();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

        let (last_seq, last_hash): (i64, Vec<u8>) = tx
            .prepare_cached("SELECT last_seq, last_hash FROM terminals WHERE id = ?1")?
            .query_row([terminal], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .ok_or_else(|| CentralError::NotFound(format!("unknown terminal {terminal:?}")))?;
        let mut last_seq = u64_of(last_seq, "last_seq")?;
        let mut last_hash = digest_of(last_hash, "last_hash")?;
        tx.prepare_cached("UPDATE terminals SET last_contact = ?1 WHERE id = ?2")?
            .execute(params![now_text, terminal])?;

        let expected = last_seq + 1;
        if batch.first_seq > expected {
            tx.commit()?;
            return Ok(UploadAnswer {
                outcome: BatchOutcome::Gap { expected },
                balances: Vec::new(),
            });
        }

        // Seqs central already holds must carry the same hash: anything else
        // means the register's database was restored or replaced.
        let batch_last = batch.first_seq + batch.entries.len() as u64 - 1;
        let held_last = batch_last.min(last_seq);
        let mut resent_members = BTreeSet::new();
        if batch.first_seq <= held_last {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, hash, credited_member FROM entries
                 WHERE terminal_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
            )?;
            let rows = stmt.query_map(
                params![
                    terminal,
                    i64_of(batch.first_seq, "first_seq")?,
                    i64_of(held_last, "seq")?
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )?;
            let mut stored = HashMap::new();
            for row in rows {
                let (seq, hash, credited) = row?;
                stored.insert(u64_of(seq, "seq")?, (digest_of(hash, "hash")?, credited));
            }
            drop(stmt);
            for received in batch.entries.iter().filter(|e| e.seq <= held_last) {
                let Some((hash, credited)) = stored.get(&received.seq) else {
                    return Err(CentralError::Corrupt(format!(
                        "terminal {terminal:?} seq {} is below last_seq {last_seq} but not stored",
                        received.seq
                    )));
                };
                if *hash != received.hash {
                    let conflict = NewConflict {
                        kind: "seq_reused",
                        seq: Some(received.seq),
                        entry_id: Some(received.entry_id),
                        member: None,
                        program: None,
                        shortfall: None,
                        detail: format!(
                            "seq {} arrived with hash {} but central holds {}: the register's \
                             database was restored or replaced; server_high {last_seq}",
                            received.seq, received.hash, hash
                        ),
                    };
                    insert_conflicts(&tx, terminal, &[conflict], &now_text)?;
                    tx.commit()?;
                    return Ok(UploadAnswer {
                        outcome: BatchOutcome::SeqReused {
                            server_high: last_seq,
                            server_high_hash: last_hash,
                        },
                        balances: Vec::new(),
                    });
                }
                if let Some(m) = credited {
                    resent_members.insert(m.clone());
                }
            }
        }

        let mut programs = HashMap::new();
        {
            let mut stmt = tx.prepare_cached("SELECT id FROM programs")?;
            for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
                programs.insert(id?, ());
            }
        }

        let mut results = Vec::with_capacity(batch.entries.len());
        let mut accounts: BTreeMap<(String, String), Account> = BTreeMap::new();
        let mut card_cache: HashMap<String, String> = HashMap::new();
        let mut conflicts = Vec::new();
        let mut touched: BTreeSet<String> = resent_members;

        for received in &batch.entries {
            if received.seq <= last_seq {
                results.push(EntryResult::Duplicate);
                continue;
            }
            let seq = received.seq;
            let entry = match &received.entry {
                Err(reason) => {
                    let row = EntryRow {
                        seq,
                        entry_id: received.entry_id,
                        hash: received.hash,
                        entry: None,
                        status: "rejected",
                        reason: Some(reason),
                    };
                    insert_entry(&tx, terminal, row, &now_text)?;
                    conflicts.push(NewConflict {
                        kind: "rejected",
                        seq: Some(seq),
                        entry_id: Some(received.entry_id),
                        member: None,
                        program: None,
                        shortfall: None,
                        detail: reason.clone(),
                    });
                    results.push(EntryResult::Rejected {
                        reason: reason.clone(),
                    });
                    last_seq = seq;
                    last_hash = received.hash;
                    continue;
                }
                Ok(e) => e,
            };
            let credited = match card_cache.get(&entry.member) {
                Some(m) => m.clone(),
                None => {
                    let m = resolve_member(&tx, &entry.member)?;
                    card_cache.insert(entry.member.clone(), m.clone());
                    m
                }
            };
            let already: bool = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM entries WHERE entry_id = ?1
                                    AND status IN ('applied', 'overdraft'))",
                )?
                .query_row([entry.entry_id.as_bytes().as_slice()], |r| r.get(0))?;
            let rejection = if already {
                None
            } else if entry.prev_hash != last_hash {
                Some(format!(
                    "broken chain: prev_hash of seq {seq} is not the hash of seq {last_seq}"
                ))
            } else if !entry.hash_is_valid() {
                Some(format!("hash mismatch: entry altered (seq {seq})"))
            } else if !programs.contains_key(&entry.program) {
                Some(format!(
                    "unknown program {:?}: not in any published bundle",
                    entry.program
                ))
            } else {
                None
            };
            let (status, result) = if already {
                ("duplicate", EntryResult::Duplicate)
            } else if let Some(reason) = rejection {
                conflicts.push(NewConflict {
                    kind: "rejected",
                    seq: Some(seq),
                    entry_id: Some(entry.entry_id),
                    member: Some(credited.clone()),
                    program: Some(entry.program.clone()),
                    shortfall: None,
                    detail: reason.clone(),
                });
                ("rejected", EntryResult::Rejected { reason })
            } else {
                let key = (credited.clone(), entry.program.clone());
                if !accounts.contains_key(&key) {
                    let account = load_account(&tx, &credited, &entry.program, now_secs)?;
                    accounts.insert(key.clone(), account);
                }
                let account = accounts.get_mut(&key).expect("account inserted just above");
                if entry.kind == EntryKind::Redeem
                    && let Some(sale_id) = &entry.sale_id
                {
                    let settled: Option<i64> = tx
                        .prepare_cached(
                            "UPDATE holds SET state = 'settled'
                             WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3
                               AND state = 'open' AND expires_at > ?4
                             RETURNING points",
                        )?
                        .query_row(params![terminal, sale_id, entry.program, now_secs], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    if let Some(points) = settled {
                        account.held = account.held.saturating_sub(points);
                    }
                }
                let after = account.available().saturating_add(entry.points);
                account.applied = account.applied.saturating_add(entry.points);
                account.dirty = true;
                touched.insert(credited.clone());
                if entry.points < 0 && after < 0 {
                    let shortfall = after.saturating_neg().min(entry.points.saturating_neg());
                    conflicts.push(NewConflict {
                        kind: "overdraft",
                        seq: Some(seq),
                        entry_id: Some(entry.entry_id),
                        member: Some(credited.clone()),
                        program: Some(entry.program.clone()),
                        shortfall: Some(shortfall),
                        detail: format!(
                            "{} of {} points not covered; available is now {after}",
                            shortfall, -entry.points
                        ),
                    });
                    ("overdraft", EntryResult::Overdraft { shortfall })
                } else {
                    ("applied", EntryResult::Applied)
                }
            };
            if matches!(status, "applied" | "overdraft")
                && let Some(skew) = skew_secs(&entry.occurred_at, received_at)
                && skew.abs() > CLOCK_SKEW_SECS_MAX
            {
                conflicts.push(NewConflict {
                    kind: "clock_skew",
                    seq: Some(seq),
                    entry_id: Some(entry.entry_id),
                    member: Some(credited.clone()),
                    program: Some(entry.program.clone()),
                    shortfall: None,
                    detail: format!(
                        "occurred_at {} is {} h {} receipt at {now_text}; applied anyway",
                        entry.occurred_at,
                        skew.abs() / 3_600,
                        if skew > 0 { "before" } else { "after" }
                    ),
                });
            }
            let reason = match &result {
                EntryResult::Rejected { reason } => Some(reason.as_str()),
                _ => None,
            };
            let row = EntryRow {
                seq,
                entry_id: entry.entry_id,
                hash: entry.hash,
                entry: Some((entry, &credited)),
                status,
                reason,
            };
            insert_entry(&tx, terminal, row, &now_text)?;
            if status == "duplicate" {
                touched.insert(credited.clone());
            }
            results.push(result);
            // The seq is consumed whatever the verdict; the claimed hash is
            // what the register's next entry chains onto.
            last_seq = seq;
            last_hash = entry.hash;
        }

        tx.prepare_cached("UPDATE terminals SET last_seq = ?1, last_hash = ?2 WHERE id = ?3")?
            .execute(params![
                i64_of(last_seq, "last_seq")?,
                last_hash.0.as_slice(),
                terminal
            ])?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO balances (member, program, opening, applied) VALUES (?1, ?2, 0, ?3)
                 ON CONFLICT (member, program) DO UPDATE SET applied = excluded.applied",
            )?;
            for ((member, program), account) in &accounts {
                if account.dirty {
                    stmt.execute(params![member, program, account.applied])?;
                }
            }
        }
        {
            let changed: BTreeSet<&String> = accounts
                .iter()
                .filter(|(_, a)| a.dirty)
                .map(|((m, _), _)| m)
                .collect();
            let mut stmt = tx.prepare_cached(
                "INSERT INTO members (id, rev) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
            )?;
            for member in changed {
                let rev = next_rev(&tx)?;
                stmt.execute(params![member, rev])?;
            }
        }
        insert_conflicts(&tx, terminal, &conflicts, &now_text)?;
        let mut balances = Vec::with_capacity(touched.len());
        for member in &touched {
            balances.push(MemberBalance {
                member: member.clone(),
                programs: member_programs(&tx, member, now_secs)?,
            });
        }
        tx.commit()?;
        Ok(UploadAnswer {
            outcome: BatchOutcome::Entries(results),
            balances,
        })
    }

    fn publish_bundle(&self, bundle: NewBundle, at: jiff::Timestamp) -> Result<(), CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<i64> =
            tx.query_row("SELECT MAX(version) FROM bundles", [], |r| r.get(0))?;
        let version = i64_of(bundle.signed.version, "version")?;
        if let Some(current) = current
            && version <= current
        {
            return Err(CentralError::Conflict(format!(
                "bundle version {version} is not newer than the current version {current}"
            )));
        }
        tx.execute(
            "INSERT INTO bundles (version, format, bytes, signature, published_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                version,
                format_name(bundle.signed.format),
                bundle.signed.bytes,
                bundle.signed.signature,
                at.to_string()
            ],
        )?;
        for program in &bundle.programs {
            tx.execute(
                "INSERT OR IGNORE INTO programs (id, first_version) VALUES (?1, ?2)",
                params![program, version],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn newest_bundle(&self, after: Option<u64>) -> Result<Option<SignedBundle>, CentralError> {
        let conn = self.conn();
        let after = match after {
            Some(v) => i64_of(v, "after")?,
            None => -1,
        };
        read_bundle(
            &conn,
            "SELECT version, format, bytes, signature FROM bundles
             WHERE version > ?1 ORDER BY version DESC LIMIT 1",
            after,
        )
    }

    fn bundle(&self, version: u64) -> Result<Option<SignedBundle>, CentralError> {
        let conn = self.conn();
        read_bundle(
            &conn,
            "SELECT version, format, bytes, signature FROM bundles WHERE version = ?1",
            i64_of(version, "version")?,
        )
    }

    fn current_bundle_version(&self) -> Result<Option<u64>, CentralError> {
        let conn = self.conn();
        let v: Option<i64> =
            conn.query_row("SELECT MAX(version) FROM bundles", [], |r| r.get(0))?;
        v.map(|v| u64_of(v, "version")).transpose()
    }

    fn import_members(&self, snapshot: &MembersSnapshot) -> Result<usize, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (i, m) in snapshot.members.iter().enumerate() {
            let rev = next_rev(&tx)?;
            let tiers: BTreeMap<&String, &Option<String>> =
                m.programs.iter().map(|(p, s)| (p, &s.tier)).collect();
            let tiers = serde_json::to_string(&tiers)
                .map_err(|e| CentralError::Invalid(format!("members[{i}]: {e}")))?;
            tx.prepare_cached(
                "INSERT INTO members (id, birthday, blocked, tiers, rev) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET birthday = excluded.birthday,
                    blocked = excluded.blocked, tiers = excluded.tiers, rev = excluded.rev",
            )?
            .execute(params![m.id, m.birthday, m.blocked, tiers, rev])?;
            tx.prepare_cached("DELETE FROM cards WHERE member = ?1")?
                .execute([&m.id])?;
            for card in &m.cards {
                // The snapshot is the truth: a card listed here moves to this
                // member, and its previous owner shows up as changed.
                let owner: Option<String> = tx
                    .prepare_cached("SELECT member FROM cards WHERE card = ?1")?
                    .query_row([card], |r| r.get(0))
                    .optional()?;
                if let Some(owner) = owner.filter(|o| *o != m.id) {
                    let rev = next_rev(&tx)?;
                    tx.prepare_cached("UPDATE members SET rev = ?1 WHERE id = ?2")?
                        .execute(params![rev, owner])?;
                }
                tx.prepare_cached(
                    "INSERT INTO cards (card, member) VALUES (?1, ?2)
                     ON CONFLICT (card) DO UPDATE SET member = excluded.member",
                )?
                .execute([card, &m.id])?;
                link_card_points(&tx, card, &m.id)?;
            }
            for (program, state) in &m.programs {
                tx.prepare_cached(
                    "INSERT INTO balances (member, program, opening, applied) VALUES (?1, ?2, ?3, 0)
                     ON CONFLICT (member, program) DO UPDATE SET opening = excluded.opening",
                )?
                .execute(params![m.id, program, state.available])?;
            }
        }
        tx.commit()?;
        Ok(snapshot.members.len())
    }

    fn import_catalog(&self, snapshot: &CatalogSnapshot) -> Result<usize, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for p in &snapshot.products {
            let rev = next_rev(&tx)?;
            tx.prepare_cached(
                "INSERT INTO products (sku, name, category, price, rev) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name,
                    category = excluded.category, price = excluded.price, rev = excluded.rev",
            )?
            .execute(params![p.sku, p.name, p.category, p.price.to_string(), rev])?;
        }
        tx.commit()?;
        Ok(snapshot.products.len())
    }

    fn member_changes(&self, cursor: u64, limit: usize) -> Result<MemberChanges, CentralError> {
        let limit = limit.clamp(1, CHANGES_PAGE_MAX);
        let now_secs = jiff::Timestamp::now().as_second();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, birthday, blocked, tiers, rev FROM members
             WHERE rev > ?1 ORDER BY rev LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![i64_of(cursor, "cursor")?, limit as i64 + 1], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
        drop(stmt);
        let more = rows.len() > limit;
        let mut changes = Vec::with_capacity(limit.min(rows.len()));
        for (id, birthday, blocked, tiers, rev) in rows.into_iter().take(limit) {
            let tiers: BTreeMap<String, Option<String>> = serde_json::from_str(&tiers)
                .map_err(|e| CentralError::Corrupt(format!("member {id:?} tiers: {e}")))?;
            let cards: Vec<String> = conn
                .prepare_cached("SELECT card FROM cards WHERE member = ?1 ORDER BY card")?
                .query_map([&id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let mut programs: BTreeMap<String, MemberProgramState> = tiers
                .into_iter()
                .map(|(p, tier)| {
                    (
                        p,
                        MemberProgramState {
                            tier,
                            available: 0,
                            pending: 0,
                        },
                    )
                })
                .collect();
            for b in member_programs(&conn, &id, now_secs)? {
                programs
                    .entry(b.program)
                    .or_insert(MemberProgramState {
                        tier: None,
                        available: 0,
                        pending: 0,
                    })
                    .available = b.available;
            }
            changes.push(MemberChange {
                id,
                cards,
                birthday,
                blocked,
                programs,
                rev: u64_of(rev, "rev")?,
            });
        }
        let next_cursor = changes.last().map(|c| c.rev).unwrap_or(cursor);
        Ok(MemberChanges {
            changes,
            next_cursor,
            more,
        })
    }

    fn catalog_changes(&self, cursor: u64, limit: usize) -> Result<CatalogChanges, CentralError> {
        let limit = limit.clamp(1, CHANGES_PAGE_MAX);
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT sku, name, category, price, rev FROM products
             WHERE rev > ?1 ORDER BY rev LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![i64_of(cursor, "cursor")?, limit as i64 + 1], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let rows: Vec<_> = rows.collect::<Result<_, _>>()?;
        let more = rows.len() > limit;
        let mut changes = Vec::new();
        for (sku, name, category, price, rev) in rows.into_iter().take(limit) {
            let price = price
                .parse()
                .map_err(|e| CentralError::Corrupt(format!("product {sku:?} price: {e}")))?;
            changes.push(ProductChange {
                sku,
                name,
                category,
                price,
                rev: u64_of(rev, "rev")?,
            });
        }
        let next_cursor = changes.last().map(|c| c.rev).unwrap_or(cursor);
        Ok(CatalogChanges {
            changes,
            next_cursor,
            more,
        })
    }

    fn member_balances(
        &self,
        member_or_card: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<(String, Vec<ProgramBalance>)>, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let member = resolve_member(&tx, member_or_card)?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM members WHERE id = ?1)
                 OR EXISTS (SELECT 1 FROM balances WHERE member = ?1)",
            [&member],
            |r| r.get(0),
        )?;
        if !known {
            return Ok(None);
        }
        let programs = member_programs(&tx, &member, now.as_second())?;
        Ok(Some((member, programs)))
    }

    fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<StoredEntry>, CentralError> {
        let conn = self.conn();
        let limit = filter.limit.clamp(1, LISTING_ROWS_MAX) as i64;
        let mut stmt = conn.prepare_cached(
            "SELECT terminal_id, seq, entry_id, hash, prev_hash, kind, program, member,
                    credited_member, points, sale_id, return_id, rules_version, occurred_at,
                    detail, status, reason, received_at
             FROM entries
             WHERE (?1 IS NULL OR terminal_id = ?1)
               AND (?2 IS NULL OR credited_member = ?2 OR member = ?2)
             ORDER BY terminal_id, seq LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![filter.terminal, filter.member, limit], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Option<Vec<u8>>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ),
                (
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                    r.get::<_, Option<String>>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ),
                (
                    r.get::<_, Option<i64>>(12)?,
                    r.get::<_, Option<String>>(13)?,
                    r.get::<_, Option<String>>(14)?,
                    r.get::<_, String>(15)?,
                    r.get::<_, Option<String>>(16)?,
                    r.get::<_, String>(17)?,
                ),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (terminal_id, seq, entry_id, hash, prev_hash, kind),
                (program, member, credited_member, points, sale_id, return_id),
                (rules_version, occurred_at, detail, status, reason, received_at),
            ) = row?;
            out.push(StoredEntry {
                terminal_id,
                seq: u64_of(seq, "seq")?,
                entry_id: uuid_of(entry_id)?,
                hash: digest_of(hash, "hash")?,
                prev_hash: prev_hash.map(|h| digest_of(h, "prev_hash")).transpose()?,
                kind,
                program,
                member,
                credited_member,
                points,
                sale_id,
                return_id,
                rules_version: rules_version
                    .map(|v| u64_of(v, "rules_version"))
                    .transpose()?,
                occurred_at,
                detail,
                status,
                reason,
                received_at,
            });
        }
        Ok(out)
    }

    fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>, CentralError> {
        let conn = self.conn();
        let limit = limit.clamp(1, LISTING_ROWS_MAX) as i64;
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at
             FROM conflicts ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<Vec<u8>>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<i64>>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, terminal_id, seq, entry_id, member, program, shortfall, detail, at) =
                row?;
            out.push(Conflict {
                id,
                kind,
                terminal_id,
                seq: seq.map(|s| u64_of(s, "seq")).transpose()?,
                entry_id: entry_id.map(uuid_of).transpose()?,
                member,
                program,
                shortfall,
                detail,
                at,
            });
        }
        Ok(out)
    }

    fn place_hold(
        &self,
        request: &HoldRequest,
        now: jiff::Timestamp,
    ) -> Result<HoldAnswer, CentralError> {
        if request.points <= 0 || request.points > HOLD_POINTS_MAX {
            return Err(CentralError::Invalid(format!(
                "hold points must be between 1 and {HOLD_POINTS_MAX}, got {}",
                request.points
            )));
        }
        let now_secs = now.as_second();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let known_program: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM programs WHERE id = ?1)",
            [&request.program],
            |r| r.get(0),
        )?;
        if !known_program {
            return Err(CentralError::Invalid(format!(
                "unknown program {:?}: not in any published bundle",
                request.program
            )));
        }
        let member = resolve_member(&tx, &request.member)?;
        let blocked: bool = tx
            .query_row(
                "SELECT blocked FROM members WHERE id = ?1",
                [&member],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        if blocked {
            return Ok(HoldAnswer::Blocked);
        }
        // A retried request for the same sale replaces its own hold rather
        // than stacking a second one.
        let existing: Option<(String, i64, i64)> = tx
            .query_row(
                "SELECT state, points, expires_at FROM holds
                 WHERE terminal_id = ?1 AND sale_id = ?2 AND program = ?3",
                params![request.terminal_id, request.sale_id, request.program],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let account = load_account(&tx, &member, &request.program, now_secs)?;
        let own = match existing {
            // The sale's redeem entry already arrived and spent the points:
            // a late retry of its hold must not reserve them a second time.
            Some((state, _, _)) if state == "settled" => {
                return Ok(HoldAnswer::Granted {
                    available: account.available(),
                });
            }
            Some((state, points, expires_at)) if state == "open" && expires_at > now_secs => points,
            _ => 0,
        };
        let available = account.available().saturating_add(own);
        if request.points > available {
            return Ok(HoldAnswer::Insufficient { available });
        }
        tx.prepare_cached(
            "DELETE FROM holds WHERE rowid IN
               (SELECT rowid FROM holds WHERE expires_at < ?1 ORDER BY expires_at LIMIT ?2)",
        )?
        .execute(params![now_secs - HOLD_KEPT_SECS, HOLD_PURGE_ROWS_MAX])?;
        tx.execute(
            "INSERT INTO holds (terminal_id, sale_id, program, member, points, state, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'open', ?6)
             ON CONFLICT (terminal_id, sale_id, program) DO UPDATE SET member = excluded.member,
                points = excluded.points, state = 'open', expires_at = excluded.expires_at",
            params![
                request.terminal_id,
                request.sale_id,
                request.program,
                member,
                request.points,
                now_secs + HOLD_TTL_SECS
            ],
        )?;
        let rev = next_rev(&tx)?;
        tx.execute(
            "INSERT INTO members (id, rev) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
            params![member, rev],
        )?;
        tx.commit()?;
        Ok(HoldAnswer::Granted {
            available: available - request.points,
        })
    }

    fn release_hold(&self, release: &HoldRelease) -> Result<bool, CentralError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            let rev = next_rev(&tx)?;
            tx.execute(
                "UPDATE members SET rev = ?1 WHERE id = ?2",
                params![rev, member],
            )?;
        }
        tx.commit()?;
        Ok(member.is_some())
    }
}

/// A register earns under a card token central does not know yet (agent
/// spec §3) until central links the card to a member: then the points (and
/// any open holds) kept under the token move to the member. Stored entries
/// are not rewritten: they keep the token as `credited_member`.
fn link_card_points(tx: &Transaction<'_>, card: &str, member: &str) -> Result<(), CentralError> {
    if card == member {
        return Ok(());
    }
    let rows: Vec<(String, i64, i64)> = tx
        .prepare_cached("SELECT program, opening, applied FROM balances WHERE member = ?1")?
        .query_map([card], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    for (program, opening, applied) in rows {
        tx.prepare_cached(
            "INSERT INTO balances (member, program, opening, applied) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (member, program) DO UPDATE SET applied = applied + excluded.applied",
        )?
        .execute(params![member, program, opening.saturating_add(applied)])?;
    }
    tx.prepare_cached("DELETE FROM balances WHERE member = ?1")?
        .execute([card])?;
    tx.prepare_cached("UPDATE holds SET member = ?1 WHERE member = ?2")?
        .execute([member, card])?;
    // The token's own row (if a register saw it as a member) changes too:
    // it no longer holds points.
    let rev = next_rev(tx)?;
    tx.prepare_cached("UPDATE members SET rev = ?1 WHERE id = ?2")?
        .execute(params![rev, card])?;
    Ok(())
}

fn read_bundle(
    conn: &Connection,
    sql: &str,
    arg: i64,
) -> Result<Option<SignedBundle>, CentralError> {
    let row: Option<(i64, String, Vec<u8>, Vec<u8>)> = conn
        .prepare_cached(sql)?
        .query_row([arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(version, format, bytes, signature)| {
        Ok(SignedBundle {
            version: u64_of(version, "bundle version")?,
            format: format_from_name(&format)
                .ok_or_else(|| CentralError::Corrupt(format!("bundle format {format:?}")))?,
            bytes,
            signature,
        })
    })
    .transpose()
}
