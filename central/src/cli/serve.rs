//! `pos-central serve`: from flags (a test, a demo, a pilot) or from a
//! config file (the packaged service, `examples/central.toml`), and what a
//! service manager needs: `READY=1` once both listeners are bound and the
//! storage is open, `STOPPING=1` on the way out.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use pos_central::embedded::{self, Serving};
use pos_central::error::CentralError;
use pos_central::files::CentralDir;
use pos_central::server::Edge;
use pos_central::storage::Storage;
use pos_config::{CentralConfig, CentralLimits, CentralStorage, Log};
use secrecy::ExposeSecret;

/// Everything `serve` needs, however it was given.
pub struct Settings {
    dir: PathBuf,
    sync: SocketAddr,
    admin: SocketAddr,
    insecure_http: bool,
    limits: CentralLimits,
    tls_files: Option<(PathBuf, PathBuf)>,
    /// The config's `[storage]`; `None` (flags): the state directory's.
    storage: Option<CentralStorage>,
    /// The config's `[log]`; `None` (flags): `RUST_LOG`, else `info`, text.
    log: Option<Log>,
}

impl Settings {
    pub fn from_flags(
        dir: PathBuf,
        sync: SocketAddr,
        admin: SocketAddr,
        insecure_http: bool,
    ) -> Settings {
        Settings {
            dir,
            sync,
            admin,
            insecure_http,
            limits: CentralLimits::default(),
            tls_files: None,
            storage: None,
            log: None,
        }
    }

    /// Reads `path`; every problem of the file is named (exit code 2).
    pub fn from_config(path: &Path) -> anyhow::Result<Settings> {
        let config = CentralConfig::load(path)?;
        Ok(Settings {
            dir: config.dir,
            sync: config.listen.sync,
            admin: config.listen.admin,
            insecure_http: config.listen.insecure_http,
            limits: config.limits,
            tls_files: config.tls.map(|t| (t.cert_file, t.key_file)),
            storage: Some(config.storage),
            log: Some(config.log),
        })
    }
}

pub fn run(settings: Settings) -> anyhow::Result<()> {
    init_logging(settings.log.as_ref())?;
    if let Some(open) = [settings.sync, settings.admin]
        .iter()
        .find(|a| !a.ip().is_loopback())
        && settings.insecure_http
    {
        return Err(CentralError::Invalid(format!(
            "--insecure-http is only allowed on a loopback address, not {open}"
        ))
        .into());
    }
    let dir = CentralDir::new(&settings.dir);
    if !dir.signing_key_path().exists() {
        return Err(CentralError::Invalid(format!(
            "{} is not initialised: run pos-central init --dir {} first",
            dir.path.display(),
            dir.path.display()
        ))
        .into());
    }
    if let Some(warning) = dir.check_serving_dir()? {
        tracing::warn!(message = "State directory readable by others.", detail = %warning);
    }
    let storage = open_storage(settings.storage.as_ref())?;
    let serving = Serving {
        tls: !settings.insecure_http,
        sync_edge: Edge::sync_with(&settings.limits),
        tls_files: settings.tls_files,
        storage,
        ..Serving::new(settings.sync, settings.admin)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let central = embedded::start_serving(&dir.path, serving).await?;
        // The first stdout line tells scripts and tests where registers
        // connect, the second where the admin API is. A reader that went
        // away (a closed pipe) is no reason to stop serving.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on {}", central.url);
        let _ = writeln!(out, "admin on {}", central.admin_url);
        let _ = out.flush();
        tracing::info!(message = "Serving.", url = %central.url, admin_url = %central.admin_url);
        let status = format!("serving registers on {}", central.url);
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
        shutdown_signal().await;
        notify(&[sd_notify::NotifyState::Stopping]);
        central.stop().await;
        tracing::info!(message = "Stopped.");
        anyhow::Ok(())
    })?;
    Ok(())
}

/// The storage the config names; `None`: the state directory's own
/// (its recorded PostgreSQL URL, else its SQLite file).
fn open_storage(storage: Option<&CentralStorage>) -> anyhow::Result<Option<Arc<dyn Storage>>> {
    let Some(storage) = storage else {
        return Ok(None);
    };
    let Some(url) = storage.url.as_deref() else {
        return Ok(None);
    };
    let password = storage.read_password(&pos_config::Env::from_process())?;
    let pg = pos_central::postgres::PgStorage::open_with_password(
        url,
        password.as_ref().map(|p| p.expose_secret()),
        storage.pool_size as usize,
    )?;
    tracing::info!(
        message = "Storage opened.",
        backend = "postgres",
        database = %pos_central::postgres::redacted(url),
        pool = storage.pool_size
    );
    Ok(Some(Arc::new(pg)))
}

fn init_logging(log: Option<&Log>) -> anyhow::Result<()> {
    if let Some(log) = log {
        return pos_config::logging::init(log).map_err(Into::into);
    }
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// Tells systemd (when it listens) about our state; outside systemd there
/// is nobody to tell, so failing to is never fatal.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::debug!(message = "sd_notify failed.", %error);
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_central::server::SYNC_EDGE;

    /// The config's defaults are the built-in edge: a service with an
    /// empty `[limits]` serves exactly as `serve --dir --listen` does.
    #[test]
    fn default_limits_are_the_built_in_sync_edge() {
        let edge = Edge::sync_with(&CentralLimits::default());
        assert_eq!(
            edge.limits.connections_max,
            SYNC_EDGE.limits.connections_max
        );
        assert_eq!(
            edge.limits.header_read_timeout,
            SYNC_EDGE.limits.header_read_timeout
        );
        assert_eq!(
            edge.connections_per_address_max,
            SYNC_EDGE.connections_per_address_max
        );
        assert_eq!(edge.body.total, SYNC_EDGE.body.total);
    }
}
