//! Start a real `pos-agent run` process with its own temporary config,
//! database and Unix socket, and talk HTTP/1.1 to it over that socket.
//!
//! The directory ([`AgentDir`]) and the process ([`AgentProc`]) are separate
//! on purpose: the crash test kills the process with SIGKILL and starts a new
//! one on the same directory, so the database outlives any one process.
//!
//! The binary is [`agent_bin`] (built by [`crate::bins`]) unless
//! [`AgentDir::with_bin`] names another, e.g. `CARGO_BIN_EXE_pos-agent` in
//! the binary's own package.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pos_testkit::agent_proc::AgentDir;
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
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long `start` waits for the socket to answer `GET /v1/health`. Generous
/// because debug builds on a loaded 2-core machine start slowly.
pub const START_TIMEOUT_MS: u64 = 30_000;
/// How long one HTTP request may take before the helper gives up.
pub const REQUEST_TIMEOUT_MS: u64 = 30_000;
/// How long `terminate` and `signal` wait for the exit after the signal.
pub const STOP_TIMEOUT_MS: u64 = 20_000;
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
    /// The `pos-agent` binary this register runs; `None`: [`agent_bin`],
    /// looked up (and built) only when first run.
    bin: Option<PathBuf>,
}

impl AgentDir {
    /// A standalone register (no `[central]`, no devices), terminal
    /// `store-1-reg-1`, time zone Europe/Berlin.
    pub fn new() -> Result<AgentDir> {
        AgentDir::with_extra_toml("")
    }

    /// As [`AgentDir::new`], with `extra` appended to the config text right
    /// after `[api] socket` (so it may start with more `[api]` keys, then
    /// tables such as `[central]`). `extra` must not repeat `[terminal]`,
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
            bin: None,
        })
    }

    /// This register runs `bin` instead of [`agent_bin`].
    pub fn with_bin(mut self, bin: impl Into<PathBuf>) -> AgentDir {
        self.bin = Some(bin.into());
        self
    }

    /// The `pos-agent` binary this register runs.
    pub fn bin(&self) -> PathBuf {
        self.bin.clone().unwrap_or_else(agent_bin)
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
        let mut cmd = Command::new(self.bin());
        cmd.args(args);
        crate::bounded::output(cmd, crate::bounded::CLI_TIMEOUT).context("run pos-agent")
    }

    /// Starts `pos-agent run --config <config>` and waits until
    /// `GET /v1/health` answers on the socket.
    pub async fn start(&self) -> Result<AgentProc> {
        self.start_with_env(&[]).await
    }

    /// [`AgentDir::start`] with extra environment variables (e.g. the ones
    /// systemd sets: `NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub async fn start_with_env(&self, env: &[(&str, &std::ffi::OsStr)]) -> Result<AgentProc> {
        self.spawn(env, Stdio::piped()).await
    }

    /// [`AgentDir::start`] with stderr written to `log` (debug logs can
    /// outgrow a pipe nobody reads); [`AgentProc::take_stderr`] is then empty.
    pub async fn start_logging_to(&self, log: &Path) -> Result<AgentProc> {
        let file =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        self.spawn(&[], file.into()).await
    }

    async fn spawn(&self, env: &[(&str, &std::ffi::OsStr)], stderr: Stdio) -> Result<AgentProc> {
        let child = Command::new(self.bin())
            .arg("run")
            .arg("--config")
            .arg(&self.config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("spawn pos-agent run")?;
        let mut agent = AgentProc {
            child,
            socket: self.socket.clone(),
        };
        agent.wait_healthy().await?;
        Ok(agent)
    }
}

/// A running `pos-agent run` process. Dropping it kills the process
/// (SIGKILL) so a failing test leaves nothing behind.
pub struct AgentProc {
    child: Child,
    socket: PathBuf,
}

impl AgentProc {
    /// Waits until `GET /v1/health` answers 200 (killing the process after
    /// [`START_TIMEOUT_MS`]).
    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().context("poll pos-agent")? {
                let stderr = self.take_stderr();
                bail!("pos-agent run exited early ({status}): {stderr}");
            }
            if self.socket.exists()
                && let Ok((200, _)) = self.get("/v1/health").await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill9();
                let stderr = self.take_stderr();
                bail!(
                    "pos-agent run did not answer on {} within {START_TIMEOUT_MS} ms: {stderr}",
                    self.socket.display(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// SIGKILL, then reap: the crash the store must survive.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status (killing after
    /// [`STOP_TIMEOUT_MS`]).
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM)
    }

    /// Sends `signal` and waits for the exit status (killing after
    /// [`STOP_TIMEOUT_MS`]).
    pub fn signal(&mut self, signal: nix::sys::signal::Signal) -> Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(
            i32::try_from(self.child.id()).context("pid does not fit in i32")?,
        );
        nix::sys::signal::kill(pid, signal).with_context(|| format!("send {signal}"))?;
        let deadline = Instant::now() + Duration::from_millis(STOP_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().context("poll pos-agent")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.kill9();
                bail!("pos-agent did not exit within {STOP_TIMEOUT_MS} ms of {signal}");
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
/// [`REQUEST_TIMEOUT_MS`]; a body is sent as `application/json`. Usable
/// without an [`AgentProc`] (e.g. against an in-process server).
pub async fn request_raw(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>)> {
    let content_type = body.as_ref().map(|_| "application/json");
    request_with(socket, method, path, content_type, body).await
}

/// [`request_raw`] with any `Content-Type` (`None` sends none), for the
/// tests of how the API treats the wrong one.
pub async fn request_with(
    socket: &Path,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(u16, Vec<u8>)> {
    let work = async {
        let mut sender = connect(socket).await?;
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if let Some(content_type) = content_type {
            builder = builder.header(hyper::header::CONTENT_TYPE, content_type);
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
        Ok::<_, anyhow::Error>((status, collected.to_bytes().to_vec()))
    };
    tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), work)
        .await
        .map_err(|_| anyhow!("{method} {path}: no answer within {REQUEST_TIMEOUT_MS} ms"))?
}

/// An HTTP/1.1 connection to a Unix socket, driven by a task that ends with
/// the connection (when the sender is dropped).
async fn connect(socket: &Path) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connect {}", socket.display()))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Opens `GET /v1/events` and gives a receiver of the raw SSE text chunks
/// (closed when the stream ends).
pub async fn open_events(socket: &Path) -> Result<tokio::sync::mpsc::Receiver<String>> {
    let mut sender = connect(socket).await?;
    let request = hyper::Request::builder()
        .uri("/v1/events")
        .header(hyper::header::HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .context("build request")?;
    let answer = sender.send_request(request).await.context("send request")?;
    if answer.status() != 200 {
        bail!("GET /v1/events: {}", answer.status());
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut body = answer.into_body();
    tokio::spawn(async move {
        // The sender lives as long as the stream is read.
        let _sender = sender;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data()
                && tx
                    .send(String::from_utf8_lossy(&data).into_owned())
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    Ok(rx)
}
