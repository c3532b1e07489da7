//! The connection bound holds back `accept`, a silent client loses its
//! slot at the header read timeout, and the admission hook sees each
//! connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pos_http::{Admission, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn a_full_server_does_not_accept_until_a_slot_is_free() {
    let (listener, addr, accepted) = Counting::bind().await;
    let running = spawn(pos_http::Server::new(limits(1)), listener, Probe::default());
    let mut first = TcpStream::connect(addr).await.unwrap();
    send(&mut first, "/").await;
    assert!(answer(&mut first).await.is_some());

    // The kernel completes the second client's connection (backlog), but
    // the loop does not take it while the first holds the only slot.
    let mut second = TcpStream::connect(addr).await.unwrap();
    send(&mut second, "/").await;
    let waited = tokio::time::timeout(Duration::from_secs(1), answer(&mut second)).await;
    assert!(waited.is_err(), "the second client must wait");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "accept is held back");

    drop(first);
    let answer = answer(&mut second)
        .await
        .expect("served once the slot is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_at_the_header_read_timeout_and_frees_its_slot() {
    let (listener, addr, _) = Counting::bind().await;
    let running = spawn(pos_http::Server::new(limits(1)), listener, Probe::default());
    let connected = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Half a request head, then nothing.
    silent.write_all(b"GET / HTTP/1.1\r\nhost").await.unwrap();
    assert!(closed(&mut silent).await);
    let waited = connected.elapsed();
    assert!(
        waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + SLOW,
        "{waited:?}"
    );

    let mut next = TcpStream::connect(addr).await.unwrap();
    send(&mut next, "/").await;
    assert!(answer(&mut next).await.is_some(), "the slot was given back");
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

/// Admits one connection per peer address, as a per-address bound would,
/// counting the tickets it has out.
struct OnePerAddress {
    out: Arc<AtomicUsize>,
    peers: Arc<std::sync::Mutex<Vec<Peer>>>,
}

struct Ticket(Arc<AtomicUsize>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Admission for OnePerAddress {
    type Ticket = Ticket;

    fn admit(&self, peer: &Peer) -> Option<Ticket> {
        self.peers.lock().unwrap().push(*peer);
        if self.out.fetch_add(1, Ordering::SeqCst) > 0 {
            self.out.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Ticket(self.out.clone()))
    }
}

#[tokio::test(start_paused = true)]
async fn the_admission_hook_sees_the_peer_and_its_ticket_lives_as_long_as_the_connection() {
    let (listener, addr, _) = Counting::bind().await;
    let out = Arc::new(AtomicUsize::new(0));
    let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook = OnePerAddress {
        out: out.clone(),
        peers: peers.clone(),
    };
    let server = pos_http::Server::new(limits(4)).with_admission(hook);
    let running = spawn(server, listener, Probe::default());

    let mut first = TcpStream::connect(addr).await.unwrap();
    send(&mut first, "/").await;
    assert!(answer(&mut first).await.is_some());
    assert_eq!(out.load(Ordering::SeqCst), 1);
    let mut refused = TcpStream::connect(addr).await.unwrap();
    send(&mut refused, "/").await;
    assert!(closed(&mut refused).await, "refused: closed unanswered");
    {
        let peers = peers.lock().unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0], Peer::Tcp(first.local_addr().unwrap()));
    }

    drop(first);
    // The ticket is given back when the connection's task ends.
    let given_back = async {
        while out.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), given_back)
        .await
        .expect("the ticket is dropped with its connection");
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}
