//! `[health]`: when `GET /v1/health` (and `STATUS=`, `pos-agent status`, the
//! `pos_agent_health_*` gauges) says `degraded` for conditions that build up
//! over time. Without these, a register whose disk is full or whose sync has
//! failed for an hour looked `ok` while it refused sales or sold on old data.

use std::time::Duration;

use crate::reader::{Ctx, Table};

pub(crate) const KEYS: &[&str] = &[
    "storage_full_secs",
    "sync_failing_secs",
    "member_stale_secs",
];

/// A `storage_full` answer keeps health degraded this long (it is
/// refreshed by every write that hits the full disk again).
pub const DEFAULT_STORAGE_FULL_SECS: u64 = 300;
/// Sync without a success for this long (since the last success, or since
/// the start) is degraded: ten sync intervals at the default, long enough
/// that one flaky minute of network does not page anyone.
pub const DEFAULT_SYNC_FAILING_SECS: u64 = 300;
/// Member data older than this is degraded: balances and blocks the
/// register sells on are then an hour behind central.
pub const DEFAULT_MEMBER_STALE_SECS: u64 = 3_600;
/// Largest of the three: one week.
pub const HEALTH_SECS_MAX: u64 = 604_800;

/// The thresholds; all in seconds, each in `1..=`[`HEALTH_SECS_MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    pub storage_full_secs: u64,
    /// Only with `[central]`.
    pub sync_failing_secs: u64,
    /// Only with `[central]`.
    pub member_stale_secs: u64,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            storage_full_secs: DEFAULT_STORAGE_FULL_SECS,
            sync_failing_secs: DEFAULT_SYNC_FAILING_SECS,
            member_stale_secs: DEFAULT_MEMBER_STALE_SECS,
        }
    }
}

impl Health {
    pub fn storage_full(&self) -> Duration {
        Duration::from_secs(self.storage_full_secs)
    }

    pub fn sync_failing(&self) -> Duration {
        Duration::from_secs(self.sync_failing_secs)
    }

    pub fn member_stale(&self) -> Duration {
        Duration::from_secs(self.member_stale_secs)
    }
}

pub(crate) fn read(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Health {
    let mut secs = |key: &'static str, default: u64| {
        table
            .field(key)
            .and_then(|f| f.integer(ctx, 1..=HEALTH_SECS_MAX as i64))
            .map_or(default, |n| n as u64)
    };
    let health = Health {
        storage_full_secs: secs("storage_full_secs", DEFAULT_STORAGE_FULL_SECS),
        sync_failing_secs: secs("sync_failing_secs", DEFAULT_SYNC_FAILING_SECS),
        member_stale_secs: secs("member_stale_secs", DEFAULT_MEMBER_STALE_SECS),
    };
    table.finish(ctx);
    health
}
