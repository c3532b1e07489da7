//! The registers draining their outboxes at once: each register is a task
//! that, once admitted (at most `concurrency` at a time), uploads its
//! batches one after the other with the register's own client
//! ([`SyncClient`]: its TLS setup, postcard encoding, answer decoding and
//! checks), as the agent's sync worker drains its outbox, then closes its
//! connection. A batch that fails transiently (network, 408, 429, 5xx) is
//! sent again after a bounded backoff; central answers entries it already
//! holds `duplicate`, which the tally counts.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pos_sync::protocol::{BatchOutcome, EntryResult, UploadAnswer, UploadBatch};
use pos_sync::{ClientConfig, Digest32, SyncClient, SyncError, Token};
use tokio::sync::Semaphore;

use crate::error::LoadError;
use crate::plan::{Outbox, Plan, Spread};

/// Most attempts at one batch before the register gives up.
pub const ATTEMPTS_MAX: u32 = 12;
/// First wait after a transient failure; doubled each time...
pub const RETRY_BASE_MS: u64 = 100;
/// ...up to this (central's own `Retry-After` is honoured when longer, up
/// to [`RETRY_AFTER_MAX_MS`]).
pub const RETRY_CAP_MS: u64 = 5_000;
/// Longest `Retry-After` honoured.
pub const RETRY_AFTER_MAX_MS: u64 = 30_000;
/// Errors kept word for word in the tally; the rest are only counted.
pub const ERRORS_KEPT_MAX: usize = 10;

/// What the registers saw, summed over all of them.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Tally {
    pub batches: u64,
    pub entries_sent: u64,
    pub applied: u64,
    pub corrected: u64,
    pub overdraft: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Batches sent again after a transient failure.
    pub retries: u64,
    /// Registers that stopped before their outbox was empty.
    pub failed_registers: u64,
    /// The first errors and refusals, word for word.
    pub errors: Vec<String>,
    /// Time spent generating batches (entries, hashes, documents), summed
    /// over the registers: the generator's own share of the run.
    #[serde(skip)]
    pub generating: Duration,
    /// Each batch's latency (the upload call, answer decoded), in µs.
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
}

impl Tally {
    fn note(&mut self, error: String) {
        if self.errors.len() < ERRORS_KEPT_MAX {
            self.errors.push(error);
        }
    }

    fn add(&mut self, other: Tally) {
        self.batches += other.batches;
        self.entries_sent += other.entries_sent;
        self.applied += other.applied;
        self.corrected += other.corrected;
        self.overdraft += other.overdraft;
        self.duplicate += other.duplicate;
        self.rejected += other.rejected;
        self.retries += other.retries;
        self.failed_registers += other.failed_registers;
        for e in other.errors {
            self.note(e);
        }
        self.generating += other.generating;
        self.latencies_us.extend(other.latencies_us);
    }

    fn count(&mut self, results: &[EntryResult]) {
        for r in results {
            match r {
                EntryResult::Applied => self.applied += 1,
                EntryResult::Corrected { .. } => self.corrected += 1,
                EntryResult::Overdraft { .. } => self.overdraft += 1,
                EntryResult::Duplicate => self.duplicate += 1,
                EntryResult::Rejected { reason } => {
                    self.rejected += 1;
                    let reason = reason.clone();
                    self.note(format!("rejected: {reason}"));
                }
            }
        }
    }
}

/// The drain of every register: the tally, the chain heads the registers
/// ended with (terminal id, seq, hash), and the wall time from the first
/// register's start to the last answer.
pub struct Drained {
    pub tally: Tally,
    pub heads: Vec<(String, u64, Digest32)>,
    pub elapsed: Duration,
}

/// One simulated register, ready to go: its outbox and its clients (one
/// per central instance it may talk to).
struct Register {
    outbox: Outbox,
    terminal_id: String,
    clients: Vec<SyncClient>,
}

/// The clients of register `index`: the one instance it sticks to, or
/// every instance ([`Spread::Batch`]).
fn clients(
    plan: &Plan,
    index: usize,
    urls: &[String],
    ca_file: Option<&PathBuf>,
    token: &Token,
) -> Result<Vec<SyncClient>, LoadError> {
    let chosen: Vec<&String> = match plan.spread {
        Spread::Register => vec![&urls[index % urls.len()]],
        Spread::Batch => urls.iter().collect(),
    };
    chosen
        .into_iter()
        .map(|url| {
            let mut config = ClientConfig::new(url.clone(), token.clone());
            config.ca_file = ca_file.cloned();
            Ok(SyncClient::new(&config)?)
        })
        .collect()
}

