//! The fleet view (`docs/sync-v2.md` §8): the newest report of each
//! register, what central makes of it (the clock offset), and the admin
//! filters IT asks first — which registers are silent, which have a
//! backlog, which trade on old rules.
//!
//! A report is a register's word about itself: it is checked for bounds
//! and payment card numbers like everything else a register sends, and it
//! changes nothing but this view.

use pos_sync::protocol::{
    REPORT_DEVICES_MAX, REPORT_PROBLEMS_MAX, REPORT_TEXT_BYTES_MAX, TerminalReport,
};
use serde::{Deserialize, Serialize};

use crate::error::CentralError;
use crate::storage::TerminalInfo;

/// A register's newest report as central keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetReport {
    /// Central's clock when the report arrived (RFC 3339).
    pub received_at: String,
    /// The register's clock minus central's, in ms (positive: the register
    /// is ahead), transit time included; null when `sent_at` did not parse.
    pub clock_offset_ms: Option<i64>,
    pub agent_version: String,
    pub health: String,
    pub problems: Vec<String>,
    pub outbox_depth: u64,
    pub dead_letters: u64,
    pub rules_version: Option<u64>,
    pub devices: Vec<FleetDevice>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetDevice {
    pub name: String,
    pub state: String,
}

impl FleetReport {
    /// Checks `report` (bounds, no card numbers) and dates it `now`.
    pub fn accept(
        report: &TerminalReport,
        now: jiff::Timestamp,
    ) -> Result<FleetReport, CentralError> {
        if report.devices.len() > REPORT_DEVICES_MAX {
            return Err(CentralError::Invalid(format!(
                "a report lists at most {REPORT_DEVICES_MAX} devices, got {}",
                report.devices.len()
            )));
        }
        if report.problems.len() > REPORT_PROBLEMS_MAX {
            return Err(CentralError::Invalid(format!(
                "a report lists at most {REPORT_PROBLEMS_MAX} problems, got {}",
                report.problems.len()
            )));
        }
        let mut texts: Vec<(&str, &str)> = vec![
            ("agent_version", &report.agent_version),
            ("sent_at", &report.sent_at),
            ("health", &report.health),
        ];
        texts.extend(report.problems.iter().map(|p| ("problems", p.as_str())));
        for d in &report.devices {
            texts.push(("devices.name", &d.name));
            texts.push(("devices.state", &d.state));
        }
        if let Some(e) = &report.last_error {
            texts.push(("last_error", e));
        }
        for (field, text) in texts {
            check_text(field, text)?;
        }
        let clock_offset_ms = report
            .sent_at
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|sent| (sent.as_millisecond()).saturating_sub(now.as_millisecond()));
        Ok(FleetReport {
            received_at: now.to_string(),
            clock_offset_ms,
            agent_version: report.agent_version.clone(),
            health: report.health.clone(),
            problems: report.problems.clone(),
            outbox_depth: report.outbox_depth,
            dead_letters: report.dead_letters,
            rules_version: report.rules_version,
            devices: report
                .devices
                .iter()
                .map(|d| FleetDevice {
                    name: d.name.clone(),
                    state: d.state.clone(),
                })
                .collect(),
            last_error: report.last_error.clone(),
        })
    }
}

impl FleetReport {
    /// As stored (a JSON text column on both backends).
    pub fn to_json(&self) -> Result<String, CentralError> {
        serde_json::to_string(self)
            .map_err(|e| CentralError::Corrupt(format!("encoding a fleet report: {e}")))
    }

    pub fn from_json(text: &str) -> Result<FleetReport, CentralError> {
        serde_json::from_str(text)
            .map_err(|e| CentralError::Corrupt(format!("a stored fleet report: {e}")))
    }
}

fn check_text(field: &str, text: &str) -> Result<(), CentralError> {
    if text.len() > REPORT_TEXT_BYTES_MAX {
        return Err(CentralError::Invalid(format!(
            "report {field} is {} bytes; at most {REPORT_TEXT_BYTES_MAX}",
            text.len()
        )));
    }
    if crate::guard::is_payment_card(text) {
        return Err(CentralError::Invalid(format!(
            "report {field} holds a payment card number: refused and not stored"
        )));
    }
    Ok(())
}

/// Filters of `GET /v1/admin/terminals`: every given one must hold.
#[derive(Clone, Copy, Debug, Default)]
pub struct FleetFilter {
    /// Silent: no upload for more than this many minutes (or never).
    pub silent_mins: Option<u64>,
    /// A reported outbox deeper than this.
    pub backlog_above: Option<u64>,
    /// Trading on rules older than central's newest (or none reported).
    pub rules_behind: bool,
}

impl FleetFilter {
    pub fn matches(
        &self,
        terminal: &TerminalInfo,
        now: jiff::Timestamp,
        newest_rules: Option<u64>,
    ) -> bool {
        let silent = self
            .silent_mins
            .is_none_or(|mins| is_silent(terminal, now, mins));
        let backlog = self
            .backlog_above
            .is_none_or(|m| terminal.report.as_ref().is_some_and(|r| r.outbox_depth > m));
        let behind = !self.rules_behind || rules_behind(terminal, newest_rules);
        silent && backlog && behind
    }
}

/// No upload for more than `mins` minutes, or none ever.
pub fn is_silent(terminal: &TerminalInfo, now: jiff::Timestamp, mins: u64) -> bool {
    let Some(last) = terminal
        .last_contact
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return true;
    };
    let silent_ms = now.as_millisecond().saturating_sub(last.as_millisecond());
    silent_ms > i64::try_from(mins.saturating_mul(60_000)).unwrap_or(i64::MAX)
}

/// Its reported rules are older than `newest` (or it reported none while
/// central has some).
pub fn rules_behind(terminal: &TerminalInfo, newest: Option<u64>) -> bool {
    let Some(newest) = newest else {
        return false;
    };
    terminal
        .report
        .as_ref()
        .and_then(|r| r.rules_version)
        .is_none_or(|v| v < newest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pos_sync::protocol::DeviceReport;

    fn report() -> TerminalReport {
        TerminalReport {
            terminal_id: "t-1".into(),
            agent_version: "0.1.0".into(),
            sent_at: "2026-12-03T12:00:05Z".into(),
            health: "ok".into(),
            outbox_depth: 3,
            devices: vec![DeviceReport {
                name: "scanner".into(),
                state: "up".into(),
            }],
            ..TerminalReport::default()
        }
    }

    #[test]
    fn the_clock_offset_is_the_registers_clock_minus_centrals() {
        let now: jiff::Timestamp = "2026-12-03T12:00:00Z".parse().unwrap();
        let fleet = FleetReport::accept(&report(), now).unwrap();
        assert_eq!(fleet.clock_offset_ms, Some(5_000));
        assert_eq!(fleet.received_at, "2026-12-03T12:00:00Z");
    }

    #[test]
    fn oversized_or_card_bearing_reports_are_refused() {
        let now = jiff::Timestamp::now();
        let mut r = report();
        r.last_error = Some("x".repeat(REPORT_TEXT_BYTES_MAX + 1));
        assert!(FleetReport::accept(&r, now).is_err());
        let mut r = report();
        r.devices[0].name = "4111 1111 1111 1111".into();
        let err = FleetReport::accept(&r, now).unwrap_err().to_string();
        assert!(err.contains("devices.name"), "{err}");
        assert!(!err.contains("4111"), "{err}");
        let mut r = report();
        r.devices = vec![DeviceReport::default(); REPORT_DEVICES_MAX + 1];
        assert!(FleetReport::accept(&r, now).is_err());
    }
}
