//! The hook each accepted connection passes before it is served, and
//! [`PerAddress`], the bound per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

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

/// At most `max` connections at once from one client IP address, so that
/// one client (or one attacker) cannot take every slot of the server's
/// [`crate::Limits::connections_max`]. A Unix-socket client has no address
/// and is always admitted (the socket's mode decides who connects).
///
/// Its table holds one entry per address with a connection open, so it is
/// bounded by the server's own connection bound.
#[derive(Debug)]
pub struct PerAddress {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    pub fn new(max: usize) -> PerAddress {
        PerAddress {
            max,
            open: Arc::default(),
        }
    }
}

/// One connection of an address: gives its place back when dropped.
#[derive(Debug)]
pub struct AddressTicket {
    address: Option<IpAddr>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressTicket {
    fn drop(&mut self) {
        let Some(address) = self.address else {
            return;
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

impl Admission for PerAddress {
    type Ticket = AddressTicket;

    fn admit(&self, peer: &Peer) -> Option<AddressTicket> {
        let address = match peer {
            Peer::Tcp(addr) => Some(addr.ip().to_canonical()),
            Peer::Unix => None,
        };
        if let Some(ip) = address {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let count = open.entry(ip).or_insert(0);
            if *count >= self.max {
                return None;
            }
            *count += 1;
        }
        Some(AddressTicket {
            address,
            open: self.open.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_gets_it_back() {
        let admission = PerAddress::new(2);
        let a = Peer::Tcp("10.0.0.1:1000".parse().unwrap());
        let b = Peer::Tcp("10.0.0.2:1000".parse().unwrap());
        let first = admission.admit(&a).unwrap();
        let _second = admission.admit(&a).unwrap();
        assert!(admission.admit(&a).is_none());
        assert!(admission.admit(&b).is_some());
        drop(first);
        assert!(admission.admit(&a).is_some());
        assert!(admission.admit(&Peer::Unix).is_some());
    }
}