/// Runs every register of `plan` against the instances at `urls` and
/// waits for all of them. Clients are built before the clock starts;
/// batches are generated when their register is about to send them.
pub async fn drive(
    plan: &Plan,
    urls: &[String],
    ca_file: Option<&PathBuf>,
    tokens: &[Token],
) -> Result<Drained, LoadError> {
    if urls.is_empty() || tokens.len() != plan.registers {
        return Err(LoadError::Plan(
            "no central URL, or not one token per register".into(),
        ));
    }
    let occurred_at = crate::plan::outage_time();
    let mut registers = Vec::with_capacity(plan.registers);
    for (index, token) in tokens.iter().enumerate() {
        registers.push(Register {
            outbox: Outbox::new(plan, index, &occurred_at),
            terminal_id: plan.terminal_id(index),
            clients: clients(plan, index, urls, ca_file, token)?,
        });
    }
    let gate = Arc::new(Semaphore::new(plan.concurrency));
    let turn = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for register in registers {
        let gate = gate.clone();
        let turn = turn.clone();
        running.spawn(async move {
            let _permit = gate.acquire_owned().await;
            register_drain(register, &turn).await
        });
    }
    let mut tally = Tally::default();
    let mut heads = Vec::with_capacity(plan.registers);
    while let Some(done) = running.join_next().await {
        let (t, head) = done.map_err(|e| LoadError::Plan(format!("register task: {e}")))?;
        tally.add(t);
        heads.push(head);
    }
    Ok(Drained {
        tally,
        heads,
        elapsed: started.elapsed(),
    })
}

/// One register's drain: batch after batch until its outbox is empty or a
/// batch fails for good. Its clients (and their connections) are dropped
/// when it returns.
async fn register_drain(
    mut register: Register,
    turn: &AtomicUsize,
) -> (Tally, (String, u64, Digest32)) {
    let mut tally = Tally::default();
    loop {
        let generating = Instant::now();
        let Some(batch) = register.outbox.next_batch() else {
            break;
        };
        tally.generating += generating.elapsed();
        let client =
            &register.clients[turn.fetch_add(1, Ordering::Relaxed) % register.clients.len()];
        match upload(client, &batch, &mut tally).await {
            Ok(answer) => match answer.outcome {
                BatchOutcome::Entries(results) if results.len() == batch.entries.len() => {
                    tally.count(&results);
                }
                other => {
                    tally.note(format!(
                        "{}: unexpected answer {other:?}",
                        batch.terminal_id
                    ));
                    tally.failed_registers += 1;
                    break;
                }
            },
            Err(e) => {
                tally.note(format!("{}: {e}", batch.terminal_id));
                tally.failed_registers += 1;
                break;
            }
        }
    }
    let (seq, hash) = register.outbox.head();
    (tally, (register.terminal_id, seq, hash))
}

/// Uploads `batch`, sending it again after transient failures.
async fn upload(
    client: &SyncClient,
    batch: &UploadBatch,
    tally: &mut Tally,
) -> Result<UploadAnswer, SyncError> {
    let mut attempt = 0;
    loop {
        let sent = Instant::now();
        let result = client.upload(batch).await;
        attempt += 1;
        match result {
            Ok(answer) => {
                tally.batches += 1;
                tally.entries_sent += batch.entries.len() as u64;
                tally.latencies_us.push(sent.elapsed().as_micros() as u64);
                return Ok(answer);
            }
            Err(e) if e.is_retryable() && attempt < ATTEMPTS_MAX => {
                tally.retries += 1;
                tokio::time::sleep(backoff(attempt, &e)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The wait before attempt `attempt + 1`: doubling from
/// [`RETRY_BASE_MS`] to [`RETRY_CAP_MS`], or central's `Retry-After`.
fn backoff(attempt: u32, error: &SyncError) -> Duration {
    let doubling = RETRY_BASE_MS
        .saturating_mul(1 << attempt.min(16))
        .min(RETRY_CAP_MS);
    let asked = match error {
        SyncError::Status {
            retry_after: Some(after),
            ..
        } => (after.as_millis() as u64).min(RETRY_AFTER_MAX_MS),
        _ => 0,
    };
    Duration::from_millis(doubling.max(asked))
}
