//! Scanners through the REAL agent: pseudo-terminal pairs stand in for
//! serial scanners, `pos-agent run` opens the slave end through a symlink
//! (`[[devices]] path`, as `/dev/serial/by-id/...` would be), the test writes
//! on the master end as the scanner would, and checks what the POS sees on
//! `GET /v1/events` (SSE), `GET /v1/session` and `GET /v1/health`.
//!
//! Timeouts only stop a broken test from hanging; nothing asserts on timing.
//! The scan-to-event latency is measured by `cargo bench -p pos-agent
//! --bench scan_to_event`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use pos_testkit::agent_proc::{AgentDir, request_raw};
use pos_testkit::check_digit::luhn_complete;
use pos_testkit::pty::{Pty, point_link};
use serde_json::{Value, json};

/// Upper bound for anything that must happen (an event, a state change).
const EVENT_WAIT: Duration = Duration::from_secs(20);
/// The device's stall timeout: short so the stalled-frame case is quick.
const STALL_TIMEOUT_MS: u64 = 200;

const SHOE_EAN13: &str = "4006381333931";
const MEMBER_CARD: &str = "9990000010013";

// --- pseudo-terminals ---------------------------------------------------------

// (Pty and point_link: pos_testkit::pty.)

// --- a register with one scanner ---------------------------------------------

struct Register {
    dir: AgentDir,
    /// `[[devices]] path`: a symlink to the current pty's slave.
    link: PathBuf,
    /// Holds the link (named before the config is written).
    _link_dir: tempfile::TempDir,
}

/// A standalone register with device `front` (CR suffix, role auto) at a
/// symlink, `999` member cards, an in-store price layout (`21`, 5-digit
/// item, 5-digit price in cents), and the example rules, members and
/// catalog imported. `extra` is appended to the config.
fn register(pty: &Pty, extra: &str) -> Result<Register> {
    register_with_suffix(pty, "\\r", extra)
}

/// As [`register`], with the device's `suffix` as written in TOML.
fn register_with_suffix(pty: &Pty, suffix: &str, extra: &str) -> Result<Register> {
    // The link lives in its own tempdir, named before the config is written.
    let link_dir = tempfile::tempdir()?;
    let link = link_dir.path().join("scanner");
    let text = format!(
        "[cards]\nloyalty_prefixes = [\"999\"]\ntrack_prefixes = [\"999\"]\n\n\
         [[variable_measure]]\nprefix = \"21\"\nitem_digits = 5\nvalue = \"price\"\n\
         value_digits = 5\ndecimals = 2\nvalue_check_digit = false\n\n\
         [[devices]]\nname = \"front\"\nkind = \"serial\"\npath = {link:?}\n\
         suffix = \"{suffix}\"\nstall_timeout_ms = {STALL_TIMEOUT_MS}\n\n{extra}\n",
        link = link.display().to_string(),
    );
    let dir = AgentDir::with_extra_toml(&text)?;
    point_link(&link, &pty.slave_path)?;
    let members = dir.write_file(
        "members.json",
        &json!({"members": [
            {"id": "M-1001", "cards": [MEMBER_CARD], "birthday": "1990-11-03", "blocked": false,
             "programs": {"main": {"tier": "gold", "available": 1500, "pending": 0}}}
        ]})
        .to_string(),
    )?;
    let catalog = dir.write_file(
        "catalog.json",
        &json!({"products": [
            {"sku": SHOE_EAN13, "name": "Trail shoe", "category": "shoes", "price": "59.99"},
            {"sku": "GROC-1", "name": "Oat milk", "category": "groceries", "price": "2.50"},
            {"sku": "00042", "name": "Deli cheese", "category": "deli", "price": "1.00"}
        ]})
        .to_string(),
    )?;
    dir.import(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rules.json"),
        Some(&members),
        Some(&catalog),
    )?;
    Ok(Register {
        dir,
        link,
        _link_dir: link_dir,
    })
}

