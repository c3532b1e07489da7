//! `[api]`: where the local API for the POS application listens, and what
//! the optional TCP listener asks of its clients.
//!
//! The Unix socket (mode 0660) is the POS's way in: the file mode decides
//! who may connect. TCP on loopback is reachable by every process on the
//! register (any user) and, through DNS rebinding, by web pages in a
//! browser on it; so a TCP listener requires a bearer token and accepts
//! only the `Host` names it expects.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::env::Env;
use crate::error::Error;
use crate::reader::{Ctx, Field, Table, quote, strings};
use crate::secret::{Origin, TokenSource};
use crate::values::path;

pub(crate) const KEYS: &[&str] = &[
    "socket",
    "listen",
    "allow_remote",
    "max_body_bytes",
    "token_file",
    "credential",
    "allowed_hosts",
];

/// File name of the socket inside `$RUNTIME_DIRECTORY`.
pub const DEFAULT_SOCKET_FILE: &str = "api.sock";
/// Longest Unix socket path: `sun_path` holds 108 bytes including the NUL.
pub const SOCKET_PATH_BYTES_MAX: usize = 107;
/// Default request body limit: a large basket is a few tens of KiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 256 * 1024;
/// Smallest body limit: below this even a one-line basket may not fit.
pub const MAX_BODY_BYTES_MIN: u64 = 1024;
/// Largest body limit: bodies are held in memory whole.
pub const MAX_BODY_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// `Host` names the TCP listener always accepts (with or without a port):
/// a client on the register itself.
pub const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];
/// Most extra `allowed_hosts`.
pub const ALLOWED_HOSTS_MAX: usize = 16;
/// Longest host name in `allowed_hosts` (DNS's limit).
pub const HOST_NAME_CHARS_MAX: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The Unix socket (mode 0660): the POS's usual way in.
    pub socket: PathBuf,
    /// Optional TCP listener; loopback unless `allow_remote`. Port 0 asks
    /// the kernel for a free port (tests use it).
    pub listen: Option<SocketAddr>,
    /// Lets `listen` be a non-loopback address: exposing the API to the
    /// network is an explicit decision.
    pub allow_remote: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// The bearer token TCP clients must send (`Authorization: Bearer ..`);
    /// always set when `listen` is. The Unix socket needs none.
    pub token: Option<TokenSource>,
    /// `Host` names the TCP listener accepts besides [`LOOPBACK_HOSTS`]
    /// (and, with `allow_remote`, the `listen` address itself); lower case,
    /// without port.
    pub allowed_hosts: Vec<String>,
    /// Where the token key was written, for problems reading it later.
    token_origin: Origin,
}

impl Api {
    /// Reads the TCP API's bearer token (see [`crate::Central::read_token`]
    /// for the rules: a private file or a systemd credential). `Ok(None)`
    /// without a TCP listener.
    pub fn read_token(&self, env: &Env) -> Result<Option<SecretString>, Error> {
        match &self.token {
            Some(source) => crate::secret::load(source, &self.token_origin, env).map(Some),
            None => Ok(None),
        }
    }

    /// Every `Host` name (without port, lower case) the TCP listener
    /// accepts: loopback names, the listen address, `allowed_hosts`.
    pub fn accepted_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = LOOPBACK_HOSTS.iter().map(|h| h.to_string()).collect();
        if let Some(addr) = self.listen {
            hosts.push(match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            });
        }
        hosts.extend(self.allowed_hosts.iter().cloned());
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// `table` is `None` when the file has no `[api]`.
pub(crate) fn read(ctx: &mut Ctx<'_>, table: Option<Table<'_, '_>>, env: &Env) -> Option<Api> {
    let mut header = None;
    let mut socket = None;
    let mut socket_present = false;
    // Where a too-long socket path is reported: its key, else the table.
    let mut socket_span = None;
    let mut listen = None;
    let mut allow_remote = false;
    let mut max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    let mut token = None;
    let mut token_origin = Origin::default();
    let mut allowed_hosts = Vec::new();
    if let Some(table) = table {
        header = table.header();
        if let Some(field) = table.field("socket") {
            socket_present = true;
            socket_span = Some(field.span());
            socket = path(ctx, &field);
        }
        if let Some(field) = table.field("allow_remote") {
            allow_remote = field.boolean(ctx).unwrap_or(false);
        }
        if let Some(field) = table.field("max_body_bytes") {
            let range = MAX_BODY_BYTES_MIN as i64..=MAX_BODY_BYTES_MAX as i64;
            if let Some(n) = field.integer(ctx, range) {
                max_body_bytes = n as u64;
            }
        }
        if let Some(field) = table.field("listen") {
            listen = read_listen(ctx, &field, allow_remote);
        }
        let (source, origin) = crate::secret::read_source(ctx, &table);
        token = source;
        token_origin = origin;
        if let Some(field) = table.field("allowed_hosts") {
            allowed_hosts = read_hosts(ctx, &field);
        }
        check_tcp_keys(ctx, &table);
        table.finish(ctx);
    }
    let socket = socket.or_else(|| {
        env.runtime_directory
            .as_ref()
            .map(|dir| dir.join(DEFAULT_SOCKET_FILE))
    });
    check_socket(
        ctx,
        socket.as_deref(),
        socket_present,
        socket_span.or(header),
    );
    Some(Api {
        socket: socket?,
        listen,
        allow_remote,
        max_body_bytes,
        token,
        allowed_hosts,
        token_origin,
    })
}

