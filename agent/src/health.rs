//! What the agent reports about itself: `GET /v1/health`, `pos-agent
//! status`, the systemd watchdog and `STATUS=` line, and the
//! `pos_agent_health_*` gauges.
//!
//! [`HealthState`] is the shared, cheap part (start time, sync mode,
//! device states filled by the device tasks, the `[health]` thresholds);
//! [`Health`] is one snapshot combined with the store's figures. Keeping
//! the "is it alive" and "is it ok" judgements here, in one place, lets the
//! watchdog, the API, `STATUS=` and the metrics agree.
//!
//! `degraded` has a reason each time, from [`PROBLEMS`]: a store writer
//! that is stuck, a store that cannot be read, a device loop that is stuck,
//! rules that are unverified or differ from central's, a recent
//! `storage_full`, sync failing for longer than `[health]
//! sync_failing_secs`, member data older than `[health] member_stale_secs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pos_drivers::DeviceStatus;

use serde::{Deserialize, Serialize};

use crate::model::StoreStats;
use crate::store::WriterHealth;
use crate::sync_worker::{SyncMonitor, SyncReport};

/// Why the register's rules version differs from central's newest, if it
/// does. Nothing when central's is unknown (standalone, never asked) or
/// none is published.
pub fn rules_drift(register: Option<u64>, central: Option<u64>) -> Option<String> {
    let central = central?;
    match register {
        None => Some(format!(
            "no usable rules bundle here; central's newest is version {central}"
        )),
        Some(v) if v < central => Some(format!(
            "rules version {v} here is behind central's newest, version {central}"
        )),
        Some(v) if v > central => Some(format!(
            "rules version {v} here was never published by central (its newest is version {central})"
        )),
        Some(_) => None,
    }
}

/// The store writer counts as alive when it made progress (or idled on an
/// empty queue) within this long. Its own heartbeat ticks far more often;
/// the margin covers one slow fsync on a loaded machine.
pub const WRITER_STALL_MS: u64 = 10_000;

/// Every reason health can give for `degraded`, as [`Health::problems`]
/// names them (and the `problem` label of `pos_agent_health_problem`).
pub const PROBLEMS: &[&str] = &[
    "store_writer_stuck",
    "store_unreadable",
    "device_loop_stuck",
    "rules_unverified",
    "rules_drift",
    "storage_full",
    "sync_failing",
    "members_stale",
];

/// Sync worker state as health shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// No `[central]` in the config: the register runs standalone.
    #[default]
    Off,
    /// Configured; the worker (issue 4) reports details.
    On,
}

/// A device loop counts as alive when it went round within this long. It
/// wakes at least every [`pos_drivers::device::HEARTBEAT_INTERVAL_MS`],
/// device or not; five of those is a stuck loop, not a slow one.
pub const DEVICE_LOOP_STALL_MS: u64 = 5 * pos_drivers::device::HEARTBEAT_INTERVAL_MS;

/// One device as health shows it (read live from the device loops).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub name: String,
    /// `up` (open) or `down` (not open; the loop keeps reopening it).
    pub state: String,
    /// The device loop went round within [`DEVICE_LOOP_STALL_MS`]; false
    /// means the loop is stuck (health is then `degraded`).
    #[serde(default)]
    pub loop_alive: bool,
    /// Scans and swipes decoded since start (payment cards not included).
    #[serde(default)]
    pub scans: u64,
    #[serde(default)]
    pub payment_cards_rejected: u64,
    /// Frames thrown away (too long, stalled, missing prefix).
    #[serde(default)]
    pub frames_discarded: u64,
    /// Events lost because the agent did not take them in time.
    #[serde(default)]
    pub events_dropped: u64,
}

impl DeviceHealth {
    /// A device loop's state, read now.
    pub fn of(name: &str, status: &DeviceStatus) -> DeviceHealth {
        DeviceHealth {
            name: name.to_string(),
            state: if status.is_up() { "up" } else { "down" }.to_string(),
            loop_alive: status.since_last_activity() <= Duration::from_millis(DEVICE_LOOP_STALL_MS),
            scans: status.scans(),
            payment_cards_rejected: status.payment_cards_rejected(),
            frames_discarded: status.frames_discarded(),
            events_dropped: status.events_dropped(),
        }
    }
}

