//! Listening: the Unix socket (mode 0660, stale file replaced, a live agent
//! never displaced), optional TCP, a bound on open connections, a bound on
//! header read time, and graceful shutdown with a bounded drain.
//!
//! Hand-rolled on `hyper` + `hyper-util` instead of `axum::serve` because
//! we need three things it does not give: a connection limit that holds
//! back `accept` (backpressure into the kernel backlog instead of an
//! unbounded task count), a header read timeout (a silent client must not
//! hold a connection slot), and a drain bound at shutdown.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

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

/// Either kind of listener, for one accept loop.
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting and lets in-flight requests finish within [`DRAIN_TIMEOUT_MS`].
/// `connections` is shared between listeners so the bound is global.
pub async fn serve(
    listener: Listener,
    router: Router,
    connections: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut connection_tasks = tokio::task::JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // semaphore closed: shutting down
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = accept(&listener) => accepted,
        };
        let io = match accepted {
            Ok(io) => io,
            Err(error) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(message = "Accept failed.", %error);
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = match io {
            Accepted::Unix(s) => graceful
                .watch(builder.serve_connection(TokioIo::new(s), service))
                .boxed(),
            Accepted::Tcp(s) => graceful
                .watch(builder.serve_connection(TokioIo::new(s), service))
                .boxed(),
        };
        // Finished connections are reaped here so the set stays within
        // CONNECTIONS_MAX entries.
        while connection_tasks.try_join_next().is_some() {}
        connection_tasks.spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(message = "Connection ended with an error.", %error);
            }
            drop(permit);
        });
    }
    drop(listener);
    match tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), graceful.shutdown()).await {
        Ok(()) => tracing::debug!(message = "API connections drained."),
        Err(_) => {
            tracing::warn!(
                message = "API connections did not drain in time; dropping them.",
                timeout_ms = DRAIN_TIMEOUT_MS
            );
            // Dropped, not left running: an in-process host (tests, demo)
            // closes the store next, and a lingering connection must not
            // outlive it.
            connection_tasks.abort_all();
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
    }
}

use futures_util::FutureExt as _;
