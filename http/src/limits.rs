//! Every bound the serving loop enforces, in one value the caller fills
//! from its own named constants: the loop has no defaults of its own, so
//! each server states what it allows.

use std::time::Duration;

/// The bounds of one [`crate::Server`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once, over every listener served by
    /// clones of the same server. While all are in use the loop does not
    /// `accept`: further clients wait in the kernel backlog.
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
}