/// Shared health inputs of one agent instance.
#[derive(Debug)]
pub struct HealthState {
    started: Instant,
    terminal_id: String,
    sync: SyncMode,
    /// The sync worker's state, once it runs (issue 4).
    sync_worker: std::sync::OnceLock<SyncMonitor>,
    devices: Mutex<Vec<DeviceHealth>>,
    /// Device loops read live at each snapshot ([`HealthState::watch_device`]).
    device_loops: Mutex<Vec<(String, Arc<DeviceStatus>)>>,
    /// `[health]`: when conditions that build up over time count.
    thresholds: pos_config::Health,
}

/// The store part of a health snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreHealth {
    /// The writer thread runs and, when it has work, finished a command
    /// within [`WRITER_STALL_MS`].
    pub writer_alive: bool,
    /// Milliseconds since the writer last finished a command.
    pub writer_idle_ms: Option<u64>,
    /// Why the store's figures could not be read, when they could not.
    pub error: Option<String>,
}

/// `GET /v1/health` answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when [`Health::problems`] is not empty.
    pub status: String,
    /// Why it is `degraded`, each a code from [`PROBLEMS`]; empty when `ok`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Seconds since a write last failed with `storage_full` (disk full);
    /// `null` when none did since the start. Degraded for `[health]
    /// storage_full_secs` after.
    #[serde(default)]
    pub storage_full_secs_ago: Option<u64>,
    /// Seconds sync has been failing without a success (since the last
    /// success, or the start); `null` while it succeeds or is off.
    #[serde(default)]
    pub sync_failing_secs: Option<u64>,
    /// Age of the member data in seconds (register clock); `null` when
    /// there is none.
    #[serde(default)]
    pub members_age_secs: Option<u64>,
    pub terminal_id: String,
    pub version: String,
    pub uptime_secs: u64,
    pub sync: SyncHealth,
    /// Ledger entries not yet accepted by central.
    pub outbox_depth: u64,
    /// Entries central rejected for good (kept with their reason).
    pub dead_letters: u64,
    /// The rules version sales are quoted with (with `[central]`, the
    /// newest signed one); `null` before the first import/sync.
    pub rules_version: Option<u64>,
    /// Central's newest published version, as its last rules answer named
    /// it; `null` standalone or before the first answer.
    #[serde(default)]
    pub central_rules_version: Option<u64>,
    /// Why the register's bundle is not used (unsigned, or its signature
    /// does not verify): sales and quotes are refused meanwhile.
    #[serde(default)]
    pub rules_unverified: Option<String>,
    /// The register's rules version differs from central's newest (behind,
    /// or ahead: a version central never published), naming both.
    #[serde(default)]
    pub rules_drift: Option<String>,
    pub devices: Vec<DeviceHealth>,
    pub store: StoreHealth,
}

/// Sync part of health (`GET /v1/sync` answers the same object).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncHealth {
    pub state: SyncMode,
    /// Why it is in that state, for humans.
    pub detail: String,
    /// The sync worker's full report: phase, last success and error, auth
    /// failure, refused rules, overdrafts, dead letters with reasons.
    /// Absent when sync is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<SyncReport>,
}

