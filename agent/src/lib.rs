//! `pos-agent` library: the store and ledger, checkout session, local API,
//! sync worker and daemon wiring. The binary (`main.rs`) is a thin CLI on top.
pub mod api;
pub mod daemon;
pub mod demo;
pub mod devices;
pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod session;
pub mod store;
pub mod sync_worker;
