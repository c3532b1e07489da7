//! `pos-demo`, the scenario of `pos-agent demo`: the whole system on one
//! machine with no set-up (agent spec §1) — an embedded central, two registers of one store (agents in
//! this process, each with its own store and API socket), a simulated
//! scanner on a pseudo-terminal for each, and a scripted store day with a network
//! outage and its recovery, told line by line, ending in a summary whose
//! every check is computed from what the registers and central hold.
//!
//! Layout: [`link`] is the cuttable network between registers and central;
//! `world` starts and stops the pieces; `script` plays the day with the
//! example data of `data`; `summary` computes the final checks from the
//! registers and from central (`at_central`); [`Narrator`] writes the story.
//!
//! The registers are driven the way a POS application drives them — over
//! their Unix-socket API — so the demo exercises the real paths, not
//! shortcuts into the store. Health and verification use the in-process
//! handles, as `pos-agent status` and `db verify` would.
//!
//! Its own crate, on top of `pos-agent` and `pos-central`: the register's
//! library never depends on central, and the `pos-agent` binary links this
//! crate only with its `demo` feature (on by default, off in the Debian
//! package).

mod at_central;
mod data;
pub mod link;
mod narrator;
mod script;
mod summary;
mod world;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub use narrator::Narrator;
pub use summary::{Check, Outcome};

/// What `pos-agent demo` was asked for.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Where central's and the registers' state is kept (created; must be
    /// empty or absent, so a second run never mixes with the first).
    pub dir: PathBuf,
    /// Whether the caller removes `dir` afterwards (only said in the story).
    pub dir_is_temporary: bool,
    /// Short pauses (tests); the default pace is readable by a person.
    pub quick: bool,
    /// Where the agents' and central's logs go, for the story's first lines.
    pub logs: String,
}

/// How long the story pauses so a person can follow it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    /// After each event line.
    step: Duration,
    /// Between the acts of the day.
    act: Duration,
}

/// Readable pace: about 20 s for the whole day (the brief's bound is 30 s).
const STEP_PAUSE_MS: u64 = 500;
const ACT_PAUSE_MS: u64 = 1_200;

impl Pace {
    fn new(quick: bool) -> Pace {
        if quick {
            Pace {
                step: Duration::ZERO,
                act: Duration::ZERO,
            }
        } else {
            Pace {
                step: Duration::from_millis(STEP_PAUSE_MS),
                act: Duration::from_millis(ACT_PAUSE_MS),
            }
        }
    }

    async fn step(&self) {
        tokio::time::sleep(self.step).await;
    }

    async fn act(&self) {
        tokio::time::sleep(self.act).await;
    }
}

/// Why the demo could not play its day (as opposed to a failed check,
/// which is part of the [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the demo directory {0} is not empty; name a new or empty one (the demo never mixes with an earlier run)"
    )]
    DirNotEmpty(PathBuf),
    #[error("central: {0}")]
    Central(#[from] pos_central::CentralError),
    #[error("register {terminal}: config: {message}")]
    Config { terminal: String, message: String },
    #[error("register {terminal}: {source}")]
    Daemon {
        terminal: String,
        #[source]
        source: pos_agent::daemon::DaemonError,
    },
    #[error("register {terminal}: {method} {path}: {detail}")]
    Api {
        terminal: String,
        method: String,
        path: String,
        detail: String,
    },
    #[error("waited {waited_ms} ms for {what}; last seen: {last}")]
    Timeout {
        what: String,
        waited_ms: u64,
        last: String,
    },
    #[error("the scripted day went off script: {0}")]
    Script(String),
    #[error("interrupted")]
    Interrupted,
}

impl DemoError {
    fn io(what: impl Into<String>, source: std::io::Error) -> DemoError {
        DemoError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Plays the day and returns the summary's checks. Everything started is
/// stopped before this returns, also when `interrupt` resolves (Ctrl-C) or
/// a step fails. Must run inside a multi-threaded tokio runtime.
pub async fn run(
    options: &DemoOptions,
    narrator: &Narrator,
    interrupt: impl Future<Output = ()>,
) -> Result<Outcome, DemoError> {
    let mut world = world::World::new(options)?;
    let pace = Pace::new(options.quick);
    let played = tokio::select! {
        played = script::play(&mut world, narrator, pace, options) => played,
        _ = interrupt => {
            narrator.say("Interrupted: stopping the registers, the link and central.");
            Err(DemoError::Interrupted)
        }
    };
    if let Err(error) = &played
        && !matches!(error, DemoError::Interrupted)
    {
        narrator.say(&format!("The day stopped early: {error}"));
    }
    let stopped = world.shutdown().await;
    if played.is_err() {
        if stopped.is_empty() {
            narrator.say("Everything stopped cleanly.");
        } else {
            narrator.say(&format!("Stopped, not cleanly: {}", stopped.join("; ")));
        }
    }
    match (played, stopped) {
        (Ok(mut outcome), stopped) => {
            outcome.push(Check::new(
                "clean shutdown",
                stopped.is_empty(),
                if stopped.is_empty() {
                    "registers, link and central stopped".to_string()
                } else {
                    stopped.join("; ")
                },
            ));
            outcome.tell(narrator);
            Ok(outcome)
        }
        (Err(error), _) => Err(error),
    }
}