impl Health {
    /// One line for systemd's `STATUS=` (and logs): the facts an operator
    /// checks first, no secrets.
    pub fn status_line(&self) -> String {
        let sync = match self.sync.state {
            SyncMode::Off => "off",
            SyncMode::On => self.sync.worker.as_ref().map_or("on", |w| w.phase.as_str()),
        };
        let mut rules = self
            .rules_version
            .map_or_else(|| "none".to_string(), |v| format!("v{v}"));
        if self.rules_unverified.is_some() {
            rules.push_str(" UNVERIFIED");
        }
        if let (Some(_), Some(central)) = (&self.rules_drift, self.central_rules_version) {
            rules.push_str(&format!(" (central v{central})"));
        }
        let mut tail = String::new();
        if !self.store.writer_alive {
            tail.push_str(", store writer NOT ALIVE");
        }
        if self.has_problem("storage_full") {
            tail.push_str(", STORAGE FULL");
        }
        if let (true, Some(secs)) = (self.has_problem("sync_failing"), self.sync_failing_secs) {
            tail.push_str(&format!(", sync FAILING for {secs} s"));
        }
        if self.has_problem("members_stale") {
            match self.members_age_secs {
                Some(secs) => tail.push_str(&format!(", member data STALE ({secs} s old)")),
                None => tail.push_str(", NO member data"),
            }
        }
        format!(
            "{}: sync {sync}, {} unsynced, {} dead letters, rules {rules}{tail}",
            self.status, self.outbox_depth, self.dead_letters
        )
    }

    /// Whether `code` (one of [`PROBLEMS`]) is among this snapshot's problems.
    pub fn has_problem(&self, code: &str) -> bool {
        self.problems.iter().any(|p| p == code)
    }
}

impl HealthState {
    pub fn new(terminal_id: String, sync: SyncMode) -> Self {
        HealthState {
            started: Instant::now(),
            terminal_id,
            sync,
            sync_worker: std::sync::OnceLock::new(),
            devices: Mutex::new(Vec::new()),
            device_loops: Mutex::new(Vec::new()),
            thresholds: pos_config::Health::default(),
        }
    }

    /// The same state judged with `[health]`'s thresholds instead of the
    /// defaults.
    pub fn with_thresholds(mut self, thresholds: pos_config::Health) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Shows a device loop's live status in every snapshot from now on
    /// (the device tasks register here when they start).
    pub fn watch_device(&self, name: String, status: Arc<DeviceStatus>) {
        let mut loops = self.device_loops.lock().unwrap_or_else(|p| p.into_inner());
        loops.retain(|(n, _)| *n != name);
        loops.push((name, status));
    }

    /// Replaces a device's state (device tasks call this).
    pub fn set_device(&self, device: DeviceHealth) {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        match devices.iter_mut().find(|d| d.name == device.name) {
            Some(d) => *d = device,
            None => devices.push(device),
        }
    }

    pub fn sync(&self) -> SyncHealth {
        match (self.sync, self.sync_worker.get()) {
            (SyncMode::Off, _) => SyncHealth {
                state: SyncMode::Off,
                detail: "no [central] in the config: the register runs standalone".to_string(),
                worker: None,
            },
            (SyncMode::On, Some(monitor)) => {
                let report = monitor.report();
                SyncHealth {
                    state: SyncMode::On,
                    detail: report.detail(),
                    worker: Some(report),
                }
            }
            (SyncMode::On, None) => SyncHealth {
                state: SyncMode::On,
                detail: "configured; the sync worker has not started".to_string(),
                worker: None,
            },
        }
    }

    /// Connects the sync worker's monitor (the daemon does, once).
    pub fn attach_sync(&self, monitor: SyncMonitor) {
        let _ = self.sync_worker.set(monitor);
    }

    /// The sync worker's monitor, when one runs (online redemption holds).
    pub fn sync_monitor(&self) -> Option<&SyncMonitor> {
        self.sync_worker.get()
    }

    /// Wakes the sync worker (`POST /v1/sync/now`); false when none runs.
    pub fn wake_sync(&self) -> bool {
        match self.sync_worker.get() {
            Some(monitor) => {
                monitor.wake();
                true
            }
            None => false,
        }
    }

    /// Whether the agent's own loops are alive: the store writer made
    /// progress (or idles) and every device loop went round recently. What
    /// the systemd watchdog is told (agent spec §5); it reads no database,
    /// so a slow disk delays no keep-alive that the writer's heartbeat
    /// does not already account for.
    pub fn alive(&self, writer: WriterHealth) -> bool {
        writer.is_alive(Duration::from_millis(WRITER_STALL_MS)) && self.device_loops_alive()
    }

