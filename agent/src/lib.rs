//! `pos-agent` library: the store and ledger, checkout session, local API,
//! sync worker and daemon wiring. The binary (`main.rs`) is a thin CLI on top.
pub mod api;
pub mod health;
pub mod metrics;
pub mod session;
pub mod daemon;
pub mod logging;
pub mod model;
pub mod store;
