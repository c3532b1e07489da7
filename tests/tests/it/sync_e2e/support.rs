//! Shared set-up of the end-to-end sync tests: a real `pos-central` (TLS
//! with its development CA unless a test needs plain HTTP for the proxy)
//! and real `pos-agent` registers configured against it, with a 1 s sync
//! interval; polling helpers with deadlines (no timing assertions).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use pos_testkit::agent_proc::{AgentDir, AgentProc};
use pos_testkit::balancer::Balancer;
use pos_testkit::central_proc::Central;
use serde_json::{Value, json};

/// How long a test waits for sync to reach a state before failing. Long
/// enough for a debug build on a loaded 2-core machine; the happy path
/// takes a second or two.
pub const SYNC_DEADLINE_MS: u64 = 60_000;
/// Poll period while waiting.
pub const POLL_MS: u64 = 100;

/// Bundle v1: one program, 1 point per euro, redeemable.
pub const RULES_V1: &str = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "1", "offline_allowance": 100000}}]}"#;

/// Bundle v2: the same program at 2 points per euro.
pub const RULES_V2: &str = r#"{"version": 2, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "2", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "1", "offline_allowance": 100000}}]}"#;

/// Member M-1 with 1,000 points.
pub const MEMBERS: &str = r#"{"members": [{"id": "M-1", "cards": ["9990000010013"],
  "programs": {"main": {"available": 1000, "pending": 0}}}]}"#;

/// Set to `pair` to run every end-to-end sync test against two `pos-central`
/// instances on one PostgreSQL database behind a round-robin balancer
/// (issue 11: "the sync end-to-end tests pass with two central instances
/// behind a round-robin proxy"). `.ci/run` runs the group so a second time.
pub const CENTRAL_ENV: &str = "POS_E2E_CENTRAL";

/// A central with RULES_V1 published and MEMBERS imported, plus a scratch
/// directory for its input files. With `POS_E2E_CENTRAL=pair` "central" is
/// two instances behind a balancer: [`World::url`] and [`World::addr`] are
/// the balancer's, [`World::stop_central`] stops both, and `central` is the
/// first instance (its directory drives the admin command line; the data is
/// the shared database's).
pub struct World {
    pub central: Central,
    pub files: tempfile::TempDir,
    pair: Option<Pair>,
}

/// The second instance and the balancer in front of both.
struct Pair {
    other: Central,
    balancer: Balancer,
}

impl Drop for Pair {
    /// Says how the requests were spread, so a run shows that both
    /// instances served (the balancer alternates per request).
    fn drop(&mut self) {
        eprintln!(
            "{CENTRAL_ENV}=pair: requests per instance {:?}",
            self.balancer.forwarded()
        );
    }
}

impl World {
    /// TLS central (the development CA); plain HTTP behind the balancer
    /// in pair mode (it balances requests, so it cannot pass TLS through).
    pub fn new() -> Result<World> {
        World::start(true)
    }

    /// Plain HTTP central on loopback (for the lose-answer proxy, which
    /// cannot see requests inside TLS).
    pub fn insecure() -> Result<World> {
        World::start(false)
    }

    fn start(tls: bool) -> Result<World> {
        if !World::pair_mode()? {
            let central = if tls {
                Central::start()?
            } else {
                Central::start_insecure()?
            };
            return World::with(central, None);
        }
        let url = pos_testkit::postgres::fresh_database("sync_e2e_pair").ok_or_else(|| {
            anyhow!("{CENTRAL_ENV}=pair needs PostgreSQL (apt-get install postgresql)")
        })?;
        let first = Central::start_on_database_with(&url, false)?;
        let other = first.another_instance()?;
        let balancer = Balancer::start_in_runtime(vec![first.addr, other.addr])
            .context("starting the balancer")?;
        World::with(first, Some(Pair { other, balancer }))
    }

    /// Whether `POS_E2E_CENTRAL` asks for two instances (anything but
    /// unset, `one` or `pair` is an error, not a silent default).
    pub fn pair_mode() -> Result<bool> {
        match std::env::var(CENTRAL_ENV).as_deref() {
            Err(_) | Ok("one") => Ok(false),
            Ok("pair") => Ok(true),
            Ok(other) => bail!("{CENTRAL_ENV}={other:?}: expected `one` or `pair`"),
        }
    }

    /// RULES_V1 and MEMBERS on `central` (e.g. one on PostgreSQL).
    pub fn with_central(central: Central) -> Result<World> {
        World::with(central, None)
    }

    fn with(central: Central, pair: Option<Pair>) -> Result<World> {
        let files = tempfile::tempdir().context("tempdir")?;
        let world = World {
            central,
            files,
            pair,
        };
        world
            .central
            .publish_rules(world.file("rules-v1.json", RULES_V1)?)?;
        world
            .central
            .import_members(world.file("members.json", MEMBERS)?)?;
        Ok(world)
    }

    /// Whether central is two instances behind a balancer.
    pub fn paired(&self) -> bool {
        self.pair.is_some()
    }

    /// Where registers (or a fault proxy) reach central.
    pub fn addr(&self) -> SocketAddr {
        self.pair
            .as_ref()
            .map_or(self.central.addr, |p| p.balancer.addr())
    }

