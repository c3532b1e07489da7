//! What a client reads back in the hard cases: a request hyper cannot
//! parse gets the JSON error, a refused body sent whole still lets the
//! client read the answer, and a saturated server sheds with 503.

use std::time::Duration;

use pos_http::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

/// Everything the server sends until it closes.
async fn read_all(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test(start_paused = true)]
async fn a_request_line_that_is_not_text_gets_the_json_error() {
    let (listener, addr, _) = Counting::bind().await;
    let running = spawn(Server::new(limits(4)), listener, Probe::default());
    for garbage in [
        &b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n"[..],
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let answer = read_all(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        assert!(
            answer.ends_with(
                r#""code":"invalid","message":"malformed HTTP request (request line or headers)"}}"#
            ) || answer.contains(r#""code":"invalid""#),
            "{answer}"
        );
    }
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_refused_body_sent_whole_still_lets_the_client_read_the_answer() {
    let (listener, addr, _) = Counting::bind().await;
    let running = spawn(Server::new(limits(4)), listener, Probe::default());
    let body = vec![b'x'; 6 << 20];
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /refuse HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    // The whole request first, the answer after: as http.client does.
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body)
        .await
        .expect("the server reads the refused body instead of resetting");
    let answer = read_all(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_saturated_server_sheds_with_503_and_retry_after() {
    let (listener, addr, _) = Counting::bind().await;
    let mut bounds = limits(1);
    bounds.shed_connections_max = 1;
    let probe = Probe::default();
    let running = spawn(Server::new(bounds), listener, probe.clone());
    let mut first = TcpStream::connect(addr).await.unwrap();
    send(&mut first, "/hang").await;
    probe.started.notified().await;

    let mut second = TcpStream::connect(addr).await.unwrap();
    send(&mut second, "/").await;
    let answer = tokio::time::timeout(Duration::from_secs(1), read_all(&mut second))
        .await
        .expect("answered at once, not left in the backlog");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
    assert!(answer.contains(r#""code":"overloaded""#), "{answer}");
    drop(first);
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}
