//! `pos-agent` library: the store and ledger, checkout session, event bus,
//! local API, devices, sync worker and daemon wiring. The `pos-agent` binary
//! is the thin CLI of the `pos-agent-cli` package on top; the demo is the
//! `pos-demo` crate. This library depends on neither, nor on central.
pub mod api;
pub mod daemon;
pub mod devices;
pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod session;
pub mod store;
pub mod sync_worker;
