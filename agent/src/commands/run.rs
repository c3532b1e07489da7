//! `pos-agent run --config PATH`: the daemon.
//!
//! Exit codes: 2 when the config is invalid (every problem printed, with
//! file, line and key); 1 when the store refuses to open (corrupt, foreign
//! or newer database — the message says which; the file is never touched)
//! or the socket cannot be bound; 0 after a clean stop on SIGTERM/SIGINT.
//! systemd hears `READY=1` once the store is open and the API listens and
//! `STOPPING=1` when shutdown begins (no-ops outside systemd).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use pos_agent::daemon::{Daemon, DaemonOptions};
use pos_config::Config;
use tokio::signal::unix::{SignalKind, signal};

use crate::commands::{Failure, bad_input, other};

/// How often systemd's `STATUS=` line is refreshed (`systemctl status`
/// shows it); cheap, one stats read.
pub const STATUS_INTERVAL_SECS: u64 = 30;

pub fn run(config_path: &Path) -> Result<(), Failure> {
    let config = Config::load(config_path).map_err(|e| bad_input(anyhow!("{e}")))?;
    pos_agent::logging::init(&config.log).map_err(other)?;
    let runtime = pos_agent::daemon::runtime()
        .context("cannot start the async runtime")
        .map_err(other)?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), Failure> {
    let mut terminate = signal(SignalKind::terminate())
        .context("cannot listen for SIGTERM")
        .map_err(other)?;
    let mut interrupt = signal(SignalKind::interrupt())
        .context("cannot listen for SIGINT")
        .map_err(other)?;
    let daemon = Daemon::start(DaemonOptions::from_config(&config))
        .await
        .map_err(|e| other(anyhow!("{e}")))?;
    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(message = "pos-agent running.", config = %config.source.display());
    let mut status_tick = tokio::time::interval(Duration::from_secs(STATUS_INTERVAL_SECS));
    loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!(message = "SIGTERM: stopping.");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!(message = "SIGINT: stopping.");
                break;
            }
            _ = daemon.stopping() => {
                tracing::warn!(message = "The agent stopped itself.");
                break;
            }
            _ = status_tick.tick() => {
                let line = daemon.health().await.status_line();
                notify(&[sd_notify::NotifyState::Status(&line)]);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await.map_err(|e| other(anyhow!("{e}")))
}

/// Tells systemd (when it listens) about our state; failure to notify is
/// logged, never fatal: outside systemd there is nobody to tell.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::debug!(message = "sd_notify failed.", %error);
    }
}
