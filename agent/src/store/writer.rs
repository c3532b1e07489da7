//! The single writer: one OS thread owns the SQLite write connection and
//! runs commands from a bounded channel, one at a time.
//!
//! Why a thread and not a tokio task: rusqlite is blocking (every commit
//! waits for an fsync), and a dedicated thread keeps that off the async
//! workers without `spawn_blocking` churn. Why one writer: SQLite allows one
//! writer at a time anyway; funnelling writes through one queue turns lock
//! fights (SQLITE_BUSY) into plain queueing and makes each command see the
//! effects of every earlier one (gapless seq, consistent balances).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::Shared;
use crate::store::error::{StoreError, StoreResult};

/// Commands waiting for the writer at most. A sale commit takes about one
/// fsync (~0.4 ms here); 256 queued commands is ~0.1 s of work: deep enough
/// to absorb a burst from every register lane, shallow enough that a stuck
/// writer shows up quickly as back-pressure instead of unbounded memory.
pub const WRITER_QUEUE_COMMANDS_MAX: usize = 256;

/// A command: a closure run on the writer thread with the write connection.
pub(crate) type Job = Box<dyn FnOnce(&mut Connection, &Shared) + Send + 'static>;

/// Liveness of the writer, for the watchdog and health.
#[derive(Debug)]
pub struct Heartbeat {
    started: Instant,
    /// Milliseconds after `started` when the writer last finished a command
    /// (or started).
    last_progress_ms: AtomicU64,
    /// Commands sent but not finished.
    pending: AtomicUsize,
    /// The writer thread has exited.
    stopped: AtomicBool,
    /// Milliseconds after `started`, plus one, when a command last failed
    /// with `storage_full` (0: never): health stays degraded for a while
    /// after, instead of saying `ok` while sales get 507.
    storage_full_ms: AtomicU64,
}

/// What the watchdog sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterHealth {
    /// The thread is running.
    pub running: bool,
    /// Commands queued or running.
    pub pending: usize,
    /// Time since the writer last finished a command.
    pub since_progress: Duration,
    /// Time since a command last failed with `storage_full` (the disk or
    /// the database's page cap was full); `None`: not since the start.
    pub since_storage_full: Option<Duration>,
}

impl WriterHealth {
    /// Alive: running, and either idle or it made progress within
    /// `stall_max` (a writer that holds work without finishing any is stuck).
    pub fn is_alive(&self, stall_max: Duration) -> bool {
        self.running && (self.pending == 0 || self.since_progress <= stall_max)
    }
}

impl Heartbeat {
    fn new() -> Heartbeat {
        Heartbeat {
            started: Instant::now(),
            last_progress_ms: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            storage_full_ms: AtomicU64::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn beat(&self) {
        self.last_progress_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
    }

    /// A command failed with `storage_full`.
    fn storage_full(&self) {
        self.storage_full_ms
            .store(self.elapsed_ms().saturating_add(1), Ordering::Relaxed);
    }

    /// One command finished (successfully or not).
    fn finished(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.beat();
    }

    pub fn health(&self) -> WriterHealth {
        let last = Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed));
        let full = self.storage_full_ms.load(Ordering::Relaxed);
        let since_storage_full = (full > 0).then(|| {
            self.started
                .elapsed()
                .saturating_sub(Duration::from_millis(full - 1))
        });
        WriterHealth {
            running: !self.stopped.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            since_progress: self.started.elapsed().saturating_sub(last),
            since_storage_full,
        }
    }
}

/// The sending side, held by every `Store` clone.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Job>,
    pub(crate) heartbeat: Arc<Heartbeat>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`.
    pub(crate) fn spawn(
        conn: Connection,
        shared: Arc<Shared>,
    ) -> StoreResult<(WriterHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>(WRITER_QUEUE_COMMANDS_MAX);
        let heartbeat = Arc::new(Heartbeat::new());
        let beat = heartbeat.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(conn, shared, rx, beat))
            .map_err(|source| StoreError::Io {
                path: "store-writer thread".into(),
                source,
            })?;
        Ok((WriterHandle { tx, heartbeat }, thread))
    }

    /// Runs `f` on the writer and waits for its result. Waits for room in
    /// the queue when it is full (back-pressure; the API bounds the wait
    /// with its request timeout).
    pub(crate) async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Shared) -> StoreResult<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let beat = self.heartbeat.clone();
        let job: Job = Box::new(move |conn, shared| {
            let result = f(conn, shared);
            if matches!(result, Err(StoreError::StorageFull)) {
                beat.storage_full();
            }
            // Counted as done before the caller can see the result, so a
            // caller that checks health right after sees its own command gone.
            beat.finished();
            let _ = reply_tx.send(result);
        });
        self.heartbeat.pending.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(job).await.is_err() {
            self.heartbeat.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Closed);
        }
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(
    mut conn: Connection,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    beat: Arc<Heartbeat>,
) {
    beat.beat();
    while let Some(job) = rx.blocking_recv() {
        // A job that panics would be a bug; catch it so the writer (and the
        // durability of every other sale) survives, and the caller sees
        // `Closed` through its dropped reply channel. The job's open
        // transaction was rolled back when its guard dropped while unwinding.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job(&mut conn, &shared);
        }));
        if result.is_err() {
            tracing::error!(message = "Store writer command panicked; rolled back.");
            beat.finished();
        }
        if shared.closing.load(Ordering::Relaxed) {
            break;
        }
    }
    // Closed or every sender gone: close the connection (checkpoints the WAL).
    if let Err((_, error)) = conn.close() {
        tracing::warn!(message = "Closing the store failed.", %error);
    }
    beat.stopped.store(true, Ordering::Relaxed);
}
