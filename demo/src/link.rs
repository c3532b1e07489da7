//! The demo's network: an in-process TCP forwarder between the registers
//! and central that the script can cut and restore (the outage).
//!
//! Hand-written rather than taken from a crate: it is ~60 lines on tokio's
//! own `copy_bidirectional`, and what matters here — cutting every open
//! connection at once, so an HTTP client's pooled keep-alive connection
//! cannot dodge the outage — is not something a generic proxy crate offers.
//!
//! While cut, connections are accepted and closed at once (the client sees
//! its connection closed before any answer: a network failure it retries);
//! central itself keeps running.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::DemoError;

/// Most connections forwarded at once: two registers need a handful; more
/// wait in the kernel backlog.
pub const LINK_CONNECTIONS_MAX: usize = 64;

/// A cuttable TCP link to `upstream`, listening on a loopback port.
pub struct Link {
    addr: SocketAddr,
    /// `true` while the link is up; every connection watches it.
    up: watch::Sender<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Link {
    /// Listens on `127.0.0.1:0` and forwards to `upstream`; starts up.
    pub async fn start(upstream: SocketAddr) -> Result<Link, DemoError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| DemoError::io("binding the demo network link", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| DemoError::io("reading the link's address", e))?;
        let (up, _) = watch::channel(true);
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, upstream, up.clone(), stop.clone()));
        Ok(Link {
            addr,
            up,
            stop,
            task,
        })
    }

    /// Where registers connect (their `[central] url`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The outage: closes every open connection; new ones are closed at once.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The recovery: new connections are forwarded again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Stops listening and closes every connection.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    up: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(LINK_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            // A failed accept (e.g. the peer gave up) concerns that peer only.
            continue;
        };
        if !*up.borrow() {
            drop(client);
            continue;
        }
        let mut watch_up = up.subscribe();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // Biased: a cut must win over bytes that are ready to pump.
            tokio::select! {
                biased;
                _ = stop.cancelled() => {}
                _ = watch_up.wait_for(|up| !*up) => {}
                _ = forward(client, upstream) => {}
            }
        });
    }
}

/// Pumps bytes both ways until either side closes.
async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Upper bound so a broken link fails the test instead of hanging it.
    const WAIT_MS: u64 = 10_000;

    /// An upstream that answers every connection's bytes back, upper-cased.
    async fn shouting_echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n].to_ascii_uppercase()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `text` and reads the answer; `None` when the link closed it.
    async fn exchange(stream: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
        let work = async {
            stream.write_all(text).await.ok()?;
            let mut buf = vec![0u8; text.len()];
            stream.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        tokio::time::timeout(Duration::from_millis(WAIT_MS), work)
            .await
            .expect("the link neither answered nor closed")
    }

    #[tokio::test]
    async fn traffic_flows_while_up() {
        let link = Link::start(shouting_echo().await).await.unwrap();
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(
            exchange(&mut s, b"sale").await.as_deref(),
            Some(&b"SALE"[..])
        );
        link.stop().await;
    }

    #[tokio::test]
    async fn cut_closes_open_connections_and_new_ones() {
        let link = Link::start(shouting_echo().await).await.unwrap();
        let mut open = TcpStream::connect(link.addr()).await.unwrap();
        assert!(exchange(&mut open, b"before").await.is_some());

        link.cut();
        assert!(!link.is_up());
        // The kept-alive connection is closed: no answer, EOF or reset.
        assert_eq!(exchange(&mut open, b"pooled").await, None);
        // A new connection is accepted by the kernel, then closed unanswered.
        let mut fresh = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(exchange(&mut fresh, b"during").await, None);
        link.stop().await;
    }

    #[tokio::test]
    async fn restore_lets_traffic_flow_again() {
        let link = Link::start(shouting_echo().await).await.unwrap();
        link.cut();
        let mut refused = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(exchange(&mut refused, b"x").await, None);

        link.restore();
        assert!(link.is_up());
        let mut s = TcpStream::connect(link.addr()).await.unwrap();
        assert_eq!(
            exchange(&mut s, b"after").await.as_deref(),
            Some(&b"AFTER"[..])
        );
        link.stop().await;
    }
}
