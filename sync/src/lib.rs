//! `pos-sync`: the ledger entry and its hash chain, and (issue 4) the
//! register <-> central wire protocol, HTTP client and retry policy.

pub mod entry;

pub use entry::{ChainBreak, ChainVerifier, Digest32, EntryKind, LedgerEntry};
