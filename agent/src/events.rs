//! The agent's event bus: what `GET /v1/events` streams to the POS as
//! Server-Sent Events.
//!
//! Its own module, below the API: the publishers (the checkout session,
//! the device forwarder) and the one subscriber route (`api::routes`)
//! import it, so neither the session nor the devices know the HTTP layer.
//!
//! A `tokio::sync::broadcast` channel with a bounded buffer: publishers
//! (the checkout session; scanners, card readers and device state) never
//! wait for a slow POS. A subscriber that falls more than
//! [`EVENTS_BUFFER_MAX`] events behind loses the oldest ones and is told so
//! with a `lagged` event, then continues with the newest.

use serde::Serialize;
use tokio::sync::broadcast;

/// Events buffered per subscriber before the oldest are dropped. A POS
/// reads events as they come; 256 is minutes of scanning.
pub const EVENTS_BUFFER_MAX: usize = 256;

/// One event. Serialised as the SSE `data:` line; [`Event::name`] is the
/// SSE `event:` field.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Event {
    /// The checkout session changed; the payload is `GET /v1/session`'s answer.
    Session(serde_json::Value),
    /// A subscriber fell behind and `missed` events were dropped for it.
    Lagged { missed: u64 },
    /// A scanner or card reader: a scan and what it did, device up/down,
    /// a discarded frame, a rejected payment card ([`crate::devices::notice`]).
    Device(crate::devices::DeviceNotice),
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Session(_) => "session",
            Event::Lagged { .. } => "lagged",
            Event::Device(notice) => notice.sse_name(),
        }
    }
}

/// The publishing side, cheap to clone; every task that emits events holds one.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(EVENTS_BUFFER_MAX);
        EventBus { sender }
    }

    /// Sends to every current subscriber; with none, the event is dropped
    /// (events are notifications, not records: the store holds the truth).
    pub fn publish(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
