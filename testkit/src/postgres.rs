//! A real PostgreSQL server for tests and benchmarks: Debian's `initdb`
//! and `postgres` on a temporary directory, listening only on a Unix
//! socket in that directory (`listen_addresses = ''`), trust
//! authentication, superuser `postgres`.
//!
//! - One shared server per test process ([`fresh_database`]), started on
//!   first use; each test gets its own new database, so tests run in
//!   parallel without seeing each other's rows. It runs with `fsync=off`:
//!   a test never survives a power cut, and two cores shared by a whole
//!   test suite are better spent on the tests. A benchmark starts its own
//!   durable server ([`PgServer::start`] with [`Durability::Fsync`]).
//! - initdb refuses to run as root, and tests and CI run as root: the
//!   server then runs as `nobody` (`setpriv`), owning the directory.
//! - The server never outlives the test process: a watcher shell started
//!   beside it polls the test process's `/proc` entry and, once it is gone
//!   (the test binary exited, panicked or was killed), stops the server
//!   (fast shutdown) and deletes the directory. A [`PgServer`] dropped
//!   earlier stops it at once.
//! - Where the binaries are absent, [`fresh_database`] returns None after
//!   printing what is missing (a visible skip); with
//!   `POS_REQUIRE_POSTGRES=1` (set by `.ci/run`) it panics instead, so CI
//!   can never skip them silently.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The environment variable that turns a missing PostgreSQL into a failure.
pub const REQUIRE_ENV: &str = "POS_REQUIRE_POSTGRES";
/// The user the server runs as when the tests run as root.
const SERVER_UID: u32 = 65534;
const SERVER_GID: u32 = 65534;
/// The port only names the socket file (`.s.PGSQL.5432`): nothing listens
/// on TCP.
const PORT: u16 = 5432;
/// How long a starting server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the server syncs its writes to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fsync=on`, `synchronous_commit=on`: what a production central runs
    /// with, for benchmarks.
    Fsync,
    /// `fsync=off`: for correctness tests.
    NoSync,
}

/// A running server; dropping it stops the server and deletes its files.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    watcher: Option<std::process::Child>,
}

/// The directory of Debian's PostgreSQL programs (`initdb`, `postgres`,
/// `psql`), the newest version first; else the one `initdb` on PATH is in.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    dirs.sort();
    let debian = dirs.into_iter().rev().map(|(_, d)| d);
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
        .filter_map(|p| p.parent().map(Path::to_path_buf));
    debian.chain(on_path).find(|d| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    })
}

