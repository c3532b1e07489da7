//! The accept loop, the task of one connection, and the bounded drain.
//!
//! Shape (each step is a function below): wait for a free connection slot,
//! then `accept`; ask the [`Admission`] hook; spawn the connection's task
//! into a `JoinSet` (handshake within its timeout, then HTTP/1.1 with the
//! header read timeout). At shutdown: stop accepting, drop the listener,
//! ask every connection to finish its request in flight and close, wait
//! for that within the drain bound, abort what is left, and return only
//! once every connection task has ended.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accept::{Accept, Peer};
use crate::admission::{Admission, AdmitAll};
use crate::handshake::Handshake;
use crate::io::JsonErrors;
use crate::limits::Limits;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A tower service that hyper can serve on a connection task: an axum
/// `Router`, or any service with the same shape.
pub trait HttpService:
    tower::Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
    /// The answers' body.
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> HttpService for S
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
}

/// The serving loop with its limits, connection slots and admission hook.
///
/// Cheap to clone; clones share the connection slots, so one `Server`
/// cloned onto several listeners (the agent's Unix socket and TCP) bounds
/// their connections together.
pub struct Server<A = AdmitAll> {
    limits: Limits,
    slots: Arc<Semaphore>,
    /// Connections accepted only to be answered 503 while `slots` are all
    /// taken ([`Limits::shed_connections_max`]).
    shed: Arc<Semaphore>,
    admission: Arc<A>,
    http: http1::Builder,
}

impl<A> Clone for Server<A> {
    fn clone(&self) -> Self {
        Server {
            limits: self.limits,
            slots: self.slots.clone(),
            shed: self.shed.clone(),
            admission: self.admission.clone(),
            http: self.http.clone(),
        }
    }
}

impl Server<AdmitAll> {
    /// A server that admits every connection within `limits`.
    pub fn new(limits: Limits) -> Server<AdmitAll> {
        let mut http = http1::Builder::new();
        // hyper's header read timeout needs a timer to take effect.
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        Server {
            limits,
            slots: Arc::new(Semaphore::new(limits.connections_max)),
            shed: Arc::new(Semaphore::new(limits.shed_connections_max)),
            admission: Arc::new(AdmitAll),
            http,
        }
    }
}

impl<A: Admission> Server<A> {
    /// The same server with another admission hook.
    pub fn with_admission<B: Admission>(self, admission: B) -> Server<B> {
        Server {
            limits: self.limits,
            slots: self.slots,
            shed: self.shed,
            admission: Arc::new(admission),
            http: self.http,
        }
    }

    /// Serves `service` on the connections of `listener`, each first passed
    /// through `handshake`, until `shutdown` resolves. Then it stops
    /// accepting and lets in-flight requests finish within
    /// [`Limits::drain_timeout`]; connections still open after that are
    /// aborted. When this returns, no connection task is left running.
    pub async fn serve<L, H, S>(
        self,
        mut listener: L,
        handshake: H,
        service: S,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        L: Accept,
        H: Handshake<L::Io>,
        S: HttpService,
    {
        let closing = CancellationToken::new();
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        while let Some((io, peer, slot)) =
            self.next_connection(&mut listener, shutdown.as_mut()).await
        {
            let Some(ticket) = self.admission.admit(&peer) else {
                tracing::debug!(message = "Connection refused by admission.", %peer);
                continue;
            };
            let connection = Connection {
                peer,
                handshake: handshake.clone(),
                service: service.clone(),
                http: self.http.clone(),
                limits: self.limits,
                closing: closing.clone(),
                _held: (slot, ticket),
            };
            // Finished connections are reaped here, so the set holds at
            // most `connections_max` entries.
            while connections.try_join_next().is_some() {}
            connections.spawn(connection.run(io));
        }
        drop(listener);
        closing.cancel();
        self.drain(connections).await;
    }

    /// The next accepted connection with the slot it holds; `None` once
    /// `shutdown` resolved. A slot is taken before `accept`, so while all
    /// (serving and shedding) are in use clients wait in the kernel's
    /// backlog.
    async fn next_connection<L: Accept, F: Future<Output = ()>>(
        &self,
        listener: &mut L,
        mut shutdown: Pin<&mut F>,
    ) -> Option<(L::Io, Peer, Slot)> {
        loop {
            // A serving slot when one is free; else a shedding one, if any.
            let slot = tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                slot = self.slots.clone().acquire_owned() => Slot::Serve { _permit: slot.ok()? },
                shed = self.shed.clone().acquire_owned() => Slot::Shed { _permit: shed.ok()? },
            };
            let accepted = tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((io, peer)) => return Some((io, peer, slot)),
                Err(error) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(message = "Accept failed.", %error);
                    drop(slot);
                    tokio::select! {
                        biased;
                        () = shutdown.as_mut() => return None,
                        () = tokio::time::sleep(self.limits.accept_retry) => {}
                    }
                }
            }
        }
    }

    /// Waits for the connections to finish within the drain bound, then
    /// aborts the rest and waits for them to be gone: an in-process host
    /// (tests, the demo) closes its store next, and no connection may
    /// outlive that.
    async fn drain(&self, mut connections: JoinSet<()>) {
        let drain_timeout = self.limits.drain_timeout;
        if tokio::time::timeout(drain_timeout, join_all(&mut connections))
            .await
            .is_ok()
        {
            tracing::debug!(message = "Connections drained.");
            return;
        }
        tracing::warn!(
            message = "Connections did not drain in time; dropping them.",
            open = connections.len(),
            timeout_ms = u64::try_from(drain_timeout.as_millis()).unwrap_or(u64::MAX),
        );
        connections.abort_all();
        join_all(&mut connections).await;
    }
}