/// Polls `GET /v1/health` until device `front` is in `state`.
async fn wait_device_state(socket: &Path, state: &str) -> Result<Value> {
    let deadline = Instant::now() + EVENT_WAIT;
    loop {
        let (status, body) = request_raw(socket, "GET", "/v1/health", None).await?;
        let health: Value = serde_json::from_slice(&body)?;
        if status == 200
            && health["devices"]
                .as_array()
                .and_then(|d| d.iter().find(|d| d["name"] == "front"))
                .is_some_and(|d| d["state"] == state)
        {
            return Ok(health);
        }
        if Instant::now() > deadline {
            bail!("device front not {state} within {EVENT_WAIT:?}: {health}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(socket: &Path, path: &str) -> Result<Value> {
    let (status, body) = request_raw(socket, "GET", path, None).await?;
    if status != 200 {
        bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

// --- the SSE stream -----------------------------------------------------------

/// An open `GET /v1/events` stream, parsed into (event name, JSON data).
struct Events {
    body: Incoming,
    pending: Vec<u8>,
    /// Everything received, for the "card number appears nowhere" checks.
    raw: String,
    _connection: tokio::task::JoinHandle<()>,
}

impl Events {
    async fn open(socket: &Path) -> Result<Events> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::builder()
            .uri("/v1/events")
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<Bytes>::new())?;
        let answer = sender.send_request(request).await?;
        if answer.status() != 200 {
            bail!("GET /v1/events: {}", answer.status());
        }
        Ok(Events {
            body: answer.into_body(),
            pending: Vec::new(),
            raw: String::new(),
            _connection: connection,
        })
    }

    /// The next event of any kind.
    async fn next_any(&mut self) -> Result<(String, Value)> {
        let deadline = tokio::time::Instant::now() + EVENT_WAIT;
        loop {
            if let Some(event) = self.parse_one()? {
                return Ok(event);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .map_err(|_| anyhow!("no event within {EVENT_WAIT:?}"))?
                .ok_or_else(|| anyhow!("the event stream ended"))??;
            if let Ok(data) = frame.into_data() {
                self.raw.push_str(&String::from_utf8_lossy(&data));
                self.pending.extend_from_slice(&data);
            }
        }
    }

    /// The next device event (`session` events, which follow scans that
    /// change the checkout, are skipped).
    async fn next(&mut self) -> Result<(String, Value)> {
        loop {
            let (name, data) = self.next_any().await?;
            if name != "session" {
                return Ok((name, data));
            }
        }
    }

    /// The next device event, which must be a `scan`; returns its data.
    async fn scan(&mut self) -> Result<Value> {
        let (name, data) = self.next().await?;
        if name != "scan" {
            bail!("expected a scan event, got {name}: {data}");
        }
        Ok(data)
    }

    /// Takes one complete event (ended by a blank line) off the buffer.
    fn parse_one(&mut self) -> Result<Option<(String, Value)>> {
        loop {
            let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") else {
                return Ok(None);
            };
            let block: Vec<u8> = self.pending.drain(..end + 2).collect();
            let text = String::from_utf8(block)?;
            let mut name = None;
            let mut data = String::new();
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            // A keep-alive comment has neither.
            if let Some(name) = name {
                return Ok(Some((name, serde_json::from_str(&data)?)));
            }
        }
    }
}

/// An EAN-13 with its check digit computed (test data from readable parts).
fn ean13(first12: &str) -> String {
    pos_testkit::check_digit::gs1_complete(first12)
}

// --- the tests ------------------------------------------------------------------

#[tokio::test]
async fn scans_fill_the_session_member_products_and_unknown_codes() -> Result<()> {
    let mut pty = Pty::new()?;
    let reg = register(&pty, "")?;
    let agent = reg.dir.start().await?;
    let socket = reg.dir.socket.clone();
    let health = wait_device_state(&socket, "up").await?;
    assert_eq!(health["status"], "ok", "{health}");
    let mut events = Events::open(&socket).await?;

    // A member card the cache knows: attached by member id.
    pty.write(format!("{MEMBER_CARD}\r").as_bytes()).await?;
    let scan = events.scan().await?;
    assert_eq!(scan["device"], "front");
    assert_eq!(scan["role"], "card");
    assert_eq!(
        scan["outcome"],
        json!({"kind": "member_attached", "member": {"id": "M-1001"}})
    );

    // A product by its EAN-13 (the catalog keys it so, the GTIN-14 is tried first).
    pty.write(format!("]E0{SHOE_EAN13}\r").as_bytes()).await?;
    let scan = events.scan().await?;
    assert_eq!(scan["role"], "item");
    assert_eq!(scan["decoded"]["gtin"], format!("0{SHOE_EAN13}"));
    assert_eq!(scan["outcome"]["kind"], "line_added", "{scan}");
    assert_eq!(scan["outcome"]["sku"], SHOE_EAN13);
    assert_eq!(scan["outcome"]["unit_price"], "59.99");

    // A Code 128 shelf code by its raw data.
    pty.write(b"]C0GROC-1\r").await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["sku"], "GROC-1", "{scan}");

    // An in-store price label: the line is priced from the label.
    let label = ean13("210004201234");
    pty.write(format!("{label}\r").as_bytes()).await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["kind"], "line_added", "{scan}");
    assert_eq!(scan["outcome"]["sku"], "00042");
    assert_eq!(scan["outcome"]["unit_price"], "12.34");

    // A valid EAN-13 nobody sells here: reported, not a crash.
    let unknown = ean13("400638133394");
    pty.write(format!("{unknown}\r").as_bytes()).await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["kind"], "unknown_product", "{scan}");
    assert_eq!(scan["outcome"]["code"], format!("0{unknown}"));
    assert_eq!(
        scan["outcome"]["tried"],
        json!([format!("0{unknown}"), unknown])
    );

    let session = get(&socket, "/v1/session").await?;
    let checkout = &session["checkout"];
    assert_eq!(checkout["member"], json!({"id": "M-1001"}));
    let skus: Vec<&str> = checkout["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .filter_map(|l| l["sku"].as_str())
        .collect();
    assert_eq!(skus, [SHOE_EAN13, "GROC-1", "00042"]);
    assert_eq!(checkout["unknown_products"], json!([format!("0{unknown}")]));
    assert_eq!(session["amount"], "74.83", "59.99 + 2.50 + 12.34");

    // A card the cache does not know: attached by its card token.
    pty.write(b"9990000099990\r").await?;
    let scan = events.scan().await?;
    assert_eq!(
        scan["outcome"]["member"],
        json!({"card": "9990000099990"}),
        "{scan}"
    );

    // The checkout commits as a sale like any other.
    let (status, body) =
        request_raw(&socket, "POST", "/v1/session/commit", Some(b"{}".to_vec())).await?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // Health and `pos-agent status` show the device and its counters.
    let health = get(&socket, "/v1/health").await?;
    let front = &health["devices"][0];
    assert_eq!(front["state"], "up");
    assert_eq!(front["scans"], 6, "{health}");
    assert_eq!(front["loop_alive"], true);
    let status = reg.dir.run_cli(&[
        "status".into(),
        "--config".into(),
        reg.dir.config.clone().into(),
    ])?;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("front") && l.contains("up") && l.contains("6 scans")),
        "{text}"
    );
    drop(agent);
    Ok(())
}

