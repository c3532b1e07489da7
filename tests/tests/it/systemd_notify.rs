//! The systemd notification protocol (agent spec §5), with the real
//! `pos-agent run` and a datagram socket standing in for systemd:
//! `READY=1` once the API answers, `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` while the store writer and device loops are alive, and
//! `STOPPING=1` on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use pos_testkit::agent_proc::{AgentDir, AgentProc};

/// `WatchdogSec=` as systemd passes it: keep-alives every 150 ms.
const WATCHDOG_USEC: &str = "300000";
/// Keep-alives the test waits for; each arrives within ~150 ms.
const KEEPALIVES_WANTED: usize = 3;
const WAIT_MS: u64 = 10_000;

/// Every datagram's lines, until `done` says enough or the deadline passes.
fn collect(socket: &UnixDatagram, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&lines) && Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines
}

/// An agent directory, a bound datagram socket standing in for systemd's
/// notify socket, and the agent started with `NOTIFY_SOCKET` pointing at
/// it, `WATCHDOG_USEC` set, and `extra` variables.
async fn agent_under_systemd(
    extra: &[(&str, &std::ffi::OsStr)],
) -> (AgentDir, UnixDatagram, AgentProc) {
    let dir = AgentDir::new().expect("agent dir");
    let notify_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let mut env = vec![
        ("NOTIFY_SOCKET", notify_path.as_os_str()),
        ("WATCHDOG_USEC", WATCHDOG_USEC.as_ref()),
    ];
    env.extend_from_slice(extra);
    let agent = dir.start_with_env(&env).await.expect("agent starts");
    (dir, socket, agent)
}

fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_watchdog_and_stopping_reach_systemd() {
    let (_dir, socket, mut agent) = agent_under_systemd(&[]).await;
    let lines = collect(&socket, |l| count(l, "WATCHDOG=1") >= KEEPALIVES_WANTED);
    assert_eq!(count(&lines, "READY=1"), 1, "one READY=1: {lines:?}");
    let ready_at = lines.iter().position(|l| l == "READY=1");
    let first_keepalive = lines.iter().position(|l| l == "WATCHDOG=1");
    assert!(
        count(&lines, "WATCHDOG=1") >= KEEPALIVES_WANTED,
        "keep-alives while healthy: {lines:?}"
    );
    assert!(ready_at < first_keepalive, "READY=1 comes first: {lines:?}");

    let status = agent.terminate().expect("SIGTERM");
    assert!(status.success(), "clean exit: {status}");
    let lines = collect(&socket, |l| l.iter().any(|l| l == "STOPPING=1"));
    assert!(
        lines.iter().any(|l| l == "STOPPING=1"),
        "STOPPING=1 on SIGTERM: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_keepalives_when_the_watchdog_is_meant_for_another_process() {
    // WATCHDOG_PID 1: inherited variables, not ours (sd_watchdog_enabled(3)).
    let (_dir, socket, mut agent) = agent_under_systemd(&[("WATCHDOG_PID", "1".as_ref())]).await;
    // READY=1 arrives; then a second of silence where keep-alives would
    // have come every 150 ms.
    let started = Instant::now();
    let lines = collect(&socket, |_| started.elapsed() > Duration::from_secs(1));
    assert_eq!(count(&lines, "READY=1"), 1, "{lines:?}");
    assert_eq!(count(&lines, "WATCHDOG=1"), 0, "{lines:?}");
    agent.terminate().expect("SIGTERM");
}
