//! `pos-agent demo [--dir PATH] [--quick]` (agent spec §1): the whole
//! system on one machine, told on stdout. The scenario lives in the
//! `pos-demo` crate; this is the process around it: the state
//! directory, logging, the runtime, Ctrl-C and the exit code (0 only if
//! every check of the summary held, 1 otherwise, naming the failed ones).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use pos_demo::{DemoError, DemoOptions, Narrator};

use crate::commands::{Failure, bad_input, other};

/// Worker threads of the demo's runtime: central and two registers share
/// it; two workers keep central answering while a register's task runs.
const DEMO_WORKER_THREADS: usize = 2;

/// Log level of the agents and central during the demo: warnings and
/// errors stay visible on stderr, the routine info lines (every sync
/// cycle, every retry) would drown the story.
const DEMO_LOG_DIRECTIVES: &str = "warn";

pub fn run(dir: Option<&Path>, quick: bool) -> Result<(), Failure> {
    init_logging()?;
    // A temporary directory unless one was named; removed when `temp`
    // drops, after everything in it has stopped.
    let (temp, dir_is_temporary, dir): (Option<tempfile::TempDir>, bool, PathBuf) = match dir {
        Some(dir) => (None, false, dir.to_path_buf()),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("pos-agent-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo")
                .map_err(other)?;
            let path = temp.path().to_path_buf();
            (Some(temp), true, path)
        }
    };
    let options = DemoOptions {
        dir,
        dir_is_temporary,
        quick,
        logs: format!("warnings and errors only, on stderr (level {DEMO_LOG_DIRECTIVES})"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(DEMO_WORKER_THREADS)
        .enable_all()
        .thread_name("pos-agent-demo")
        .build()
        .context("cannot start the async runtime")
        .map_err(other)?;
    let narrator = Narrator::stdout();
    let played = runtime.block_on(pos_demo::run(&options, &narrator, interrupted()));
    drop(runtime);
    drop(temp);
    match played {
        Ok(outcome) if outcome.all_held() => Ok(()),
        Ok(outcome) => {
            let names: Vec<&str> = outcome.failed().iter().map(|c| c.name.as_str()).collect();
            Err(other(anyhow!("demo checks failed: {}", names.join(", "))))
        }
        Err(e @ DemoError::DirNotEmpty(_)) => Err(bad_input(e)),
        Err(e) => Err(other(e)),
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. If the signal handlers cannot
/// be installed, never resolves: the demo then runs to its end.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn init_logging() -> Result<(), Failure> {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_new(DEMO_LOG_DIRECTIVES).map_err(|e| other(anyhow!("log filter: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init()
        .map_err(|e| other(anyhow!("cannot install the log subscriber: {e}")))
}
