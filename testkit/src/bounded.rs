//! A command run to completion, but never for ever: a test whose command
//! hangs (a CLI waiting on a lock, a prompt, a server that never answers)
//! fails with the command's name and what it printed so far, instead of
//! holding the whole test run until CI's limit.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a one-shot CLI command of a test may run: far above what any
/// of them needs on a loaded 2-core machine (an import of a test's members
/// takes well under a second).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `cmd` with stdin closed and its output captured, as
/// [`Command::output`] does, killing it after `timeout`.
pub fn output(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let what = format!("{cmd:?}");
    // Its own process group, so a timeout kills what it started too (a
    // child holding the pipes open would otherwise keep us waiting).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    // Pipes are drained on threads so a chatty command cannot block on a
    // full pipe while we wait for it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            break status;
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            bail!(
                "{what} did not finish within {} s (killed); stderr: {}",
                timeout.as_secs(),
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_finishes_gives_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = output(cmd, Duration::from_secs(10)).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_command_that_hangs_is_killed_and_named() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo waiting >&2; sleep 30"]);
        let started = Instant::now();
        let err = output(cmd, Duration::from_millis(300)).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("did not finish"), "{text}");
        assert!(text.contains("waiting"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
