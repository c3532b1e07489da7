//! The sync worker (sync spec §2–§4): one task that, every
//! `[central] sync_interval_secs` or when woken by `POST /v1/sync/now`,
//! uploads the unsynced ledger ([`upload`]) and then downloads rules,
//! member changes and catalog changes ([`download`]).
//!
//! Failures are retried with the `pos-sync` policy (full jitter from 1 s to
//! 5 min, no attempt limit, `Retry-After` honoured; auth failures and bug
//! reports slowly). The worker's state is published through a
//! [`SyncMonitor`] that health, `GET /v1/sync` and `pos-agent status` read.
//!
//! Why one sequential loop: an upload answer carries central's balances and
//! a member download carries them too; running them one after the other
//! means an older answer can never overwrite a newer one in the cache.
//! Sales never wait for it: the worker reads through the reader pool and
//! writes through the store's bounded writer queue like any other client.
//!
//! The token is read with `Central::read_token` (a file or a systemd
//! credential) when the client is built, and again after an auth failure,
//! so fixing the token file takes effect at the next attempt (or at once
//! with `POST /v1/sync/now`). It is never logged or reported.

pub mod download;
pub mod fleet;
pub mod holds;
pub mod report;
pub mod upload;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use pos_sync::retry::{Backoff, FailureClass, RetryPolicy};
use pos_sync::{ClientConfig, SyncClient, SyncError, Token};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::HealthState;
use crate::store::{Store, StoreError};
pub use report::{OverdraftNote, SyncPhase, SyncReport};

/// Connect timeout to central (TCP + TLS). The whole request is bounded
/// by `[central] request_timeout_secs`.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// What the worker needs from the config.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub central: pos_config::Central,
    /// Where `credential = ...` tokens are read from.
    pub env: pos_config::Env,
    /// The retry bounds (the spec's 1 s .. 5 min; tests may shorten them).
    pub retry: RetryPolicy,
}

