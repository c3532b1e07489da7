//! Device loops: open a scanner or card reader by path, read frames, decode them, and
//! send [`DeviceEvent`]s to the agent; reopen with backoff when the device goes away.
//!
//! One task per device runs [`run_device`]. The loop never blocks on the agent: events
//! go out with `try_send`, and when the channel is full the event is dropped and counted
//! in [`DeviceStatus::events_dropped`] (a stuck consumer must not stop the scanner from
//! being drained, or its own buffer would overflow and the device would reset). The
//! agent sizes the channel (see [`EVENTS_CHANNEL_CAPACITY`]) so that this only happens
//! when it is stuck. Up/down state stays readable in [`DeviceStatus`] even if an Up or
//! Down event was dropped.
//!
//! Payment cards: a frame that decodes as a payment card produces only
//! [`DeviceEvent::PaymentCardRejected`]; the frame's bytes are zeroed, never logged,
//! never remembered for duplicate suppression.

mod backoff;
mod dedup;
mod source;
mod status;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::framing::{DiscardReason, FrameEvent, Framer, Suffix, Terminators, is_terminator_byte};
use crate::wedge::KeyboardLayout;
use pos_codes::{DecodeSettings, Decoded, decode_barcode, decode_track};

pub use backoff::{REOPEN_DELAY_MAX_MS, REOPEN_DELAY_MIN_MS};
pub use status::DeviceStatus;

use dedup::Dedup;
use source::{ReadOutcome, Source};

/// The loop wakes at least this often, device or not, so a watchdog can tell it is alive.
pub const HEARTBEAT_INTERVAL_MS: u64 = 1_000;
/// A connection that lasted this long resets the reopen backoff.
pub const STABLE_CONNECTION_MS: u64 = 5_000;
/// Suggested capacity of the events channel: far more than a cashier can scan while the
/// agent is busy for a moment.
pub const EVENTS_CHANNEL_CAPACITY: usize = 256;
// The device limits below are the config's too: pos-config reads `[[devices]]` with
// them, so a device the config accepts is one `DeviceSettings::validate` accepts.

/// Longest frame prefix: scanners send one or two bytes (STX, a fixed code).
pub const PREFIX_BYTES_MAX: usize = 8;
/// Longest duplicate-suppression window.
pub const DEDUP_WINDOW_MS_MAX: u64 = 10_000;
/// Shortest and longest stall timeout.
pub const STALL_TIMEOUT_MS_MIN: u64 = 10;
pub const STALL_TIMEOUT_MS_MAX: u64 = 60_000;
/// Default duplicate-suppression window (agent spec §4).
pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 300;
/// Default stall timeout: a scanner sends a whole scan in a few milliseconds.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 500;
/// The standard serial rates scanners and card readers support. The config once took
/// only these and this crate any positive rate; agent spec §2 configures a standard
/// rate (115200), and a non-standard one is a typo, so the list is the rule.
pub const STANDARD_BAUD_RATES: &[u32] = &[
    300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400,
];
/// The factory rate of most serial scanners.
pub const DEFAULT_BAUD: u32 = 9600;
/// Data bits a serial line may have.
pub const DATA_BITS: std::ops::RangeInclusive<u8> = 5..=8;
/// Stop bits a serial line may have.
pub const STOP_BITS: std::ops::RangeInclusive<u8> = 1..=2;
/// The commonest line: 8 data bits, 1 stop bit (8N1).
pub const DEFAULT_DATA_BITS: u8 = 8;
pub const DEFAULT_STOP_BITS: u8 = 1;

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

/// Line settings of a serial device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialLine {
    pub baud: u32,
    pub parity: Parity,
    /// 5 to 8.
    pub data_bits: u8,
    /// 1 or 2.
    pub stop_bits: u8,
}

impl Default for SerialLine {
    fn default() -> Self {
        SerialLine {
            baud: DEFAULT_BAUD,
            parity: Parity::None,
            data_bits: DEFAULT_DATA_BITS,
            stop_bits: DEFAULT_STOP_BITS,
        }
    }
}

