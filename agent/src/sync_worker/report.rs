//! What the sync worker tells health, `GET /v1/sync` and `pos-agent status`:
//! one [`SyncReport`] value, replaced piece by piece as the worker runs.
//!
//! It carries no secret: errors are `SyncError` texts (which never include
//! the token) and entries are named by seq, entry id, member and program.

use serde::{Deserialize, Serialize};

use crate::store::sync::DeadLetter;

/// Overdrafts remembered for display; older ones are only counted (central
/// lists them all in its conflicts).
pub const RECENT_OVERDRAFTS_MAX: usize = 20;
/// Dead letters shown in the report (the newest first); the store keeps all.
pub const REPORT_DEAD_LETTERS_MAX: u32 = 20;

/// Where the worker is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// Started, no cycle finished yet.
    #[default]
    Starting,
    /// A cycle is running (upload, then downloads).
    Syncing,
    /// The last cycle succeeded; the next one comes at the interval or on
    /// `POST /v1/sync/now`.
    Idle,
    /// The last cycle failed on something transient (network, 5xx, 429);
    /// retried with backoff.
    Retrying,
    /// Central refused the token (401/403) or it cannot be read; retried
    /// slowly, and at once on `POST /v1/sync/now` (after fixing the token).
    AuthFailed,
    /// Something a retry cannot fix soon (a 4xx bug report, a protocol
    /// error, a bad config); retried slowly.
    Failing,
}

impl SyncPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::Starting => "starting",
            SyncPhase::Syncing => "syncing",
            SyncPhase::Idle => "idle",
            SyncPhase::Retrying => "retrying",
            SyncPhase::AuthFailed => "auth_failed",
            SyncPhase::Failing => "failing",
        }
    }
}

/// An `overdraft` answer: the sale stood, central's balance went negative.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdraftNote {
    pub seq: u64,
    pub entry_id: String,
    pub member: String,
    pub program: String,
    /// Points of the debit central could not cover.
    pub shortfall: i64,
}

/// The worker's state as health shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    pub phase: SyncPhase,
    /// Central's base URL (no secret in it: the config refuses user info).
    pub central: String,
    /// Register clock (RFC 3339) when the last cycle started / succeeded.
    pub last_attempt_at: Option<String>,
    pub last_success_at: Option<String>,
    /// The last failure, for humans; cleared by a success.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Milliseconds the worker waits before its next attempt (as of the
    /// last failure or success).
    pub next_attempt_in_ms: Option<u64>,
    /// Central refused our token (401/403) or the token cannot be read.
    pub auth_failure: bool,
    /// Entries central accepted (applied, duplicate or overdraft) since start.
    pub entries_synced: u64,
    /// Entries central rejected since start (now dead letters).
    pub entries_rejected: u64,
    /// Entries central credited with another figure than this register's
    /// (`corrected`, `docs/sync-v2.md` §3) since start: synced, central's
    /// figure beside each in `GET /v1/ledger`.
    pub entries_corrected: u64,
    /// `seq_reused` rebases done since start.
    pub rebases: u64,
    /// Overdrafts answered since start; the newest few in `overdrafts`.
    pub overdrafts_total: u64,
    pub overdrafts: Vec<OverdraftNote>,
    /// Why the last downloaded rules bundle was refused (unsigned, badly
    /// signed, older, invalid); cleared when a bundle is accepted.
    pub rules_refused: Option<String>,
    /// Register clock of the last successful member download.
    pub members_downloaded_at: Option<String>,
    /// The newest dead letters with central's reasons.
    pub dead_letters: Vec<DeadLetter>,
}

impl SyncReport {
    /// One line for humans.
    pub fn detail(&self) -> String {
        let mut text = match self.phase {
            SyncPhase::Starting => format!("starting; central {}", self.central),
            SyncPhase::Syncing => format!("syncing with {}", self.central),
            SyncPhase::Idle => format!(
                "in sync with {} (last success {})",
                self.central,
                self.last_success_at.as_deref().unwrap_or("never")
            ),
            SyncPhase::Retrying | SyncPhase::Failing | SyncPhase::AuthFailed => {
                let what = match self.phase {
                    SyncPhase::AuthFailed => "AUTH FAILURE",
                    SyncPhase::Failing => "failing",
                    _ => "retrying",
                };
                format!(
                    "{what} ({} in a row): {}; last success {}",
                    self.consecutive_failures,
                    self.last_error.as_deref().unwrap_or("unknown error"),
                    self.last_success_at.as_deref().unwrap_or("never")
                )
            }
        };
        if let Some(reason) = &self.rules_refused {
            text.push_str(&format!("; rules bundle refused: {reason}"));
        }
        text
    }

    pub(crate) fn note_overdraft(&mut self, note: OverdraftNote) {
        self.overdrafts_total += 1;
        self.overdrafts.insert(0, note);
        self.overdrafts.truncate(RECENT_OVERDRAFTS_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_names_auth_failures_and_refused_rules() {
        let mut r = SyncReport {
            central: "https://c.example".into(),
            phase: SyncPhase::AuthFailed,
            consecutive_failures: 2,
            last_error: Some("central answered HTTP 401".into()),
            rules_refused: Some("signature does not verify".into()),
            ..SyncReport::default()
        };
        let d = r.detail();
        assert!(d.contains("AUTH FAILURE (2 in a row)"), "{d}");
        assert!(d.contains("HTTP 401"), "{d}");
        assert!(d.contains("rules bundle refused: signature"), "{d}");
        r.phase = SyncPhase::Idle;
        r.rules_refused = None;
        r.last_success_at = Some("2026-11-25T10:00:00+01:00".into());
        assert_eq!(
            r.detail(),
            "in sync with https://c.example (last success 2026-11-25T10:00:00+01:00)"
        );
    }

    #[test]
    fn only_the_newest_overdrafts_are_kept_but_all_are_counted() {
        let mut r = SyncReport::default();
        for seq in 0..(RECENT_OVERDRAFTS_MAX as u64 + 5) {
            r.note_overdraft(OverdraftNote {
                seq,
                entry_id: String::new(),
                member: "M".into(),
                program: "main".into(),
                shortfall: 1,
            });
        }
        assert_eq!(r.overdrafts_total, RECENT_OVERDRAFTS_MAX as u64 + 5);
        assert_eq!(r.overdrafts.len(), RECENT_OVERDRAFTS_MAX);
        assert_eq!(r.overdrafts[0].seq, RECENT_OVERDRAFTS_MAX as u64 + 4);
    }
}