fn is_root() -> bool {
    // The effective uid without libc: /proc/self is owned by it.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program args…`, as `nobody` when we are root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={SERVER_UID}"))
            .arg(format!("--regid={SERVER_GID}"))
            .arg("--clear-groups")
            .arg("--")
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Stops the server (fast shutdown) and deletes the directory once the
/// test process `$OWNER` is gone or the file `$DIR/stop` appears.
const WATCHER: &str = r#"
"$BIN/postgres" -D "$DIR/data" -k "$DIR" -p "$PORT" -c listen_addresses= \
    -c fsync="$FSYNC" -c synchronous_commit="$FSYNC" -c full_page_writes="$FSYNC" \
    -c max_connections=200 -c shared_buffers=256MB \
    >"$DIR/server.log" 2>&1 &
pg=$!
while [ -d "/proc/$OWNER" ] && [ ! -e "$DIR/stop" ] && kill -0 "$pg" 2>/dev/null; do
    sleep 0.2
done
kill -INT "$pg" 2>/dev/null
wait "$pg"
rm -rf "$DIR"
"#;

impl PgServer {
    /// Starts a server on a new temporary directory.
    pub fn start(durability: Durability) -> Result<PgServer> {
        let bin = find_bin_dir().context("no PostgreSQL programs (initdb, postgres, psql)")?;
        let dir = tempfile::Builder::new()
            .prefix("pos-pg-")
            .tempdir()
            .context("temporary directory")?
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        if is_root() {
            std::os::unix::fs::chown(&dir, Some(SERVER_UID), Some(SERVER_GID))
                .context("chown the server directory")?;
        }
        let mut server = PgServer {
            dir,
            bin,
            watcher: None,
        };
        server.init()?;
        server.spawn(durability)?;
        server.wait_ready()?;
        Ok(server)
    }

    fn init(&self) -> Result<()> {
        let out = as_server_user(&self.bin.join("initdb"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "--no-sync"])
            .args(["-E", "UTF8", "--locale=C"])
            .stdin(Stdio::null())
            .output()
            .context("run initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn spawn(&mut self, durability: Durability) -> Result<()> {
        let fsync = match durability {
            Durability::Fsync => "on",
            Durability::NoSync => "off",
        };
        let watcher = as_server_user(Path::new("/bin/sh"))
            .args(["-c", WATCHER])
            .env("BIN", &self.bin)
            .env("DIR", &self.dir)
            .env("PORT", PORT.to_string())
            .env("FSYNC", fsync)
            .env("OWNER", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start postgres")?;
        self.watcher = Some(watcher);
        Ok(())
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                bail!("postgres did not start within {START_TIMEOUT:?}: {log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one SQL command as the superuser on `database`.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &PORT.to_string(), "-U", "postgres", "-d", database])
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !out.status.success() {
            bail!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The connection URL of `database` on this server (Unix socket).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql:///{database}?host={}&port={PORT}&user=postgres",
            self.dir.display()
        )
    }

    /// Creates a new empty database and returns its URL.
    pub fn create_database(&self, hint: &str) -> Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let clean: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase();
        let name = format!("t{n}_{clean}");
        // FILE_COPY: a copy of the small template, no WAL of every page.
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} STRATEGY = FILE_COPY"),
        )?;
        Ok(self.url(&name))
    }

    /// The server's directory (its socket is there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // The watcher stops the server and removes the directory.
        let _ = std::fs::write(self.dir.join("stop"), b"");
        if let Some(mut w) = self.watcher.take() {
            let _ = w.wait();
        }
    }
}

/// The test process's shared server, started on first use (None: the
/// programs are absent, reported once).
fn shared() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            find_bin_dir()?;
            match PgServer::start(Durability::NoSync) {
                Ok(server) => Some(server),
                // Installed but failing: a real failure, never a skip.
                Err(e) => panic!("PostgreSQL is installed but did not start: {e:#}"),
            }
        })
        .as_ref()
}

/// Whether the shared server runs, started if need be; false (after saying
/// so on stderr, naming `test`) where PostgreSQL is not installed, and a
/// panic then when `POS_REQUIRE_POSTGRES=1`.
pub fn available(test: &str) -> bool {
    if shared().is_some() {
        return true;
    }
    let missing = "SKIPPED (no PostgreSQL): initdb/postgres/psql not found in \
                   /usr/lib/postgresql/*/bin or on PATH; apt-get install postgresql";
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test}: {REQUIRE_ENV}=1 but {missing}");
    }
    eprintln!("{test}: {missing}");
    false
}

/// A new database on the shared server for test `test`, as a URL; None
/// where PostgreSQL is not installed ([`available`]).
pub fn fresh_database(test: &str) -> Option<String> {
    if !available(test) {
        return None;
    }
    let server = shared()?;
    match server.create_database(test) {
        Ok(url) => Some(url),
        Err(e) => panic!("{test}: CREATE DATABASE failed: {e:#}"),
    }
}

/// The shared server itself, for tests that run SQL beside the code they
/// test (None as for [`fresh_database`], which must have been called).
pub fn shared_server() -> Option<&'static PgServer> {
    shared()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_starts_serves_a_fresh_database_and_is_gone_once_dropped() {
        if find_bin_dir().is_none() {
            assert!(fresh_database("harness").is_none());
            return;
        }
        let server = PgServer::start(Durability::NoSync).unwrap();
        let url = server.create_database("harness").unwrap();
        let name = url.split('?').next().unwrap().rsplit('/').next().unwrap();
        assert_eq!(server.psql(name, "SELECT 40 + 2").unwrap(), "42");
        assert_eq!(
            server.psql(name, "SHOW listen_addresses").unwrap(),
            "",
            "no TCP listener"
        );
        let dir = server.dir().to_path_buf();
        drop(server);
        assert!(!dir.exists(), "the watcher removed {dir:?}");
    }
}
