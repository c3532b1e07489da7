//! The agent as a value: [`Daemon::start`] opens the store, binds the API
//! and spawns its tasks; the returned [`Daemon`] is the handle with the
//! readable state (health) and [`Daemon::shutdown`].
//!
//! No globals: the metrics registry, event bus, session and store belong to
//! the instance, so one process (a test, the demo) can host several
//! registers and a central side by side. Tasks — the API listeners now; the
//! sync worker, device readers and watchdog later — meet only through
//! channels and the store, and all stop on one [`CancellationToken`].
//!
//! Shutdown order: cancel (listeners stop accepting, event streams end),
//! wait for in-flight requests within [`SHUTDOWN_TIMEOUT_MS`], remove the
//! socket file (only if it is still ours), then close the store so its
//! writer finishes the commands already queued.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pos_config::Config;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::server::{self, ListenError, UnixSocket};
use crate::api::{self, AppState};
use crate::events::EventBus;
use crate::health::{Health, HealthState, SyncMode};
use crate::metrics::Metrics;
use crate::session::Session;
use crate::store::{Store, StoreError, StoreOptions};

/// Longest the whole shutdown waits for the API tasks (which drain their
/// own connections within [`server::DRAIN_TIMEOUT_MS`]) before it closes
/// the store regardless.
pub const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// The async runtime an agent runs on (`pos-agent run`, and the benchmarks
/// that measure it).
///
/// One worker thread. The agent's async work is small and I/O-bound (HTTP
/// parsing, JSON, sync requests); SQLite runs on the store's writer thread
/// and the blocking pool. With one worker, the task woken by the writer's
/// answer runs on the thread already waiting for it, instead of one worker
/// waking another: the sale path over the API then crosses four threads'
/// wake-ups instead of five or six. Measured with `cargo bench -p
/// pos-agent --bench commit` on a 2-core VM: about 15 % more API commits
/// per second than two workers.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("pos-agent")
        .build()
}