impl SyncOptions {
    pub fn new(central: pos_config::Central, env: pos_config::Env) -> SyncOptions {
        SyncOptions {
            central,
            env,
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a sync cycle failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncWorkerError {
    #[error(transparent)]
    Central(#[from] SyncError),
    #[error("local store: {0}")]
    Store(#[from] StoreError),
    /// The token cannot be read (missing file, no credentials directory).
    #[error("central token: {0}")]
    Token(String),
}

impl SyncWorkerError {
    fn class(&self) -> FailureClass {
        match self {
            SyncWorkerError::Central(e) => FailureClass::of(e),
            // A busy or briefly failing store is transient; a closed one
            // means shutdown, when the wait does not matter.
            SyncWorkerError::Store(_) => FailureClass::Transient,
            SyncWorkerError::Token(_) => FailureClass::Auth,
        }
    }

    /// The error as the retry policy sees it.
    fn as_retry_input(&self) -> SyncError {
        match self {
            SyncWorkerError::Central(SyncError::Status {
                status,
                code,
                message,
                retry_after,
            }) => SyncError::Status {
                status: *status,
                code: code.clone(),
                message: message.clone(),
                retry_after: *retry_after,
            },
            SyncWorkerError::Central(e) => match FailureClass::of(e) {
                FailureClass::Transient => SyncError::Network(String::new()),
                _ => SyncError::Protocol(String::new()),
            },
            SyncWorkerError::Store(_) => SyncError::Network(String::new()),
            SyncWorkerError::Token(_) => SyncError::Status {
                status: 401,
                code: String::new(),
                message: String::new(),
                retry_after: None,
            },
        }
    }
}

/// The worker's published state and its wake-up bell. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct SyncMonitor {
    inner: Arc<MonitorInner>,
}

#[derive(Debug)]
struct MonitorInner {
    report: Mutex<SyncReport>,
    wake: Notify,
    /// The worker's current client (None before the first cycle and after
    /// an auth failure), shared for online redemption holds.
    client: Mutex<Option<SyncClient>>,
    own_holds: holds::OwnHolds,
    /// When the monitor was made (the worker's start) and when the last
    /// cycle succeeded, on the monotonic clock: how long sync has been
    /// failing must not jump with the register's wall clock.
    created: Instant,
    last_success: Mutex<Option<Instant>>,
}

impl Default for MonitorInner {
    fn default() -> MonitorInner {
        MonitorInner {
            report: Mutex::default(),
            wake: Notify::new(),
            client: Mutex::default(),
            own_holds: holds::OwnHolds::default(),
            created: Instant::now(),
            last_success: Mutex::new(None),
        }
    }
}

impl SyncMonitor {
    pub fn new() -> SyncMonitor {
        SyncMonitor::default()
    }

    /// A copy of the current report.
    pub fn report(&self) -> SyncReport {
        self.inner
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks for a cycle now (`POST /v1/sync/now`): ends the current wait,
    /// whether the interval or a retry backoff. A wake during a cycle
    /// starts another right after it.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Holds this register asked for and central has not settled yet.
    pub fn own_holds(&self) -> &holds::OwnHolds {
        &self.inner.own_holds
    }

    /// How long sync has gone without a success while failing: since the
    /// last success, or since the start when there was none. `None` while
    /// the last cycle succeeded.
    pub fn failing_for(&self) -> Option<Duration> {
        let failing = {
            let report = self.inner.report.lock().unwrap_or_else(|p| p.into_inner());
            report.consecutive_failures > 0 || report.last_success_at.is_none()
        };
        if !failing {
            return None;
        }
        let since = self
            .inner
            .last_success
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(self.inner.created);
        Some(since.elapsed())
    }

    fn client(&self) -> Option<SyncClient> {
        self.inner
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_client(&self, client: Option<SyncClient>) {
        *self.inner.client.lock().unwrap_or_else(|p| p.into_inner()) = client;
    }

    fn update(&self, f: impl FnOnce(&mut SyncReport)) {
        let mut report = self.inner.report.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut report);
    }
}

/// Starts the worker; it runs until `shutdown` is cancelled.
pub fn spawn(
    store: Store,
    options: SyncOptions,
    monitor: SyncMonitor,
    health: Arc<HealthState>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut worker = Worker::new(store, options, monitor, health);
        worker.run(shutdown).await;
    })
}

struct Worker {
    store: Store,
    /// What the fleet report after each cycle is made of.
    health: Arc<HealthState>,
    options: SyncOptions,
    monitor: SyncMonitor,
    key: Option<VerifyingKey>,
    client: Option<SyncClient>,
    backoff: Backoff,
    rng: StdRng,
}

impl Worker {
    fn new(
        store: Store,
        options: SyncOptions,
        monitor: SyncMonitor,
        health: Arc<HealthState>,
    ) -> Worker {
        // The config checked the key is a curve point; if it still fails,
        // every bundle is refused (and reported) while uploads go on.
        let key = VerifyingKey::from_bytes(&options.central.rules_public_key).ok();
        monitor.update(|r| r.central = options.central.url.to_string());
        Worker {
            store,
            health,
            backoff: Backoff::new(options.retry),
            options,
            monitor,
            key,
            client: None,
            rng: StdRng::from_entropy(),
        }
    }

    async fn run(&mut self, shutdown: CancellationToken) {
        let interval = self.options.central.sync_interval();
        loop {
            self.monitor.update(|r| {
                r.phase = SyncPhase::Syncing;
                r.last_attempt_at = Some(self.store.clock_rfc3339());
            });
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = self.cycle() => outcome,
            };
            let wait = match outcome {
                Ok(()) => {
                    self.backoff.reset();
                    *self
                        .monitor
                        .inner
                        .last_success
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
                    let now = self.store.clock_rfc3339();
                    self.monitor.update(|r| {
                        r.phase = SyncPhase::Idle;
                        r.last_success_at = Some(now);
                        r.last_error = None;
                        r.auth_failure = false;
                        r.consecutive_failures = 0;
                        r.next_attempt_in_ms = Some(duration_ms(interval));
                    });
                    interval
                }
                Err(error) => self.failed(&error),
            };
            self.refresh_dead_letters().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.monitor.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Records a failure and gives the wait before the next attempt.
    fn failed(&mut self, error: &SyncWorkerError) -> Duration {
        let class = error.class();
        let wait = self
            .backoff
            .next_delay(&error.as_retry_input(), &mut self.rng);
        let failures = self.backoff.failures();
        let text = error.to_string();
        match class {
            FailureClass::Transient => {
                tracing::info!(message = "Sync failed; retrying.", error = %text, failures, wait_ms = duration_ms(wait))
            }
            FailureClass::Auth => {
                // Re-read the token next time: the operator may fix the file.
                self.client = None;
                self.monitor.set_client(None);
                tracing::error!(message = "Central refused this register's token; retrying slowly.", error = %text, failures, wait_ms = duration_ms(wait))
            }
            FailureClass::Bug => {
                tracing::error!(message = "Sync failed on something a retry will not fix soon (bug report); retrying slowly.", error = %text, failures, wait_ms = duration_ms(wait))
            }
        }
        self.monitor.update(|r| {
            r.phase = match class {
                FailureClass::Transient => SyncPhase::Retrying,
                FailureClass::Auth => SyncPhase::AuthFailed,
                FailureClass::Bug => SyncPhase::Failing,
            };
            r.auth_failure = class == FailureClass::Auth;
            r.last_error = Some(text);
            r.consecutive_failures = failures;
            r.next_attempt_in_ms = Some(duration_ms(wait));
        });
        wait
    }

    fn client(&mut self) -> Result<SyncClient, SyncWorkerError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let central = &self.options.central;
        let secret = central
            .read_token(&self.options.env)
            .map_err(|e| SyncWorkerError::Token(e.to_string()))?;
        let token = Token::from_secret(secret)?;
        let mut config = ClientConfig::new(central.url.as_str(), token);
        config.ca_file = central.ca_file.clone();
        config.allow_insecure_http = central.allow_insecure_http;
        // The config fills it with the URL's host when not given; for an
        // http:// URL there is no certificate to check.
        if central.url.scheme() == "https" {
            config.server_name = Some(central.server_name.clone());
        }
        config.connect_timeout_ms = CONNECT_TIMEOUT_MS;
        config.request_timeout_ms = duration_ms(central.request_timeout());
        let client = SyncClient::new(&config)?;
        self.client = Some(client.clone());
        self.monitor.set_client(Some(client.clone()));
        Ok(client)
    }

    /// One cycle: upload everything, then the downloads.
    async fn cycle(&mut self) -> Result<(), SyncWorkerError> {
        let client = self.client()?;
        let terminal_id = self.store.terminal_id().to_string();
        let drained =
            upload::drain(&self.store, &client, &terminal_id, self.monitor.own_holds()).await?;
        self.monitor.update(|r| {
            r.entries_synced += drained.synced;
            r.entries_rejected += drained.rejected;
            r.entries_corrected += drained.corrected;
            r.rebases += u64::from(drained.rebases);
            for note in drained.overdrafts.iter().cloned() {
                r.note_overdraft(note);
            }
        });
        if drained.batches > 0 {
            tracing::info!(
                message = "Ledger uploaded.",
                batches = drained.batches,
                synced = drained.synced,
                rejected = drained.rejected,
                corrected = drained.corrected,
                rebases = drained.rebases,
                more = drained.more
            );
        }
        match &self.key {
            Some(key) => match download::rules(&self.store, &client, key).await? {
                download::RulesOutcome::Refused(reason) => {
                    self.monitor.update(|r| r.rules_refused = Some(reason));
                }
                download::RulesOutcome::Stored(_) => {
                    self.monitor.update(|r| r.rules_refused = None);
                }
                download::RulesOutcome::UpToDate => {}
            },
            None => self.monitor.update(|r| {
                r.rules_refused = Some("rules_public_key is not a usable Ed25519 key".to_string());
            }),
        }
        download::members(&self.store, &client, self.monitor.own_holds()).await?;
        let now = self.store.clock_rfc3339();
        self.monitor.update(|r| r.members_downloaded_at = Some(now));
        download::catalog(&self.store, &client).await?;
        self.report(&client, &terminal_id).await;
        if drained.more {
            // A long catch-up: go on at once rather than after the interval.
            self.monitor.wake();
        }
        Ok(())
    }

    /// Tells central how this register is (`docs/sync-v2.md` §8). Best
    /// effort: the fleet view is for people, so a failure (or an older
    /// central's 404) is logged and never fails the cycle.
    async fn report(&self, client: &SyncClient, terminal_id: &str) {
        let stats = self.store.stats().await.map_err(|e| e.to_string());
        let health = self.health.snapshot(stats, self.store.writer_health());
        let last_error = self
            .monitor
            .inner
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last_error
            .clone();
        let report = fleet::report(
            terminal_id,
            &health,
            last_error.as_deref(),
            &self.store.clock_rfc3339(),
        );
        if let Err(error) = client.report(&report).await {
            tracing::debug!(message = "Could not report to central's fleet view.", %error);
        }
    }

    async fn refresh_dead_letters(&self) {
        match self
            .store
            .dead_letters(report::REPORT_DEAD_LETTERS_MAX)
            .await
        {
            Ok(list) => self.monitor.update(|r| r.dead_letters = list),
            Err(error) => {
                tracing::debug!(message = "Could not list dead letters.", %error)
            }
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
