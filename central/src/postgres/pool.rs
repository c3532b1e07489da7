//! A bounded pool of connections, each with its prepared statements.
//!
//! Connections open on demand up to the pool's size and are kept; a
//! request that finds all of them busy waits at most
//! [`CHECKOUT_TIMEOUT`], then gets `Unavailable` (HTTP 503: the register
//! retries). A connection found closed is dropped, and the next request
//! opens a new one.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};

use super::{PgTx, locks, off_runtime};
use crate::error::CentralError;

/// Connections per instance unless configured: a 2-core central is busy
/// with a handful of concurrent batches, and PostgreSQL's default of 100
/// connections then serves a dozen instances.
pub const POOL_SIZE_DEFAULT: usize = 8;
/// Most connections one instance may keep.
pub const POOL_SIZE_MAX: usize = 64;
/// How long a request waits for a free connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(30);
/// Session settings: a stuck statement or lock wait fails (and the register
/// retries) rather than holding a connection for ever, and a connection
/// idle inside a transaction (an instance that hung) releases its locks.
const SESSION_SETUP: &str = "SET statement_timeout = '60s'; SET lock_timeout = '30s'; \
                             SET idle_in_transaction_session_timeout = '60s'";

pub(crate) struct Conn {
    pub(crate) client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// Runs `f` on a new transaction of this connection.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(PgTx<'_>) -> Result<T, CentralError>,
    ) -> Result<T, CentralError> {
        let Conn { client, statements } = self;
        let tx = client.transaction()?;
        f(PgTx {
            tx: std::cell::RefCell::new(tx),
            statements: std::cell::RefCell::new(statements),
            locked: Default::default(),
            revs: std::cell::RefCell::new(locks::PendingRevs::default()),
            prefetch: Default::default(),
            stored: Default::default(),
        })
    }
}

struct State {
    idle: Vec<Conn>,
    open: usize,
}

pub(crate) struct Pool {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    size: usize,
    state: Mutex<State>,
    freed: Condvar,
}

/// `url` with any password replaced by `***`: in a URL's user info
/// (`postgres://user:secret@host`) and as a `password=` parameter.
pub fn redacted(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        let authority_end = out[rest..].find(['/', '?']).map_or(out.len(), |i| rest + i);
        if let Some(at) = out[rest..authority_end].rfind('@') {
            let at = rest + at;
            if let Some(colon) = out[rest..at].find(':') {
                out.replace_range(rest + colon + 1..at, "***");
            }
        }
    }
    let mut shown = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let value = i + "password=".len();
        shown.push_str(&rest[..value]);
        shown.push_str("***");
        let end = rest[value..]
            .find(['&', ' '])
            .map_or(rest.len(), |j| value + j);
        rest = &rest[end..];
    }
    shown.push_str(rest);
    shown
}

impl Pool {
    /// `password`, when given, is used instead of any in `url` (central.toml
    /// keeps it in a private file, never in the URL).
    pub(crate) fn new(
        url: &str,
        size: usize,
        password: Option<&str>,
    ) -> Result<Pool, CentralError> {
        let shown = redacted(url);
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| CentralError::Invalid(format!("database URL {shown}: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        Ok(Pool {
            config,
            shown,
            size: size.clamp(1, POOL_SIZE_MAX),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields: a panic elsewhere leaves it whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection, opened if none is idle and the pool is not full.
    pub(crate) fn get(&self) -> Result<Pooled<'_>, CentralError> {
        let deadline = Instant::now() + CHECKOUT_TIMEOUT;
        let mut state = self.state();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        self.state().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CentralError::Unavailable(format!(
                    "no connection to {} came free within {CHECKOUT_TIMEOUT:?} ({} open)",
                    self.shown, self.size
                )));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn connect(&self) -> Result<Conn, CentralError> {
        let unreachable = |e: postgres::Error| {
            // The client's own message is generic ("error connecting to
            // server"); its source says why (refused, unknown host, auth).
            let why = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            CentralError::Unavailable(format!("database {}: {e}{why}", self.shown))
        };
        let mut client = self.config.connect(NoTls).map_err(unreachable)?;
        client.batch_execute(SESSION_SETUP).map_err(unreachable)?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a connection runs its runtime: never on an async thread.
        let idle = std::mem::take(&mut self.state().idle);
        off_runtime(move || drop(idle));
    }
}

/// A checked-out connection, back in the pool when dropped (or dropped
/// with it when it closed).
pub(crate) struct Pooled<'p> {
    pool: &'p Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        // Some until drop.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let mut state = self.pool.state();
        if conn.client.is_closed() {
            state.open -= 1;
            drop(state);
            off_runtime(move || drop(conn));
        } else {
            state.idle.push(conn);
        }
        self.pool.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("postgres://pos:s3cret@db.example:5432/central?sslmode=disable"),
            "postgres://pos:***@db.example:5432/central?sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://pos@db/central"),
            "postgres://pos@db/central"
        );
        assert_eq!(
            redacted("host=db user=pos password=s3cret dbname=central"),
            "host=db user=pos password=*** dbname=central"
        );
        assert_eq!(
            redacted("postgresql:///c?host=/run&password=x&user=u"),
            "postgresql:///c?host=/run&password=***&user=u"
        );
    }
}
