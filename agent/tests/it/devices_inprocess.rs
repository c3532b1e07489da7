//! Scanners in an in-process agent (`Daemon::start` with device settings),
//! for the scan rules the end-to-end tests (`tests/tests/it/scanners.rs`) do
//! not cover: weighed and GS1-priced labels, bad scans, the roles of a card
//! reader and an item scanner, device settings refused at start-up, and a
//! clean shutdown with devices running.
//!
//! Timeouts only stop a broken test from hanging; nothing asserts on timing.

use std::str::FromStr;
use std::time::Duration;

use crate::common::Register;
use pos_agent::daemon::{Daemon, DaemonError, DaemonOptions};
use pos_agent::devices::DevicesOptions;
use pos_agent::model::CatalogSnapshot;
use pos_agent::store::{Store, StoreOptions};
use pos_codes::{DecodeSettings, Measure, VariableMeasureLayout};
use pos_drivers::{DeviceSettings, Role};
use pos_testkit::pty::Pty;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const EVENT_WAIT: Duration = Duration::from_secs(20);

fn tz() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/Berlin").expect("tz")
}

/// The register's own config, with `devices` instead of its (absent)
/// `[[devices]]`.
fn options(reg: &Register, devices: DevicesOptions) -> DaemonOptions {
    let config = pos_config::Config::load(&reg.config).expect("the test config loads");
    let mut options = DaemonOptions::from_config(&config);
    options.devices = devices;
    options
}

/// The common test data plus a weighed item, a GS1-labelled item (keyed by
/// its EAN-13) and a price-label item.
async fn provision(reg: &Register) {
    reg.provision(0).await;
    let store = {
        let options = StoreOptions::new(&reg.db, "store-1-reg-1", tz());
        tokio::task::spawn_blocking(move || Store::open(options))
            .await
            .expect("open task")
            .expect("open store")
    };
    let catalog: CatalogSnapshot = serde_json::from_value(json!({"products": [
        {"sku": "00077", "name": "Apples, loose", "category": "fruit", "price": "2.40"},
        {"sku": "9501101530003", "name": "Cheese, packed", "category": "deli", "price": "9.99"}
    ]}))
    .expect("catalog");
    store
        .import(None, "test", None, Some(catalog))
        .await
        .expect("import catalog");
    store.close().await.expect("close store");
}

fn new_pty() -> Pty {
    Pty::new().unwrap_or_else(|e| panic!("{e:#}"))
}

fn device(name: &str, pty: &Pty, role: Role) -> DeviceSettings {
    let mut settings = DeviceSettings::serial(name, &pty.slave_path);
    settings.role = role;
    settings
}

/// `28` in-store codes: 5-digit item, 5-digit weight in grams (kg, 3 decimals).
fn decode_settings() -> DecodeSettings {
    DecodeSettings {
        loyalty_prefixes: vec!["999".into()],
        track_member_prefixes: vec!["999".into()],
        variable_measure: vec![VariableMeasureLayout {
            prefix: "28".into(),
            item_digits: 5,
            value: Measure::Weight,
            value_digits: 5,
            decimals: 3,
            value_check_digit: false,
        }],
    }
}

/// Device events (not `session` events) from an SSE stream, parsed.
struct Events {
    chunks: tokio::sync::mpsc::Receiver<String>,
    pending: String,
}

impl Events {
    async fn open(socket: &std::path::Path) -> Events {
        Events {
            chunks: crate::common::open_events(socket).await,
            pending: String::new(),
        }
    }

    async fn next(&mut self) -> (String, Value) {
        loop {
            while let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if let Some(name) = name
                    && name != "session"
                {
                    return (name, serde_json::from_str(&data).expect("JSON data"));
                }
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.chunks.recv())
                .await
                .expect("an event in time")
                .expect("the stream is open");
            self.pending.push_str(&chunk);
        }
    }

    /// The next device event but `device_up` (which comes before or after
    /// the stream opened, depending on timing), which must be a scan.
    async fn scan(&mut self) -> Value {
        loop {
            let (name, data) = self.next().await;
            if name != "device_up" {
                assert_eq!(name, "scan", "{data}");
                return data;
            }
        }
    }
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test decimal")
}

/// Appends the GS1 check digit.
fn ean13(first12: &str) -> String {
    pos_testkit::check_digit::gs1_complete(first12)
}

