//! What runs on a connection between `accept` and HTTP: nothing
//! ([`Plain`]) or a TLS handshake (`Tls`, with the `tls` feature). The loop
//! bounds it with [`crate::Limits::handshake_timeout`], so a client that
//! opens a connection and says nothing holds its slot only that long.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// Turns an accepted stream into the stream HTTP is spoken on.
pub trait Handshake<I>: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Runs the handshake; an error closes the connection.
    fn handshake(&self, io: I) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No handshake: HTTP on the accepted stream itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl<I> Handshake<I> for Plain
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = I;

    fn handshake(&self, io: I) -> impl Future<Output = io::Result<I>> + Send {
        std::future::ready(Ok(io))
    }
}

/// A TLS server handshake with rustls.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

#[cfg(feature = "tls")]
impl Tls {
    pub fn new(config: std::sync::Arc<tokio_rustls::rustls::ServerConfig>) -> Tls {
        Tls(tokio_rustls::TlsAcceptor::from(config))
    }
}

#[cfg(feature = "tls")]
impl<I> Handshake<I> for Tls
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = tokio_rustls::server::TlsStream<I>;

    fn handshake(&self, io: I) -> impl Future<Output = io::Result<Self::Io>> + Send {
        self.0.accept(io)
    }
}
