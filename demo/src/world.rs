//! The pieces of the demo and their lifecycle: an embedded central, the
//! cuttable [`Link`] in front of it, and registers (in-process agents),
//! each with a scanner on a pseudo-terminal.
//!
//! Every piece is optional so that [`World::shutdown`] can stop whatever
//! was started when the set-up is interrupted half-way.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pos_central::embedded::RunningCentral;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

use crate::DemoError;
use crate::link::Link;
use pos_agent::daemon::{Daemon, DaemonOptions};

/// Poll period while waiting for a state (sync done, a scan landed).
pub const POLL_MS: u64 = 50;
/// Longest any wait of the script lasts before the demo gives up: far more
/// than a debug build on a loaded 2-core machine needs (a sync cycle takes
/// well under a second), short enough that a broken demo fails visibly.
pub const WAIT_MS_MAX: u64 = 30_000;
/// The registers' sync interval: short, so the story does not wait.
pub const SYNC_INTERVAL_SECS: u64 = 1;
/// How long downloaded member data counts as fresh. Short, so that during
/// the outage the registers soon treat it as stale and the points spec's
/// offline allowance (§6) bounds redemptions, which the story shows.
pub const MEMBER_FRESH_SECS: u64 = 2;
/// The registers' sync request timeout.
pub const REQUEST_TIMEOUT_SECS: u64 = 5;
/// The store both registers belong to.
pub const STORE_ID: &str = "store-1";
/// The prefix of member-card barcodes (as in examples/agent.toml).
pub const LOYALTY_PREFIX: &str = "999";

pub struct World {
    pub dir: PathBuf,
    pub central: Option<RunningCentral>,
    pub link: Option<Link>,
    pub registers: Vec<Register>,
}

/// One register: an agent, its API socket, its database and, for the
/// the scanner end of its pseudo-terminal.
pub struct Register {
    pub id: String,
    /// Short name for the story (`reg-1`).
    pub name: String,
    pub daemon: Daemon,
    pub socket: PathBuf,
    pub db: PathBuf,
    /// Locked while a checkout is scanned, so the script can scan through
    /// a shared `&Register` and the scanner stays owned here (unplugged
    /// only after the agent stopped, even when the demo is interrupted).
    pub scanner: Option<tokio::sync::Mutex<Scanner>>,
}

/// A simulated serial scanner: the master end of a pty whose slave end
/// the agent opened as `[[devices]] path`. Writing `code\r` is a scan.
pub struct Scanner {
    pub device: String,
    master: SerialStream,
}

impl Scanner {
    /// A new pty pair; returns the scanner and the path the agent opens.
    pub fn new(device: &str) -> Result<(Scanner, PathBuf), DemoError> {
        let (master, slave) = SerialStream::pair()
            .map_err(|e| DemoError::Script(format!("cannot open a pseudo-terminal: {e}")))?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| DemoError::Script("the pseudo-terminal has no name".into()))?;
        // The agent opens the slave by path; the pty lives while the master does.
        drop(slave);
        Ok((
            Scanner {
                device: device.to_string(),
                master,
            },
            path,
        ))
    }

    /// Sends one scan (the code and the CR suffix the device expects).
    pub async fn scan(&mut self, code: &str) -> Result<(), DemoError> {
        let frame = format!("{code}\r");
        self.master
            .write_all(frame.as_bytes())
            .await
            .map_err(|e| DemoError::io("writing a scan to the pseudo-terminal", e))?;
        self.master
            .flush()
            .await
            .map_err(|e| DemoError::io("flushing the pseudo-terminal", e))
    }
}

