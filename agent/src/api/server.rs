//! Listening: the Unix socket (mode 0660, stale file replaced, a live agent
//! never displaced), optional TCP, and the [`LIMITS`] both are served
//! within: a bound on open connections, a bound on header read time, and a
//! bounded drain at shutdown. The serving loop itself is `pos_http`'s, the
//! same one central runs.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};

/// Most connections served at once, over all listeners. A register has one
/// POS and a few tools; the rest wait in the kernel backlog.
pub const CONNECTIONS_MAX: usize = 64;
/// A client has this long to send a request's headers. hyper starts this
/// timer whenever it waits for a request head, so it also closes idle
/// keep-alive connections, which frees their connection slots.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// At shutdown, in-flight requests get this long to finish before their
/// connections are dropped.
pub const DRAIN_TIMEOUT_MS: u64 = 5_000;
/// Pause after a failed `accept` (e.g. out of file descriptors) before
/// trying again, so the loop does not spin.
pub const ACCEPT_RETRY_MS: u64 = 50;
/// File mode of the socket: owner and group (the POS's group) only.
pub const SOCKET_MODE: u32 = 0o660;

/// Why a listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{path}: another process is listening on this socket (is another pos-agent running?)")]
    InUse { path: PathBuf },
    #[error("{path}: exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("{addr}: cannot listen: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
}

/// The bound Unix socket and the identity of its file, so shutdown removes
/// the file only while it is still ours (a successor may have replaced it).
pub struct UnixSocket {
    pub listener: UnixListener,
    pub path: PathBuf,
    dev_ino: (u64, u64),
}

impl UnixSocket {
    /// Removes the socket file if it is still the one we created.
    pub fn remove_file(path: &Path, dev_ino: (u64, u64)) {
        let ours =
            std::fs::symlink_metadata(path).is_ok_and(|meta| (meta.dev(), meta.ino()) == dev_ino);
        if ours && let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(message = "Cannot remove the API socket.", path = %path.display(), %error);
        }
    }

    pub fn dev_ino(&self) -> (u64, u64) {
        self.dev_ino
    }
}

/// Binds the API socket at `path`.
///
/// An existing socket file is probed: if something accepts a connection
/// there, another agent is live and we refuse; if the connection is refused
/// the file is a leftover of a crashed run and is replaced. Anything that is
/// not a socket is never deleted.
pub fn bind_unix(path: &Path) -> Result<UnixSocket, ListenError> {
    let io = |action: &'static str| {
        move |source| ListenError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ListenError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(ListenError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(message = "Replacing a stale API socket.", path = %path.display());
                std::fs::remove_file(path).map_err(io("remove stale socket"))?;
            }
            Err(e) => return Err(io("probe existing socket")(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect")(e)),
    }
    let listener = UnixListener::bind(path).map_err(io("bind"))?;
    // chmod after bind: the window where the socket has the umask's mode is
    // harmless in the service's RuntimeDirectory (mode 0750 by systemd);
    // changing the process umask instead would affect other tasks' files.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io("set mode 0660"))?;
    let meta = std::fs::symlink_metadata(path).map_err(io("inspect"))?;
    Ok(UnixSocket {
        listener,
        path: path.to_path_buf(),
        dev_ino: (meta.dev(), meta.ino()),
    })
}

/// Binds the optional TCP listener.
pub async fn bind_tcp(addr: std::net::SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError::Tcp {
            addr: addr.to_string(),
            source,
        })
}

/// The bounds the API is served within, for [`pos_http::Server`]. Plain
/// HTTP on both listeners, so the handshake bound is the header bound.
pub const LIMITS: pos_http::Limits = pos_http::Limits {
    connections_max: CONNECTIONS_MAX,
    header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
    handshake_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
    drain_timeout: Duration::from_millis(DRAIN_TIMEOUT_MS),
    accept_retry: Duration::from_millis(ACCEPT_RETRY_MS),
    linger_timeout: Duration::from_millis(LINGER_TIMEOUT_MS),
    linger_bytes_max: LINGER_BYTES_MAX,
    // The POS waits for a slot rather than being told to come back.
    shed_connections_max: 0,
    retry_after: Duration::from_secs(1),
};

/// After answering a request whose body was refused (too large), time the
/// API keeps reading and discarding what the client still sends, so a
/// client that sends a whole body before reading sees the 413.
pub const LINGER_TIMEOUT_MS: u64 = 2_000;
/// Most bytes discarded that way: a few times the largest body.
pub const LINGER_BYTES_MAX: u64 = 8 * 1_048_576;