    /// The URL registers are configured with.
    pub fn url(&self) -> String {
        self.url_via(self.addr())
    }

    /// The URL of central reached through `addr` (a fault proxy in front
    /// of [`World::addr`]): `https` where central speaks TLS.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let scheme = if self.central.tls { "https" } else { "http" };
        format!("{scheme}://{addr}")
    }

    /// Stops central (every instance) with SIGKILL: an outage.
    pub fn stop_central(&mut self) {
        self.central.kill();
        if let Some(pair) = &mut self.pair {
            pair.other.kill();
        }
    }

    /// Starts central (every instance) again on the addresses it had, so
    /// registers and the balancer find it where it was.
    pub fn start_central(&mut self) -> Result<()> {
        let addr = self.central.addr.to_string();
        self.central.serve(&addr)?;
        if let Some(pair) = &mut self.pair {
            let addr = pair.other.addr.to_string();
            pair.other.serve(&addr)?;
        }
        Ok(())
    }

    /// A file of mode 0600 (token files must be: the agent refuses one
    /// that other users can read).
    pub fn file(&self, name: &str, text: &str) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.files.path().join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// A register registered at central, configured with `url` (central's
    /// own, or a proxy's), rules and members imported so it can sell before
    /// its first sync. Its token is in `token` inside its directory.
    pub fn register(&self, terminal_id: &str, url: &str) -> Result<AgentDir> {
        let token = self.central.add_terminal(terminal_id)?;
        self.register_with_token(terminal_id, url, &token)
    }

    pub fn register_with_token(
        &self,
        terminal_id: &str,
        url: &str,
        token: &str,
    ) -> Result<AgentDir> {
        self.register_with(terminal_id, url, token, RULES_V1, MEMBERS)
    }

    /// As [`World::register_with_token`], importing `rules` and `members`
    /// (JSON texts) into the register instead of the defaults. `rules` must
    /// be a bundle central published: a register with `[central]` imports
    /// only central's signed bundles, so it is exported from central
    /// (`pos-central export-rules`) and that file imported.
    pub fn register_with(
        &self,
        terminal_id: &str,
        url: &str,
        token: &str,
        rules: &str,
        members: &str,
    ) -> Result<AgentDir> {
        let central = self.central_toml(terminal_id, url, token)?;
        let mut dir = AgentDir::with_extra_toml(&central)?;
        // AgentDir names every register store-1-reg-1; give this one its own id.
        let text = std::fs::read_to_string(&dir.config).context("read agent.toml")?;
        let text = text.replacen(
            &format!("id = {:?}", dir.terminal_id),
            &format!("id = {terminal_id:?}"),
            1,
        );
        std::fs::write(&dir.config, text).context("write agent.toml")?;
        dir.terminal_id = terminal_id.to_string();
        let rules = self.signed_rules(&dir, rules)?;
        let members = dir.write_file("members.json", members)?;
        dir.import(&rules, Some(&members), None)?;
        Ok(dir)
    }

    /// The `[central]` table of a register's config: `url`, a token file
    /// holding `token`, central's CA and public key, 1 s sync interval.
    pub fn central_toml(&self, terminal_id: &str, url: &str, token: &str) -> Result<String> {
        let key = self.central.public_key()?;
        let token_path = self.file(&format!("token-{terminal_id}"), token)?;
        let ca = if self.central.tls {
            format!(
                "ca_file = {:?}\n",
                self.central.ca_path().display().to_string()
            )
        } else {
            String::new()
        };
        Ok(format!(
            "[central]\nurl = {url:?}\ntoken_file = {:?}\n{ca}rules_public_key = {key:?}\n\
             sync_interval_secs = 1\nmember_fresh_secs = 300\nrequest_timeout_secs = 5\n",
            token_path.display().to_string()
        ))
    }

    /// Central's signed rules file of the version `rules` names, written in
    /// `dir`; fails unless central published exactly `rules` as that version.
    pub fn signed_rules(&self, dir: &AgentDir, rules: &str) -> Result<PathBuf> {
        let bundle: Value = serde_json::from_str(rules).context("rules are not JSON")?;
        let version = bundle["version"]
            .as_u64()
            .ok_or_else(|| anyhow!("no version in {rules}"))?
            .to_string();
        let path = dir.path().join(format!("rules-v{version}.signed.json"));
        let path_text = path.to_str().context("path is not UTF-8")?;
        let out = self
            .central
            .cli(&["export-rules", &version, "--out", path_text])?;
        if !out.status.success() {
            bail!(
                "export-rules {version}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        if file["bundle"] != rules {
            bail!("central published another bundle as version {version} than {rules}");
        }
        Ok(path)
    }

    /// GET an admin path as JSON.
    pub fn admin(&self, path: &str) -> Result<Value> {
        self.central.admin_get(path)
    }

    /// Central's stored entries of a terminal, in seq order.
    pub fn central_ledger(&self, terminal: &str) -> Result<Vec<Value>> {
        let answer = self.admin(&format!("/v1/admin/ledger?terminal={terminal}&limit=10000"))?;
        let mut entries = answer["entries"]
            .as_array()
            .ok_or_else(|| anyhow!("no entries in {answer}"))?
            .clone();
        entries.sort_by_key(|e| e["seq"].as_u64());
        Ok(entries)
    }

    /// Central's conflicts of one kind.
    pub fn conflicts(&self, kind: &str) -> Result<Vec<Value>> {
        let answer = self.admin("/v1/admin/conflicts")?;
        Ok(answer["conflicts"]
            .as_array()
            .ok_or_else(|| anyhow!("no conflicts in {answer}"))?
            .iter()
            .filter(|c| c["kind"] == kind)
            .cloned()
            .collect())
    }

    /// `balance` of a member in program `main` at central.
    pub fn balance(&self, member: &str) -> Result<i64> {
        let b = self.central.balance(member, "main")?;
        b["balance"]
            .as_i64()
            .ok_or_else(|| anyhow!("no balance in {b}"))
    }
}