impl World {
    /// Creates the demo directory (refusing one with content).
    pub fn new(options: &crate::DemoOptions) -> Result<World, DemoError> {
        let dir = options.dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| DemoError::io(format!("creating {}", dir.display()), e))?;
        let mut entries = std::fs::read_dir(&dir)
            .map_err(|e| DemoError::io(format!("reading {}", dir.display()), e))?;
        if entries.next().is_some() {
            return Err(DemoError::DirNotEmpty(dir));
        }
        // Absolute: the registers' configs name paths under it, and a
        // config resolves relative paths against its own directory.
        let dir = dir
            .canonicalize()
            .map_err(|e| DemoError::io(format!("resolving {}", dir.display()), e))?;
        Ok(World {
            dir,
            central: None,
            link: None,
            registers: Vec::new(),
        })
    }

    pub fn central(&self) -> Result<&RunningCentral, DemoError> {
        self.central
            .as_ref()
            .ok_or_else(|| DemoError::Script("central is not running".into()))
    }

    pub fn link(&self) -> Result<&Link, DemoError> {
        self.link
            .as_ref()
            .ok_or_else(|| DemoError::Script("the link is not up".into()))
    }

    /// Starts a register with its own directory under the demo dir,
    /// registered at central and syncing through the link.
    pub async fn start_register(
        &mut self,
        name: &str,
        with_scanner: bool,
    ) -> Result<&Register, DemoError> {
        let id = format!("{STORE_ID}-{name}");
        let central = self.central()?;
        let link = self.link()?;
        let home = self.dir.join(name);
        std::fs::create_dir_all(&home)
            .map_err(|e| DemoError::io(format!("creating {}", home.display()), e))?;
        let token = central.add_terminal(&id)?;
        let token_path = home.join("token");
        write_private(&token_path, secrecy::ExposeSecret::expose_secret(&token))?;
        let (scanner, device_toml) = if with_scanner {
            let (scanner, path) = Scanner::new("front-scanner")?;
            let toml = format!(
                "[[devices]]\nname = {:?}\nkind = \"serial\"\npath = {:?}\nsuffix = \"\\r\"\nrole = \"auto\"\n",
                scanner.device,
                path.display().to_string()
            );
            (Some(tokio::sync::Mutex::new(scanner)), toml)
        } else {
            (None, String::new())
        };
        let db = home.join("agent.db");
        let socket = home.join("api.sock");
        let text = format!(
            "[terminal]\nid = {id:?}\nstore_id = {STORE_ID:?}\ntimezone = \"Europe/Berlin\"\n\n\
             [storage]\npath = {db:?}\n\n\
             [central]\nurl = \"https://{link}\"\ntoken_file = {token:?}\nca_file = {ca:?}\n\
             rules_public_key = {key:?}\nsync_interval_secs = {SYNC_INTERVAL_SECS}\n\
             member_fresh_secs = {MEMBER_FRESH_SECS}\nrequest_timeout_secs = {REQUEST_TIMEOUT_SECS}\n\n\
             [api]\nsocket = {socket:?}\n\n\
             [cards]\nloyalty_prefixes = [{LOYALTY_PREFIX:?}]\n\n{device_toml}",
            db = db.display().to_string(),
            link = link.addr(),
            token = token_path.display().to_string(),
            ca = central.ca_path().display().to_string(),
            key = central.public_key_base64(),
            socket = socket.display().to_string(),
        );
        let config_path = home.join("agent.toml");
        std::fs::write(&config_path, &text)
            .map_err(|e| DemoError::io(format!("writing {}", config_path.display()), e))?;
        let config = pos_config::Config::parse(&text, &config_path, &pos_config::Env::default())
            .map_err(|e| DemoError::Config {
                terminal: id.clone(),
                message: e.to_string(),
            })?;
        let daemon = Daemon::start(DaemonOptions::from_config(&config))
            .await
            .map_err(|source| DemoError::Daemon {
                terminal: id.clone(),
                source,
            })?;
        self.registers.push(Register {
            id,
            name: name.to_string(),
            socket: daemon.socket_path().to_path_buf(),
            daemon,
            db,
            scanner,
        });
        self.registers
            .last()
            .ok_or_else(|| DemoError::Script("register vanished".into()))
    }

    /// Stops the registers, then the link, then central; returns what did
    /// not stop cleanly.
    pub async fn shutdown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for register in self.registers.drain(..) {
            let Register {
                id,
                daemon,
                scanner,
                ..
            } = register;
            if let Err(e) = daemon.shutdown().await {
                problems.push(format!("{id}: {e}"));
            }
            // After the agent: unplugged earlier, the scanner would be
            // reported down, a warning about nothing.
            drop(scanner);
        }
        if let Some(link) = self.link.take() {
            link.stop().await;
        }
        if let Some(central) = self.central.take() {
            central.stop().await;
        }
        problems
    }
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DemoError::io(format!("creating {}", path.display()), e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| DemoError::io(format!("writing {}", path.display()), e))
}

impl Register {
    /// One API request as the POS makes it; the status and the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), DemoError> {
        let api_error = |detail: String| DemoError::Api {
            terminal: self.id.clone(),
            method: method.to_string(),
            path: path.to_string(),
            detail,
        };
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| api_error(format!("encoding the body: {e}")))?;
        let (status, answer) = pos_agent::api::client::request(&self.socket, method, path, bytes)
            .await
            .map_err(|e| api_error(e.to_string()))?;
        let json = if answer.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&answer)
                .map_err(|e| api_error(format!("answer is not JSON ({e})")))?
        };
        Ok((status, json))
    }

    /// A request that must succeed (2xx), its answer decoded as `T`.
    pub async fn ok<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, DemoError> {
        let (status, answer) = self.call(method, path, body).await?;
        let api_error = |detail: String| DemoError::Api {
            terminal: self.id.clone(),
            method: method.to_string(),
            path: path.to_string(),
            detail,
        };
        if !(200..300).contains(&status) {
            return Err(api_error(format!("answered {status}: {answer}")));
        }
        serde_json::from_value(answer).map_err(|e| api_error(format!("unexpected answer: {e}")))
    }
}

/// Polls `probe` every [`POLL_MS`] until it gives `Some`, or fails after
/// [`WAIT_MS_MAX`] naming `what` and the last thing seen.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> Result<T, DemoError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, String>, DemoError>>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await? {
            Ok(value) => return Ok(value),
            Err(last) => last,
        };
        if started.elapsed() > Duration::from_millis(WAIT_MS_MAX) {
            return Err(DemoError::Timeout {
                what: what.to_string(),
                waited_ms: WAIT_MS_MAX,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}
