//! `[api]`: where the local API for the POS application listens.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::reader::{Ctx, Field, Table, quote};
use crate::values::path;

pub(crate) const KEYS: &[&str] = &["socket", "listen", "allow_remote", "max_body_bytes"];

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// The Unix socket (mode 0660): the POS's usual way in.
    pub socket: PathBuf,
    /// Optional TCP listener; loopback unless `allow_remote`. Port 0 asks
    /// the kernel for a free port (tests use it).
    pub listen: Option<SocketAddr>,
    /// Lets `listen` be a non-loopback address: the API has no
    /// authentication, so exposing it is an explicit decision.
    pub allow_remote: bool,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: u64,
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
    })
}

/// `IP:PORT`, loopback unless `allow_remote`.
fn read_listen(ctx: &mut Ctx<'_>, field: &Field<'_, '_>, allow_remote: bool) -> Option<SocketAddr> {
    let text = field.string(ctx)?;
    match text.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() && !allow_remote => {
            field.invalid(
                ctx,
                format!(
                    "{addr} is not a loopback address; the API has no authentication, \
                             so set allow_remote = true to expose it on purpose"
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
