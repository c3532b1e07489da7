//! End-to-end tests of the serial device loop over pseudo-terminal pairs: the test
//! writes on the master end as a scanner would, the driver opens the slave end by path
//! (through a symlink, like `/dev/serial/by-id/...`), and the events are checked.
//!
//! Timeouts here only stop a broken test from hanging; nothing asserts on timing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pos_codes::DecodeSettings;
use pos_drivers::{
    DeviceEvent, DeviceSettings, DeviceStatus, DiscardReason, Role, ScanRole, Suffix, run_device,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pos_testkit::check_digit::luhn_complete;
use pos_testkit::pty::Pty;

const EVENT_WAIT: Duration = Duration::from_secs(15);

fn new_pty() -> Pty {
    Pty::new().unwrap_or_else(|e| panic!("{e:#}"))
}

fn point_link(link: &Path, target: &Path) {
    pos_testkit::pty::point_link(link, target).unwrap_or_else(|e| panic!("{e:#}"));
}

struct Harness {
    events: mpsc::Receiver<DeviceEvent>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<pos_drivers::Result<()>>,
    status: Arc<DeviceStatus>,
    _dir: tempfile::TempDir,
    link: PathBuf,
}

fn settings(link: &Path) -> DeviceSettings {
    let mut settings = DeviceSettings::serial("front", link);
    settings.stall_timeout = Duration::from_millis(200);
    settings
}

fn start(pty: Option<&Pty>, configure: impl FnOnce(&mut DeviceSettings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("scanner");
    if let Some(pty) = pty {
        point_link(&link, &pty.slave_path);
    }
    let mut device = settings(&link);
    configure(&mut device);
    let decode = Arc::new(DecodeSettings {
        loyalty_prefixes: vec!["999".into()],
        ..DecodeSettings::default()
    });
    let (tx, rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let status = Arc::new(DeviceStatus::new());
    let task = tokio::spawn(run_device(
        device,
        decode,
        tx,
        shutdown.clone(),
        status.clone(),
    ));
    Harness {
        events: rx,
        shutdown,
        task,
        status,
        _dir: dir,
        link,
    }
}

impl Harness {
    async fn next(&mut self) -> DeviceEvent {
        tokio::time::timeout(EVENT_WAIT, self.events.recv())
            .await
            .expect("an event within the wait")
            .expect("the device loop is running")
    }

    async fn expect_up(&mut self) {
        match self.next().await {
            DeviceEvent::Up { device } => assert_eq!(device, "front"),
            other => panic!("expected Up, got {other:?}"),
        }
    }

    /// The next event must be a scan; returns its decoded JSON.
    async fn expect_scan(&mut self) -> Value {
        match self.next().await {
            DeviceEvent::Scan { decoded, .. } => serde_json::to_value(decoded).unwrap(),
            other => panic!("expected a scan, got {other:?}"),
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(EVENT_WAIT, self.task)
            .await
            .expect("the loop stops on shutdown")
            .expect("the task did not panic");
        assert!(result.is_ok());
        assert!(!self.status.is_up());
    }
}

async fn write(pty: &mut Pty, bytes: &[u8]) {
    pty.write(bytes).await.unwrap();
}

/// A synthetic Luhn-valid number in the Visa range, built at run time: never a real card.
fn synthetic_pan() -> String {
    luhn_complete("411100001234567")
}

#[tokio::test]
async fn clean_scans_and_a_scan_written_byte_by_byte() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |_| {});
    h.expect_up().await;
    assert!(h.status.is_up());

    write(&mut pty, b"]E04006381333931\r").await;
    let scan = h.expect_scan().await;
    assert_eq!(scan["gtin"], "04006381333931");
    assert_eq!(scan["aim"], "]E0");

    for &byte in b"]C10109501101530003\x1d17261231\r" {
        write(&mut pty, &[byte]).await;
        tokio::task::yield_now().await;
    }
    let scan = h.expect_scan().await;
    assert_eq!(scan["ais"]["17"], "261231");
    assert_eq!(scan["gtin"], "09501101530003");
    assert!(h.status.scans() >= 2);
    h.stop().await;
}

#[tokio::test]
async fn noise_and_an_overlong_frame_do_not_break_the_stream() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |_| {});
    h.expect_up().await;

    write(&mut pty, b"\x00\xff@@\r").await;
    let noise = h.expect_scan().await;
    assert_eq!(
        noise["symbology"], "unknown",
        "noise is shown, not dropped silently"
    );

    let mut overlong = vec![b'7'; 5000];
    overlong.push(b'\r');
    write(&mut pty, &overlong).await;
    match h.next().await {
        DeviceEvent::FrameDiscarded { reason, .. } => {
            assert_eq!(reason, DiscardReason::TooLong { limit_bytes: 4096 })
        }
        other => panic!("expected a discard, got {other:?}"),
    }
    write(&mut pty, b"4006381333931\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    h.stop().await;
}

#[tokio::test]
async fn crlf_device_on_a_cr_configuration_gives_clean_frames() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |s| s.suffix = Suffix::Cr);
    h.expect_up().await;
    write(&mut pty, b"4006381333931\r\n9990000010013\r\n").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    match h.next().await {
        DeviceEvent::Scan { role, decoded, .. } => {
            assert_eq!(role, ScanRole::Card);
            assert_eq!(
                serde_json::to_value(decoded).unwrap()["member_card"],
                "9990000010013"
            );
        }
        other => panic!("expected the member card, got {other:?}"),
    }
    // No empty or garbage frame came from the LFs: the next event is the next scan.
    write(&mut pty, b"96385074\r\n").await;
    assert_eq!(h.expect_scan().await["gtin"], "00000096385074");
    h.stop().await;
}