/// How the device is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DeviceKind {
    /// A serial (or USB CDC-ACM) device through tokio-serial.
    Serial(SerialLine),
    /// A USB HID keyboard-wedge scanner through evdev, grabbed exclusively so its key
    /// presses reach no other program. Scans end at Enter or Tab; `suffix` is not used.
    Evdev { layout: KeyboardLayout },
}

/// What a device's scans are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every scan is an item (track data is still decoded as a barcode, so the payment
    /// guard sees it).
    Items,
    /// Every scan is a member card: any digits (barcode or track 2 account number) are
    /// the card token, with or without a configured prefix. Payment cards are still
    /// rejected first.
    Cards,
    /// Decided per scan: a configured member-card prefix makes a card; swipes (`%` or `;`
    /// first) are read as tracks.
    #[default]
    Auto,
}

/// The role a scan event carries, resolved from the device's [`Role`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanRole {
    Item,
    Card,
}

/// Everything one device loop needs. The agent maps its `[[devices]]` config onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    /// Names the device in events, health and logs.
    pub name: String,
    pub kind: DeviceKind,
    /// The device node or a link to it (`/dev/serial/by-id/...`); resolved anew on every
    /// open, so a replugged device under a new node is found again.
    pub path: PathBuf,
    /// Bytes the device sends before each scan; empty for none.
    pub prefix: Vec<u8>,
    /// What ends a scan (serial devices).
    pub suffix: Suffix,
    pub role: Role,
    /// Identical scans within this window are one scan.
    pub dedup_window: Duration,
    /// A frame that stops mid-way for this long is discarded.
    pub stall_timeout: Duration,
}

impl DeviceSettings {
    /// A serial device with default line settings and timings.
    pub fn serial(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        DeviceSettings {
            name: name.into(),
            kind: DeviceKind::Serial(SerialLine::default()),
            path: path.into(),
            prefix: Vec::new(),
            suffix: Suffix::Cr,
            role: Role::Auto,
            dedup_window: Duration::from_millis(DEFAULT_DEDUP_WINDOW_MS),
            stall_timeout: Duration::from_millis(DEFAULT_STALL_TIMEOUT_MS),
        }
    }

