//! Where the agent's logs go: [`pos_config::logging`], shared with central.
//!
//! What is logged is structured (`message` plus fields). Request bodies,
//! card numbers and tokens are never logged: handlers log codes and ids
//! only.

pub use pos_config::logging::{LoggingError, init};
