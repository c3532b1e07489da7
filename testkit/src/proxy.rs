//! A fault-injecting TCP proxy between a client and a loopback server,
//! switchable at run time, for testing sync over a bad network.
//!
//! Modes (see [`Mode`]): pass, drop (connections refused: the listening
//! socket is closed and re-opened on the same port later), delay, reset
//! (accept, then RST), blackhole (accept, read, never answer) and
//! lose-answer (forward the request, read the server's answer, then close
//! the client connection without sending it: the server acted, the client
//! does not know).
//!
//! Switching the mode cuts every connection open at that moment, so pooled
//! keep-alive connections of an HTTP client cannot dodge the new mode.
//!
//! It works on bytes, not HTTP, so TLS passes through untouched. One
//! consequence: lose-answer takes the first bytes the server sends as "the
//! answer". That is true of plain HTTP; over TLS the first server bytes are
//! the handshake, so the request is never sent. Test lost answers against a
//! central serving plain HTTP on loopback (`--insecure-http`), which the
//! register's transport rules allow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes read per chunk when pumping.
const CHUNK_BYTES: usize = 16 * 1024;
/// In lose-answer mode, the answer is taken as complete after this long
/// without more bytes from the server (or at its EOF).
const ANSWER_QUIET_MS: u64 = 100;
/// Most bytes of one answer the proxy reads (and throws away) in lose-answer mode.
const LOST_ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What the proxy does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Pass,
    /// Refuse connections (nothing listens on the port).
    Drop,
    /// Wait this long after accepting, then forward.
    Delay(Duration),
    /// Accept, then reset the connection (RST) without forwarding.
    Reset,
    /// Accept and read, never forward, never answer.
    Blackhole,
    /// Forward the request, read the answer, close without sending it
    /// (plain HTTP only, see the module docs).
    LoseAnswer,
}

/// Counters of what the proxy did, for assertions.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted (in any mode).
    pub accepted: AtomicU64,
    /// Answers read from the server and not delivered (lose-answer mode).
    pub answers_lost: AtomicU64,
    /// Connections reset on purpose.
    pub resets: AtomicU64,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode::Pass);
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            upstream,
            mode_rx,
            stats.clone(),
        ));
        Ok(Proxy {
            addr,
            mode,
            stats,
            task,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; connections open now are cut.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    pub fn answers_lost(&self) -> u64 {
        self.stats.answers_lost.load(Ordering::SeqCst)
    }

    pub fn resets(&self) -> u64 {
        self.stats.resets.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode_rx: watch::Receiver<Mode>,
    stats: Arc<Stats>,
) {
    let mut listener = Some(listener);
    loop {
        let mode = *mode_rx.borrow_and_update();
        if mode == Mode::Drop {
            // Close the port so connects are refused, until the mode changes.
            listener = None;
            if mode_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    // The port is briefly unavailable; try again shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            changed = mode_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = current.accept() => {
                let Ok((client, _)) = accepted else { continue };
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                let mut cut = mode_rx.clone();
                cut.mark_unchanged();
                let stats = stats.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = handle(client, upstream, mode, stats) => {}
                        _ = cut.changed() => {} // mode switched: drop both ends
                    }
                });
            }
        }
    }
}

async fn handle(client: TcpStream, upstream: SocketAddr, mode: Mode, stats: Arc<Stats>) {
    match mode {
        Mode::Pass => pass(client, upstream).await,
        Mode::Delay(wait) => {
            tokio::time::sleep(wait).await;
            pass(client, upstream).await;
        }
        Mode::Reset => {
            // Zero linger makes close() send RST instead of FIN.
            let _ = client.set_zero_linger();
            stats.resets.fetch_add(1, Ordering::SeqCst);
            drop(client);
        }
        Mode::Blackhole => blackhole(client).await,
        Mode::LoseAnswer => lose_answer(client, upstream, &stats).await,
        Mode::Drop => {} // not reached: the listener is closed in this mode
    }
}

async fn pass(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

async fn blackhole(mut client: TcpStream) {
    let mut buf = vec![0u8; CHUNK_BYTES];
    while let Ok(n) = client.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn lose_answer(client: TcpStream, upstream: SocketAddr, stats: &Stats) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_rd, _client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    // Client -> server runs in the background for the whole exchange.
    let forward = tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if server_wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut answer_bytes = 0usize;
    // Wait for the first answer byte as long as it takes (the server acts
    // before it answers), then until the answer goes quiet.
    loop {
        let read = if answer_bytes == 0 {
            Ok(server_rd.read(&mut buf).await)
        } else {
            tokio::time::timeout(
                Duration::from_millis(ANSWER_QUIET_MS),
                server_rd.read(&mut buf),
            )
            .await
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer_bytes += n;
                if answer_bytes > LOST_ANSWER_BYTES_MAX {
                    break;
                }
            }
        }
    }
    forward.abort();
    if answer_bytes > 0 {
        stats.answers_lost.fetch_add(1, Ordering::SeqCst);
    }
    // Dropping the halves closes both connections; the client gets no answer.
}