#[tokio::test]
async fn byte_by_byte_and_crlf_scans_are_single_clean_scans() -> Result<()> {
    let mut pty = Pty::new()?;
    let reg = register(&pty, "")?;
    let _agent = reg.dir.start().await?;
    let socket = reg.dir.socket.clone();
    wait_device_state(&socket, "up").await?;
    let mut events = Events::open(&socket).await?;

    for &byte in format!("]E0{SHOE_EAN13}\r").as_bytes() {
        pty.write(&[byte]).await?;
        tokio::task::yield_now().await;
    }
    let scan = events.scan().await?;
    assert_eq!(scan["decoded"]["gtin"], format!("0{SHOE_EAN13}"), "{scan}");
    assert_eq!(scan["outcome"]["kind"], "line_added");

    // A CR LF scanner on a CR configuration: the LF is swallowed, not an
    // empty scan or noise before the next one.
    pty.write(b"]C0GROC-1\r\n").await?;
    assert_eq!(events.scan().await?["outcome"]["sku"], "GROC-1");
    pty.write(b"96385074\r\n").await?;
    let scan = events.scan().await?;
    assert_eq!(scan["decoded"]["gtin"], "00000096385074", "{scan}");
    assert_eq!(scan["outcome"]["kind"], "unknown_product");

    let session = get(&socket, "/v1/session").await?;
    assert_eq!(
        session["checkout"]["lines"].as_array().map(Vec::len),
        Some(2)
    );
    let health = get(&socket, "/v1/health").await?;
    assert_eq!(health["devices"][0]["frames_discarded"], 0, "{health}");
    assert_eq!(health["devices"][0]["scans"], 3, "{health}");
    Ok(())
}

