//! pos-central's configuration file (`pos-central serve --config FILE`;
//! `/etc/pos-central/central.toml` under the packaged systemd unit), read
//! with the same rules as the agent's: unknown keys, wrong types and
//! impossible values are errors naming file, line and key, all reported
//! together, and secrets never appear in the text.
//!
//! ```toml
//! [state]
//! dir = "/var/lib/pos-central"      # default: $STATE_DIRECTORY
//!
//! [listen]
//! sync = "0.0.0.0:8443"             # registers (required)
//! admin = "127.0.0.1:8444"          # the admin API, its own listener
//!
//! [storage]                         # absent: the state directory's choice
//! url = "postgres://pos_central@/pos_central?host=/run/postgresql"
//! password_file = "/etc/pos-central/db-password"   # or password_credential
//! pool_size = 16
//!
//! [tls]                             # absent: the state directory's certificate
//! cert_file = "/etc/pos-central/tls/server.pem"
//! key_file = "/etc/pos-central/tls/server.key"
//!
//! [limits]
//! connections = 512
//! connections_per_address = 64
//! header_timeout_ms = 5000
//! sync_body_timeout_ms = 30000
//!
//! [log]
//! level = "info"
//! format = "auto"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::env::Env;
use crate::error::Error;
use crate::log::{self, Log};
use crate::reader::{Ctx, Field, Table, quote};
use crate::secret::{Origin, SecretKeys, TokenSource};
use crate::values::path;
use crate::{missing_table, parse_document, read_text};

/// Where the packaged unit reads central's config.
pub const DEFAULT_CENTRAL_CONFIG_PATH: &str = "/etc/pos-central/central.toml";

const ROOT_KEYS: &[&str] = &["state", "listen", "storage", "tls", "limits", "log"];
const STATE_KEYS: &[&str] = &["dir"];
const LISTEN_KEYS: &[&str] = &["sync", "admin", "insecure_http"];
const STORAGE_KEYS: &[&str] = &["url", "password_file", "password_credential", "pool_size"];
const TLS_KEYS: &[&str] = &["cert_file", "key_file"];
const LIMITS_KEYS: &[&str] = &[
    "connections",
    "connections_per_address",
    "header_timeout_ms",
    "sync_body_timeout_ms",
];

/// The admin API's address when `[listen] admin` is not set: loopback, a
/// fixed port so that a service's administrators know where it is.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8444";
/// Longest storage URL accepted.
pub const STORAGE_URL_CHARS_MAX: usize = 1_024;
/// Connections to the database each central instance keeps at most.
pub const DEFAULT_POOL_SIZE: u32 = 8;
pub const POOL_SIZE_MAX: u32 = 64;

const PASSWORD_KEYS: SecretKeys = SecretKeys {
    file: "password_file",
    credential: "password_credential",
    what: "password",
};

