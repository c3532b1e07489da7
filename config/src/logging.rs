//! Where the agent's and central's logs go, decided in one place (the
//! `logging` feature): the journal when running under systemd (`[log] format = "auto"` and `JOURNAL_STREAM` set),
//! else text or JSON lines on stderr.
//!
//! What is logged is structured (`message` plus fields). Request bodies,
//! card numbers and tokens are never logged: handlers log codes and ids
//! only.

use crate::{Log, LogFormat};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot install the log subscriber: {0}")]
    Init(String),
}

/// Installs the process-wide subscriber (the one global the agent has: the
/// `tracing` dispatcher is per process by design; several in-process
/// agents, or a demo's agents and central, share it).
pub fn init(log: &Log) -> Result<(), LoggingError> {
    // Our crates at the configured level; the HTTP stack one notch quieter
    // so `debug` shows the agent's own decisions, not every poll.
    let directives = format!(
        "{level},hyper=warn,h2=warn,tower=warn",
        level = log.level.as_str()
    );
    let filter = EnvFilter::try_new(&directives).map_err(|e| LoggingError::Init(e.to_string()))?;
    let registry = tracing_subscriber::registry().with(filter);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let result = match log.format {
        LogFormat::Auto if under_systemd => match tracing_journald::layer() {
            Ok(journald) => registry.with(journald).try_init(),
            // No journal socket (e.g. a container): stderr still reaches it.
            Err(_) => registry.with(stderr_text()).try_init(),
        },
        LogFormat::Auto | LogFormat::Text => registry.with(stderr_text()).try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.map_err(|e| LoggingError::Init(e.to_string()))
}

fn stderr_text<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // Colours only for a person at a terminal: a log file or a pipe gets
    // plain text, not escape codes.
    use std::io::IsTerminal;
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}
