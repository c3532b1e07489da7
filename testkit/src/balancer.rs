//! A round-robin HTTP load balancer in front of several central instances,
//! as a chain runs them: every request goes to the next instance in turn,
//! whatever connection it came on, so one register's consecutive batches
//! land on different instances. Plain HTTP on loopback (the instances run
//! `--insecure-http`); a TCP proxy could only balance connections, which a
//! keep-alive client reuses.
//!
//! Requests and answers are read whole (bounded), then forwarded; an
//! instance that does not answer gives the client a 502, as a real
//! balancer would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest request or answer body forwarded (central's own bound is 4 MiB
/// for a batch, 8 MiB for an answer).
pub const BODY_BYTES_MAX: usize = 16 * 1_048_576;

struct Shared {
    upstreams: Vec<SocketAddr>,
    next: AtomicUsize,
    /// Requests forwarded to each upstream, by index.
    forwarded: Vec<AtomicU64>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A running balancer; stops when dropped.
pub struct Balancer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Balancer {
    /// Listens on 127.0.0.1 (a free port), forwarding to `upstreams` in turn.
    pub async fn start(upstreams: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Balancer::serve(listener, upstreams)
    }

    /// [`Balancer::start`] from synchronous code that runs inside a Tokio
    /// runtime (a `#[tokio::test]` building its world): the listener is
    /// bound at once, the accept loop spawned on the current runtime.
    pub fn start_in_runtime(upstreams: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        Balancer::serve(listener, upstreams)
    }

    fn serve(listener: TcpListener, upstreams: Vec<SocketAddr>) -> std::io::Result<Balancer> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            forwarded: upstreams.iter().map(|_| AtomicU64::new(0)).collect(),
            upstreams,
            next: AtomicUsize::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Balancer { addr, shared, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for a register's `[central] url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests forwarded to each upstream so far, in `upstreams` order.
    pub fn forwarded(&self) -> Vec<u64> {
        self.shared
            .forwarded
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(forward(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

async fn forward(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let i = shared.next.fetch_add(1, Ordering::SeqCst) % shared.upstreams.len();
    let upstream = shared.upstreams[i];
    let (mut parts, body) = request.into_parts();
    let Ok(body) = Limited::new(body, BODY_BYTES_MAX).collect().await else {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let Ok(uri) = format!("http://{upstream}{path}").parse() else {
        return answer(StatusCode::BAD_REQUEST, "bad path");
    };
    parts.uri = uri;
    let request = Request::from_parts(parts, Full::new(body.to_bytes()));
    let Ok(response) = shared.client.request(request).await else {
        return answer(StatusCode::BAD_GATEWAY, "upstream did not answer");
    };
    shared.forwarded[i].fetch_add(1, Ordering::SeqCst);
    let (parts, body) = response.into_parts();
    match Limited::new(body, BODY_BYTES_MAX).collect().await {
        Ok(body) => Response::from_parts(parts, Full::new(body.to_bytes())),
        Err(_) => answer(StatusCode::BAD_GATEWAY, "upstream answer unreadable"),
    }
}