    fn device_loops_alive(&self) -> bool {
        self.device_loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .all(|(name, status)| DeviceHealth::of(name, status).loop_alive)
    }

    /// Combines the shared state with the store's figures and the writer's
    /// heartbeat age into one snapshot.
    pub fn snapshot(&self, stats: Result<StoreStats, String>, writer: WriterHealth) -> Health {
        let writer_alive = writer.is_alive(Duration::from_millis(WRITER_STALL_MS));
        let writer_idle_ms =
            Some(u64::try_from(writer.since_progress.as_millis()).unwrap_or(u64::MAX));
        let (stats, error) = match stats {
            Ok(s) => (s, None),
            Err(e) => (StoreStats::default(), Some(e)),
        };
        let devices = self.devices_now();
        let rules_drift = rules_drift(stats.rules_version, stats.central_rules_version);
        let sync_failing = self.sync_worker.get().and_then(SyncMonitor::failing_for);
        let members_age = match self.sync {
            SyncMode::On => stats.members_age_ms.map(Duration::from_millis),
            SyncMode::Off => None,
        };
        let found = Found {
            writer_alive,
            store_error: error.is_some(),
            loops_alive: devices.iter().all(|d| d.loop_alive),
            rules_unverified: stats.rules_unverified.is_some(),
            rules_drift: rules_drift.is_some(),
            since_storage_full: writer.since_storage_full,
            sync_failing,
            members_age,
            never_had_members: self.sync == SyncMode::On && stats.members_age_ms.is_none(),
            uptime: self.started.elapsed(),
        };
        let problems = found.problems(&self.thresholds);
        Health {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            }
            .to_string(),
            problems,
            storage_full_secs_ago: writer.since_storage_full.map(|d| d.as_secs()),
            sync_failing_secs: sync_failing.map(|d| d.as_secs()),
            members_age_secs: members_age.map(|d| d.as_secs()),
            terminal_id: self.terminal_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            sync: self.sync(),
            outbox_depth: stats.unsynced_entries,
            dead_letters: stats.dead_letters,
            rules_version: stats.rules_version,
            central_rules_version: stats.central_rules_version,
            rules_unverified: stats.rules_unverified,
            rules_drift,
            devices,
            store: StoreHealth {
                writer_alive,
                writer_idle_ms,
                error,
            },
        }
    }

    /// The devices as last set, then the watched loops read live.
    fn devices_now(&self) -> Vec<DeviceHealth> {
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        devices.extend(
            self.device_loops
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(name, status)| DeviceHealth::of(name, status)),
        );
        devices
    }
}

/// The facts a snapshot judges, gathered first so the judgement is one
/// plain function of them.
struct Found {
    writer_alive: bool,
    store_error: bool,
    loops_alive: bool,
    rules_unverified: bool,
    rules_drift: bool,
    since_storage_full: Option<Duration>,
    sync_failing: Option<Duration>,
    members_age: Option<Duration>,
    /// With sync on, no member data at all yet.
    never_had_members: bool,
    uptime: Duration,
}

