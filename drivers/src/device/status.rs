//! What a watchdog and the health endpoint can read about a running device loop,
//! without talking to it: lock-free counters updated by the loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shared between the device loop (writer) and the agent (readers), in an `Arc`.
#[derive(Debug)]
pub struct DeviceStatus {
    /// Base of `last_activity_ms`: atomics hold numbers, not `Instant`s.
    started: Instant,
    /// Milliseconds after `started` when the loop last went round (it wakes at least
    /// every [`super::HEARTBEAT_INTERVAL_MS`], device or not).
    last_activity_ms: AtomicU64,
    up: AtomicBool,
    scans: AtomicU64,
    payment_cards_rejected: AtomicU64,
    frames_discarded: AtomicU64,
    /// Events dropped because the channel was full (see [`super::run_device`]).
    events_dropped: AtomicU64,
}

impl Default for DeviceStatus {
    fn default() -> Self {
        DeviceStatus {
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            up: AtomicBool::new(false),
            scans: AtomicU64::new(0),
            payment_cards_rejected: AtomicU64::new(0),
            frames_discarded: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
        }
    }
}

impl DeviceStatus {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.store(ms, Ordering::Relaxed);
    }

    /// How long ago the device loop last showed life. A watchdog compares this with a
    /// few heartbeat intervals.
    pub fn since_last_activity(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// True while the device is open.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
    pub fn scans(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }
    pub fn payment_cards_rejected(&self) -> u64 {
        self.payment_cards_rejected.load(Ordering::Relaxed)
    }
    pub fn frames_discarded(&self) -> u64 {
        self.frames_discarded.load(Ordering::Relaxed)
    }
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Relaxed);
    }
    pub(crate) fn count_scan(&self) {
        self.scans.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_payment_card(&self) {
        self.payment_cards_rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_discard(&self) {
        self.frames_discarded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn count_dropped_event(&self) -> u64 {
        self.events_dropped.fetch_add(1, Ordering::Relaxed) + 1
    }
}
