//! Shutdown: requests in flight finish within the drain bound, the rest
//! are aborted, and `serve` returns only when no connection task is left.

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_finishes_and_serve_returns_without_waiting_out_the_bound() {
    let (listener, addr, _) = Counting::bind().await;
    let probe = Probe::default();
    let running = spawn(pos_http::Server::new(limits(4)), listener, probe.clone());
    let mut client = TcpStream::connect(addr).await.unwrap();
    send(&mut client, "/slow").await;
    probe.started.notified().await;

    let stopping = Instant::now();
    running.stop.send(()).unwrap();
    let answer = answer(&mut client)
        .await
        .expect("the request in flight is answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.task.await.unwrap();
    let waited = stopping.elapsed();
    assert!(waited >= SLOW && waited < DRAIN_TIMEOUT, "{waited:?}");
    assert!(closed(&mut client).await, "the connection closes after it");
}

#[tokio::test(start_paused = true)]
async fn a_request_that_outlives_the_drain_bound_is_aborted_when_it_ends() {
    let (listener, addr, _) = Counting::bind().await;
    let probe = Probe::default();
    let running = spawn(pos_http::Server::new(limits(4)), listener, probe.clone());
    let mut client = TcpStream::connect(addr).await.unwrap();
    send(&mut client, "/hang").await;
    probe.started.notified().await;
    assert_eq!(probe.handlers_alive(), 1);

    let stopping = Instant::now();
    running.stop.send(()).unwrap();
    let alive_at_return = running.task.await.unwrap();
    let waited = stopping.elapsed();
    assert!(
        waited >= DRAIN_TIMEOUT && waited < DRAIN_TIMEOUT + SLOW,
        "serve returns at the drain bound, not before or long after: {waited:?}"
    );
    assert_eq!(
        alive_at_return, 0,
        "the hanging handler is gone when serve returns"
    );
    assert!(
        closed(&mut client).await,
        "its connection is closed unanswered"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_kept_alive_connections_close_at_once_at_shutdown() {
    let (listener, addr, _) = Counting::bind().await;
    let probe = Probe::default();
    let running = spawn(pos_http::Server::new(limits(4)), listener, probe.clone());
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = TcpStream::connect(addr).await.unwrap();
        send(&mut client, "/").await;
        assert!(answer(&mut client).await.is_some());
        clients.push(client);
    }

    let stopping = Instant::now();
    running.stop.send(()).unwrap();
    assert_eq!(running.task.await.unwrap(), 0);
    assert!(stopping.elapsed() < SLOW, "{:?}", stopping.elapsed());
    for client in &mut clients {
        assert!(closed(client).await);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_still_in_its_handshake_is_dropped_at_shutdown() {
    let (listener, addr, accepted) = Counting::bind().await;
    let server = pos_http::Server::new(limits(4));
    let running = spawn_with(server, listener, crate::tls::acceptor(), Probe::default());
    // A client that connects and never starts its TLS handshake.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    let stopping = Instant::now();
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
    assert!(stopping.elapsed() < HANDSHAKE_TIMEOUT);
    assert!(closed(&mut silent).await);
}
