//! Listening: the Unix socket (mode 0660, stale file replaced, a live agent
//! never displaced), optional TCP, and the limits each is served within
//! ([`UNIX_LIMITS`], [`TCP_LIMITS`]): a bound on open connections, a bound
//! on header read time (which is also the idle timeout), and a bounded
//! drain at shutdown. The serving loop itself is `pos_http`'s, the same one
//! central runs.
//!
//! Starvation (70 idle connections on the socket once delayed a sale by
//! 9 s, while they held every slot): the two listeners have slots of their
//! own, so a TCP flood never takes the socket's; on the socket each client
//! process may hold at most [`CONNECTIONS_PER_PROCESS_MAX`] connections
//! ([`PerProcess`], by the kernel's `SO_PEERCRED`), and there are slots for
//! more than 32 such processes at their bound with room left for the POS;
//! an idle or slow client loses its connection after
//! [`HEADER_READ_TIMEOUT_MS`] (head) or the request timeout (body).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, UnixListener, UnixStream};

/// Most connections served at once on the Unix socket: room for 36
/// processes at [`CONNECTIONS_PER_PROCESS_MAX`]. A register has one POS and
/// a few tools; beyond this, clients wait in the kernel backlog. With the
/// TCP listener's, well under the 1024 descriptors a service gets by default.
pub const UNIX_CONNECTIONS_MAX: usize = 576;
/// Most connections one client process may hold on the Unix socket; more
/// are answered 503 `too_many_connections` and closed. A POS needs one or
/// two, and its event streams (at most [`crate::api::EVENT_STREAMS_MAX`]),
/// with room to spare.
pub const CONNECTIONS_PER_PROCESS_MAX: usize = 16;
/// Most connections served at once on the TCP listener, in slots of its
/// own: a flood there (any local user can connect before the token is
/// checked) leaves the socket's slots alone.
pub const TCP_CONNECTIONS_MAX: usize = 64;
/// Most connections over both listeners.
pub const CONNECTIONS_MAX: usize = UNIX_CONNECTIONS_MAX + TCP_CONNECTIONS_MAX;
/// A client has this long to send a request's headers. hyper starts this
/// timer whenever it waits for a request head, so it is also the idle
/// timeout of a keep-alive connection: an idle client frees its slot after
/// this long. A POS on the same machine sends a head in microseconds.
pub const HEADER_READ_TIMEOUT_MS: u64 = 5_000;
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

/// The bounds the API is served within on the Unix socket, for
/// [`pos_http::Server`]. Plain HTTP, so the handshake bound is the header
/// bound.
pub const UNIX_LIMITS: pos_http::Limits = limits(UNIX_CONNECTIONS_MAX);
/// The same on the TCP listener, with its own slots.
pub const TCP_LIMITS: pos_http::Limits = limits(TCP_CONNECTIONS_MAX);

const fn limits(connections_max: usize) -> pos_http::Limits {
    pos_http::Limits {
        connections_max,
        header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        handshake_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        drain_timeout: Duration::from_millis(DRAIN_TIMEOUT_MS),
        accept_retry: Duration::from_millis(ACCEPT_RETRY_MS),
        linger_timeout: Duration::from_millis(LINGER_TIMEOUT_MS),
        linger_bytes_max: LINGER_BYTES_MAX,
        // The POS waits for a slot rather than being told to come back.
        shed_connections_max: 0,
        retry_after: Duration::from_secs(1),
    }
}

/// After answering a request whose body was refused (too large), time the
/// API keeps reading and discarding what the client still sends, so a
/// client that sends a whole body before reading sees the 413.
pub const LINGER_TIMEOUT_MS: u64 = 2_000;
/// Most bytes discarded that way: a few times the largest body.
pub const LINGER_BYTES_MAX: u64 = 8 * 1_048_576;

/// The answer to a connection over [`CONNECTIONS_PER_PROCESS_MAX`], written
/// once without waiting (the socket buffer of a fresh connection has room)
/// before it is closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nconnection: close\r\ncontent-length: 117\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"this process holds too many \
connections to the agent; reuse one\"}}";

/// The Unix socket's listener with a bound per client process: the peer's
/// pid (from `SO_PEERCRED`, which the client cannot forge) is counted while
/// its connections are open.
pub struct PerProcess {
    listener: UnixListener,
    open: Arc<Mutex<HashMap<i32, usize>>>,
    max: usize,
}

impl PerProcess {
    pub fn new(listener: UnixListener, max: usize) -> PerProcess {
        PerProcess {
            listener,
            open: Arc::default(),
            max,
        }
    }

    /// A ticket for one more connection of `pid`, or `None` at its bound.
    fn admit(&self, pid: i32) -> Option<ProcessTicket> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(pid).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ProcessTicket {
            pid,
            open: self.open.clone(),
        })
    }
}

impl pos_http::Accept for PerProcess {
    type Io = Ticketed;

    async fn accept(&mut self) -> io::Result<(Ticketed, pos_http::Peer)> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            // No pid (not Linux, or the peer is gone already): one shared
            // bucket, still bounded.
            let pid = stream.peer_cred().ok().and_then(|c| c.pid()).unwrap_or(0);
            match self.admit(pid) {
                Some(ticket) => {
                    let io = Ticketed {
                        stream,
                        _ticket: ticket,
                    };
                    return Ok((io, pos_http::Peer::Unix));
                }
                None => {
                    tracing::debug!(
                        message = "Connection refused: too many from one process.",
                        pid
                    );
                    let _ = stream.try_write(TOO_MANY_CONNECTIONS);
                }
            }
        }
    }
}

/// One counted connection of a process; counted down on drop.
struct ProcessTicket {
    pid: i32,
    open: Arc<Mutex<HashMap<i32, usize>>>,
}

impl Drop for ProcessTicket {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.pid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.pid);
            }
        }
    }
}

/// A Unix connection holding its process's ticket for as long as it is open.
pub struct Ticketed {
    stream: UnixStream,
    _ticket: ProcessTicket,
}

impl AsyncRead for Ticketed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Ticketed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_json_answer() {
        let text = std::str::from_utf8(TOO_MANY_CONNECTIONS).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(value["error"]["code"], "too_many_connections");
    }

    #[test]
    fn a_process_gets_its_bound_and_its_tickets_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let limited = PerProcess::new(listener, 2);
        let a = limited.admit(7).unwrap();
        let _b = limited.admit(7).unwrap();
        assert!(limited.admit(7).is_none(), "third of pid 7");
        assert!(limited.admit(8).is_some(), "another process");
        drop(a);
        assert!(limited.admit(7).is_some(), "a ticket came back");
    }
}
