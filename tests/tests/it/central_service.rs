//! `pos-central serve --config`, as the packaged unit runs it: the config
//! file's listeners and limits are the ones served, systemd hears
//! `READY=1` once central listens and `STOPPING=1` on SIGTERM, and a bad
//! config stops the start with exit code 2 and the file, line and key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use pos_testkit::central_proc::central_bin;

const WAIT: Duration = Duration::from_secs(20);

fn init(dir: &Path) -> Result<()> {
    let out = Command::new(central_bin())
        .args(["init", "--dir"])
        .arg(dir)
        .output()?;
    ensure!(out.status.success(), "init: {out:?}");
    Ok(())
}

/// `serve --config FILE` with `NOTIFY_SOCKET`; the child and the sync
/// address it printed.
fn serve(config: &Path, notify: &Path) -> Result<(Child, SocketAddr)> {
    let mut child = Command::new(central_bin())
        .args(["serve", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", notify)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    // The rest of stdout is read to its end, so central never writes to a
    // closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .with_context(|| format!("first line: {line:?}"))?;
    Ok((child, url.parse()?))
}

/// The notification lines until one equals `want` (or the wait ends).
fn wait_for(socket: &UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while !lines.iter().any(|l| l == want) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines
}

/// Whatever central answers on a new connection to `GET /v1/none`: the
/// status line, or empty when the connection is closed unanswered.
fn answer(addr: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(WAIT))?;
    // A refused connection may be reset before or after the request.
    let _ = stream.write_all(b"GET /v1/none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[test]
fn a_configured_central_notifies_systemd_and_serves_within_its_limits() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("state");
    init(&dir)?;
    let config = tmp.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = \"{}\"\n[listen]\nsync = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             insecure_http = true\n[limits]\nconnections = 16\nconnections_per_address = 1\n\
             [log]\nformat = \"json\"\nlevel = \"warn\"\n",
            dir.display()
        ),
    )?;
    let notify_path = tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let (mut child, addr) = serve(&config, &notify_path)?;

    let lines = wait_for(&socket, "READY=1");
    ensure!(lines.iter().any(|l| l == "READY=1"), "{lines:?}");

    // One connection per address: while one is open, the next is closed
    // unanswered; once it is gone, the next is served (a JSON 404).
    let held = TcpStream::connect(addr)?;
    std::thread::sleep(Duration::from_millis(200));
    let refused = answer(addr)?;
    ensure!(
        refused.is_empty(),
        "a second connection was served: {refused:?}"
    );
    drop(held);
    let deadline = Instant::now() + WAIT;
    let served = loop {
        let line = answer(addr)?;
        if !line.is_empty() || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    ensure!(served.contains("404"), "{served:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    let lines = wait_for(&socket, "STOPPING=1");
    ensure!(lines.iter().any(|l| l == "STOPPING=1"), "{lines:?}");
    let status = child.wait()?;
    ensure!(status.success(), "{status}");
    Ok(())
}

#[test]
fn a_bad_config_exits_2_naming_the_file_line_and_key() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("central.toml");
    std::fs::write(
        &config,
        "[state]\ndir = \"/nonexistent\"\n[listen]\nsync = \"0.0.0.0:8443\"\n[limits]\nconnections = 3\n",
    )?;
    let out = Command::new(central_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(2) {
        bail!("exit {:?}: {stderr}", out.status.code());
    }
    let want = format!("{}:6: [limits] connections", config.display());
    ensure!(stderr.contains(&want), "{stderr}");
    Ok(())
}
