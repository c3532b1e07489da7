//! Shared helpers for the end-to-end tests: they run the real `pos-agent`
//! and `pos-central` binaries, never the libraries.
//!
//! Each helper module is owned by the issue that needs it; add a line below.

pub mod agent_proc;
pub mod bins;
pub mod central_proc;
pub mod proxy;
