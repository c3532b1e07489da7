//! The register's part of central's fleet view (`docs/sync-v2.md` §8): a
//! [`TerminalReport`] made from a health snapshot after each sync cycle.
//!
//! Every text is cut to the protocol's bound and screened by the payment
//! card guard (a sync error may quote what central said, a device name is
//! the operator's): the report leaves the register, so it must hold
//! nothing that may not.

use pos_codes::payment_card::holds_payment_card;
use pos_sync::protocol::{
    DeviceReport, REPORT_DEVICES_MAX, REPORT_PROBLEMS_MAX, REPORT_TEXT_BYTES_MAX, TerminalReport,
    cut_text,
};

use crate::health::Health;

/// The report of `health`, with the last failed cycle's error and the
/// register's clock `now` (RFC 3339).
pub fn report(
    terminal_id: &str,
    health: &Health,
    last_error: Option<&str>,
    now: &str,
) -> TerminalReport {
    TerminalReport {
        terminal_id: terminal_id.to_string(),
        agent_version: text(&health.version),
        sent_at: now.to_string(),
        health: text(&health.status),
        problems: health
            .problems
            .iter()
            .take(REPORT_PROBLEMS_MAX)
            .map(|p| text(p))
            .collect(),
        outbox_depth: health.outbox_depth,
        dead_letters: health.dead_letters,
        rules_version: health.rules_version,
        devices: health
            .devices
            .iter()
            .take(REPORT_DEVICES_MAX)
            .map(|d| DeviceReport {
                name: text(&d.name),
                state: if d.loop_alive {
                    text(&d.state)
                } else {
                    "stuck".to_string()
                },
            })
            .collect(),
        last_error: last_error.map(text),
    }
}

/// Bounded, and a card number masked out.
fn text(value: &str) -> String {
    let cut = cut_text(value, REPORT_TEXT_BYTES_MAX);
    if holds_payment_card(&cut) {
        return "(withheld: looked like a payment card number)".to_string();
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::DeviceHealth;

    #[test]
    fn texts_are_bounded_cards_withheld_and_stuck_loops_named() {
        let health = Health {
            status: "degraded".into(),
            version: "0.1.0".into(),
            outbox_depth: 4,
            devices: vec![
                DeviceHealth {
                    name: "front".into(),
                    state: "up".into(),
                    loop_alive: false,
                    ..DeviceHealth::default()
                },
                DeviceHealth {
                    name: "4111 1111 1111 1111".into(),
                    state: "down".into(),
                    loop_alive: true,
                    ..DeviceHealth::default()
                },
            ],
            ..Health::default()
        };
        let long = "é".repeat(REPORT_TEXT_BYTES_MAX);
        let r = report("t-1", &health, Some(&long), "2026-12-03T12:00:00Z");
        assert_eq!(r.outbox_depth, 4);
        assert_eq!(r.devices[0].state, "stuck");
        assert_eq!(r.devices[1].state, "down");
        assert!(!r.devices[1].name.contains("4111"));
        let error = r.last_error.unwrap();
        assert!(error.len() <= REPORT_TEXT_BYTES_MAX);
        assert!(error.chars().all(|c| c == 'é'));
    }
}
