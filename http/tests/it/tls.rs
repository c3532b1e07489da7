//! The TLS handshake step: a request over TLS is served, and a client that
//! never completes its handshake loses its slot at the handshake timeout.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::rustls;

use crate::common::*;

/// The name the test certificate is issued for.
const NAME: &str = "localhost";

struct TestCert {
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn test_cert() -> TestCert {
    let issued = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    TestCert {
        cert: issued.cert.der().clone(),
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into()),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS handshake step with a fresh self-signed certificate.
pub fn acceptor() -> pos_http::Tls {
    acceptor_for(&test_cert())
}

fn acceptor_for(cert: &TestCert) -> pos_http::Tls {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.clone()], cert.key.clone_key())
        .unwrap();
    pos_http::Tls::new(Arc::new(config))
}

fn connector(cert: &TestCert) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn a_request_over_tls_is_served() {
    let cert = test_cert();
    let (listener, addr, _) = Counting::bind().await;
    let server = pos_http::Server::new(limits(4));
    let running = spawn_with(server, listener, acceptor_for(&cert), Probe::default());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
    let mut tls = connector(&cert).connect(name, tcp).await.unwrap();
    send(&mut tls, "/").await;
    let answer = answer(&mut tls).await.expect("answered over TLS");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_completes_its_handshake_is_closed_at_the_handshake_timeout() {
    let (listener, addr, _) = Counting::bind().await;
    let server = pos_http::Server::new(limits(1));
    let running = spawn_with(server, listener, acceptor(), Probe::default());
    let connected = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed(&mut silent).await);
    let waited = connected.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT && waited < HEADER_READ_TIMEOUT,
        "the handshake bound, not the header bound: {waited:?}"
    );
    running.stop.send(()).unwrap();
    running.task.await.unwrap();
}
