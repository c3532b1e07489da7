//! Request bodies read within a total time and at a minimum rate: a tower
//! layer ([`BodyBoundsLayer`]) over the service, so a client that trickles
//! its body cannot hold a connection (and the handler waiting on it) for
//! longer than the bounds allow. The size bound stays per route (axum's
//! `DefaultBodyLimit`); these are the time bounds.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Request;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The time bounds of reading one request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyBounds {
    /// The whole body must have arrived this long after the handler began
    /// reading it.
    pub total: Duration,
    /// After [`BodyBounds::grace`], the body must keep arriving at least
    /// this fast on average (bytes per second; 0: no rate bound).
    pub min_bytes_per_s: u64,
    /// Time before the rate bound applies (TCP slow start, a slow first
    /// packet).
    pub grace: Duration,
}

/// The error a bounded body ends with: too slow or past its total time.
/// Handlers find it in the source chain of their body error and answer
/// `408`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout {
    pub bounds: BodyBounds,
}

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request body not received in time (within {} ms, at least {} bytes/s after {} ms)",
            self.bounds.total.as_millis(),
            self.bounds.min_bytes_per_s,
            self.bounds.grace.as_millis()
        )
    }
}

impl StdError for BodyTimeout {}

impl BodyTimeout {
    /// Whether `error` or one of its sources is a [`BodyTimeout`].
    pub fn is_in(error: &(dyn StdError + 'static)) -> bool {
        let mut at = Some(error);
        while let Some(e) = at {
            if e.is::<BodyTimeout>() {
                return true;
            }
            at = e.source();
        }
        false
    }
}

/// A request body read within [`BodyBounds`]. The clock starts at the
/// first poll, so a handler that never reads the body (a refused token)
/// costs nothing.
pub struct BoundedBody<B> {
    inner: Pin<Box<B>>,
    bounds: BodyBounds,
    started: Option<Instant>,
    received: u64,
    timer: Pin<Box<Sleep>>,
    failed: bool,
}

impl<B> BoundedBody<B> {
    pub fn new(inner: B, bounds: BodyBounds) -> Self {
        BoundedBody {
            inner: Box::pin(inner),
            bounds,
            started: None,
            received: 0,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            failed: false,
        }
    }

    /// The instant the body is late at, given what arrived so far: the
    /// total bound, or earlier the time by which the bytes received would
    /// fall below the minimum rate.
    fn due(&self, started: Instant) -> Instant {
        let total = started + self.bounds.total;
        if self.bounds.min_bytes_per_s == 0 {
            return total;
        }
        let earned_ms = self.received.saturating_mul(1_000) / self.bounds.min_bytes_per_s;
        let rate = started + self.bounds.grace + Duration::from_millis(earned_ms);
        total.min(rate)
    }
}

impl<B> Body for BoundedBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, BoxError>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let started = *this.started.get_or_insert_with(Instant::now);
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    use hyper::body::Buf;
                    this.received = this.received.saturating_add(data.remaining() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let due = this.due(started);
                this.timer.as_mut().reset(due);
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.failed = true;
                        let bounds = this.bounds;
                        Poll::Ready(Some(Err(Box::new(BodyTimeout { bounds }))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps every request body of a service in a [`BoundedBody`].
#[derive(Clone, Copy, Debug)]
pub struct BodyBoundsLayer(pub BodyBounds);

impl<S> tower::Layer<S> for BodyBoundsLayer {
    type Service = WithBodyBounds<S>;

    fn layer(&self, inner: S) -> WithBodyBounds<S> {
        WithBodyBounds {
            inner,
            bounds: self.0,
        }
    }
}

/// The service of [`BodyBoundsLayer`].
#[derive(Clone, Debug)]
pub struct WithBodyBounds<S> {
    inner: S,
    bounds: BodyBounds,
}

impl<S, B> tower::Service<Request<B>> for WithBodyBounds<S>
where
    S: tower::Service<Request<BoundedBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        let bounds = self.bounds;
        self.inner
            .call(request.map(|body| BoundedBody::new(body, bounds)))
    }
}
