//! The stream hyper speaks HTTP on, wrapped so that hyper's own answer to
//! a request it cannot parse (a malformed request line, bytes that are not
//! text, headers too large) is the JSON error like every other answer.
//!
//! hyper writes that answer itself, with an empty body, before the service
//! sees anything; it offers no hook. It is recognisable on the wire: a head
//! with status 400, 414 or 431, `content-length: 0` and no `content-type`,
//! written when no other answer is under way (hyper answers a parse error
//! only then, and closes right after). Every answer of our services has a
//! `content-type`, so this rewrites hyper's answers only.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::raw_answer;

/// Statuses hyper answers parse errors with, and what they mean.
const PARSE_ANSWERS: [(&[u8], &str, &str, &str); 3] = [
    (
        b"HTTP/1.1 400 ",
        "400 Bad Request",
        "invalid",
        "malformed HTTP request (request line or headers)",
    ),
    (
        b"HTTP/1.1 414 ",
        "414 URI Too Long",
        "too_large",
        "request target too long",
    ),
    (
        b"HTTP/1.1 431 ",
        "431 Request Header Fields Too Large",
        "too_large",
        "request headers too large",
    ),
];

/// Longest head hyper writes for a parse error (status line and `date`).
const PARSE_HEAD_BYTES_MAX: usize = 256;

/// A stream whose writes pass through unchanged, except hyper's answer to
/// a parse error, which becomes the JSON error.
pub(crate) struct JsonErrors<I> {
    inner: I,
    /// Our answer still to write, and how many of hyper's bytes it stands
    /// for (reported as written once ours is out).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<I> JsonErrors<I> {
    pub(crate) fn new(inner: I) -> Self {
        JsonErrors {
            inner,
            pending: None,
        }
    }

    pub(crate) fn into_inner(self) -> I {
        self.inner
    }
}

/// When `buf` starts with hyper's answer to a parse error: our answer and
/// the length of hyper's head.
fn replacement(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (_, status, code, message) = PARSE_ANSWERS
        .iter()
        .find(|(prefix, ..)| buf.starts_with(prefix))?;
    let window = &buf[..buf.len().min(PARSE_HEAD_BYTES_MAX)];
    let end = window.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if head.contains("content-type:") || !head.contains("content-length: 0\r\n") {
        return None;
    }
    Some((raw_answer(status, "", code, message), end))
}

impl<I: AsyncWrite + Unpin> JsonErrors<I> {
    /// Writes what is pending; `Ready(Some(n))` once it is all out, `n`
    /// being the bytes of hyper's it replaced.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<usize>>> {
        while let Some((bytes, written, stands_for)) = &mut self.pending {
            if *written == bytes.len() {
                let n = *stands_for;
                self.pending = None;
                return Poll::Ready(Ok(Some(n)));
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(None))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none()
            && let Some((ours, stands_for)) = replacement(buf)
        {
            this.pending = Some((ours, 0, stands_for));
        }
        match ready!(this.poll_pending(cx))? {
            Some(replaced) => Poll::Ready(Ok(replaced)),
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // A replacement is only pending inside a `poll_write` that has not
        // returned yet; hyper repeats that call before flushing.
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_empty_parse_answers_are_replaced() {
        let hyper = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let (ours, n) = replacement(hyper).unwrap();
        assert_eq!(n, hyper.len());
        let text = String::from_utf8(ours).unwrap();
        assert!(text.contains("application/json") && text.contains("\"invalid\""));
        let service = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(replacement(service).is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
