//! One test suite, both backends: [`on_both_backends!`] turns each test
//! into a module with a `sqlite` and a `postgres` test running the same
//! body, and [`open`] gives the body the storage of the backend it runs
//! on: SQLite in memory, or a fresh database on the test process's
//! PostgreSQL server (pos-testkit). Where PostgreSQL is absent the
//! `postgres` variant says so on stderr and returns (CI sets
//! `POS_REQUIRE_POSTGRES=1`, which makes that a failure).

use std::cell::RefCell;
use std::path::PathBuf;

use pos_central::storage::Storage;
use pos_central::{PgStorage, SqliteStorage};

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// The test's name, for its database's.
    Postgres(&'static str),
}

thread_local! {
    static CURRENT: RefCell<Option<Backend>> = const { RefCell::new(None) };
}

/// Runs `body` with `backend` as what [`open`] opens; a `postgres` run
/// without PostgreSQL is skipped, visibly.
pub fn run_on(backend: Backend, body: fn()) {
    if use_backend(backend) {
        body();
    }
}

/// Makes `backend` what [`open`] opens on this thread; false (said on
/// stderr) for PostgreSQL where it is not installed.
pub fn use_backend(backend: Backend) -> bool {
    if let Backend::Postgres(name) = backend
        && !pos_testkit::postgres::available(name)
    {
        return false;
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(backend));
    true
}

fn current() -> Backend {
    CURRENT
        .with(|c| c.borrow().clone())
        .unwrap_or(Backend::Sqlite)
}

/// A new, empty central storage on the current backend.
pub fn open() -> Box<dyn Storage> {
    open_with_raw().0
}

/// Direct SQL access to the database under a storage, for the few tests
/// that look at rows no API shows.
pub enum Raw {
    /// The directory is kept as long as the path is used.
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(String),
}

impl Raw {
    /// The first column of every row of `sql`, as text.
    pub fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Raw::Sqlite { path, .. } => {
                let db = rusqlite::Connection::open(path).unwrap();
                let mut stmt = db.prepare(sql).unwrap();
                stmt.query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Raw::Postgres(url) => std::thread::scope(|s| {
                s.spawn(|| {
                    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
                    c.query(sql, &[])
                        .unwrap()
                        .iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect()
                })
                .join()
                .unwrap()
            }),
        }
    }
}

/// A new storage on the current backend (SQLite on a file) and raw access
/// to its database.
pub fn open_with_raw() -> (Box<dyn Storage>, Raw) {
    match current() {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("central.db");
            let s = SqliteStorage::open(&path).unwrap();
            (Box::new(s), Raw::Sqlite { _dir: dir, path })
        }
        Backend::Postgres(name) => {
            let url = pg_url(name);
            let s = PgStorage::open(&url, 4).unwrap();
            (Box::new(s), Raw::Postgres(url))
        }
    }
}

/// A fresh PostgreSQL database for test `name` (the caller checked that
/// PostgreSQL is there).
pub fn pg_url(name: &str) -> String {
    pos_testkit::postgres::fresh_database(name).expect("PostgreSQL vanished")
}

/// `fn name() { body }` → `mod name { #[test] fn sqlite(); #[test] fn
/// postgres() }`, both running `body`; `async fn` likewise with
/// `#[tokio::test]`.
macro_rules! on_both_backends {
    ($(#[doc = $doc:expr])* async fn $name:ident() $body:block $($rest:tt)*) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body() $body
            #[tokio::test]
            async fn sqlite() {
                if $crate::backend::use_backend($crate::backend::Backend::Sqlite) {
                    body().await;
                }
            }
            #[tokio::test]
            async fn postgres() {
                let pg = $crate::backend::Backend::Postgres(stringify!($name));
                if $crate::backend::use_backend(pg) {
                    body().await;
                }
            }
        }
        $crate::backend::on_both_backends! { $($rest)* }
    };
    ($(#[doc = $doc:expr])* fn $name:ident() $body:block $($rest:tt)*) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn body() $body
            #[test]
            fn sqlite() {
                $crate::backend::run_on($crate::backend::Backend::Sqlite, body);
            }
            #[test]
            fn postgres() {
                $crate::backend::run_on(
                    $crate::backend::Backend::Postgres(stringify!($name)),
                    body,
                );
            }
        }
        $crate::backend::on_both_backends! { $($rest)* }
    };
    () => {};
}
pub(crate) use on_both_backends;

/// Runs `f` on a thread outside the async runtime: a blocking backend
/// call (PostgreSQL's client) may not run on the runtime's own thread.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}