    /// Checks every field against its limits.
    pub fn validate(&self) -> Result<()> {
        let field = |f: &str| format!("devices.{}.{f}", self.name);
        if self.name.is_empty() {
            return Err(Error::settings("devices.name", "must not be empty"));
        }
        if self.path.as_os_str().is_empty() {
            return Err(Error::settings(field("path"), "must not be empty"));
        }
        if self.prefix.len() > PREFIX_BYTES_MAX {
            return Err(Error::settings(
                field("prefix"),
                format!("at most {PREFIX_BYTES_MAX} bytes"),
            ));
        }
        if self.prefix.iter().copied().any(is_terminator_byte) {
            return Err(Error::settings(
                field("prefix"),
                "must not contain CR, LF or TAB (they end a scan)",
            ));
        }
        if self.dedup_window > Duration::from_millis(DEDUP_WINDOW_MS_MAX) {
            return Err(Error::settings(
                field("dedup_window_ms"),
                format!("at most {DEDUP_WINDOW_MS_MAX}"),
            ));
        }
        let stall = Duration::from_millis(STALL_TIMEOUT_MS_MIN)
            ..=Duration::from_millis(STALL_TIMEOUT_MS_MAX);
        if !stall.contains(&self.stall_timeout) {
            return Err(Error::settings(
                field("stall_timeout_ms"),
                format!("must be {STALL_TIMEOUT_MS_MIN}-{STALL_TIMEOUT_MS_MAX}"),
            ));
        }
        match self.kind {
            DeviceKind::Serial(line) => {
                if !STANDARD_BAUD_RATES.contains(&line.baud) {
                    return Err(Error::settings(field("baud"), "must be a standard rate"));
                }
                if !DATA_BITS.contains(&line.data_bits) {
                    return Err(Error::settings(field("data_bits"), "must be 5-8"));
                }
                if !STOP_BITS.contains(&line.stop_bits) {
                    return Err(Error::settings(field("stop_bits"), "must be 1 or 2"));
                }
            }
            DeviceKind::Evdev { .. } => {
                if !cfg!(feature = "evdev") {
                    return Err(Error::settings(
                        field("kind"),
                        "evdev devices need pos-drivers built with the `evdev` feature",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What a device loop reports. Serialises with a `"type"` tag; carries no card data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceEvent {
    /// The device was opened.
    Up { device: String },
    /// The device could not be opened, or went away; the loop keeps retrying.
    Down { device: String, reason: String },
    /// A scan or swipe, decoded (possibly `"valid": false`).
    Scan {
        device: String,
        role: ScanRole,
        decoded: Decoded,
    },
    /// A payment card was read and dropped.
    PaymentCardRejected { device: String },
    /// A frame was discarded before decoding.
    FrameDiscarded {
        device: String,
        reason: DiscardReason,
    },
}

/// From frames to events, for one device; survives reopening.
struct Pipeline {
    name: String,
    role: Role,
    decode: Arc<DecodeSettings>,
    /// For [`Role::Cards`]: the decode settings with an empty member prefix, which makes
    /// every digit string a member card.
    cards_decode: Arc<DecodeSettings>,
    dedup: Dedup,
    events: mpsc::Sender<DeviceEvent>,
    status: Arc<DeviceStatus>,
}

/// The events channel is closed: nobody listens, the agent is shutting down.
struct ChannelClosed;

impl Pipeline {
    fn new(
        settings: &DeviceSettings,
        decode: Arc<DecodeSettings>,
        events: mpsc::Sender<DeviceEvent>,
        status: Arc<DeviceStatus>,
    ) -> Self {
        let mut cards_decode = (*decode).clone();
        cards_decode.loyalty_prefixes = vec![String::new()];
        cards_decode.track_member_prefixes = vec![String::new()];
        Pipeline {
            name: settings.name.clone(),
            role: settings.role,
            decode,
            cards_decode: Arc::new(cards_decode),
            dedup: Dedup::new(settings.dedup_window),
            events,
            status,
        }
    }

    fn emit(&self, event: DeviceEvent) -> std::result::Result<(), ChannelClosed> {
        match self.events.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                let dropped = self.status.count_dropped_event();
                if dropped == 1 || dropped.is_multiple_of(100) {
                    tracing::warn!(
                        message = "Device event dropped: the event channel is full.",
                        device = %self.name,
                        dropped_total = dropped
                    );
                }
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(ChannelClosed),
        }
    }

    fn decode(&self, text: &str) -> Decoded {
        let settings = if self.role == Role::Cards {
            &self.cards_decode
        } else {
            &self.decode
        };
        let swipe = self.role != Role::Items && text.trim_start().starts_with(['%', ';']);
        if swipe {
            decode_track(text, settings)
        } else {
            decode_barcode(text, settings)
        }
    }

    fn handle(
        &mut self,
        event: FrameEvent,
        now: std::time::Instant,
    ) -> std::result::Result<(), ChannelClosed> {
        let frame = match event {
            FrameEvent::Frame(frame) => frame,
            FrameEvent::Discarded(reason) => {
                self.status.count_discard();
                tracing::warn!(message = "Frame discarded.", device = %self.name, ?reason);
                return self.emit(DeviceEvent::FrameDiscarded {
                    device: self.name.clone(),
                    reason,
                });
            }
        };
        let text: Zeroizing<String> = Zeroizing::new(match std::str::from_utf8(&frame) {
            Ok(s) => s.to_string(),
            // Not UTF-8: read as Latin-1, the usual 8-bit scanner output.
            Err(_) => frame.iter().map(|&b| char::from(b)).collect(),
        });
        let decoded = self.decode(&text);
        drop(text);
        if decoded == Decoded::PaymentCard {
            drop(frame);
            self.status.count_payment_card();
            tracing::warn!(message = "Payment card rejected.", device = %self.name);
            return self.emit(DeviceEvent::PaymentCardRejected {
                device: self.name.clone(),
            });
        }
        if self.dedup.is_duplicate(&frame, now) {
            tracing::debug!(message = "Duplicate scan ignored.", device = %self.name);
            return Ok(());
        }
        let role = match self.role {
            Role::Items => ScanRole::Item,
            Role::Cards => ScanRole::Card,
            Role::Auto if decoded.is_member_card() => ScanRole::Card,
            Role::Auto => ScanRole::Item,
        };
        self.status.count_scan();
        self.emit(DeviceEvent::Scan {
            device: self.name.clone(),
            role,
            decoded,
        })
    }
}

/// How one connection ended.
enum Ended {
    Shutdown,
    Lost(String),
    ChannelClosed,
}

/// Runs one device until `shutdown` is cancelled (or the events receiver is dropped).
///
/// Opens the device by path (symlinks resolved on every attempt), reports
/// [`DeviceEvent::Up`], reads and decodes frames; on EOF or an I/O error reports
/// [`DeviceEvent::Down`] and reopens after a capped exponential backoff
/// ([`REOPEN_DELAY_MIN_MS`] … [`REOPEN_DELAY_MAX_MS`], reset after a connection that
/// lasted [`STABLE_CONNECTION_MS`]). Open failures in a row are reported once.
/// Errors only for invalid settings.
pub async fn run_device(
    settings: DeviceSettings,
    decode: Arc<DecodeSettings>,
    events: mpsc::Sender<DeviceEvent>,
    shutdown: CancellationToken,
    status: Arc<DeviceStatus>,
) -> Result<()> {
    settings.validate()?;
    decode.validate()?;
    let mut pipeline = Pipeline::new(&settings, decode, events, status.clone());
    let mut backoff = backoff::Backoff::new();
    let mut down_reported = false;
    loop {
        status.beat();
        if shutdown.is_cancelled() {
            break;
        }
        let next = match Source::open(&settings).await {
            Ok(source) => {
                // A lost connection reports Down itself.
                down_reported = true;
                read_while_up(
                    source,
                    &settings,
                    &mut pipeline,
                    &shutdown,
                    &status,
                    &mut backoff,
                )
                .await
            }
            Err(error) if !down_reported => {
                tracing::warn!(message = "Device cannot be opened.", device = %settings.name, %error);
                down_reported = true;
                let down = DeviceEvent::Down {
                    device: settings.name.clone(),
                    reason: error.to_string(),
                };
                match pipeline.emit(down) {
                    Ok(()) => Next::Retry,
                    Err(ChannelClosed) => Next::Stop,
                }
            }
            // Open failures in a row are reported once.
            Err(_) => Next::Retry,
        };
        if next == Next::Stop || !wait(backoff.next_delay(), &shutdown, &status).await {
            break;
        }
    }
    status.set_up(false);
    Ok(())
}

/// What [`run_device`] does after one open attempt.
#[derive(PartialEq, Eq)]
enum Next {
    /// Reopen after the backoff delay.
    Retry,
    /// Shutdown, or nobody listens any more.
    Stop,
}

/// One connection, from Up to Down: reports both and resets `backoff` when the
/// connection held. The device is reported down (or the loop stops) when this returns.
async fn read_while_up(
    source: Source,
    settings: &DeviceSettings,
    pipeline: &mut Pipeline,
    shutdown: &CancellationToken,
    status: &DeviceStatus,
    backoff: &mut backoff::Backoff,
) -> Next {
    let opened_at = tokio::time::Instant::now();
    status.set_up(true);
    tracing::info!(message = "Device up.", device = %settings.name, path = %settings.path.display());
    let up = DeviceEvent::Up {
        device: settings.name.clone(),
    };
    let ended = match pipeline.emit(up) {
        Ok(()) => read_until_ended(source, settings, pipeline, shutdown).await,
        Err(ChannelClosed) => Ended::ChannelClosed,
    };
    status.set_up(false);
    let reason = match ended {
        Ended::Shutdown | Ended::ChannelClosed => return Next::Stop,
        Ended::Lost(reason) => reason,
    };
    // Only a connection that held counts as recovered: a device that
    // opens and drops at once must not be reopened every 100 ms.
    if opened_at.elapsed() >= Duration::from_millis(STABLE_CONNECTION_MS) {
        backoff.reset();
    }
    tracing::warn!(message = "Device down.", device = %settings.name, %reason);
    let down = DeviceEvent::Down {
        device: settings.name.clone(),
        reason,
    };
    match pipeline.emit(down) {
        Ok(()) => Next::Retry,
        Err(ChannelClosed) => Next::Stop,
    }
}

/// Sleeps `delay`, beating the heartbeat; false when shutdown came first.
async fn wait(delay: Duration, shutdown: &CancellationToken, status: &DeviceStatus) -> bool {
    let deadline = tokio::time::Instant::now() + delay;
    let beat = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return true;
        }
        let until = deadline.min(now + beat);
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep_until(until) => status.beat(),
        }
    }
}

async fn read_until_ended(
    mut source: Source,
    settings: &DeviceSettings,
    pipeline: &mut Pipeline,
    shutdown: &CancellationToken,
) -> Ended {
    let terminators = match settings.kind {
        DeviceKind::Serial(_) => Terminators::Suffix(settings.suffix),
        DeviceKind::Evdev { .. } => Terminators::EnterOrTab,
    };
    let mut framer =
        Framer::with_terminators(terminators, settings.prefix.clone(), settings.stall_timeout);
    let mut chunk: Zeroizing<Vec<u8>> =
        Zeroizing::new(Vec::with_capacity(source::READ_CHUNK_BYTES));
    let mut out = Vec::new();
    let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Far enough to never fire: the stall branch is disabled while nothing is open.
    let never = Duration::from_secs(3600);
    loop {
        let stall_at = framer.stall_deadline().map(tokio::time::Instant::from_std);
        let stall_sleep = tokio::time::sleep_until(
            stall_at.unwrap_or_else(|| tokio::time::Instant::now() + never),
        );
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return Ended::Shutdown,
            read = source.read(&mut chunk) => {
                let now = tokio::time::Instant::now().into_std();
                match read {
                    ReadOutcome::Data => {
                        framer.push(&chunk, now, &mut out);
                        chunk.zeroize();
                    }
                    ReadOutcome::Eof => {
                        framer.reset();
                        return Ended::Lost("end of file: the device went away".into());
                    }
                    ReadOutcome::Error(error) => {
                        framer.reset();
                        return Ended::Lost(format!("read error: {error}"));
                    }
                }
            }
            () = stall_sleep, if stall_at.is_some() => {
                framer.check_stall(tokio::time::Instant::now().into_std(), &mut out);
            }
            _ = heartbeat.tick() => {}
        }
        pipeline.status.beat();
        let now = tokio::time::Instant::now().into_std();
        for event in out.drain(..) {
            if pipeline.handle(event, now).is_err() {
                return Ended::ChannelClosed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_testkit::check_digit::synthetic_pan;

    fn pipeline(role: Role) -> (Pipeline, mpsc::Receiver<DeviceEvent>) {
        let (tx, rx) = mpsc::channel(4);
        let decode = Arc::new(DecodeSettings {
            loyalty_prefixes: vec!["999".into()],
            ..DecodeSettings::default()
        });
        let mut cards = (*decode).clone();
        cards.loyalty_prefixes = vec![String::new()];
        cards.track_member_prefixes = vec![String::new()];
        let p = Pipeline {
            name: "front".into(),
            role,
            decode,
            cards_decode: Arc::new(cards),
            dedup: Dedup::new(Duration::from_millis(300)),
            events: tx,
            status: Arc::new(DeviceStatus::new()),
        };
        (p, rx)
    }

    fn frame(s: &str) -> FrameEvent {
        FrameEvent::Frame(Zeroizing::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn roles_resolve_per_scan() {
        let now = std::time::Instant::now();
        let (mut auto, mut rx) = pipeline(Role::Auto);
        assert!(auto.handle(frame("4006381333931"), now).is_ok());
        assert!(auto.handle(frame("9990000010013"), now).is_ok());
        let roles: Vec<_> = (0..2)
            .map(|_| match rx.try_recv().unwrap() {
                DeviceEvent::Scan { role, .. } => role,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(roles, [ScanRole::Item, ScanRole::Card]);

        let (mut cards, mut rx) = pipeline(Role::Cards);
        assert!(cards.handle(frame(";1234567890=99?"), now).is_ok());
        match rx.try_recv().unwrap() {
            DeviceEvent::Scan { role, decoded, .. } => {
                assert_eq!(role, ScanRole::Card);
                assert_eq!(
                    decoded.reading().unwrap().member_card.as_deref(),
                    Some("1234567890")
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn payment_card_leaves_no_trace_in_events() {
        let now = std::time::Instant::now();
        let (mut p, mut rx) = pipeline(Role::Cards);
        let pan = synthetic_pan("4", 16);
        let swipe = format!("%B{pan}^TEST/CARD^29121010000000?;{pan}=29121010000?");
        assert!(p.handle(frame(&swipe), now).is_ok());
        assert!(p.handle(frame(&pan), now).is_ok());
        for _ in 0..2 {
            let event = rx.try_recv().unwrap();
            assert_eq!(
                event,
                DeviceEvent::PaymentCardRejected {
                    device: "front".into()
                }
            );
            let json = serde_json::to_string(&event).unwrap();
            let debug = format!("{event:?}");
            for text in [&json, &debug] {
                assert!(!text.contains(&pan[..6]), "{text}");
                assert!(!text.contains(&pan[pan.len() - 4..]), "{text}");
            }
        }
        assert_eq!(p.status.payment_cards_rejected(), 2);
        // The dedup memory never saw it: the same number again is rejected again.
        assert!(p.handle(frame(&pan), now).is_ok());
        assert!(matches!(
            rx.try_recv(),
            Ok(DeviceEvent::PaymentCardRejected { .. })
        ));
    }

    #[test]
    fn full_channel_drops_and_counts() {
        let now = std::time::Instant::now();
        let (mut p, _rx) = pipeline(Role::Items);
        for i in 0..10 {
            assert!(p.handle(frame(&format!("CODE{i}")), now).is_ok());
        }
        assert_eq!(p.status.events_dropped(), 6, "capacity 4, 10 scans");
        assert_eq!(p.status.scans(), 10);
    }

    #[test]
    fn closed_channel_stops_the_loop() {
        let (mut p, rx) = pipeline(Role::Items);
        drop(rx);
        assert!(p.handle(frame("X"), std::time::Instant::now()).is_err());
    }

    #[test]
    fn duplicates_within_the_window_are_one_scan() {
        let now = std::time::Instant::now();
        let (mut p, mut rx) = pipeline(Role::Items);
        assert!(p.handle(frame("4006381333931"), now).is_ok());
        assert!(
            p.handle(frame("4006381333931"), now + Duration::from_millis(100))
                .is_ok()
        );
        assert!(
            p.handle(frame("4006381333931"), now + Duration::from_millis(400))
                .is_ok()
        );
        let mut scans = 0;
        while rx.try_recv().is_ok() {
            scans += 1;
        }
        assert_eq!(scans, 2);
    }

    #[test]
    fn settings_limits() {
        let ok = DeviceSettings::serial("front", "/dev/ttyACM0");
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.prefix = vec![0; PREFIX_BYTES_MAX + 1];
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("devices.front.prefix")
        );
        let mut bad = ok.clone();
        bad.stall_timeout = Duration::from_millis(1);
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.kind = DeviceKind::Serial(SerialLine {
            data_bits: 9,
            ..SerialLine::default()
        });
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.name.clear();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn settings_take_the_config_rules() {
        let ok = DeviceSettings::serial("front", "/dev/ttyACM0");
        let mut bad = ok.clone();
        bad.kind = DeviceKind::Serial(SerialLine {
            baud: 9601,
            ..SerialLine::default()
        });
        assert!(bad.validate().is_err());
        for terminator in [b'\r', b'\n', b'\t'] {
            let mut bad = ok.clone();
            bad.prefix = vec![0x02, terminator];
            assert!(bad.validate().is_err(), "{terminator}");
        }
    }

    #[test]
    fn events_serialise_with_a_type_tag() {
        let event = DeviceEvent::FrameDiscarded {
            device: "front".into(),
            reason: DiscardReason::TooLong { limit_bytes: 4096 },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({"type": "frame_discarded", "device": "front",
                               "reason": {"kind": "too_long", "limit_bytes": 4096}})
        );
    }
}
