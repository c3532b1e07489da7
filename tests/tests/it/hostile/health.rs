//! Health tells the truth: a full disk (a real one: a small tmpfs mounted
//! in a user and mount namespace of the agent's own, so no root is needed)
//! and sync failing for longer than `[health] sync_failing_secs` both make
//! `GET /v1/health` degraded, with the reason in `problems`, in the gauges
//! and in `pos-agent status`.

use std::time::{Duration, Instant};

use pos_testkit::agent_proc::AgentProc;
use serde_json::Value;

use super::{free_port, sale, sellable, write_mode};

/// Free room on the tmpfs besides the database: a few hundred sales.
const HEADROOM_KIB: u64 = 384;
const DEADLINE: Duration = Duration::from_secs(60);

/// Whether this machine lets a non-root user mount a tmpfs in a namespace.
fn namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn metric(text: &str, sample: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).map(|v| v.trim().to_string()))
}

async fn metrics(agent: &AgentProc) -> String {
    let (_, body) = agent.get("/metrics").await.unwrap();
    body.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_makes_health_degraded() {
    if !namespaces_work() {
        eprintln!("SKIPPED: unprivileged user namespaces are off here; no tmpfs can be mounted");
        return;
    }
    let dir = sellable("[health]\nstorage_full_secs = 600\n").unwrap();
    // The database moves into full/, which the wrapper mounts a small
    // tmpfs over (after copying the imported database in).
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::rename(&dir.db, full.join("agent.db")).unwrap();
    let config = std::fs::read_to_string(&dir.config).unwrap();
    let config = config.replace(
        &format!("path = {:?}", dir.db.display().to_string()),
        &format!("path = {:?}", full.join("agent.db").display().to_string()),
    );
    std::fs::write(&dir.config, config).unwrap();
    let db_kib = std::fs::metadata(full.join("agent.db")).unwrap().len() / 1024;
    let size = db_kib + HEADROOM_KIB;
    let wrapper = dir.path().join("in-tmpfs.sh");
    let script = format!(
        "#!/bin/sh\nexec unshare -rm sh -c 'cp -a {d}/full {d}/seed && mount -t tmpfs -o size={size}k tmpfs {d}/full \
         && cp -a {d}/seed/. {d}/full/ && exec {bin} \"$@\"' sh \"$@\"\n",
        d = dir.path().display(),
        bin = dir.bin().display(),
    );
    write_mode(&wrapper, &script, 0o700).unwrap();
    let dir = dir.with_bin(&wrapper);
    let agent = dir.start().await.unwrap();
    let (_, health) = agent.get("/v1/health").await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    let mut full_at = None;
    for i in 0..5_000 {
        let (status, body) = agent
            .post("/v1/sales", &sale(&format!("S-{i}"), 0))
            .await
            .unwrap();
        if status == 507 {
            assert_eq!(body["error"]["code"], "storage_full", "{body}");
            full_at = Some(i);
            break;
        }
        assert_eq!(status, 200, "sale {i}: {body}");
    }
    let full_at = full_at.expect("the tmpfs fills within 5,000 sales");
    eprintln!("the disk was full at sale {full_at}");

    let (_, health) = agent.get("/v1/health").await.unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    let problems: Vec<&str> = health["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(problems.contains(&"storage_full"), "{health}");
    let text = metrics(&agent).await;
    assert_eq!(
        metric(&text, "pos_agent_health_ok").as_deref(),
        Some("0"),
        "{text}"
    );
    assert_eq!(
        metric(&text, "pos_agent_health_problem{problem=\"storage_full\"}").as_deref(),
        Some("1"),
        "{text}"
    );
    let out = dir
        .run_cli(&[
            "status".into(),
            "--config".into(),
            dir.config.clone().into(),
        ])
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("STORAGE FULL"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_failing_longer_than_configured_makes_health_degraded() {
    let scratch = tempfile::tempdir().unwrap();
    let token = write_mode(&scratch.path().join("token"), "tok-sync-1", 0o600).unwrap();
    // Nothing listens on central's port: every cycle fails.
    let port = free_port().unwrap();
    // No rules imported: with [central] an unsigned bundle would be
    // `rules_unverified`, a problem of its own.
    let dir = pos_testkit::agent_proc::AgentDir::with_extra_toml(&format!(
        "[central]\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = {:?}\n\
         rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n\
         sync_interval_secs = 1\nrequest_timeout_secs = 2\n\
         [health]\nsync_failing_secs = 3\nmember_stale_secs = 604800\n",
        token.display().to_string()
    ))
    .unwrap();
    let agent = dir.start().await.unwrap();
    let started = Instant::now();
    let health = loop {
        let (_, health) = agent.get("/v1/health").await.unwrap();
        let failing = health["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "sync_failing"));
        if failing {
            break health;
        }
        assert!(started.elapsed() < DEADLINE, "never degraded: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(
        health["sync_failing_secs"].as_u64().unwrap() >= 3,
        "{health}"
    );
    let text = metrics(&agent).await;
    assert_eq!(
        metric(&text, "pos_agent_health_problem{problem=\"sync_failing\"}").as_deref(),
        Some("1"),
        "{text}"
    );
    let out = dir
        .run_cli(&[
            "status".into(),
            "--config".into(),
            dir.config.clone().into(),
        ])
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("SYNC FAILING"), "{status}");
}
