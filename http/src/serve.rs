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

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::accept::{Accept, Peer};
use crate::admission::{Admission, AdmitAll};
use crate::handshake::Handshake;
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
    admission: Arc<A>,
    http: http1::Builder,
}

impl<A> Clone for Server<A> {
    fn clone(&self) -> Self {
        Server {
            limits: self.limits,
            slots: self.slots.clone(),
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
    /// are in use clients wait in the kernel's backlog.
    async fn next_connection<L: Accept, F: Future<Output = ()>>(
        &self,
        listener: &mut L,
        mut shutdown: Pin<&mut F>,
    ) -> Option<(L::Io, Peer, OwnedSemaphorePermit)> {
        loop {
            let slot = tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                slot = self.slots.clone().acquire_owned() => slot.ok()?,
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
    _held: (OwnedSemaphorePermit, T),
}

impl<H, S, T> Connection<H, S, T> {
    /// Handshake within its timeout, then HTTP until the client closes or
    /// the server does (the request in flight finishes first).
    async fn run<I>(self, io: I)
    where
        H: Handshake<I>,
        S: HttpService,
    {
        let peer = self.peer;
        let handshake =
            tokio::time::timeout(self.limits.handshake_timeout, self.handshake.handshake(io));
        let io = tokio::select! {
            biased;
            () = self.closing.cancelled() => return,
            done = handshake => match done {
                Ok(Ok(io)) => io,
                Ok(Err(error)) => {
                    tracing::debug!(message = "Handshake failed.", %peer, %error);
                    return;
                }
                Err(_) => {
                    tracing::debug!(message = "Handshake timed out.", %peer);
                    return;
                }
            },
        };
        let service = TowerToHyperService::new(self.service);
        let connection = self.http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let ended = tokio::select! {
            biased;
            ended = connection.as_mut() => Some(ended),
            () = self.closing.cancelled() => None,
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = ended {
            tracing::debug!(message = "Connection ended with an error.", %peer, %error);
        }
    }
}
