//! A minimal HTTP/1.1 client for the agent's own Unix socket, used by
//! `pos-agent status` (and usable by benchmarks). Hand-written on hyper's
//! connection API because reqwest cannot speak over a Unix socket and the
//! need is one request per connection.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// How long one request may take, connection included.
pub const CLIENT_TIMEOUT_MS: u64 = 10_000;
/// Largest answer read.
pub const CLIENT_ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {source} (is pos-agent running?)")]
    Connect {
        socket: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange failed: {0}")]
    Http(String),
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
}

/// Sends one request (a body as JSON) and returns the status and body.
pub async fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, Bytes), ClientError> {
    let content_type = body.as_ref().map(|_| "application/json");
    request_with(socket, method, path, content_type, body, CLIENT_TIMEOUT_MS).await
}

/// [`request`] with any content type (or none) and timeout: the API tests
/// send deliberately wrong content types and wait longer on a loaded
/// machine, and sharing this keeps one HTTP-over-Unix-socket client.
pub async fn request_with(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
    timeout_ms: u64,
) -> Result<(u16, Bytes), ClientError> {
    let work = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| ClientError::Connect {
                socket: socket.display().to_string(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if let Some(content_type) = content_type {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let answer = sender
            .send_request(request)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = answer.status().as_u16();
        let bytes = Limited::new(answer.into_body(), CLIENT_ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), work)
        .await
        .map_err(|_| ClientError::Timeout { timeout_ms })?
}
