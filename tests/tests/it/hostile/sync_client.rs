//! The sync client against a hostile or misconfigured path to central: a
//! 307 to plain `http://` is never followed, and a central token file that
//! other users can read is refused with the fix.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pos_testkit::agent_proc::{AgentDir, AgentProc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::write_mode;

const DEADLINE: Duration = Duration::from_secs(60);
const KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

fn central_toml(url: &str, token_file: &std::path::Path) -> String {
    format!(
        "[central]\nurl = {url:?}\ntoken_file = {:?}\nrules_public_key = {KEY:?}\n\
         sync_interval_secs = 1\nrequest_timeout_secs = 2\n",
        token_file.display().to_string()
    )
}

/// Polls the sync worker's report until `done` holds for it.
async fn wait_report(agent: &AgentProc, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, health) = agent.get("/v1/health").await.unwrap();
        let worker = health["sync"]["worker"].clone();
        if done(&worker) {
            return worker;
        }
        assert!(started.elapsed() < DEADLINE, "never reached: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn last_error(worker: &Value) -> &str {
    worker["last_error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_plain_http_is_never_followed() {
    // Where the redirect points: counts every connection it gets.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/v1/sync/upload", elsewhere.local_addr().unwrap());
    let followed = Arc::new(AtomicUsize::new(0));
    let count = followed.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = elsewhere.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    // "Central": answers every request 307 to the plain-http target.
    let central = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", central.local_addr().unwrap());
    let location = target.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = central.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });

    let scratch = tempfile::tempdir().unwrap();
    let token = write_mode(&scratch.path().join("token"), "tok-redirect", 0o600).unwrap();
    let dir = AgentDir::with_extra_toml(&central_toml(&url, &token)).unwrap();
    let agent = dir.start().await.unwrap();
    let worker = wait_report(&agent, |w| last_error(w).contains("307")).await;
    let error = last_error(&worker);
    assert!(error.contains("redirect"), "{error}");
    assert!(
        error.contains(&target),
        "the error names the Location: {error}"
    );
    // A few more cycles (a 3xx is retried slowly, so ask for them): none
    // of them follows.
    let first = worker["consecutive_failures"].as_u64().unwrap_or(0);
    for cycles in first..first + 2 {
        let (status, body) = agent.request("POST", "/v1/sync/now", None).await.unwrap();
        assert!(status < 300, "{status} {body}");
        wait_report(&agent, |w| {
            w["consecutive_failures"].as_u64().unwrap_or(0) > cycles
        })
        .await;
    }
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_token_file_others_can_read_is_refused_with_the_fix() {
    let scratch = tempfile::tempdir().unwrap();
    let token = write_mode(&scratch.path().join("token"), "tok-readable", 0o644).unwrap();
    // Anything listening would do: the token is refused before a request.
    let dir = AgentDir::with_extra_toml(&central_toml("http://127.0.0.1:9", &token)).unwrap();
    let agent = dir.start().await.unwrap();
    let worker = wait_report(&agent, |w| last_error(w).contains("chmod")).await;
    let error = last_error(&worker);
    assert!(
        error.contains(&format!("run `chmod 600 {}`", token.display())),
        "{error}"
    );
    assert!(error.contains("mode 0644"), "{error}");
    assert!(!error.contains("tok-readable"), "{error}");
    assert_eq!(worker["auth_failure"], true, "{worker}");
}
