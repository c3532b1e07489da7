//! Where connections come from: any listener that yields a byte stream and
//! the peer it came from.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Who is on the other end of an accepted connection: what an
/// [`crate::Admission`] hook decides on and what the loop's log lines name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP client and its address.
    Tcp(SocketAddr),
    /// A client of a Unix socket (its file mode already decided who may
    /// connect; unnamed client sockets have no useful address).
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

/// A source of connections for [`crate::Server::serve`].
pub trait Accept: Send + 'static {
    /// The byte stream of one connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection. An error is the listener's (out of file
    /// descriptors, say): the loop pauses and tries again, it does not stop.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, Peer)> {
        let (stream, addr) = TcpListener::accept(self).await?;
        Ok((stream, Peer::Tcp(addr)))
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;

    async fn accept(&mut self) -> io::Result<(UnixStream, Peer)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, Peer::Unix))
    }
}