/// A TCP listener needs a token; the token and `allowed_hosts` mean
/// nothing without one.
fn check_tcp_keys(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) {
    let listen = table.field("listen");
    let token_key = table
        .field("token_file")
        .or_else(|| table.field("credential"));
    match (&listen, &token_key) {
        (Some(listen), None) => listen.invalid(
            ctx,
            "a TCP listener needs a bearer token, since every local user can reach it: \
             set token_file (a file of mode 0600) or credential (a systemd credential)",
        ),
        (None, Some(key)) => key.misplaced(
            ctx,
            "only applies with listen (the Unix socket needs no token)",
        ),
        _ => {}
    }
    if listen.is_none()
        && let Some(hosts) = table.field("allowed_hosts")
    {
        hosts.misplaced(ctx, "only applies with listen");
    }
}

/// `allowed_hosts`: host names or IP addresses (no port, no scheme).
fn read_hosts(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Vec<String> {
    let entries = strings(ctx, field);
    if entries.len() > ALLOWED_HOSTS_MAX {
        field.invalid(
            ctx,
            format!("at most {ALLOWED_HOSTS_MAX} hosts, got {}", entries.len()),
        );
        return Vec::new();
    }
    let mut hosts = Vec::new();
    for (text, _) in entries {
        let host = text.to_ascii_lowercase();
        let ok = !host.is_empty()
            && host.len() <= HOST_NAME_CHARS_MAX
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
            && (host.starts_with('[') || !host.contains(':'));
        if ok {
            hosts.push(host);
        } else {
            field.invalid(
                ctx,
                format!(
                    "entries must be host names or IP addresses without port (IPv6 in brackets), got {}",
                    quote(text)
                ),
            );
        }
    }
    hosts
}

/// `IP:PORT`, loopback unless `allow_remote`.
fn read_listen(ctx: &mut Ctx<'_>, field: &Field<'_, '_>, allow_remote: bool) -> Option<SocketAddr> {
    let text = field.string(ctx)?;
    match text.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() && !allow_remote => {
            field.invalid(
                ctx,
                format!(
                    "{addr} is not a loopback address; set allow_remote = true \
                     to expose the API to the network on purpose"
                ),
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            field.invalid(
                ctx,
                format!(
                    "must be IP:PORT (e.g. \"127.0.0.1:7311\" or \"[::1]:7311\"), got {}",
                    quote(text)
                ),
            );
            None
        }
    }
}

/// The socket path fits a `sockaddr_un`, and there is one. `span`: the `socket` key,
/// else the `[api]` header, where a too-long path is reported.
fn check_socket(
    ctx: &mut Ctx<'_>,
    socket: Option<&Path>,
    socket_present: bool,
    span: Option<Range<usize>>,
) {
    if let Some(socket) = socket {
        let bytes = socket.as_os_str().len();
        if bytes > SOCKET_PATH_BYTES_MAX {
            ctx.report(
                span.clone(),
                Some("[api] socket".to_string()),
                format!(
                    "{} is {bytes} bytes; a Unix socket path must be at most {SOCKET_PATH_BYTES_MAX}",
                    socket.display()
                ),
            );
        }
    }
    if socket.is_none() && !socket_present {
        ctx.report(
            span,
            Some("[api] socket".to_string()),
            "no API socket: set [api] socket or RUNTIME_DIRECTORY",
        );
    }
}
