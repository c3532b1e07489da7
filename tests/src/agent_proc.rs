//! Start a real `pos-agent run` process with its own temporary config,
//! database and Unix socket, and talk HTTP/1.1 to it over that socket.
//!
//! The directory ([`AgentDir`]) and the process ([`AgentProc`]) are separate
//! on purpose: the crash test kills the process with SIGKILL and starts a new
//! one on the same directory, so the database outlives any one process.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pos_tests::agent_proc::AgentDir;
//! let dir = AgentDir::new()?;
//! dir.import("examples/rules.json", None, None)?;
//! let agent = dir.start().await?;
//! let (status, body) = agent.get("/v1/health").await?;
//! assert_eq!(status, 200, "{body}");
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long `start` waits for the socket to answer `GET /v1/health`. Generous
/// because debug builds on a loaded 2-core machine start slowly.
pub const START_TIMEOUT_MS: u64 = 30_000;
/// How long one HTTP request may take before the helper gives up.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long `terminate` waits for a clean exit after SIGTERM.
pub const STOP_TIMEOUT_MS: u64 = 15_000;
/// Largest answer body the helper reads (ledger pages are the big ones).
pub const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The `pos-agent` binary (see [`crate::bins::path`]: built once per test
/// process, or `$POS_AGENT_BIN`).
pub fn agent_bin() -> PathBuf {
    crate::bins::path("pos-agent")
}

/// A register's directory: config, database and socket paths, in a tempdir
/// removed on drop.
pub struct AgentDir {
    dir: tempfile::TempDir,
    /// The config file `pos-agent` is started with.
    pub config: PathBuf,
    /// `[storage] path`.
    pub db: PathBuf,
    /// `[api] socket`.
    pub socket: PathBuf,
    /// `[terminal] id`.
    pub terminal_id: String,
}

impl AgentDir {
    /// A standalone register (no `[central]`, no devices), terminal
    /// `store-1-reg-1`, time zone Europe/Berlin.
    pub fn new() -> Result<AgentDir> {
        AgentDir::with_extra_toml("")
    }

    /// As [`AgentDir::new`], with `extra` appended to the config text (for
    /// example a `[central]` table). `extra` must not repeat `[terminal]`,
    /// `[storage]` or `[api]`.
    pub fn with_extra_toml(extra: &str) -> Result<AgentDir> {
        let dir = tempfile::Builder::new()
            .prefix("pos-agent-test-")
            .tempdir()
            .context("create tempdir")?;
        let config = dir.path().join("agent.toml");
        let db = dir.path().join("agent.db");
        // Unix socket paths are limited to ~108 bytes; tempdirs are short.
        let socket = dir.path().join("api.sock");
        let terminal_id = "store-1-reg-1".to_string();
        let text = format!(
            "[terminal]\nid = \"{terminal_id}\"\nstore_id = \"store-1\"\ntimezone = \"Europe/Berlin\"\n\n\
             [storage]\npath = {db:?}\n\n[api]\nsocket = {socket:?}\n\n{extra}\n",
            db = db.display().to_string(),
            socket = socket.display().to_string(),
        );
        std::fs::write(&config, text).context("write agent.toml")?;
        Ok(AgentDir {
            dir,
            config,
            db,
            socket,
            terminal_id,
        })
    }

    /// The temporary directory everything lives in.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to a file in the directory and gives its path.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Runs `pos-agent import` against this register's config; fails with
    /// the command's stderr unless it exits 0.
    pub fn import(
        &self,
        rules: impl AsRef<Path>,
        members: Option<&Path>,
        catalog: Option<&Path>,
    ) -> Result<Output> {
        let mut args: Vec<std::ffi::OsString> = vec!["import".into(), "--rules".into()];
        args.push(rules.as_ref().into());
        if let Some(m) = members {
            args.push("--members".into());
            args.push(m.into());
        }
        if let Some(c) = catalog {
            args.push("--catalog".into());
            args.push(c.into());
        }
        args.push("--config".into());
        args.push(self.config.clone().into());
        let out = self.run_cli(&args)?;
        if !out.status.success() {
            bail!(
                "pos-agent import failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// Runs `pos-agent db verify --db <this db>`; the caller checks the
    /// status (0 ok, 1 broken).
    pub fn db_verify(&self) -> Result<Output> {
        self.run_cli(&[
            "db".into(),
            "verify".into(),
            "--db".into(),
            self.db.clone().into(),
            "--config".into(),
            self.config.clone().into(),
        ])
    }

    /// Runs `pos-agent ARGS...` to completion and gives its output.
    pub fn run_cli(&self, args: &[std::ffi::OsString]) -> Result<Output> {
        Command::new(agent_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run pos-agent")
    }

    /// Starts `pos-agent run --config <config>` and waits until
    /// `GET /v1/health` answers on the socket.
    pub async fn start(&self) -> Result<AgentProc> {
        self.start_with_env(&[]).await
    }

    /// [`AgentDir::start`] with extra environment variables (e.g. the ones
    /// systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub async fn start_with_env(&self, env: &[(&str, &std::ffi::OsStr)]) -> Result<AgentProc> {
        let child = Command::new(agent_bin())
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn pos-agent run")?;
        let mut agent = AgentProc {
            child,
            socket: self.socket.clone(),
        };
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = agent.child.try_wait().context("poll pos-agent")? {
                let stderr = agent.take_stderr();
                bail!("pos-agent run exited early ({status}): {stderr}");
            }
            if agent.socket.exists()
                && let Ok((200, _)) = agent.get("/v1/health").await
            {
                return Ok(agent);
            }
            if Instant::now() > deadline {
                agent.kill9();
                let stderr = agent.take_stderr();
                bail!(
                    "pos-agent run did not answer on {} within {START_TIMEOUT_MS} ms: {stderr}",
                    agent.socket.display(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running `pos-agent run` process. Dropping it kills the process
/// (SIGKILL) so a failing test leaves nothing behind.
pub struct AgentProc {
    child: Child,
    socket: PathBuf,
}

impl AgentProc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap: the crash the store must survive.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status (killing after
    /// [`STOP_TIMEOUT_MS`]).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(
            i32::try_from(self.child.id()).context("pid does not fit in i32")?,
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).context("send SIGTERM")?;
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().context("poll pos-agent")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill9();
                bail!("pos-agent did not exit within {STOP_TIMEOUT_MS} ms of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whatever the process wrote on stderr (only complete once it exited).
    pub fn take_stderr(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.request("GET", path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.request("POST", path, Some(body.to_string().into_bytes()))
            .await
    }

    /// One request on a fresh connection; the answer parsed as JSON (or a
    /// JSON string holding the text when it is not JSON, e.g. `/metrics`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Value)> {
        let (status, bytes) = self.request_raw(method, path, body).await?;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }

    /// One request on a fresh connection; the answer's status and raw bytes.
    /// A body is sent as `application/json`.
    pub async fn request_raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>)> {
        request_raw(&self.socket, method, path, body).await
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill9();
        }
    }
}

/// One HTTP/1.1 request to a Unix socket, on a fresh connection, with
/// [`REQUEST_TIMEOUT_MS`]. Usable without an [`AgentProc`] (e.g. against an
/// in-process server).
pub async fn request_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>)> {
    let work = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("connect {}", socket.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake")?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("build request")?;
        let answer = sender.send_request(request).await.context("send request")?;
        let status = answer.status().as_u16();
        let collected = http_body_util::Limited::new(answer.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| anyhow!("read answer body: {e}"))?;
        driver.abort();
        Ok::<_, anyhow::Error>((status, collected.to_bytes().to_vec()))
    };
    tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), work)
        .await
        .map_err(|_| anyhow!("{method} {path}: no answer within {REQUEST_TIMEOUT_MS} ms"))?
}
