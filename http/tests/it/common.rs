//! A server under test, its probe service and a raw HTTP/1.1 client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use pos_http::{Accept, Limits, Peer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/slow` takes: well within [`DRAIN_TIMEOUT`].
pub const SLOW: Duration = Duration::from_secs(1);

pub fn limits(connections_max: usize) -> Limits {
    Limits {
        connections_max,
        header_read_timeout: HEADER_READ_TIMEOUT,
        handshake_timeout: HANDSHAKE_TIMEOUT,
        drain_timeout: DRAIN_TIMEOUT,
        accept_retry: Duration::from_millis(50),
        linger_timeout: Duration::from_secs(2),
        linger_bytes_max: 8 << 20,
        shed_connections_max: 0,
        retry_after: Duration::from_secs(1),
    }
}

/// What the probe service shares with the test: a signal that a request
/// reached its handler, and the count of handlers still alive.
#[derive(Clone, Default)]
pub struct Probe {
    pub started: Arc<Notify>,
    alive: Arc<AtomicUsize>,
}

impl Probe {
    /// Handlers still running (an aborted one has dropped its guard).
    pub fn handlers_alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    fn enter(&self) -> Alive {
        self.alive.fetch_add(1, Ordering::SeqCst);
        Alive(self.alive.clone())
    }
}

/// Counts one running handler until dropped.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `/hang` never answers, `/slow` answers after [`SLOW`], `/refuse` is a
/// 413 without reading the body, anything else at once; every answer's
/// body is `ok`.
pub fn service(
    probe: Probe,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: Request<Incoming>| {
        let probe = probe.clone();
        async move {
            let _alive = probe.enter();
            match request.uri().path() {
                "/hang" => {
                    probe.started.notify_one();
                    std::future::pending::<()>().await;
                }
                "/slow" => {
                    probe.started.notify_one();
                    tokio::time::sleep(SLOW).await;
                }
                // Refuses the body without reading it, as a size limit does.
                "/refuse" => {
                    let mut refused = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *refused.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
                    return Ok(refused);
                }
                _ => {}
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

/// A loopback TCP listener that counts the connections it handed out, so
/// a test can tell whether the loop called `accept` at all.
pub struct Counting {
    listener: TcpListener,
    pub accepted: Arc<AtomicUsize>,
}

impl Counting {
    pub async fn bind() -> (Counting, SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = Counting {
            listener,
            accepted: accepted.clone(),
        };
        (counting, addr, accepted)
    }
}

impl Accept for Counting {
    type Io = TcpStream;

    async fn accept(&mut self) -> std::io::Result<(TcpStream, Peer)> {
        let accepted = Accept::accept(&mut self.listener).await?;
        self.accepted.fetch_add(1, Ordering::SeqCst);
        Ok(accepted)
    }
}

/// A running server and the means to stop it.
pub struct Running {
    pub stop: oneshot::Sender<()>,
    /// Ends with the number of handlers still alive at the moment `serve`
    /// returned (read before anything else could run).
    pub task: JoinHandle<usize>,
}

/// Serves [`service`] on `listener` with `server` through `handshake`.
pub fn spawn_with<L: Accept, H: pos_http::Handshake<L::Io>, A: pos_http::Admission>(
    server: pos_http::Server<A>,
    listener: L,
    handshake: H,
    probe: Probe,
) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = server.serve(listener, handshake, service(probe.clone()), async {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move {
        serving.await;
        probe.handlers_alive()
    });
    Running { stop, task }
}

/// [`spawn_with`] in plain HTTP.
pub fn spawn<L: Accept, A: pos_http::Admission>(
    server: pos_http::Server<A>,
    listener: L,
    probe: Probe,
) -> Running {
    spawn_with(server, listener, pos_http::Plain, probe)
}

/// Sends `GET path` on a kept-alive connection.
pub async fn send<S: AsyncWrite + Unpin>(stream: &mut S, path: &str) {
    let head = format!("GET {path} HTTP/1.1\r\nhost: test\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
}

/// Reads one answer (every answer's body is `ok`); `None` if the server
/// closed the connection first.
pub async fn answer<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    while !bytes.ends_with(b"\r\n\r\nok") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8(bytes).unwrap())
}

/// Whether the server closed `stream` without sending anything more.
pub async fn closed<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut rest = Vec::new();
    matches!(stream.read_to_end(&mut rest).await, Ok(0) | Err(_)) && rest.is_empty()
}
