//! `pos-agent demo --quick`, the real binary: the README's first command
//! plays its whole day (embedded central, two registers, pty scanner,
//! outage and recovery) and its summary holds: exit 0, central's ledger
//! equal to the registers', the overdraft recorded. With `--dir` the state
//! stays behind, and `pos-agent db verify` agrees with the demo's own
//! chain check; a directory with content is refused (exit 2). Ctrl-C stops
//! everything cleanly and leaves no temporary directory.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use pos_testkit::bins;

/// Only stops a hung demo from hanging the test run; the demo itself
/// waits at most 30 s for any one thing.
const DEMO_DEADLINE: Duration = Duration::from_secs(180);

/// Runs `pos-agent ARGS` to completion (killed after [`DEMO_DEADLINE`]).
fn pos_agent(args: &[&str]) -> Result<Output> {
    let child = Command::new(bins::path("pos-agent"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn pos-agent")?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEMO_DEADLINE) {
        Ok(output) => Ok(output?),
        Err(_) => {
            // Best effort: the test fails anyway.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            bail!("pos-agent {args:?} did not finish within {DEMO_DEADLINE:?}")
        }
    }
}

/// The summary line of one check: `  [ok    ] NAME: DETAIL`.
fn check_line<'a>(stdout: &'a str, name: &str) -> Result<(bool, &'a str)> {
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("] {name}: ")))
        .ok_or_else(|| anyhow!("no check {name:?} in the summary:\n{stdout}"))?;
    let ok = line.trim_start().starts_with("[ok");
    let detail = line.split_once(&format!("{name}: ")).map_or("", |(_, d)| d);
    Ok((ok, detail))
}

/// The number just after `label ` in `text` ("central 13 entries" → 13).
fn number_after(text: &str, label: &str) -> Result<u64> {
    let rest = text
        .split_once(&format!("{label} "))
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("no {label:?} in {text:?}"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .with_context(|| format!("no number after {label:?} in {text:?}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quick_demo_plays_the_day_and_every_check_holds() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("demo");
    let state_arg = state.to_str().context("utf-8 temp path")?;
    let out = pos_agent(&["demo", "--quick", "--dir", state_arg])?;
    let stdout = text(&out.stdout);
    ensure!(
        out.status.code() == Some(0),
        "demo exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        text(&out.stderr)
    );

    // The story has its acts, and a sale was made by scanning.
    for act in ["Set-up", "Morning", "Outage", "Recovery", "Summary"] {
        ensure!(stdout.contains(act), "no act {act:?} in:\n{stdout}");
    }
    ensure!(
        stdout.contains("reg-1 scanner: card 9990000010013 -> member M-1001"),
        "no scanned member card in:\n{stdout}"
    );

    // Central's ledger equals the sum of the registers', entry for entry.
    let (ok, detail) = check_line(&stdout, "central's ledger equals the registers'")?;
    ensure!(ok, "ledgers differ: {detail}");
    let central = number_after(detail, "central")?;
    let registers = number_after(detail, "registers")?;
    ensure!(central == registers && central > 0, "{detail}");
    ensure!(
        detail.contains(" 0 missing at central, 0 unknown"),
        "{detail}"
    );

    // The overdraft by the two offline registers is recorded at central.
    let (ok, detail) = check_line(&stdout, "central recorded the overdraft")?;
    ensure!(ok, "no overdraft: {detail}");
    ensure!(
        number_after(detail, "shortfall")? > 0,
        "no shortfall: {detail}"
    );
    ensure!(stdout.contains("All "), "no verdict in:\n{stdout}");
    ensure!(!stdout.contains("FAILED"), "{stdout}");

    // The state stayed in --dir; `pos-agent db verify` agrees with the
    // demo's chain check, register by register.
    for reg in ["reg-1", "reg-2"] {
        let db = state.join(reg).join("agent.db");
        let verify = pos_agent(&["db", "verify", "--db", path_str(&db)?])?;
        ensure!(
            verify.status.success(),
            "db verify {reg}: {}{}",
            text(&verify.stdout),
            text(&verify.stderr)
        );
        let (ok, detail) = check_line(&stdout, &format!("{reg}'s ledger chain verifies"))?;
        ensure!(ok, "{detail}");
        let chained = number_after(&text(&verify.stdout), "integrity ok,")?;
        ensure!(
            number_after(detail, "integrity ok,")? == chained,
            "demo says {detail}, db verify says {}",
            text(&verify.stdout)
        );
    }
    Ok(())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().context("utf-8 path")
}

#[test]
fn a_directory_with_content_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("something"), "earlier run")?;
    let out = pos_agent(&["demo", "--quick", "--dir", path_str(dir.path())?])?;
    ensure!(
        out.status.code() == Some(2),
        "exit {:?}: {}",
        out.status,
        text(&out.stderr)
    );
    ensure!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    // Nothing was added next to the earlier run's file.
    ensure!(std::fs::read_dir(dir.path())?.count() == 1);
    Ok(())
}

/// Ctrl-C in the middle of the day: the demo says so, stops the registers,
/// the link and central, removes its temporary directory and exits 1 (the
/// day was not played, so its checks do not hold).
#[test]
fn ctrl_c_stops_everything_cleanly() -> Result<()> {
    use std::io::BufRead;
    use std::time::Instant;
    let tmp = tempfile::tempdir()?;
    let mut child = Command::new(bins::path("pos-agent"))
        .args(["demo"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn pos-agent demo")?;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut told = Vec::new();
    let started = Instant::now();
    // The second act: central and both registers are up and trading.
    while !told.iter().any(|l: &String| l.contains("2. Morning")) {
        let left = DEMO_DEADLINE.saturating_sub(started.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => told.push(line),
            Err(_) => {
                let _ = child.kill();
                bail!("the demo never reached its morning:\n{}", told.join("\n"));
            }
        }
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > DEMO_DEADLINE {
            let _ = child.kill();
            bail!("the demo did not stop after Ctrl-C:\n{}", told.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader ends with the demo's stdout.
    told.extend(lines.iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().context("stderr")?, &mut stderr)?;
    let told = told.join("\n");
    ensure!(
        status.code() == Some(1),
        "exit {status:?}\n{told}\n{stderr}"
    );
    ensure!(told.contains("Interrupted: stopping"), "{told}");
    ensure!(told.contains("Everything stopped cleanly."), "{told}");
    ensure!(!stderr.contains("panicked"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())?.collect();
    ensure!(
        left.is_empty(),
        "the demo left {left:?} in its temporary directory"
    );
    Ok(())
}