impl Found {
    /// The [`PROBLEMS`] codes that hold, in that order.
    fn problems(&self, limits: &pos_config::Health) -> Vec<String> {
        // A register that never had member data is stale once it has been
        // up for the threshold: its first syncs get that long to fetch it.
        let members_stale = self
            .members_age
            .is_some_and(|age| age > limits.member_stale())
            || (self.never_had_members && self.uptime > limits.member_stale());
        let checks = [
            !self.writer_alive,
            self.store_error,
            !self.loops_alive,
            self.rules_unverified,
            self.rules_drift,
            self.since_storage_full
                .is_some_and(|since| since <= limits.storage_full()),
            self.sync_failing
                .is_some_and(|failing| failing > limits.sync_failing()),
            members_stale,
        ];
        PROBLEMS
            .iter()
            .zip(checks)
            .filter(|(_, holds)| *holds)
            .map(|(code, _)| code.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(running: bool, pending: usize, since_progress_ms: u64) -> WriterHealth {
        WriterHealth {
            running,
            pending,
            since_progress: Duration::from_millis(since_progress_ms),
            since_storage_full: None,
        }
    }

    #[test]
    fn stalled_or_stopped_writer_degrades_health() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        let ok = h.snapshot(Ok(StoreStats::default()), writer(true, 1, 5));
        assert_eq!(ok.status, "ok");
        let idle = h.snapshot(
            Ok(StoreStats::default()),
            writer(true, 0, WRITER_STALL_MS * 100),
        );
        assert_eq!(idle.status, "ok", "an idle writer is alive");
        let stalled = h.snapshot(
            Ok(StoreStats::default()),
            writer(true, 1, WRITER_STALL_MS + 1),
        );
        assert_eq!(stalled.status, "degraded");
        assert!(!stalled.store.writer_alive);
        let stopped = h.snapshot(Ok(StoreStats::default()), writer(false, 0, 0));
        assert_eq!(stopped.status, "degraded");
    }

    #[test]
    fn the_watchdog_is_fed_only_while_the_writer_is_alive() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        h.watch_device("front".into(), Arc::new(DeviceStatus::new()));
        assert!(h.alive(writer(true, 1, 5)), "busy and making progress");
        assert!(
            h.alive(writer(true, 0, WRITER_STALL_MS * 100)),
            "idle on an empty queue"
        );
        assert!(
            !h.alive(writer(true, 1, WRITER_STALL_MS + 1)),
            "work queued, no progress: stalled"
        );
        assert!(!h.alive(writer(false, 0, 0)), "stopped");
    }

