//! The one HTTP/1.1 serving loop of the agent (Unix socket, loopback TCP)
//! and central (TCP with TLS).
//!
//! Hand-rolled on `hyper` + `hyper-util` instead of `axum::serve` because
//! both servers need what that does not give: a connection limit that
//! holds back `accept` (backpressure into the kernel backlog instead of an
//! unbounded task count), a header read timeout (a silent client must not
//! hold a connection slot), a per-connection handshake with its own
//! timeout, and a drain bound at shutdown after which no connection task
//! is left running.
//!
//! The pieces, each in its own module:
//!
//! - [`Accept`]: where connections come from (implemented for tokio's
//!   `TcpListener` and `UnixListener`), each with its [`Peer`].
//! - [`Handshake`]: what runs on a connection before HTTP: [`Plain`]
//!   (nothing) or, with the `tls` feature, `Tls` (rustls).
//! - [`Admission`]: a hook per accepted connection that sees the peer and
//!   may refuse it ([`AdmitAll`] refuses none); what it hands out is held
//!   for as long as the connection is served.
//! - [`Limits`]: every bound, named and passed in by the caller.
//! - [`Server`]: the loop itself; clones share one connection bound, so
//!   several listeners served by clones of one `Server` share it. While
//!   every slot is taken it can shed: accept a few more connections only
//!   to answer them `503` with `Retry-After`.
//! - [`PerAddress`]: an admission that bounds connections per client IP.
//! - [`body`]: request bodies read within a total time and a minimum rate
//!   (a tower layer over the service).
//! - [`error`]: the JSON error shape of both APIs and the rule for its
//!   message (bounded, no card numbers). Every answer is that JSON, even
//!   hyper's own answer to a request it cannot parse, which the loop
//!   rewrites on the wire.
//!
//! After a connection ends the loop lingers (bounded): it closes its side
//! and discards what the client still sends, so a client that sends a
//! whole oversized body before reading still reads the `413`.

mod accept;
mod admission;
pub mod body;
pub mod error;
mod handshake;
mod io;
mod limits;
pub mod metrics;
mod serve;

pub use accept::{Accept, Peer};
pub use admission::{AddressTicket, Admission, AdmitAll, PerAddress};
pub use body::{BodyBounds, BodyBoundsLayer, BodyTimeout, BoundedBody};
#[cfg(feature = "tls")]
pub use handshake::Tls;
pub use handshake::{Handshake, Plain};
pub use limits::Limits;
pub use serve::{HttpService, Server};
