//! The daemon's life cycle: start-up refusals with their exit codes, the
//! socket's mode and ownership rules, clean shutdown on SIGTERM, `status`.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Register, assert_error};
use serde_json::json;

#[tokio::test]
async fn socket_is_0660_and_sigterm_stops_cleanly_removing_it() {
    let reg = Register::new("");
    reg.provision(0).await;
    let mut agent = reg.start().await;
    let mode = std::fs::metadata(&reg.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");

    // Work done before the signal survives it.
    let sale = json!({"sale_id": "S-TERM", "time": "2026-11-28T11:05:00+01:00",
                      "lines": [{"sku": "GROC-1", "qty": "1", "unit_price": "2.50"}]});
    let (status, body) = agent.post("/v1/sales", &sale).await;
    assert_eq!(status, 200, "{body}");

    let exit = agent.terminate();
    assert!(exit.success(), "exit {exit}: {}", agent.stderr());
    assert!(!reg.socket.exists(), "socket file left behind");

    // The store was closed cleanly: it opens again and holds the sale.
    let report = pos_agent::store::verify_file(&reg.db).expect("verify");
    assert!(report.is_ok(), "{report:?}");
    let again = reg.start().await;
    let (status, body) = again.get("/v1/sales/S-TERM").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn stale_socket_is_replaced_but_a_live_agent_is_not_displaced() {
    let reg = Register::new("");
    reg.provision(0).await;
    // A socket file nobody listens on: what a crash leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&reg.socket).expect("bind stale socket"));
    assert!(reg.socket.exists());
    let agent = reg.start().await;
    let (status, _) = agent.get("/v1/health").await;
    assert_eq!(status, 200);

    // A second agent on the same config must refuse and leave the first alone.
    let second = reg.cli(&["run", "--config", reg.config.to_str().expect("utf-8")]);
    assert_eq!(second.status.code(), Some(1), "second agent: {second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("another process is listening"), "{stderr}");
    let (status, _) = agent.get("/v1/health").await;
    assert_eq!(status, 200, "the first agent must still answer");
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_is_never_replaced() {
    let reg = Register::new("");
    reg.provision(0).await;
    std::fs::write(&reg.socket, b"precious").expect("write file");
    let out = reg.cli(&["run", "--config", reg.config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a socket"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read(&reg.socket).expect("file still there"),
        b"precious"
    );
}

#[test]
fn invalid_config_exits_2_naming_the_key() {
    let reg = Register::new("max_body_bytes = 12");
    let out = reg.cli(&["run", "--config", reg.config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_body_bytes"), "{stderr}");
    assert!(!reg.socket.exists(), "no socket for a refused config");
}

#[test]
fn corrupt_or_foreign_database_exits_1_and_is_left_untouched() {
    let reg = Register::new("");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&reg.db, &junk).expect("write junk db");
    let out = reg.cli(&["run", "--config", reg.config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("agent.db"),
        "the message names the file: {stderr}"
    );
    assert_eq!(
        std::fs::read(&reg.db).expect("db"),
        junk,
        "the file was changed"
    );
    assert!(!reg.socket.exists(), "no socket when the store is refused");
}

#[tokio::test]
async fn status_summarises_the_running_daemon_without_secrets() {
    let reg = Register::new("");
    reg.provision(0).await;
    let agent = reg.start().await;
    let sale = json!({"sale_id": "S-ST", "time": "2026-11-28T11:05:00+01:00",
                      "member": {"id": "M-1001"},
                      "lines": [{"sku": "GROC-1", "qty": "4", "unit_price": "2.50"}]});
    let (status, body) = agent.post("/v1/sales", &sale).await;
    assert_eq!(status, 200, "{body}");
    let entries = agent.ledger().await.len();
    assert!(entries > 0);

    let out = reg.cli(&["status", "--config", reg.config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("store-1-reg-1"), "{text}");
    assert!(text.contains("sync:          off"), "{text}");
    assert!(
        text.contains(&format!("outbox:        {entries} unsynced")),
        "{text}"
    );
    assert!(text.contains("dead letters:  0"), "{text}");
    assert!(text.contains("rules version: 3"), "{text}");
    assert!(text.contains("devices:       none"), "{text}");

    // Health says the same in JSON.
    let (status, health) = agent.get("/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["outbox_depth"], json!(entries), "{health}");
    assert_eq!(health["sync"]["state"], "off");
    assert_eq!(health["store"]["writer_alive"], true);
    assert_eq!(health["devices"], json!([]));

    drop(agent);
    // Without a daemon, status fails with exit 1 and says why.
    let out = reg.cli(&["status", "--config", reg.config.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is pos-agent running"),
        "{out:?}"
    );
}

#[tokio::test]
async fn health_of_an_unprovisioned_register_has_no_rules_and_quotes_are_503() {
    let reg = Register::new("");
    let agent = reg.start().await;
    let (status, health) = agent.get("/v1/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["rules_version"], json!(null), "{health}");
    let (status, body) = agent
        .post("/v1/quote", &json!({"time": "2026-11-28T11:05:00+01:00", "lines": [{"sku": "A", "qty": "1", "unit_price": "1"}]}))
        .await;
    assert_error(status, &body, 503, "no_rules");
}

#[tokio::test]
async fn debug_logs_are_json_lines_without_card_numbers() {
    let reg = Register::new("\n[log]\nlevel = \"debug\"\nformat = \"json\"");
    reg.provision(0).await;
    let mut agent = reg.start().await;
    let loyalty_card = "9990000010013";
    let sale = json!({"sale_id": "S-LOG", "time": "2026-11-28T11:05:00+01:00",
                      "member": {"card": loyalty_card},
                      "lines": [{"sku": "GROC-1", "qty": "1", "unit_price": "2.50"}]});
    let (status, body) = agent.post("/v1/sales", &sale).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = agent.get(&format!("/v1/members/{loyalty_card}")).await;
    assert_eq!(status, 200);
    // A malformed body holding the card number must not be logged either.
    let (status, _) = agent
        .raw(
            "POST",
            "/v1/sales",
            Some("application/json"),
            Some(
                format!("{{\"sale_id\": \"S-X\", \"member\": {{\"card\": \"{loyalty_card}\"")
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 400);
    assert!(agent.terminate().success());
    let stderr = agent.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("Request.")),
        "debug level logs each request: {stderr}"
    );
    for line in &lines {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
    // Request paths are logged as route templates, bodies never.
    assert!(
        !stderr.contains(loyalty_card),
        "a card number reached the log: {stderr}"
    );
}

#[tokio::test]
async fn sigint_stops_as_cleanly_as_sigterm() {
    let reg = Register::new("");
    reg.provision(0).await;
    let mut agent = reg.start().await;
    let exit = agent.signal("INT");
    assert!(exit.success(), "exit {exit}: {}", agent.stderr());
    assert!(!reg.socket.exists(), "socket file left behind");
    let report = pos_agent::store::verify_file(&reg.db).expect("verify");
    assert!(report.is_ok(), "{report:?}");
}