/// A validated central configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralConfig {
    /// The state directory `pos-central init` made: signing key, admin
    /// token, development TLS files and, by default, the SQLite database.
    pub dir: PathBuf,
    pub listen: CentralListen,
    pub storage: CentralStorage,
    /// `None`: the state directory's certificate and key.
    pub tls: Option<CentralTls>,
    pub limits: CentralLimits,
    pub log: Log,
    /// The file this was read from.
    pub source: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentralListen {
    /// The sync API, for registers.
    pub sync: SocketAddr,
    /// The admin API: loopback unless an administration network is named.
    pub admin: SocketAddr,
    /// Plain HTTP; only on loopback addresses (tests, a local demo).
    pub insecure_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralStorage {
    /// A `postgres://` URL without a password; `None`: what the state
    /// directory records (`pos-central init --database`), else its SQLite
    /// file.
    pub url: Option<String>,
    /// Where the database password is read from, if the server asks one.
    pub password: Option<TokenSource>,
    pub pool_size: u32,
    password_origin: Origin,
}

impl CentralStorage {
    /// Reads the database password (the rules of a token file: mode 0600
    /// or a systemd credential, printable ASCII). `Ok(None)` without one.
    pub fn read_password(&self, env: &Env) -> Result<Option<SecretString>, Error> {
        match &self.password {
            Some(source) => crate::secret::load(source, &self.password_origin, env).map(Some),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentralTls {
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or RSA).
    pub key_file: PathBuf,
}

/// The sync listener's limits (the admin listener keeps its own, smaller
/// ones). The defaults are central's built-in ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentralLimits {
    pub connections: u32,
    pub connections_per_address: u32,
    pub header_timeout_ms: u64,
    pub sync_body_timeout_ms: u64,
}

impl Default for CentralLimits {
    fn default() -> CentralLimits {
        CentralLimits {
            connections: 512,
            connections_per_address: 64,
            header_timeout_ms: 5_000,
            sync_body_timeout_ms: 30_000,
        }
    }
}

impl CentralConfig {
    /// Reads and validates the file at `path`, with defaults from this
    /// process's environment (`STATE_DIRECTORY`).
    pub fn load(path: &Path) -> Result<CentralConfig, Error> {
        let text = read_text(path)?;
        CentralConfig::parse(&text, path, &Env::from_process())
    }

    /// Validates `text` as if read from `source`. Pure.
    pub fn parse(text: &str, source: &Path, env: &Env) -> Result<CentralConfig, Error> {
        parse_document(text, source, ROOT_KEYS, |ctx, root| {
            read_root(ctx, root, env)
        })
    }
}

fn read_root(ctx: &mut Ctx<'_>, root: Table<'_, '_>, env: &Env) -> Option<CentralConfig> {
    let state = root
        .field("state")
        .and_then(|f| f.table(ctx, "[state]".into(), STATE_KEYS));
    let dir = read_dir(ctx, state, env);
    let listen = match root.field("listen") {
        Some(f) => f
            .table(ctx, "[listen]".into(), LISTEN_KEYS)
            .and_then(|t| read_listen(ctx, t)),
        None => {
            missing_table(ctx, "[listen]");
            None
        }
    };
    let storage = match root.field("storage") {
        Some(f) => f
            .table(ctx, "[storage]".into(), STORAGE_KEYS)
            .and_then(|t| read_storage(ctx, t)),
        None => Some(CentralStorage {
            url: None,
            password: None,
            pool_size: DEFAULT_POOL_SIZE,
            password_origin: Origin::default(),
        }),
    };
    let tls = root
        .field("tls")
        .and_then(|f| f.table(ctx, "[tls]".into(), TLS_KEYS))
        .and_then(|t| read_tls(ctx, t));
    let limits = root
        .field("limits")
        .and_then(|f| f.table(ctx, "[limits]".into(), LIMITS_KEYS))
        .map(|t| read_limits(ctx, t))
        .unwrap_or_default();
    let log = root
        .field("log")
        .and_then(|f| f.table(ctx, "[log]".into(), log::KEYS))
        .map(|t| log::read(ctx, t))
        .unwrap_or_default();
    root.finish(ctx);
    Some(CentralConfig {
        dir: dir?,
        listen: listen?,
        storage: storage?,
        tls,
        limits,
        log,
        source: ctx.source().to_path_buf(),
    })
}

fn read_dir(ctx: &mut Ctx<'_>, table: Option<Table<'_, '_>>, env: &Env) -> Option<PathBuf> {
    let mut header = None;
    let mut configured = None;
    let mut present = false;
    if let Some(table) = table {
        header = table.header();
        if let Some(field) = table.field("dir") {
            present = true;
            configured = path(ctx, &field);
        }
        table.finish(ctx);
    }
    let dir = configured.or_else(|| env.state_directory.clone());
    if dir.is_none() && !present {
        ctx.report(
            header,
            Some("[state] dir".to_string()),
            "no state directory: set [state] dir or STATE_DIRECTORY",
        );
    }
    dir
}

fn read_listen(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Option<CentralListen> {
    let insecure_http = table
        .field("insecure_http")
        .and_then(|f| f.boolean(ctx))
        .unwrap_or(false);
    let sync = table
        .required(ctx, "sync")
        .and_then(|f| address(ctx, &f, insecure_http));
    let admin = match table.field("admin") {
        Some(f) => address(ctx, &f, insecure_http),
        None => DEFAULT_ADMIN_LISTEN.parse().ok(),
    };
    table.finish(ctx);
    Some(CentralListen {
        sync: sync?,
        admin: admin?,
        insecure_http,
    })
}

/// `IP:PORT`; with `insecure_http`, a loopback one (plain HTTP carries
/// tokens and ledgers in clear text).
fn address(ctx: &mut Ctx<'_>, field: &Field<'_, '_>, insecure_http: bool) -> Option<SocketAddr> {
    let text = field.string(ctx)?;
    let Ok(addr) = text.parse::<SocketAddr>() else {
        field.invalid(
            ctx,
            format!(
                "must be IP:PORT (e.g. \"0.0.0.0:8443\" or \"[::1]:8444\"), got {}",
                quote(text)
            ),
        );
        return None;
    };
    if insecure_http && !addr.ip().is_loopback() {
        field.invalid(
            ctx,
            format!("{addr} is not a loopback address, and insecure_http allows only loopback"),
        );
        return None;
    }
    Some(addr)
}

fn read_storage(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Option<CentralStorage> {
    let url = table.field("url").and_then(|f| storage_url(ctx, &f));
    let (password, password_origin) = crate::secret::read_source_keys(ctx, &table, PASSWORD_KEYS);
    let pool_size = table
        .field("pool_size")
        .and_then(|f| f.integer(ctx, 1..=i64::from(POOL_SIZE_MAX)))
        .map_or(DEFAULT_POOL_SIZE, |n| n as u32);
    if url.is_none()
        && table.field("url").is_none()
        && let Some(key) = table
            .field(PASSWORD_KEYS.file)
            .or_else(|| table.field(PASSWORD_KEYS.credential))
    {
        key.misplaced(ctx, "only applies with url (a PostgreSQL server)");
    }
    table.finish(ctx);
    Some(CentralStorage {
        url,
        password,
        pool_size,
        password_origin,
    })
}

/// A `postgres://` (or `postgresql://`) URL whose user part holds no
/// password: the config is readable by administrators and ends up in
/// backups and tickets, the password belongs in a private file.
fn storage_url(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<String> {
    let text = field.string(ctx)?;
    if text.chars().count() > STORAGE_URL_CHARS_MAX || text.chars().any(char::is_control) {
        field.invalid(
            ctx,
            format!(
                "must be a URL of at most {STORAGE_URL_CHARS_MAX} characters without control characters"
            ),
        );
        return None;
    }
    // Checked by hand: libpq's URLs allow what the `url` crate refuses
    // (`postgres://user@/db?host=/run/postgresql`, a Unix socket).
    let Some(rest) = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
    else {
        field.invalid(
            ctx,
            "must be a postgres:// URL (leave it out for the state directory's SQLite database)",
        );
        return None;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority
        .rsplit_once('@')
        .is_some_and(|(user_info, _)| user_info.contains(':'))
        || rest.contains("password=")
    {
        // The message must not repeat the URL: it holds the password.
        field.invalid(
            ctx,
            "holds a password; put it in password_file (mode 0600) or password_credential instead",
        );
        return None;
    }
    Some(text.to_string())
}

fn read_tls(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Option<CentralTls> {
    let cert_file = table.required(ctx, "cert_file").and_then(|f| path(ctx, &f));
    let key_file = table.required(ctx, "key_file").and_then(|f| path(ctx, &f));
    table.finish(ctx);
    Some(CentralTls {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

fn read_limits(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> CentralLimits {
    let defaults = CentralLimits::default();
    let mut number = |key: &'static str, range: std::ops::RangeInclusive<i64>, default: u64| {
        table
            .field(key)
            .and_then(|f| f.integer(ctx, range))
            .map_or(default, |n| n as u64)
    };
    let connections = number("connections", 16..=65_536, u64::from(defaults.connections)) as u32;
    let connections_per_address = number(
        "connections_per_address",
        1..=65_536,
        u64::from(defaults.connections_per_address),
    ) as u32;
    let header_timeout_ms = number(
        "header_timeout_ms",
        100..=60_000,
        defaults.header_timeout_ms,
    );
    let sync_body_timeout_ms = number(
        "sync_body_timeout_ms",
        1_000..=600_000,
        defaults.sync_body_timeout_ms,
    );
    if connections_per_address > connections
        && let Some(field) = table.field("connections_per_address")
    {
        field.invalid(
            ctx,
            format!("must not exceed connections ({connections}), got {connections_per_address}"),
        );
    }
    table.finish(ctx);
    CentralLimits {
        connections,
        connections_per_address: connections_per_address.min(connections),
        header_timeout_ms,
        sync_body_timeout_ms,
    }
}
