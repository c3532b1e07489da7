//! What the devices tell the POS on `GET /v1/events`: one [`DeviceNotice`]
//! per driver event, the SSE `event:` name equal to its `"type"`.
//!
//! | SSE event | data |
//! |---|---|
//! | `device_up` | `{"type", "device"}` |
//! | `device_down` | `{"type", "device", "reason"}` |
//! | `frame_discarded` | `{"type", "device", "reason": {"kind": "too_long" \| "stalled" \| "missing_prefix", ...}}` |
//! | `payment_card_rejected` | `{"type", "device"}`: nothing of the card |
//! | `scan` | `{"type", "device", "role", "decoded", "outcome"}` |
//!
//! A scan's `decoded` is what `pos-agent decode` prints; its `outcome` says
//! what the agent did with it ([`ScanOutcome`]). A scan that changed the
//! checkout is also followed by the usual `session` event.

use pos_codes::Decoded;
use pos_drivers::{DiscardReason, ScanRole};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::model::MemberRef;

/// One device event as the POS sees it. Carries no payment-card data: the
/// drivers drop such reads before they become events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeviceNotice {
    DeviceUp {
        device: String,
    },
    DeviceDown {
        device: String,
        reason: String,
    },
    FrameDiscarded {
        device: String,
        reason: DiscardReason,
    },
    PaymentCardRejected {
        device: String,
    },
    Scan {
        device: String,
        role: ScanRole,
        decoded: Decoded,
        outcome: ScanOutcome,
    },
}

impl DeviceNotice {
    /// The SSE event name (the same as the JSON `"type"`).
    pub fn sse_name(&self) -> &'static str {
        match self {
            DeviceNotice::DeviceUp { .. } => "device_up",
            DeviceNotice::DeviceDown { .. } => "device_down",
            DeviceNotice::FrameDiscarded { .. } => "frame_discarded",
            DeviceNotice::PaymentCardRejected { .. } => "payment_card_rejected",
            DeviceNotice::Scan { .. } => "scan",
        }
    }
}

/// What the agent did with a scan, as `"outcome": {"kind": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScanOutcome {
    /// A line was added (or an identical line's quantity raised).
    LineAdded {
        line: u32,
        sku: String,
        qty: Decimal,
        unit_price: Decimal,
    },
    /// The member card was attached to the checkout: `{"id": ...}` when the
    /// member cache knows the card, else `{"card": ...}` (the card token).
    MemberAttached { member: MemberRef },
    /// No catalog product under any key tried (in order); the checkout
    /// lists `code` under `unknown_products`.
    UnknownProduct { code: String, tried: Vec<String> },
    /// The scan did not decode (`"valid": false`); nothing changed.
    Invalid { error: String },
    /// The scan holds nothing the checkout uses (an add-on alone, a gift
    /// card account number); nothing changed.
    Ignored { reason: String },
    /// The checkout refused the change (e.g. `too_many_lines`,
    /// `invalid_qty`); `code` is the API error code.
    Refused { code: String, message: String },
    /// The store could not answer; nothing changed. `code` is the API
    /// error code.
    Failed { code: String, message: String },
}

impl ScanOutcome {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ScanOutcome::LineAdded { .. } => "line_added",
            ScanOutcome::MemberAttached { .. } => "member_attached",
            ScanOutcome::UnknownProduct { .. } => "unknown_product",
            ScanOutcome::Invalid { .. } => "invalid",
            ScanOutcome::Ignored { .. } => "ignored",
            ScanOutcome::Refused { .. } => "refused",
            ScanOutcome::Failed { .. } => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_name_is_the_json_type() {
        let notices = [
            DeviceNotice::DeviceUp { device: "a".into() },
            DeviceNotice::DeviceDown {
                device: "a".into(),
                reason: "gone".into(),
            },
            DeviceNotice::FrameDiscarded {
                device: "a".into(),
                reason: DiscardReason::MissingPrefix,
            },
            DeviceNotice::PaymentCardRejected { device: "a".into() },
            DeviceNotice::Scan {
                device: "a".into(),
                role: ScanRole::Item,
                decoded: Decoded::PaymentCard,
                outcome: ScanOutcome::Ignored { reason: "x".into() },
            },
        ];
        for notice in notices {
            let json = serde_json::to_value(&notice).expect("serialisable");
            assert_eq!(json["type"], notice.sse_name(), "{json}");
            assert_eq!(json["device"], "a");
        }
    }

    #[test]
    fn outcome_serialises_with_a_kind_tag() {
        let outcome = ScanOutcome::MemberAttached {
            member: MemberRef::Id("M-1".into()),
        };
        assert_eq!(
            serde_json::to_value(&outcome).expect("serialisable"),
            serde_json::json!({"kind": "member_attached", "member": {"id": "M-1"}})
        );
        assert_eq!(outcome.kind(), "member_attached");
    }
}
