//! Attacks on the real binaries, one file per attack family, each showing
//! the defence held (and written so that it fails if the defence goes).

mod bodies;
mod card_guard;
mod central_edge;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest a raw exchange in these tests may take before it counts as hung.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer as read off the wire: status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: serde_json::Value,
    /// The body as sent (its size is part of some checks).
    pub raw_body: Vec<u8>,
}

/// Sends `request` (head and body, all of it, before reading anything, as
/// Python's `http.client` does) and reads everything until the server
/// closes. Panics when the exchange fails: a reset is what these tests
/// guard against.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Answer {
    let exchange = async {
        stream
            .write_all(request)
            .await
            .expect("the whole request is accepted, not reset");
        let mut bytes = Vec::new();
        stream
            .read_to_end(&mut bytes)
            .await
            .expect("the answer is read, not reset");
        bytes
    };
    let bytes = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .expect("answered in time");
    parse(&bytes)
}

/// Splits an HTTP/1.1 answer (with a `content-length` body).
pub fn parse(bytes: &[u8]) -> Answer {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head in {:?}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let raw_body = bytes[end + 4..].to_vec();
    let body = serde_json::from_slice(&raw_body).unwrap_or_else(|e| {
        panic!(
            "answer {status} is not JSON ({e}): {head}\r\n\r\n{}",
            String::from_utf8_lossy(&raw_body)
        )
    });
    Answer {
        status,
        head,
        body,
        raw_body,
    }
}

/// A request with `connection: close`, its head lines and body.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The `host:port` of a base URL.
pub fn host_port(url: &str) -> &str {
    url.split("://").nth(1).unwrap_or(url)
}