/// Starts the daemon, opens the event stream and waits until health shows
/// every device up.
async fn start(reg: &Register, devices: DevicesOptions) -> (Daemon, Events) {
    let names: Vec<String> = devices.devices.iter().map(|d| d.name.clone()).collect();
    let daemon = Daemon::start(options(reg, devices))
        .await
        .expect("daemon starts");
    let events = Events::open(daemon.socket_path()).await;
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let health = daemon.health().await;
        let up = |name: &String| {
            health
                .devices
                .iter()
                .any(|d| d.name == *name && d.state == "up")
        };
        if names.iter().all(up) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "devices not up: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (daemon, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighed_and_gs1_priced_labels_and_bad_scans() {
    let reg = Register::new("");
    provision(&reg).await;
    let mut pty = new_pty();
    let devices = DevicesOptions {
        devices: vec![device("front", &pty, Role::Auto)],
        decode: decode_settings(),
    };
    let (daemon, mut events) = start(&reg, devices).await;

    // 1.250 kg of a 2.40/kg item: the weight is the quantity.
    let label = ean13("280007701250");
    pty.write(format!("{label}\r").as_bytes())
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["outcome"]["kind"], "line_added", "{scan}");
    assert_eq!(scan["outcome"]["sku"], "00077");
    assert_eq!(d(scan["outcome"]["qty"].as_str().expect("qty")), d("1.25"));
    assert_eq!(
        d(scan["outcome"]["unit_price"].as_str().expect("price")),
        d("2.40")
    );

    // GS1-128 with a 392n price: one piece at the label's price, found under
    // the EAN-13 form after the GTIN-14 missed.
    pty.write(b"]C1010950110153000339220125\r")
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["outcome"]["kind"], "line_added", "{scan}");
    assert_eq!(scan["outcome"]["sku"], "9501101530003");
    assert_eq!(
        d(scan["outcome"]["unit_price"].as_str().expect("price")),
        d("1.25")
    );

    // A wrong check digit: shown as invalid, nothing added.
    pty.write(b"]E04006381333932\r")
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["decoded"]["valid"], false, "{scan}");
    assert_eq!(scan["outcome"]["kind"], "invalid");
    assert!(
        scan["outcome"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("check digit")),
        "{scan}"
    );

    // A track 2 account that is no member card: ignored, said why.
    pty.write(b";5012345678=2912?\r")
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["outcome"]["kind"], "ignored", "{scan}");

    let view = daemon_session(&daemon).await;
    let lines = view["checkout"]["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 2, "{view}");
    assert_eq!(
        d(view["amount"].as_str().expect("amount")),
        d("4.25"),
        "1.25 kg x 2.40 + 1.25"
    );
    daemon
        .shutdown()
        .await
        .expect("clean shutdown with devices running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_reader_ignores_non_cards_and_item_scanner_still_takes_member_cards() {
    let reg = Register::new("");
    provision(&reg).await;
    let mut reader = new_pty();
    let mut scanner = new_pty();
    let devices = DevicesOptions {
        devices: vec![
            device("reader", &reader, Role::Cards),
            device("scanner", &scanner, Role::Items),
        ],
        decode: decode_settings(),
    };
    let (daemon, mut events) = start(&reg, devices).await;

    // A card reader reads any digits as a member card (no prefix needed).
    reader
        .write(b";1234567890=2912?\r")
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["device"], "reader");
    assert_eq!(scan["role"], "card");
    assert_eq!(
        scan["outcome"]["member"],
        json!({"card": "1234567890"}),
        "{scan}"
    );
    // Text on a card reader is not a product.
    reader.write(b"GROC-1\r").await.expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["outcome"]["kind"], "ignored", "{scan}");

    // The loyalty card on the item scanner: attached, by member id.
    scanner
        .write(b"9990000010013\r")
        .await
        .expect("write to the pty");
    let scan = events.scan().await;
    assert_eq!(scan["device"], "scanner");
    assert_eq!(
        scan["outcome"],
        json!({"kind": "member_attached", "member": {"id": "M-1001"}})
    );
    let view = daemon_session(&daemon).await;
    assert_eq!(view["checkout"]["member"], json!({"id": "M-1001"}));
    assert_eq!(view["checkout"]["lines"], json!([]));

    let health = daemon.health().await;
    let names: Vec<&str> = health.devices.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["reader", "scanner"]);
    assert!(
        health
            .devices
            .iter()
            .all(|d| d.state == "up" && d.loop_alive)
    );
    assert_eq!(
        health.devices.iter().map(|d| d.scans).sum::<u64>(),
        3,
        "{health:?}"
    );
    daemon.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_device_settings_stop_the_start_and_leave_no_socket() {
    let reg = Register::new("");
    provision(&reg).await;
    let mut bad = DeviceSettings::serial("front", "/dev/null");
    bad.prefix = vec![0x02; 64];
    let devices = DevicesOptions {
        devices: vec![bad],
        decode: DecodeSettings::default(),
    };
    let error = match Daemon::start(options(&reg, devices)).await {
        Ok(_) => panic!("a 64-byte prefix must be refused"),
        Err(error) => error,
    };
    assert!(matches!(error, DaemonError::Devices(_)), "{error}");
    assert!(
        error.to_string().contains("devices.front.prefix"),
        "{error}"
    );
    assert!(!reg.socket.exists(), "the socket is removed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_device_is_down_in_health_and_the_agent_still_serves() {
    let reg = Register::new("");
    provision(&reg).await;
    let devices = DevicesOptions {
        devices: vec![DeviceSettings::serial(
            "front",
            reg.dir.path().join("no-such-scanner"),
        )],
        decode: DecodeSettings::default(),
    };
    let daemon = Daemon::start(options(&reg, devices))
        .await
        .expect("the agent starts without its scanner");
    let health = daemon.health().await;
    assert_eq!(health.devices.len(), 1);
    assert_eq!(health.devices[0].state, "down");
    assert_eq!(
        health.status, "ok",
        "a missing scanner is not a broken agent"
    );
    daemon.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_random_frames_is_each_accounted_for_and_breaks_nothing() {
    use rand::Rng;
    // Fewer than the events channel holds, so none may be dropped however
    // slowly the forwarder works through them (a longer burst is dropped and
    // counted by design: the device loop never waits).
    const FRAMES: u64 = 200;
    const { assert!(FRAMES < pos_drivers::device::EVENTS_CHANNEL_CAPACITY as u64) };
    let reg = Register::new("");
    provision(&reg).await;
    let mut pty = new_pty();
    let mut front = device("front", &pty, Role::Auto);
    // Every frame counts, even a repeat.
    front.dedup_window = Duration::ZERO;
    let devices = DevicesOptions {
        devices: vec![front],
        decode: decode_settings(),
    };
    let (daemon, _events) = start(&reg, devices).await;

    // Seeded and the seed printed, so a failure replays
    // (`POS_TEST_SEED=<n>`); any bytes but the terminator (CR) and LF.
    let mut rng = pos_testkit::seed::rng();
    let mut burst = Vec::new();
    for _ in 0..FRAMES {
        let len = rng.gen_range(1..=60);
        burst.extend((0..len).map(|_| {
            loop {
                let b: u8 = rng.r#gen();
                if b != b'\r' && b != b'\n' {
                    break b;
                }
            }
        }));
        burst.push(b'\r');
    }
    pty.write(&burst).await.expect("write to the pty");
    pty.write(b"]C0GROC-1\r").await.expect("write to the pty");

    // The clean scan after the burst lands in the checkout.
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let view = daemon_session(&daemon).await;
        let lines = view["checkout"]["lines"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if lines.iter().any(|l| l["sku"] == "GROC-1") {
            let unknown = view["checkout"]["unknown_products"]
                .as_array()
                .map_or(0, Vec::len);
            assert!(
                unknown <= pos_agent::session::UNKNOWN_PRODUCTS_MAX,
                "{view}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no GROC-1 line: {view}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = daemon.health().await;
    assert_eq!(health.status, "ok", "{health:?}");
    let front = &health.devices[0];
    assert_eq!(front.state, "up");
    assert_eq!(front.events_dropped, 0, "{front:?}");
    assert_eq!(
        front.scans + front.payment_cards_rejected + front.frames_discarded,
        FRAMES + 1,
        "every frame is one scan, one rejected card or one discard: {front:?}"
    );
    daemon.shutdown().await.expect("clean shutdown");
}

async fn daemon_session(daemon: &Daemon) -> Value {
    let (status, body) =
        crate::common::try_request(daemon.socket_path(), "GET", "/v1/session", None, None)
            .await
            .expect("session request");
    assert_eq!(status, 200);
    serde_json::from_slice(&body).expect("session JSON")
}
