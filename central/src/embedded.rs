//! A central inside another process: what `pos-central serve` runs, and
//! what `pos-agent demo` (or a test) can start next to a register without a
//! second binary.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pos_central::CentralError> {
//! let dir = std::path::Path::new("/tmp/central");
//! let central = pos_central::embedded::start(dir, "127.0.0.1:0".parse().unwrap(), true).await?;
//! let token = central.add_terminal("store-1-reg-1")?;
//! // Point the register at central.url with ca_file = central.ca_path(),
//! // rules_public_key = central.public_key_base64(), and `token` (a
//! // `SecretString`: written to the register's token file, never logged).
//! central.stop().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pos_sync::protocol::BundleFormat;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::CentralError;
use crate::files::{CentralDir, new_token, token_hash};
use crate::server::{self, AppState};
use crate::snapshot::{CatalogSnapshot, CheckedSnapshot, MembersSnapshot};
use crate::storage::Storage;

/// A central serving on a local address until [`RunningCentral::stop`].
pub struct RunningCentral {
    /// Base URL of the sync API, `https://ADDR` (or `http://` without TLS).
    pub url: String,
    pub addr: SocketAddr,
    /// Base URL of the admin API (its own listener).
    pub admin_url: String,
    pub admin_addr: SocketAddr,
    pub dir: CentralDir,
    state: Arc<AppState>,
    stop: Option<watch::Sender<bool>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Where the admin API listens unless told otherwise: loopback, a free
/// port (written to `DIR/admin.url`, where the admin commands read it).
pub const ADMIN_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Serves the central in `dir` (initialised first if it holds no signing
/// key): the sync API on `listen`, the admin API on
/// [`ADMIN_LISTEN_DEFAULT`], with TLS when `tls`. Plain HTTP is refused off
/// loopback. Must be called inside a tokio runtime.
pub async fn start(
    dir: &Path,
    listen: SocketAddr,
    tls: bool,
) -> Result<RunningCentral, CentralError> {
    start_with_admin(dir, listen, ADMIN_LISTEN_DEFAULT, tls).await
}

/// Binds `addr`; the listener and its base URL.
async fn bind(
    addr: SocketAddr,
    tls: bool,
) -> Result<(TcpListener, SocketAddr, String), CentralError> {
    if !tls && !addr.ip().is_loopback() {
        return Err(CentralError::Invalid(format!(
            "plain HTTP is only allowed on a loopback address, not {addr}"
        )));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CentralError::io(format!("listening on {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CentralError::io("reading the bound address", e))?;
    let url = format!("{}://{bound}", if tls { "https" } else { "http" });
    Ok((listener, bound, url))
}

fn write_url(path: &Path, url: &str) -> Result<(), CentralError> {
    std::fs::write(path, format!("{url}\n"))
        .map_err(|e| CentralError::io(format!("writing {}", path.display()), e))
}

/// [`start`] with the admin API on `admin_listen`.
pub async fn start_with_admin(
    dir: &Path,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    tls: bool,
) -> Result<RunningCentral, CentralError> {
    let options = Serving {
        tls,
        ..Serving::new(listen, admin_listen)
    };
    start_serving(dir, options).await
}

/// How [`start_serving`] serves: what `pos-central serve` takes from its
/// flags or its config file.
pub struct Serving {
    /// The sync API's address (registers).
    pub sync: SocketAddr,
    /// The admin API's address, its own listener.
    pub admin: SocketAddr,
    /// TLS on both listeners; without it only loopback addresses.
    pub tls: bool,
    /// The sync listener's bounds ([`server::SYNC_EDGE`] unless configured).
    pub sync_edge: server::Edge,
    /// Certificate chain and key files; `None`: the state directory's.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// The storage to serve; `None`: the state directory's.
    pub storage: Option<Arc<dyn Storage>>,
}

impl Serving {
    /// TLS with the state directory's certificate and storage, built-in
    /// limits.
    pub fn new(sync: SocketAddr, admin: SocketAddr) -> Serving {
        Serving {
            sync,
            admin,
            tls: true,
            sync_edge: server::SYNC_EDGE,
            tls_files: None,
            storage: None,
        }
    }
}

/// Serves the central in `dir` as `options` say (the directory is
/// initialised first if it holds no signing key).
pub async fn start_serving(dir: &Path, options: Serving) -> Result<RunningCentral, CentralError> {
    let tls = options.tls;
    let (listener, addr, url) = bind(options.sync, tls).await?;
    let (admin_listener, admin_addr, admin_url) = bind(options.admin, tls).await?;
    let dir = CentralDir::new(dir);
    if !dir.signing_key_path().exists() {
        dir.init(&[])?;
    }
    let storage: Arc<dyn Storage> = match options.storage {
        Some(storage) => storage,
        None => dir.open_storage()?,
    };
    let state = Arc::new(AppState::new(
        storage,
        dir.signing_key()?,
        token_hash(dir.admin_token()?.expose_secret()),
    ));
    let tls_config = match (tls, &options.tls_files) {
        (false, _) => None,
        (true, Some((cert, key))) => Some(crate::files::tls_server_config_from(cert, key)?),
        (true, None) => Some(dir.tls_server_config()?),
    };
    write_url(&dir.serve_url_path(), &url)?;
    write_url(&dir.admin_url_path(), &admin_url)?;
    let (stop, stop_rx) = watch::channel(false);
    let sync = server::serve(
        listener,
        options.sync_edge,
        server::sync_router(state.clone()),
        tls_config.clone(),
        stopped(stop_rx.clone()),
    );
    let admin = server::serve(
        admin_listener,
        server::ADMIN_EDGE,
        server::admin_router(state.clone()),
        tls_config,
        stopped(stop_rx),
    );
    let task = tokio::spawn(async move {
        let (sync, admin) = tokio::join!(sync, admin);
        sync.and(admin)
    });
    Ok(RunningCentral {
        url,
        addr,
        admin_url,
        admin_addr,
        dir,
        state,
        stop: Some(stop),
        task,
    })
}

/// Resolves once `stop` says so or its sender is gone: the shutdown of
/// one listener (each gets its own receiver).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

impl RunningCentral {
    /// The storage, for summaries (balances, conflicts, terminals).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.state.storage
    }

    /// The CA registers trust (`ca_file`).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.ca_path()
    }

    /// What registers put in `rules_public_key`.
    pub fn public_key_base64(&self) -> String {
        pos_sync::signing::public_key_base64(&self.state.signing_key.verifying_key())
    }

    /// Registers a terminal; returns its token (only the hash is stored).
    pub fn add_terminal(&self, id: &str) -> Result<SecretString, CentralError> {
        let token = new_token();
        self.state
            .storage
            .add_terminal(id, token_hash(token.expose_secret()))?;
        Ok(token)
    }

    /// Validates, signs and publishes a bundle; returns its version.
    pub fn publish_rules(&self, bytes: Vec<u8>, format: BundleFormat) -> Result<u64, CentralError> {
        let bundle = crate::rules::prepare(bytes, format, &self.state.signing_key)?;
        let version = bundle.signed.version;
        self.state
            .storage
            .publish_bundle(bundle, jiff::Timestamp::now())?;
        Ok(version)
    }

    pub fn import_members(&self, json: &str) -> Result<usize, CentralError> {
        self.state
            .storage
            .import_members(&MembersSnapshot::parse(json)?)
    }

    pub fn import_catalog(&self, json: &str) -> Result<usize, CentralError> {
        self.state
            .storage
            .import_catalog(&CatalogSnapshot::parse(json)?)
    }

    /// Waits until the server stops on its own (it only does on an error).
    pub async fn wait(mut self) -> Result<(), CentralError> {
        let _keep_running = self.stop.take();
        match (&mut self.task).await {
            Ok(result) => result.map_err(|e| CentralError::io("serving", e)),
            Err(e) => Err(CentralError::Corrupt(format!("server task failed: {e}"))),
        }
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        let _ = (&mut self.task).await;
    }
}
