//! The register agent's configuration (agent spec §2): the TOML schema, its
//! defaults, and validation whose every error names file, line and key.
//!
//! Unknown keys, wrong types and impossible values are errors, never
//! silently defaulted: a register that starts with a config it half
//! understood fails later, in a store, at a worse time. All problems of a
//! file are reported together (the private `reader` module says why the tree is walked by
//! hand rather than derived).
//!
//! Secrets never appear in the config text: the central token is read at run
//! time from `token_file` or a systemd credential ([`Central::read_token`]).

mod api;
mod cards;
mod central;
mod devices;
mod env;
mod error;
mod health;
mod log;
#[cfg(feature = "logging")]
pub mod logging;
mod reader;
mod secret;
mod service;
mod storage;
mod terminal;
mod values;
mod variable_measure;

use std::io::Read;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

pub use api::{
    ALLOWED_HOSTS_MAX, Api, DEFAULT_MAX_BODY_BYTES, DEFAULT_SOCKET_FILE, HOST_NAME_CHARS_MAX,
    LOOPBACK_HOSTS, MAX_BODY_BYTES_MAX, MAX_BODY_BYTES_MIN, SOCKET_PATH_BYTES_MAX,
};
pub use cards::{Cards, PREFIX_DIGITS_MAX, PREFIXES_MAX};
pub use central::{
    CREDENTIAL_NAME_CHARS_MAX, Central, DEFAULT_MEMBER_FRESH_SECS, DEFAULT_REQUEST_TIMEOUT_SECS,
    DEFAULT_SYNC_INTERVAL_SECS, MEMBER_FRESH_SECS_MAX, REQUEST_TIMEOUT_SECS_MAX,
    SYNC_INTERVAL_SECS_MAX, TOKEN_BYTES_MAX, TokenSource,
};
pub use devices::{
    DEDUP_WINDOW_MS_MAX, DEFAULT_BAUD, DEFAULT_DEDUP_WINDOW_MS, DEFAULT_STALL_TIMEOUT_MS,
    DEVICES_MAX, Device, DeviceKind, KeyboardLayout, PREFIX_BYTES_MAX, Parity, Role,
    STALL_TIMEOUT_MS_MAX, STALL_TIMEOUT_MS_MIN, STANDARD_BAUD_RATES, SerialLine, Suffix,
};
pub use env::Env;
pub use error::{Error, PROBLEMS_MAX, Problem};
pub use health::{
    DEFAULT_MEMBER_STALE_SECS, DEFAULT_STORAGE_FULL_SECS, DEFAULT_SYNC_FAILING_SECS,
    HEALTH_SECS_MAX, Health,
};
pub use log::{Log, LogFormat, LogLevel};
pub use secret::TOKEN_FILE_FORBIDDEN_MODE;
pub use service::{
    CentralConfig, CentralLimits, CentralListen, CentralStorage, CentralTls, DEFAULT_ADMIN_LISTEN,
    DEFAULT_CENTRAL_CONFIG_PATH, DEFAULT_POOL_SIZE, POOL_SIZE_MAX, STORAGE_URL_CHARS_MAX,
};
pub use storage::{DEFAULT_DB_FILE, Storage};
pub use terminal::Terminal;
pub use variable_measure::{EAN13_DIGITS, Measure, VariableMeasure};

use reader::{Ctx, Table};

/// Largest config file read: a full config is a few KiB; anything this big
/// is the wrong file, and reading it whole must stay bounded.
pub const CONFIG_BYTES_MAX: usize = 1024 * 1024;

/// The default config path of `pos-agent run` (agent spec §1).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pos-agent/agent.toml";

const ROOT_KEYS: &[&str] = &[
    "terminal",
    "storage",
    "central",
    "api",
    "devices",
    "cards",
    "variable_measure",
    "health",
    "log",
];

/// A validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub terminal: Terminal,
    pub storage: Storage,
    /// `None`: no `[central]`, the agent runs standalone with sync off.
    pub central: Option<Central>,
    pub api: Api,
    /// Empty: no devices; scans come only through the API.
    pub devices: Vec<Device>,
    pub cards: Cards,
    pub variable_measure: Vec<VariableMeasure>,
    /// `[health]`: thresholds for `degraded`; defaults without the table.
    pub health: Health,
    pub log: Log,
    /// The file this was read from, for messages that point back to it.
    pub source: PathBuf,
}

impl Config {
    /// Reads and validates the file at `path`, taking default directories
    /// from this process's environment (`STATE_DIRECTORY`, ...).
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = read_text(path)?;
        Config::parse(&text, path, &Env::from_process())
    }

    /// Validates config `text` as if read from `source`, with defaults from
    /// `env`. Pure: touches no file and no process state.
    pub fn parse(text: &str, source: &Path, env: &Env) -> Result<Config, Error> {
        parse_document(text, source, ROOT_KEYS, |ctx, root| {
            read_root(ctx, root, env)
        })
    }
}