#[tokio::test]
async fn lf_and_tab_suffixes() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |s| s.suffix = Suffix::Lf);
    h.expect_up().await;
    write(&mut pty, b"4006381333931\r\n96385074\n").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    assert_eq!(h.expect_scan().await["gtin"], "00000096385074");
    h.stop().await;

    let mut pty = new_pty();
    let mut h = start(Some(&pty), |s| {
        s.suffix = Suffix::Tab;
        s.prefix = vec![0x02];
    });
    h.expect_up().await;
    write(&mut pty, b"\x024006381333931\tNOPREFIX\t").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    match h.next().await {
        DeviceEvent::FrameDiscarded { reason, .. } => {
            assert_eq!(reason, DiscardReason::MissingPrefix)
        }
        other => panic!("expected a discard, got {other:?}"),
    }
    h.stop().await;
}

#[tokio::test]
async fn a_stalled_frame_is_discarded_and_its_tail_skipped() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |_| {});
    h.expect_up().await;
    write(&mut pty, b"4006").await;
    match h.next().await {
        DeviceEvent::FrameDiscarded { reason, .. } => {
            assert_eq!(reason, DiscardReason::Stalled { timeout_ms: 200 })
        }
        other => panic!("expected a stall, got {other:?}"),
    }
    write(&mut pty, b"381333931\r96385074\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "00000096385074");
    h.stop().await;
}

#[tokio::test]
async fn duplicates_within_the_window_are_one_scan() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |s| s.dedup_window = Duration::from_secs(10));
    h.expect_up().await;
    write(&mut pty, b"4006381333931\r4006381333931\r96385074\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    assert_eq!(h.expect_scan().await["gtin"], "00000096385074");
    h.stop().await;
}

#[tokio::test]
async fn payment_card_is_rejected_and_leaves_no_trace() {
    let mut pty = new_pty();
    let mut h = start(Some(&pty), |s| s.role = Role::Cards);
    h.expect_up().await;
    let pan = synthetic_pan();
    let swipe = format!("%B{pan}^TEST/CARD^2912101000000000?;{pan}=29121010000000?\r");
    write(&mut pty, swipe.as_bytes()).await;
    write(&mut pty, format!("{pan}\r").as_bytes()).await;
    let mut emitted = String::new();
    for _ in 0..2 {
        let event = h.next().await;
        assert!(
            matches!(event, DeviceEvent::PaymentCardRejected { .. }),
            "{event:?}"
        );
        emitted.push_str(&serde_json::to_string(&event).unwrap());
        emitted.push_str(&format!("{event:?}"));
    }
    // A member card after it still works, and nothing emitted holds the number.
    write(&mut pty, b";9990000010013=2912?\r").await;
    let member = h.expect_scan().await;
    assert_eq!(member["member_card"], "9990000010013");
    emitted.push_str(&member.to_string());
    for part in [&pan[..], &pan[..6], &pan[pan.len() - 4..]] {
        assert!(!emitted.contains(part), "{part} found in {emitted}");
    }
    assert_eq!(h.status.payment_cards_rejected(), 2);
    h.stop().await;
}

#[tokio::test]
async fn unplug_and_replug_under_a_new_node() {
    let mut first = new_pty();
    let mut h = start(Some(&first), |_| {});
    h.expect_up().await;
    write(&mut first, b"4006381333931\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");

    // Unplug: the master end goes away, the slave node with it.
    drop(first);
    match h.next().await {
        DeviceEvent::Down { device, reason } => {
            assert_eq!(device, "front");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(!h.status.is_up());

    // Replug: a new pty; the same configured path now leads to a new node. (The kernel
    // may reuse the pts number; what matters is that the loop reopens by path.)
    let mut second = new_pty();
    point_link(&h.link, &second.slave_path);
    assert_eq!(std::fs::canonicalize(&h.link).unwrap(), second.slave_path);
    h.expect_up().await;
    write(&mut second, b"96385074\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "00000096385074");
    h.stop().await;
}

#[tokio::test]
async fn a_missing_device_is_reported_once_and_picked_up_when_it_appears() {
    let mut h = start(None, |_| {});
    match h.next().await {
        DeviceEvent::Down { reason, .. } => {
            assert!(
                reason.contains("scanner"),
                "the reason names the path: {reason}"
            )
        }
        other => panic!("expected Down, got {other:?}"),
    }
    // Let a few retries pass: they must not repeat the Down event.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut pty = new_pty();
    point_link(&h.link, &pty.slave_path);
    h.expect_up().await;
    write(&mut pty, b"4006381333931\r").await;
    assert_eq!(h.expect_scan().await["gtin"], "04006381333931");
    assert!(h.status.since_last_activity() < EVENT_WAIT);
    h.stop().await;
}