/// Waits until every task in `set` has ended (finished, panicked or
/// aborted).
async fn join_all(set: &mut JoinSet<()>) {
    while let Some(ended) = set.join_next().await {
        if let Err(error) = ended
            && error.is_panic()
        {
            tracing::error!(message = "A connection task panicked.", %error);
        }
    }
}

/// What a connection was accepted for.
enum Slot {
    /// Served, holding one of [`Limits::connections_max`].
    Serve { _permit: OwnedSemaphorePermit },
    /// Answered 503 and closed, holding one of
    /// [`Limits::shed_connections_max`].
    Shed { _permit: OwnedSemaphorePermit },
}

/// One accepted connection and what its task needs.
struct Connection<H, S, T> {
    peer: Peer,
    handshake: H,
    service: S,
    http: http1::Builder,
    limits: Limits,
    /// Cancelled when the server stops accepting.
    closing: CancellationToken,
    /// The connection slot and the admission ticket, given back on drop.
    _held: (Slot, T),
}

impl<H, S, T> Connection<H, S, T> {
    /// Handshake within its timeout, then HTTP until the client closes or
    /// the server does (the request in flight finishes first), then the
    /// bounded linger.
    async fn run<I>(self, io: I)
    where
        H: Handshake<I>,
        S: HttpService,
    {
        let Connection {
            peer,
            handshake,
            service,
            http,
            limits,
            closing,
            _held: held,
        } = self;
        let Some(io) = run_handshake(&handshake, io, peer, &limits, &closing).await else {
            return;
        };
        let on = Http {
            peer,
            http: &http,
            closing: &closing,
        };
        let io = match held.0 {
            Slot::Shed { .. } => {
                let service = Boxed(Box::new(Shed(limits.retry_after)));
                on.until_closed(io, service).await
            }
            Slot::Serve { .. } => on.until_closed(io, Boxed(Box::new(service))).await,
        };
        if let Some(io) = io
            && !closing.is_cancelled()
        {
            linger(io, &limits).await;
        }
        drop(held);
    }
}

/// The handshake within its timeout; `None` when it failed, timed out or
/// the server is closing.
async fn run_handshake<H: Handshake<I>, I>(
    handshake: &H,
    io: I,
    peer: Peer,
    limits: &Limits,
    closing: &CancellationToken,
) -> Option<H::Io> {
    let handshake = tokio::time::timeout(limits.handshake_timeout, handshake.handshake(io));
    tokio::select! {
        biased;
        () = closing.cancelled() => None,
        done = handshake => match done {
            Ok(Ok(io)) => Some(io),
            Ok(Err(error)) => {
                tracing::debug!(message = "Handshake failed.", %peer, %error);
                None
            }
            Err(_) => {
                tracing::debug!(message = "Handshake timed out.", %peer);
                None
            }
        },
    }
}

/// What serving HTTP on one connection needs.
struct Http<'a> {
    peer: Peer,
    http: &'a http1::Builder,
    closing: &'a CancellationToken,
}

impl Http<'_> {
    /// HTTP/1.1 on `io` until either side closes; the stream is given back
    /// (for the linger) unless the connection failed.
    async fn until_closed<I, X>(&self, io: I, service: Boxed<X>) -> Option<I>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        X: HttpService,
    {
        let peer = self.peer;
        let mut connection = self
            .http
            .serve_connection(TokioIo::new(JsonErrors::new(io)), service);
        let ended = tokio::select! {
            biased;
            ended = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => Some(ended),
            () = self.closing.cancelled() => None,
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                Pin::new(&mut connection).graceful_shutdown();
                std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await
            }
        };
        match ended {
            Ok(()) => Some(connection.into_parts().io.into_inner().into_inner()),
            Err(error) => {
                tracing::debug!(message = "Connection ended with an error.", %peer, %error);
                // A parse error was answered (as JSON): linger for it too.
                error
                    .is_parse()
                    .then(|| connection.into_parts().io.into_inner().into_inner())
            }
        }
    }
}

/// Closes our side, then reads and discards what the client still sends
/// within [`Limits::linger_timeout`] and [`Limits::linger_bytes_max`], so
/// a client that sends its whole body before reading gets to read the
/// answer (closing with unread input would reset the connection and drop
/// the answer from the client's buffer).
async fn linger<I: AsyncRead + AsyncWrite + Unpin>(mut io: I, limits: &Limits) {
    let discard = async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 8_192];
        let mut left = limits.linger_bytes_max;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
    };
    let _ = tokio::time::timeout(limits.linger_timeout, discard).await;
}

/// A tower service as hyper serves it, with boxed futures: the loop polls
/// the connection without its final shutdown (to keep the stream for the
/// linger), which wants an `Unpin` service and future.
struct Boxed<S>(Box<S>);

impl<S: HttpService> hyper::service::Service<Request<Incoming>> for Boxed<S> {
    type Response = Response<S::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<S::Body>, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let service = (*self.0).clone();
        Box::pin(tower::ServiceExt::oneshot(service, request))
    }
}

/// What a shed connection is served: `503` with `Retry-After` to every
/// request, and the connection closed.
#[derive(Clone, Copy)]
struct Shed(Duration);

impl tower::Service<Request<Incoming>> for Shed {
    type Response = Response<String>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Incoming>) -> Self::Future {
        let seconds = self.0.as_secs().max(1);
        let body = crate::error::error_body(
            "overloaded",
            &format!("the server is at its connection limit: retry in {seconds} s"),
        );
        let mut response = Response::new(body);
        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        headers.insert(hyper::header::RETRY_AFTER, seconds.into());
        headers.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        std::future::ready(Ok(response))
    }
}