#[tokio::test]
async fn a_crlf_configured_device_reads_crlf_and_bare_cr_scans() -> Result<()> {
    let mut pty = Pty::new()?;
    let reg = register_with_suffix(&pty, "\\r\\n", "")?;
    let _agent = reg.dir.start().await?;
    let socket = reg.dir.socket.clone();
    wait_device_state(&socket, "up").await?;
    let mut events = Events::open(&socket).await?;

    pty.write(format!("{SHOE_EAN13}\r\n").as_bytes()).await?;
    assert_eq!(events.scan().await?["outcome"]["sku"], SHOE_EAN13);
    // A scanner set to CR on a CR LF configuration: the CR still ends it.
    pty.write(b"]C0GROC-1\r").await?;
    assert_eq!(events.scan().await?["outcome"]["sku"], "GROC-1");
    pty.write(b"96385074\r\n").await?;
    assert_eq!(events.scan().await?["decoded"]["gtin"], "00000096385074");
    let health = get(&socket, "/v1/health").await?;
    assert_eq!(health["devices"][0]["frames_discarded"], 0, "{health}");
    assert_eq!(health["devices"][0]["scans"], 3, "{health}");
    Ok(())
}

#[tokio::test]
async fn noise_overlong_and_stalled_frames_are_reported_and_the_stream_resyncs() -> Result<()> {
    let mut pty = Pty::new()?;
    let reg = register(&pty, "")?;
    let _agent = reg.dir.start().await?;
    let socket = reg.dir.socket.clone();
    wait_device_state(&socket, "up").await?;
    let mut events = Events::open(&socket).await?;

    // Line noise: shown as a scan that sells nothing.
    pty.write(b"\x00\xff@@\r").await?;
    let scan = events.scan().await?;
    assert_eq!(scan["decoded"]["symbology"], "unknown", "{scan}");
    assert_eq!(scan["outcome"]["kind"], "unknown_product", "{scan}");

    // A frame past the 4 KiB limit: discarded and reported.
    let mut overlong = vec![b'7'; 5000];
    overlong.push(b'\r');
    pty.write(&overlong).await?;
    let (name, data) = events.next().await?;
    assert_eq!(name, "frame_discarded", "{data}");
    assert_eq!(
        data["reason"],
        json!({"kind": "too_long", "limit_bytes": 4096})
    );

    // A frame that stops mid-way: discarded after the stall timeout.
    pty.write(b"40063813").await?;
    let (name, data) = events.next().await?;
    assert_eq!(name, "frame_discarded", "{data}");
    assert_eq!(data["reason"]["kind"], "stalled");

    // The rest of the stalled frame is skipped up to its terminator; then
    // the stream is in step again and the next scan is clean.
    pty.write(format!("33931\r{SHOE_EAN13}\r").as_bytes())
        .await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["sku"], SHOE_EAN13, "{scan}");

    let session = get(&socket, "/v1/session").await?;
    let lines = session["checkout"]["lines"].as_array().context("lines")?;
    assert_eq!(lines.len(), 1, "noise added nothing: {session}");
    let health = get(&socket, "/v1/health").await?;
    assert_eq!(health["devices"][0]["frames_discarded"], 2, "{health}");
    Ok(())
}

#[tokio::test]
async fn unplug_reports_down_and_replug_under_a_new_node_works_again() -> Result<()> {
    let mut first = Pty::new()?;
    let reg = register(&first, "")?;
    let _agent = reg.dir.start().await?;
    let socket = reg.dir.socket.clone();
    wait_device_state(&socket, "up").await?;
    let mut events = Events::open(&socket).await?;

    first.write(format!("{SHOE_EAN13}\r").as_bytes()).await?;
    assert_eq!(events.scan().await?["outcome"]["kind"], "line_added");

    // Unplug: the master end goes away, and the slave node with it.
    drop(first);
    let (name, data) = events.next().await?;
    assert_eq!(name, "device_down", "{data}");
    assert_eq!(data["device"], "front");
    assert!(
        data["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{data}"
    );
    wait_device_state(&socket, "down").await?;

    // Replug: a new pty, the configured link switched to it.
    let mut second = Pty::new()?;
    point_link(&reg.link, &second.slave_path)?;
    let (name, data) = events.next().await?;
    assert_eq!(name, "device_up", "{data}");
    wait_device_state(&socket, "up").await?;
    second.write(b"]C0GROC-1\r").await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["sku"], "GROC-1", "{scan}");

    // The checkout survived the unplug.
    let session = get(&socket, "/v1/session").await?;
    assert_eq!(
        session["checkout"]["lines"].as_array().map(Vec::len),
        Some(2)
    );
    Ok(())
}