/// The checks every config file of this crate gets: bounded size, TOML
/// syntax, then `read` over the root table, with every problem of the file
/// reported together. `read` returns `None` only after reporting why.
pub(crate) fn parse_document<T>(
    text: &str,
    source: &Path,
    root_keys: &'static [&'static str],
    read: impl FnOnce(&mut Ctx<'_>, Table<'_, '_>) -> Option<T>,
) -> Result<T, Error> {
    if text.len() > CONFIG_BYTES_MAX {
        return Err(whole_file(
            source,
            format!(
                "config is {} bytes; at most {CONFIG_BYTES_MAX} are accepted",
                text.len()
            ),
        ));
    }
    let document = DeTable::parse(text).map_err(|err| syntax_error(source, text, &err))?;
    let mut ctx = Ctx::new(source, text);
    let root = Table::root(document.get_ref(), root_keys);
    let config = read(&mut ctx, root);
    if ctx.has_problems() {
        let (problems, omitted) = ctx.into_problems();
        return Err(Error::from_problems(problems, omitted));
    }
    // Each reader reports why it has no value; reaching here without a config is
    // a bug in this crate, reported rather than panicking the program.
    config.ok_or_else(|| {
        whole_file(
            source,
            "internal error: a section was rejected without a reason; please report this"
                .to_string(),
        )
    })
}

/// Every section of the document, in file-format order; `None` when a required one
/// has problems (reported in `ctx`).
fn read_root(ctx: &mut Ctx<'_>, root: Table<'_, '_>, env: &Env) -> Option<Config> {
    let terminal = match root.field("terminal") {
        Some(f) => f
            .table(ctx, "[terminal]".into(), terminal::KEYS)
            .and_then(|t| terminal::read(ctx, t)),
        None => {
            missing_table(ctx, "[terminal]");
            None
        }
    };
    let storage_table = root
        .field("storage")
        .and_then(|f| f.table(ctx, "[storage]".into(), storage::KEYS));
    let storage = storage::read(ctx, storage_table, env);
    let central = root.field("central").and_then(|f| {
        f.table(ctx, "[central]".into(), central::KEYS)
            .and_then(|t| central::read(ctx, t))
    });
    let api_table = root
        .field("api")
        .and_then(|f| f.table(ctx, "[api]".into(), api::KEYS));
    let api = api::read(ctx, api_table, env);
    let devices = root
        .field("devices")
        .map(|f| devices::read(ctx, &f))
        .unwrap_or_default();
    let cards = root
        .field("cards")
        .and_then(|f| f.table(ctx, "[cards]".into(), cards::KEYS))
        .map(|t| cards::read(ctx, t))
        .unwrap_or_default();
    let variable_measure = root
        .field("variable_measure")
        .map(|f| variable_measure::read(ctx, &f))
        .unwrap_or_default();
    let health = root
        .field("health")
        .and_then(|f| f.table(ctx, "[health]".into(), health::KEYS))
        .map(|t| health::read(ctx, t))
        .unwrap_or_default();
    let log = root
        .field("log")
        .and_then(|f| f.table(ctx, "[log]".into(), log::KEYS))
        .map(|t| log::read(ctx, t))
        .unwrap_or_default();
    root.finish(ctx);
    Some(Config {
        terminal: terminal?,
        storage: storage?,
        central,
        api: api?,
        devices,
        cards,
        variable_measure,
        health,
        log,
        source: ctx.source().to_path_buf(),
    })
}

pub(crate) fn missing_table(ctx: &mut Ctx<'_>, label: &str) {
    ctx.report(None, Some(label.to_string()), "missing required table");
}

fn whole_file(source: &Path, message: String) -> Error {
    Error::single(Problem {
        file: source.to_path_buf(),
        line: None,
        key: None,
        message,
    })
}

/// A TOML syntax error as one problem at its line, with toml's own message.
fn syntax_error(source: &Path, text: &str, err: &toml::de::Error) -> Error {
    let (line, column) = match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    let message = err.message().trim_end();
    Error::single(Problem {
        file: source.to_path_buf(),
        line,
        key: None,
        message: match column {
            Some(column) => format!("TOML syntax error at column {column}: {message}"),
            None => format!("TOML syntax error: {message}"),
        },
    })
}

/// Reads at most [`CONFIG_BYTES_MAX`] bytes of UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, Error> {
    let file = std::fs::File::open(path)
        .map_err(|err| whole_file(path, format!("cannot open config: {err}")))?;
    let mut bytes = Vec::new();
    file.take(CONFIG_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| whole_file(path, format!("cannot read config: {err}")))?;
    if bytes.len() > CONFIG_BYTES_MAX {
        return Err(whole_file(
            path,
            format!("config is larger than {CONFIG_BYTES_MAX} bytes"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|err| whole_file(path, format!("config is not UTF-8 text: {err}")))
}