/// Why the agent could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot open the store: {0}")]
    Store(#[source] StoreError),
    #[error("cannot listen: {0}")]
    Listen(#[source] ListenError),
    #[error("the store could not be closed cleanly: {0}")]
    Close(#[source] StoreError),
    #[error("a task of the agent failed: {0}")]
    Task(String),
    #[error("invalid device settings: {0}")]
    Devices(#[source] pos_drivers::Error),
    #[error("[api] listen is set but no token was read: the TCP API is never served without one")]
    NoTcpToken,
}

/// Everything needed to start an agent; [`DaemonOptions::from_config`]
/// fills it from the config, tests may adjust it (e.g. the store's clock).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub store: StoreOptions,
    /// `[api] socket`.
    pub socket: PathBuf,
    /// `[api] listen`: optional TCP listener. Served only with
    /// `tcp_token`: [`Daemon::start`] refuses a listener without one.
    pub listen: Option<SocketAddr>,
    /// The TCP listener's bearer token (`[api] token_file` or `credential`),
    /// read by the caller ([`pos_config::Api::read_token`]) so that a bad
    /// token file is a config error. `None` from [`DaemonOptions::from_config`].
    pub tcp_token: Option<secrecy::SecretString>,
    /// `Host` names the TCP listener accepts ([`pos_config::Api::accepted_hosts`]).
    pub tcp_hosts: Vec<String>,
    /// `[health]` thresholds.
    pub health: pos_config::Health,
    /// `[api] max_body_bytes`.
    pub max_body_bytes: usize,
    /// `[terminal] timezone`: the session's commit time.
    pub time_zone: jiff::tz::TimeZone,
    /// Off without `[central]`.
    pub sync: SyncMode,
    /// `[central]` and the environment its token is read from; `None`:
    /// no sync worker.
    pub central: Option<crate::sync_worker::SyncOptions>,
    /// `[[devices]]` with `[cards]` and `[[variable_measure]]`; empty: no
    /// device tasks.
    pub devices: crate::devices::DevicesOptions,
}

impl DaemonOptions {
    pub fn from_config(config: &Config) -> DaemonOptions {
        DaemonOptions {
            // With [central], the rules key: bundles are verified at load.
            store: StoreOptions::from_config(config),
            socket: config.api.socket.clone(),
            listen: config.api.listen,
            tcp_token: None,
            tcp_hosts: config.api.accepted_hosts(),
            health: config.health,
            // The config bounds it to 16 MiB, which fits any usize we run on.
            max_body_bytes: usize::try_from(config.api.max_body_bytes).unwrap_or(usize::MAX),
            time_zone: config.terminal.timezone.clone(),
            central: config.central.clone().map(|central| {
                crate::sync_worker::SyncOptions::new(central, pos_config::Env::from_process())
            }),
            sync: if config.central.is_some() {
                SyncMode::On
            } else {
                SyncMode::Off
            },
            devices: crate::devices::DevicesOptions::from_config(config),
        }
    }
}

/// A running agent.
pub struct Daemon {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    state: AppState,
    socket_path: PathBuf,
    socket_id: (u64, u64),
    tcp_addr: Option<SocketAddr>,
}

impl Daemon {
    /// Opens the store, binds the listeners and starts serving. Returns once
    /// the store is open and the API listens (the moment for `READY=1`).
    pub async fn start(options: DaemonOptions) -> Result<Daemon, DaemonError> {
        // The socket first: binding it is what keeps a second agent on the
        // same config away, and it must be refused before it touches the
        // database. Connections that arrive before we serve wait in the
        // kernel backlog.
        let unix = server::bind_unix(&options.socket).map_err(DaemonError::Listen)?;
        let socket_id = unix.dev_ino();
        let socket_path = unix.path.clone();
        let store_options = options.store.clone();
        let opened = tokio::task::spawn_blocking(move || Store::open(store_options))
            .await
            .map_err(|e| DaemonError::Task(format!("store open task: {e}")))
            .and_then(|r| r.map_err(DaemonError::Store));
        let store = match opened {
            Ok(store) => store,
            Err(error) => {
                UnixSocket::remove_file(&socket_path, socket_id);
                return Err(error);
            }
        };
        match Daemon::serve(options, store.clone(), unix).await {
            Ok(daemon) => Ok(daemon),
            Err(error) => {
                UnixSocket::remove_file(&socket_path, socket_id);
                if let Err(close_error) = store.close().await {
                    tracing::warn!(message = "Closing the store after a failed start failed.", %close_error);
                }
                Err(error)
            }
        }
    }

    async fn serve(
        options: DaemonOptions,
        store: Store,
        unix: UnixSocket,
    ) -> Result<Daemon, DaemonError> {
        let socket_id = unix.dev_ino();
        let socket_path = unix.path.clone();
        let tcp = match (options.listen, &options.tcp_token) {
            (Some(addr), Some(token)) => {
                let listener = server::bind_tcp(addr).await.map_err(DaemonError::Listen)?;
                let gate = api::tcp_gate::TcpGate::new(token, options.tcp_hosts.clone());
                Some((listener, Arc::new(gate)))
            }
            (Some(_), None) => return Err(DaemonError::NoTcpToken),
            (None, _) => None,
        };
        let tcp_addr = tcp.as_ref().and_then(|(l, _)| l.local_addr().ok());

        let shutdown = CancellationToken::new();
        let state = app_state(&options, &store, shutdown.clone());
        // Devices after the last fallible bind, so a failed start leaves no
        // device loop holding a serial port.
        let mut tasks = crate::devices::start(
            &options.devices,
            crate::devices::ScanTargets {
                store: store.clone(),
                session: state.session.clone(),
            },
            state.events.clone(),
            &state.health,
            shutdown.clone(),
        )
        .map_err(DaemonError::Devices)?;
        tasks.extend(spawn_api(
            &state,
            options.max_body_bytes,
            unix.listener,
            tcp,
            &shutdown,
        ));
        if let Some(sync) = options.central.clone() {
            tasks.push(spawn_sync(&state, sync, &shutdown));
        }
        tracing::info!(
            message = "API listening.",
            socket = %socket_path.display(),
            tcp = ?tcp_addr,
            terminal = store.terminal_id(),
        );
        Ok(Daemon {
            shutdown,
            tasks,
            state,
            socket_path,
            socket_id,
            tcp_addr,
        })
    }

    /// The API's Unix socket.
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The bound TCP address, when `[api] listen` is set (port 0 resolved).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The store handle (for in-process hosts and tests).
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// This agent's metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// A health snapshot, as `GET /v1/health` answers it.
    pub async fn health(&self) -> Health {
        api::routes::health_snapshot(&self.state).await
    }

    /// Whether the store writer and the device loops are alive: what the
    /// systemd watchdog is told (reads no database).
    pub fn alive(&self) -> bool {
        self.state.health.alive(self.state.store.writer_health())
    }

    /// A token that stops the agent when cancelled (signal handlers, a
    /// failing task). [`Daemon::shutdown`] still has to be awaited.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Resolves when something asked the agent to stop.
    pub async fn stopping(&self) {
        self.shutdown.cancelled().await;
    }

    /// Stops accepting, lets in-flight requests finish (bounded), removes
    /// the socket, closes the store.
    pub async fn shutdown(self) -> Result<(), DaemonError> {
        self.shutdown.cancel();
        let wait_all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(Duration::from_millis(SHUTDOWN_TIMEOUT_MS), wait_all)
            .await
            .is_err()
        {
            tracing::warn!(
                message = "API tasks did not stop in time.",
                timeout_ms = SHUTDOWN_TIMEOUT_MS
            );
        }
        UnixSocket::remove_file(&self.socket_path, self.socket_id);
        self.state.store.close().await.map_err(DaemonError::Close)?;
        tracing::info!(message = "Agent stopped.");
        Ok(())
    }
}

/// What the handlers share: the store, a session and event bus of this
/// agent's own, fresh metrics and health.
fn app_state(options: &DaemonOptions, store: &Store, shutdown: CancellationToken) -> AppState {
    let events = EventBus::new();
    AppState {
        store: store.clone(),
        session: Arc::new(Session::new(
            store.clone(),
            events.clone(),
            options.time_zone.clone(),
        )),
        events,
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(
            HealthState::new(store.terminal_id().to_string(), options.sync)
                .with_thresholds(options.health),
        ),
        shutdown,
        event_streams: Arc::new(Semaphore::new(api::EVENT_STREAMS_MAX)),
    }
}

/// Serves the API on the Unix socket and, when configured, on TCP behind
/// its gate: a [`pos_http::Server`] each, so each has its own connection
/// slots ([`server::UNIX_LIMITS`], [`server::TCP_LIMITS`]) and a flood on
/// one cannot take the other's; on the socket, each client process is
/// bounded too ([`server::PerProcess`]).
fn spawn_api(
    state: &AppState,
    max_body_bytes: usize,
    unix: tokio::net::UnixListener,
    tcp: Option<(tokio::net::TcpListener, Arc<api::tcp_gate::TcpGate>)>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let unix = server::PerProcess::new(unix, server::CONNECTIONS_PER_PROCESS_MAX);
    let router = api::router(state.clone(), max_body_bytes);
    let unix_server = pos_http::Server::new(server::UNIX_LIMITS);
    let mut tasks = vec![serve_on(&unix_server, unix, &router, shutdown)];
    if let Some((tcp, gate)) = tcp {
        let router = api::router_with_gate(state.clone(), max_body_bytes, Some(gate));
        let tcp_server = pos_http::Server::new(server::TCP_LIMITS);
        tasks.push(serve_on(&tcp_server, tcp, &router, shutdown));
    }
    tasks
}

/// One listener's serving task, until `shutdown`.
fn serve_on<L: pos_http::Accept>(
    server: &pos_http::Server,
    listener: L,
    router: &axum::Router,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let serving = server.clone().serve(
        listener,
        pos_http::Plain,
        router.clone(),
        shutdown.clone().cancelled_owned(),
    );
    spawn_until_cancelled(serving, shutdown.clone())
}

/// Starts the sync worker and lets health and the session watch it.
fn spawn_sync(
    state: &AppState,
    sync: crate::sync_worker::SyncOptions,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let monitor = crate::sync_worker::SyncMonitor::new();
    state.health.attach_sync(monitor.clone());
    state.session.attach_sync(monitor.clone());
    crate::sync_worker::spawn(
        state.store.clone(),
        sync,
        monitor,
        state.health.clone(),
        shutdown.clone(),
    )
}

/// Spawns a task; if it ends before shutdown was asked for (it should run
/// until then), the whole agent is asked to stop rather than limp on
/// without its API.
fn spawn_until_cancelled<F>(task: F, shutdown: CancellationToken) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        task.await;
        if !shutdown.is_cancelled() {
            tracing::error!(message = "An API listener stopped unexpectedly; stopping the agent.");
            shutdown.cancel();
        }
    })
}