// --- payment cards ----------------------------------------------------------

/// A synthetic Luhn-valid number in the Visa range, made at run time:
/// never a real card.
fn synthetic_pan() -> Result<String> {
    Ok(luhn_complete("411100009876543"))
}

/// Fails naming `place` when any of `needles` occurs in `haystack`.
fn assert_absent(place: &str, haystack: &[u8], needles: &[&str]) {
    for needle in needles {
        let found = haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        assert!(!found, "{needle:?} found in {place}");
    }
}

#[tokio::test]
async fn a_payment_card_swipe_leaves_no_trace_anywhere() -> Result<()> {
    let mut pty = Pty::new()?;
    let reg = register(&pty, "[log]\nlevel = \"debug\"\nformat = \"text\"\n")?;
    let log = reg.dir.path().join("agent.log");
    let mut agent = reg.dir.start_logging_to(&log).await?;
    let socket = reg.dir.socket.clone();
    wait_device_state(&socket, "up").await?;
    let mut events = Events::open(&socket).await?;

    let pan = synthetic_pan()?;
    // Track 1 format B and track 2, then the bare number as a barcode.
    let swipe = format!("%B{pan}^TEST/CARD^2912101000000000?;{pan}=29121010000000?\r");
    pty.write(swipe.as_bytes()).await?;
    pty.write(format!("{pan}\r").as_bytes()).await?;
    for _ in 0..2 {
        let (name, data) = events.next().await?;
        assert_eq!(name, "payment_card_rejected", "{data}");
        assert_eq!(
            data,
            json!({"type": "payment_card_rejected", "device": "front"})
        );
    }
    // A member card swipe after it still works, and a sale goes through.
    pty.write(format!(";{MEMBER_CARD}=2912?\r").as_bytes())
        .await?;
    let scan = events.scan().await?;
    assert_eq!(scan["outcome"]["member"], json!({"id": "M-1001"}), "{scan}");
    pty.write(format!("{SHOE_EAN13}\r").as_bytes()).await?;
    assert_eq!(events.scan().await?["outcome"]["kind"], "line_added");
    let (status, body) =
        request_raw(&socket, "POST", "/v1/session/commit", Some(b"{}".to_vec())).await?;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // The number, and a long run of its digits, appear nowhere.
    let needles = [pan.as_str(), &pan[2..14]];
    let mut answers = Vec::new();
    for path in [
        "/v1/session",
        "/v1/health",
        "/v1/ledger?from_seq=1&limit=1000",
        "/v1/members/M-1001",
        "/metrics",
    ] {
        let (_, body) = request_raw(&socket, "GET", path, None).await?;
        answers.extend_from_slice(&body);
    }
    answers.extend_from_slice(&body);
    assert_absent("API answers", &answers, &needles);
    let health = get(&socket, "/v1/health").await?;
    assert_eq!(
        health["devices"][0]["payment_cards_rejected"], 2,
        "{health}"
    );
    // The database and its WAL while the agent runs, and after it stopped.
    let wal = PathBuf::from(format!("{}-wal", reg.dir.db.display()));
    for file in [&reg.dir.db, &wal] {
        if file.exists() {
            assert_absent(&file.display().to_string(), &std::fs::read(file)?, &needles);
        }
    }
    let status = agent.terminate()?;
    assert!(status.success(), "{status}");
    assert_absent("the SSE stream", events.raw.as_bytes(), &needles);
    assert!(events.raw.contains("payment_card_rejected"));
    let logged = std::fs::read(&log)?;
    let text = String::from_utf8_lossy(&logged);
    assert!(
        text.contains("Payment card rejected") && text.contains("DEBUG"),
        "the log says a card was rejected, at debug level: {text}"
    );
    assert_absent("the agent's log", &logged, &needles);
    for file in [&reg.dir.db, &wal] {
        if file.exists() {
            assert_absent(&file.display().to_string(), &std::fs::read(file)?, &needles);
        }
    }
    Ok(())
}
