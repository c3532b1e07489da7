//! Every bound the serving loop enforces, in one value the caller fills
//! from its own named constants: the loop has no defaults of its own, so
//! each server states what it allows.

use std::time::Duration;

/// The bounds of one [`crate::Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once, over every listener served by
    /// clones of the same server. While all are in use the loop does not
    /// `accept` (unless [`Limits::shed_connections_max`] allows it to
    /// answer 503): further clients wait in the kernel backlog.
    pub connections_max: usize,
    /// Time a client has to send a request's headers. hyper starts this
    /// timer whenever it waits for a request head, so it also closes idle
    /// keep-alive connections, which frees their slots.
    pub header_read_timeout: Duration,
    /// Time the connection's [`crate::Handshake`] may take.
    pub handshake_timeout: Duration,
    /// At shutdown, time in-flight requests have to finish; connections
    /// still open then are aborted.
    pub drain_timeout: Duration,
    /// Pause after a failed `accept` (out of file descriptors, say) before
    /// trying again, so the loop does not spin.
    pub accept_retry: Duration,
    /// After the server answered and closed its side (a body over its
    /// limit, say), time it keeps reading and discarding what the client
    /// still sends. Closing a socket with unread input resets it, and a
    /// client that sends its whole body before reading (Python's
    /// `http.client`, .NET, Java) would then never see the answer.
    pub linger_timeout: Duration,
    /// Most bytes discarded while lingering; past it the socket is closed.
    pub linger_bytes_max: u64,
    /// Connections accepted beyond [`Limits::connections_max`] only to be
    /// answered `503` with `Retry-After` and closed: a saturated server
    /// says so at once instead of leaving clients in the backlog until
    /// their own timeout. 0 turns shedding off.
    pub shed_connections_max: usize,
    /// The `Retry-After` of a shed answer.
    pub retry_after: Duration,
}
