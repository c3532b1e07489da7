//! Start a real `pos-central serve` process on a fresh state directory and
//! drive it with its own command line (`terminal add`, `publish-rules`,
//! `admin-get` ...), as an operator would.
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! use pos_testkit::central_proc::Central;
//! let central = Central::start()?;           // TLS on 127.0.0.1, a free port
//! let token = central.add_terminal("store-1-reg-1")?;
//! central.publish_rules("examples/rules.json")?;
//! let terminals = central.admin_get("/v1/admin/terminals")?;
//! # Ok(()) }
//! ```

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The `pos-central` binary (see [`crate::bins::path`]: built once per test
/// process, or `$POS_CENTRAL_BIN`).
pub fn central_bin() -> PathBuf {
    crate::bins::path("pos-central")
}

/// How long `start` waits for `serve` to print where it listens.
pub const START_TIMEOUT_MS: u64 = 30_000;

/// A central's state directory (a tempdir, removed on drop) and, while
/// running, its `serve` process.
pub struct Central {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Base URL, e.g. `https://127.0.0.1:40123`.
    pub url: String,
    /// The address `serve` listens on for registers (the sync API).
    pub addr: SocketAddr,
    /// Base URL of the admin API (its own listener, on loopback).
    pub admin_url: String,
    /// TLS (false with `--insecure-http`).
    pub tls: bool,
    /// The `pos-central` binary.
    bin: PathBuf,
}

impl Central {
    /// `init` + `serve` with TLS on 127.0.0.1 (a free port).
    pub fn start() -> Result<Central> {
        Central::start_with(true)
    }

    /// `init` + `serve --insecure-http` on 127.0.0.1.
    pub fn start_insecure() -> Result<Central> {
        Central::start_with(false)
    }

    fn start_with(tls: bool) -> Result<Central> {
        Central::start_bin(central_bin(), tls)
    }

    /// `init` + `serve` (TLS unless `tls` is false) on 127.0.0.1 with the
    /// `pos-central` binary `bin` (e.g. `CARGO_BIN_EXE_pos-central`).
    pub fn start_bin(bin: impl Into<PathBuf>, tls: bool) -> Result<Central> {
        Central::start_init(bin.into(), tls, &[])
    }

    /// `init --database URL` + `serve` with TLS: a central whose data is
    /// on PostgreSQL (e.g. a `pos_testkit::postgres::fresh_database`).
    pub fn start_on_database(url: &str) -> Result<Central> {
        Central::start_on_database_with(url, true)
    }

    /// [`Central::start_on_database`], plain HTTP on loopback unless `tls`
    /// (behind `pos_testkit::balancer`, which balances requests, not TLS).
    pub fn start_on_database_with(url: &str, tls: bool) -> Result<Central> {
        Central::start_init(central_bin(), tls, &["--database", url])
    }

    /// Another `serve` instance of this central: a new directory with
    /// copies of this one's keys, admin token, certificates and database
    /// URL (so registers trust it and it shares the database), serving on
    /// a port of its own. Only meaningful on PostgreSQL.
    pub fn another_instance(&self) -> Result<Central> {
        let dir = tempfile::tempdir().context("creating the central's tempdir")?;
        for name in [
            "signing.key",
            "admin.token",
            "ca.pem",
            "ca.key",
            "server.pem",
            "server.key",
            "database.url",
        ] {
            // fs::copy keeps the 0600 modes.
            std::fs::copy(self.dir.path().join(name), dir.path().join(name))
                .with_context(|| format!("copying {name}"))?;
        }
        let mut central = Central {
            dir,
            child: None,
            url: String::new(),
            addr: "127.0.0.1:0".parse().context("parsing an address")?,
            admin_url: String::new(),
            tls: self.tls,
            bin: self.bin.clone(),
        };
        central.serve("127.0.0.1:0")?;
        Ok(central)
    }

    fn start_init(bin: PathBuf, tls: bool, init_args: &[&str]) -> Result<Central> {
        let dir = tempfile::tempdir().context("creating the central's tempdir")?;
        let mut args = vec![
            "init",
            "--dir",
            dir.path().to_str().context("tempdir path is not UTF-8")?,
        ];
        args.extend_from_slice(init_args);
        let out = run(&bin, &args)?;
        if !out.status.success() {
            bail!(
                "pos-central init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut central = Central {
            dir,
            child: None,
            url: String::new(),
            addr: "127.0.0.1:0".parse().context("parsing an address")?,
            admin_url: String::new(),
            tls,
            bin,
        };
        central.serve("127.0.0.1:0")?;
        Ok(central)
    }

    /// (Re)starts `serve`; `listen` may name the old port to come back on it.
    pub fn serve(&mut self, listen: &str) -> Result<()> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--dir"])
            .arg(self.dir.path())
            .args(["--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // Warnings and errors reach the test output; info lines would drown it.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        if !self.tls {
            cmd.arg("--insecure-http");
        }
        let mut child = cmd.spawn().context("spawning pos-central serve")?;
        let stdout = child.stdout.take().context("serve has no stdout")?;
        // Read the first two lines (sync and admin URL) on a thread so a
        // hung process cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = stdout.read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_millis(START_TIMEOUT_MS))
            .map_err(|_| anyhow!("pos-central serve did not say where it listens"));
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut lines = line.lines();
        let url = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("listening on "))
            .ok_or_else(|| anyhow!("unexpected first line from serve: {line:?}"))?
            .to_string();
        let admin_url = lines
            .next()
            .and_then(|l| l.trim().strip_prefix("admin on "))
            .ok_or_else(|| anyhow!("unexpected second line from serve: {line:?}"))?
            .to_string();
        let hostport = url
            .split("://")
            .nth(1)
            .ok_or_else(|| anyhow!("no scheme in {url:?}"))?;
        self.addr = hostport
            .parse()
            .with_context(|| format!("address in {url:?}"))?;
        self.url = url;
        self.admin_url = admin_url;
        self.child = Some(child);
        Ok(())
    }

    /// Stops `serve` with SIGKILL (the directory stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `serve` process's id, while it runs (to read its memory, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The development CA registers trust (`ca_file`).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Runs `pos-central ARGS... --dir DIR` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--dir");
        all.push(
            self.dir
                .path()
                .to_str()
                .context("tempdir path is not UTF-8")?,
        );
        run(&self.bin, &all)
    }

    fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "pos-central {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).context("output is not UTF-8")
    }

    /// Registers a terminal and returns its token.
    pub fn add_terminal(&self, id: &str) -> Result<String> {
        Ok(self.cli_ok(&["terminal", "add", id])?.trim().to_string())
    }

    /// Registers a channel (web shop, app) and returns its token.
    pub fn add_channel(&self, name: &str) -> Result<String> {
        Ok(self.cli_ok(&["channel", "add", name])?.trim().to_string())
    }

    /// The base64 key registers verify bundles with.
    pub fn public_key(&self) -> Result<String> {
        Ok(self.cli_ok(&["public-key"])?.trim().to_string())
    }

    /// Publishes a bundle file through the admin API; returns the JSON answer.
    pub fn publish_rules(&self, file: impl AsRef<Path>) -> Result<Value> {
        let file = file
            .as_ref()
            .to_str()
            .context("path is not UTF-8")?
            .to_string();
        json(&self.cli_ok(&["publish-rules", &file])?)
    }

    pub fn import_members(&self, file: impl AsRef<Path>) -> Result<Value> {
        let file = file
            .as_ref()
            .to_str()
            .context("path is not UTF-8")?
            .to_string();
        json(&self.cli_ok(&["import-members", &file])?)
    }

    pub fn import_catalog(&self, file: impl AsRef<Path>) -> Result<Value> {
        let file = file
            .as_ref()
            .to_str()
            .context("path is not UTF-8")?
            .to_string();
        json(&self.cli_ok(&["import-catalog", &file])?)
    }

    /// GET an admin path (`/v1/admin/...`) and parse the JSON.
    pub fn admin_get(&self, path: &str) -> Result<Value> {
        json(&self.cli_ok(&["admin-get", path])?)
    }

    /// `{"balance", "available", "pending"}` of a member in a program.
    pub fn balance(&self, member: &str, program: &str) -> Result<Value> {
        let answer = self.admin_get(&format!("/v1/admin/members/{member}"))?;
        answer["programs"]
            .get(program)
            .cloned()
            .ok_or_else(|| anyhow!("no program {program} in {answer}"))
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(bin: &Path, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(bin);
    cmd.args(args);
    let out = crate::bounded::output(cmd, crate::bounded::CLI_TIMEOUT)
        .with_context(|| format!("running pos-central {}", args.join(" ")))?;
    Ok(out)
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text.trim()).with_context(|| format!("not JSON: {text}"))
}

/// How long [`post_json`] waits for central's answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// `POST path` with a JSON body and a bearer token to a plain-HTTP
/// central (or balancer) at `addr`, as a web shop posts its orders; the
/// status and the answer parsed as JSON (`null` for an empty body).
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, Value)> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<hyper::body::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(hyper::body::Bytes::from(body.to_string())))
        .context("building the request")?;
    let work = async {
        let answer = client.request(request).await.context("sending")?;
        let status = answer.status().as_u16();
        let bytes = answer
            .into_body()
            .collect()
            .await
            .context("reading the answer")?
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!("answer is not JSON: {}", String::from_utf8_lossy(&bytes))
            })?
        };
        Ok((status, value))
    };
    tokio::time::timeout(HTTP_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("POST {path}: no answer within {HTTP_TIMEOUT:?}"))?
}
