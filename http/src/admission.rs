//! The hook each accepted connection passes before it is served.

use crate::accept::Peer;

/// Decides, for each accepted connection, whether it is served.
///
/// It sees the [`Peer`], so a bound per client address belongs here: the
/// ticket it hands out is held by the connection's task for as long as the
/// connection is served and dropped when it ends (its `Drop` can give the
/// address's slot back). A refused connection is closed at once, before any
/// handshake.
pub trait Admission: Send + Sync + 'static {
    /// Held for the connection's lifetime.
    type Ticket: Send + 'static;

    /// `None` refuses the connection.
    fn admit(&self, peer: &Peer) -> Option<Self::Ticket>;
}

/// Serves every connection (within the loop's own connection bound).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    type Ticket = ();

    fn admit(&self, _peer: &Peer) -> Option<()> {
        Some(())
    }
}