    #[test]
    fn unreadable_store_degrades_health_and_says_why() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        let snap = h.snapshot(Err("disk gone".into()), writer(true, 0, 0));
        assert_eq!(snap.status, "degraded");
        assert_eq!(snap.store.error.as_deref(), Some("disk gone"));
    }

    #[test]
    fn store_figures_are_reported() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        let stats = StoreStats {
            unsynced_entries: 7,
            dead_letters: 2,
            rules_version: Some(12),
            ..StoreStats::default()
        };
        let snap = h.snapshot(Ok(stats), writer(true, 0, 0));
        assert_eq!(
            (snap.outbox_depth, snap.dead_letters, snap.rules_version),
            (7, 2, Some(12))
        );
        assert_eq!(snap.sync.state, SyncMode::Off);
    }

    #[test]
    fn status_line_names_the_key_facts() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        let stats = StoreStats {
            unsynced_entries: 4,
            dead_letters: 1,
            rules_version: Some(9),
            ..StoreStats::default()
        };
        let line = h.snapshot(Ok(stats), writer(false, 0, 0)).status_line();
        assert_eq!(
            line,
            "degraded: sync off, 4 unsynced, 1 dead letters, rules v9, store writer NOT ALIVE"
        );
    }

    #[test]
    fn unverified_rules_or_drift_degrade_health_and_say_why() {
        let h = HealthState::new("t".into(), SyncMode::On);
        let same = StoreStats {
            rules_version: Some(5),
            central_rules_version: Some(5),
            ..StoreStats::default()
        };
        let snap = h.snapshot(Ok(same.clone()), writer(true, 0, 0));
        assert_eq!((snap.status.as_str(), snap.rules_drift), ("ok", None));

        let behind = StoreStats {
            central_rules_version: Some(7),
            ..same.clone()
        };
        let snap = h.snapshot(Ok(behind), writer(true, 0, 0));
        assert_eq!(snap.status, "degraded");
        let why = snap.rules_drift.unwrap_or_default();
        assert!(
            why.contains("version 5") && why.contains("version 7"),
            "{why}"
        );

        let ahead = StoreStats {
            rules_version: Some(9999),
            ..same.clone()
        };
        let why = h
            .snapshot(Ok(ahead), writer(true, 0, 0))
            .rules_drift
            .unwrap_or_default();
        assert!(why.contains("9999 here was never published"), "{why}");

        let unverified = StoreStats {
            rules_unverified: Some("signature does not verify".into()),
            ..same
        };
        let snap = h.snapshot(Ok(unverified), writer(true, 0, 0));
        assert_eq!(snap.status, "degraded");
        assert!(snap.rules_unverified.is_some());
        assert_eq!(rules_drift(Some(3), None), None, "standalone: no drift");
    }

    #[test]
    fn a_recent_storage_full_degrades_health_for_the_configured_time() {
        let h = HealthState::new("t".into(), SyncMode::Off).with_thresholds(pos_config::Health {
            storage_full_secs: 60,
            ..pos_config::Health::default()
        });
        let mut w = writer(true, 0, 0);
        w.since_storage_full = Some(Duration::from_secs(59));
        let snap = h.snapshot(Ok(StoreStats::default()), w);
        assert_eq!(snap.status, "degraded");
        assert_eq!(snap.problems, vec!["storage_full"]);
        assert_eq!(snap.storage_full_secs_ago, Some(59));
        assert!(
            snap.status_line().ends_with(", STORAGE FULL"),
            "{}",
            snap.status_line()
        );
        w.since_storage_full = Some(Duration::from_secs(61));
        let snap = h.snapshot(Ok(StoreStats::default()), w);
        assert_eq!((snap.status.as_str(), snap.problems.len()), ("ok", 0));
    }

    #[test]
    fn stale_member_data_degrades_health_only_with_sync_on() {
        let limits = pos_config::Health {
            member_stale_secs: 100,
            ..pos_config::Health::default()
        };
        let stats = |age_ms| StoreStats {
            members_age_ms: age_ms,
            ..StoreStats::default()
        };
        let on = HealthState::new("t".into(), SyncMode::On).with_thresholds(limits);
        let snap = on.snapshot(Ok(stats(Some(100_001))), writer(true, 0, 0));
        assert_eq!(snap.problems, vec!["members_stale"]);
        assert_eq!(snap.members_age_secs, Some(100));
        assert!(snap.status_line().contains("member data STALE (100 s old)"));
        let snap = on.snapshot(Ok(stats(Some(99_000))), writer(true, 0, 0));
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        let snap = on.snapshot(Ok(stats(None)), writer(true, 0, 0));
        assert!(snap.problems.is_empty(), "just started: time to fetch it");
        let off = HealthState::new("t".into(), SyncMode::Off).with_thresholds(limits);
        let snap = off.snapshot(Ok(stats(Some(10_000_000))), writer(true, 0, 0));
        assert_eq!(
            snap.status, "ok",
            "standalone: imports are the operator's business"
        );
    }

    #[test]
    fn rules_drift_counts_as_a_problem() {
        let h = HealthState::new("t".into(), SyncMode::On);
        let stats = StoreStats {
            rules_version: Some(1),
            central_rules_version: Some(2),
            members_age_ms: Some(0),
            ..StoreStats::default()
        };
        assert_eq!(
            h.snapshot(Ok(stats), writer(true, 0, 0)).problems,
            vec!["rules_drift"]
        );
    }

    #[test]
    fn watched_device_loops_are_read_live() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        let status = Arc::new(DeviceStatus::new());
        h.watch_device("front".into(), status.clone());
        let snap = h.snapshot(Ok(StoreStats::default()), writer(true, 0, 0));
        assert_eq!(snap.status, "ok");
        assert_eq!(snap.devices.len(), 1);
        assert_eq!(snap.devices[0].name, "front");
        assert_eq!(snap.devices[0].state, "down", "not opened yet");
        assert!(snap.devices[0].loop_alive);
    }

    #[test]
    fn device_state_is_replaced_by_name() {
        let h = HealthState::new("t".into(), SyncMode::Off);
        h.set_device(DeviceHealth {
            name: "a".into(),
            state: "opening".into(),
            ..DeviceHealth::default()
        });
        h.set_device(DeviceHealth {
            name: "a".into(),
            state: "up".into(),
            ..DeviceHealth::default()
        });
        let snap = h.snapshot(Ok(StoreStats::default()), writer(true, 0, 0));
        assert_eq!(
            snap.devices,
            vec![DeviceHealth {
                name: "a".into(),
                state: "up".into(),
                ..DeviceHealth::default()
            }]
        );
    }
}
