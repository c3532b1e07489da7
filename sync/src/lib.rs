//! `pos-sync`: the ledger entry and its hash chain, and the register <->
//! central protocol: message types ([`protocol`]), their versioned postcard
//! encoding ([`wire`]), bundle signatures ([`signing`]), the HTTP client
//! ([`client`]) and the retry policy ([`retry`]).
//!
//! Only this crate knows the wire format.

pub mod client;
pub mod entry;
pub mod error;
pub mod protocol;
pub mod rechain;
pub mod retry;
pub mod signing;
pub mod wire;

pub use client::{ClientConfig, SyncClient, Token};
pub use entry::{ChainBreak, ChainVerifier, Digest32, EntryKind, LedgerEntry};
pub use error::SyncError;
pub use retry::{Backoff, FailureClass, RetryPolicy};
/// Re-exported so users of [`LedgerEntry`] name the same `Uuid`.
pub use uuid;
