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

/// The daemon's options, with the TCP API's token read now: before anything
/// starts, so a missing or world-readable token file is a config error
/// (exit 2) naming its line.
fn options(config: &Config) -> Result<DaemonOptions, Failure> {
    let mut options = DaemonOptions::from_config(config);
    options.tcp_token = config
        .api
        .read_token(&pos_config::Env::from_process())
        .map_err(|e| bad_input(anyhow!("{e}")))?;
    Ok(options)
}

async fn serve(config: Config) -> Result<(), Failure> {
    let mut terminate = signal(SignalKind::terminate())
        .context("cannot listen for SIGTERM")
        .map_err(other)?;
    let mut interrupt = signal(SignalKind::interrupt())
        .context("cannot listen for SIGINT")
        .map_err(other)?;
    let daemon = Daemon::start(options(&config)?)
        .await
        .map_err(|e| other(anyhow!("{e}")))?;
    notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(message = "pos-agent running.", config = %config.source.display());
    let mut status_tick = tokio::time::interval(Duration::from_secs(STATUS_INTERVAL_SECS));
    let watchdog = watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    // Without a watchdog the branch below is disabled; the interval is a
    // placeholder that is never polled.
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3_600)));
    let mut withheld = false;
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
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                if daemon.alive() {
                    if withheld {
                        tracing::info!(message = "Store writer and device loops alive again: feeding the watchdog.");
                        withheld = false;
                    }
                    notify(&[sd_notify::NotifyState::Watchdog]);
                } else if !withheld {
                    // systemd restarts us when the keep-alives stop: that is
                    // the point, a stuck writer or device loop is not a
                    // state to limp on in.
                    tracing::error!(message = "Store writer or a device loop is stuck: withholding WATCHDOG=1.");
                    withheld = true;
                }
            }
            _ = status_tick.tick() => {
                // Bounded: a store read stuck on a stalled disk must not hold
                // up this loop, and with it the watchdog's keep-alives.
                let line = match tokio::time::timeout(Duration::from_millis(STATUS_READ_TIMEOUT_MS), daemon.health()).await {
                    Ok(health) => health.status_line(),
                    Err(_) => format!("degraded: the store did not answer within {STATUS_READ_TIMEOUT_MS} ms"),
                };
                notify(&[sd_notify::NotifyState::Status(&line)]);
            }
        }
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    daemon.shutdown().await.map_err(|e| other(anyhow!("{e}")))
}

/// How often to send `WATCHDOG=1`: half the interval systemd set in
/// `WATCHDOG_USEC` (`WatchdogSec=`), as sd_watchdog_enabled(3) advises,
/// at least [`WATCHDOG_TICK_MIN_MS`]. `None` when no watchdog is asked for,
/// or when `WATCHDOG_PID` names another process (the variables were
/// inherited). Hand-written instead of `sd_notify::watchdog_enabled`, which
/// also requires `WATCHDOG_PID`, although systemd documents it as optional.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(WATCHDOG_TICK_MIN_MS)))
}

/// Longest the `STATUS=` line waits for the store's figures.
const STATUS_READ_TIMEOUT_MS: u64 = 2_000;

/// Shortest keep-alive interval, whatever `WatchdogSec=` says.
const WATCHDOG_TICK_MIN_MS: u64 = 50;

/// Tells systemd (when it listens) about our state; failure to notify is
/// logged, never fatal: outside systemd there is nobody to tell.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::debug!(message = "sd_notify failed.", %error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_of_watchdog_usec() {
        assert_eq!(
            watchdog_interval(Some("20000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval(Some("20000000"), Some("7"), 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_interval(Some("10"), Some("7"), 7),
            Some(Duration::from_millis(WATCHDOG_TICK_MIN_MS)),
            "bounded below"
        );
    }

    #[test]
    fn no_watchdog_when_unset_invalid_or_for_another_process() {
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(Some("20000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("20000000"), Some("x"), 7), None);
    }
}