/// The current UTC time as RFC 3339 (`...Z`), so entries carry no clock
/// skew. Hand-written (civil-from-days) because the tests crate has no
/// date library and needs nothing more.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A sale for member M-1 of `euros` (one line), optionally redeeming.
pub fn sale(id: &str, euros: u32, redeem: Option<i64>) -> Value {
    let mut body = json!({
        "sale_id": id,
        "time": now_rfc3339(),
        "member": {"id": "M-1"},
        "lines": [{"sku": "4006381333931", "category": "shoes", "qty": "1",
                   "unit_price": format!("{euros}.00")}]
    });
    if let Some(points) = redeem {
        body["redeem"] = json!([{"program": "main", "points": points}]);
    }
    body
}

/// Waits until the register shows M-1's `main` points as central's
/// `available`, with nothing of its own unsynced on top.
pub async fn shows_centrals_balance(agent: &AgentProc, available: &Value) -> Result<()> {
    eventually("the register shows central's balance", || async {
        let (status, m) = agent.get("/v1/members/M-1").await?;
        ensure!(status == 200, "{m}");
        let shown = &m["programs"]["main"];
        Ok((shown["available"] == *available && shown["unsynced"] == 0).then_some(()))
    })
    .await
}

/// Commits a sale; fails unless the agent answers 200.
pub async fn sell(agent: &AgentProc, body: &Value) -> Result<Value> {
    let (status, answer) = agent.post("/v1/sales", body).await?;
    if status != 200 {
        bail!("sale {} answered {status}: {answer}", body["sale_id"]);
    }
    Ok(answer)
}

/// The register's whole ledger (`GET /v1/ledger`, every page).
pub async fn agent_ledger(agent: &AgentProc) -> Result<Vec<Value>> {
    let mut entries = Vec::new();
    let mut from = 1u64;
    loop {
        let (status, page) = agent
            .get(&format!("/v1/ledger?from_seq={from}&limit=1000"))
            .await?;
        if status != 200 {
            bail!("ledger answered {status}: {page}");
        }
        entries.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next_from_seq"].as_u64() {
            Some(next) => from = next,
            None => return Ok(entries),
        }
    }
}

/// `GET /v1/health`.
pub async fn health(agent: &AgentProc) -> Result<Value> {
    let (status, h) = agent.get("/v1/health").await?;
    if status != 200 {
        bail!("health answered {status}: {h}");
    }
    Ok(h)
}

/// `POST /v1/sync/now`, expecting 202.
pub async fn sync_now(agent: &AgentProc) -> Result<()> {
    let (status, answer) = agent.request("POST", "/v1/sync/now", None).await?;
    if status != 202 {
        bail!("sync/now answered {status}: {answer}");
    }
    Ok(())
}

/// Polls `probe` until it gives `Some`, or fails after `SYNC_DEADLINE_MS`
/// with the last thing it saw.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + Duration::from_millis(SYNC_DEADLINE_MS);
    let mut last = String::from("nothing yet");
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("{what}: not reached within {SYNC_DEADLINE_MS} ms (last error: {last})");
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Waits until the register's outbox is empty and its last cycle succeeded.
pub async fn synced(agent: &AgentProc) -> Result<Value> {
    eventually("outbox empty and sync idle", || async {
        let h = health(agent).await?;
        let idle = h["sync"]["worker"]["phase"] == "idle";
        Ok((idle && h["outbox_depth"] == 0).then_some(h))
    })
    .await
}

/// Register and central agree entry for entry: same seqs, ids, hashes,
/// kinds, members and points, in the same order.
pub fn assert_same_ledger(register: &[Value], central: &[Value]) {
    let key = |e: &Value| {
        (
            e["seq"].as_u64(),
            e["entry_id"].as_str().map(str::to_string),
            e["hash"].as_str().map(str::to_string),
            e["kind"].as_str().map(str::to_string),
            e["member"].as_str().map(str::to_string),
            e["points"].as_i64(),
        )
    };
    let ours: Vec<_> = register.iter().map(key).collect();
    let theirs: Vec<_> = central.iter().map(key).collect();
    assert_eq!(ours.len(), theirs.len(), "entry counts differ");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "entry {i} differs");
    }
}
