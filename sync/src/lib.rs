//! `pos-sync`: the ledger entry and its hash chain, and the register <->
//! central protocol: message types ([`protocol`]), their versioned postcard
//! encoding ([`wire`]), bundle signatures ([`signing`]), the HTTP client
//! ([`client`]) and the retry policy ([`retry`]).
//!
//! Only this crate knows the wire format.
//!
//! ## How a register's sync worker uses it
//!
//! 1. Build one [`SyncClient`] from the config: [`ClientConfig::new`] with the
//!    URL and a [`Token`] read from the token file or `$CREDENTIALS_DIRECTORY`,
//!    plus `ca_file` and `allow_insecure_http`. A [`SyncError::Config`] here
//!    means sync is misconfigured: show it in health, do not retry.
//! 2. **Upload.** Take the unsynced entries in seq order, cut the first batch
//!    with [`wire::batch_prefix_len`] (counting each entry's document, `docs/sync-v2.md`), assemble it with [`protocol::UploadBatch::assemble`], send it with [`SyncClient::upload`],
//!    then act on [`protocol::UploadAnswer::outcome`]:
//!    - `Entries(results)`, one per entry in order: every result but
//!      `Rejected` ([`protocol::EntryResult::is_synced`]) marks the entry
//!      synced; `Overdraft` is also shown as a conflict; `Rejected { reason }`
//!      makes it a dead letter. `balances` refresh the member cache.
//!    - `Gap { expected }`: central lacks entries before the batch; resend
//!      from `expected` (the ledger is append-only, so they are still there).
//!    - `SeqReused { server_high, server_high_hash }`: re-number the unsynced
//!      entries with [`rechain::renumber_after`], store them, resend.
//! 3. **Rules.** [`SyncClient::newest_rules`] with the cached version, then
//!    [`signing::open_bundle`] with the configured key; on any error keep the
//!    cached bundle and report it. Old versions for returns:
//!    [`SyncClient::rules_version`] + [`signing::verify_signature`] +
//!    [`signing::parse_verified`].
//! 4. **Members and catalog.** [`SyncClient::member_changes`] /
//!    [`SyncClient::catalog_changes`] from the stored cursor until `more` is
//!    false, storing each page's changes and `next_cursor` together. A member
//!    download that succeeded is what makes member data *fresh*.
//! 5. **Online redemption** while fresh: [`SyncClient::place_hold`] before
//!    committing the sale (its redeem entry later settles the hold), or
//!    [`SyncClient::release_hold`] if the sale is abandoned.
//! 6. **Failures.** Feed every error to one [`Backoff`] per loop
//!    ([`Backoff::next_delay`] with a thread RNG; [`Backoff::reset`] on
//!    success). [`SyncError::is_auth`] is reported as an auth failure in
//!    health; [`SyncError::is_bug_report`] is logged with its message (the
//!    server's body). Sync never blocks a sale: the worker only reads the
//!    store and writes sync state.

pub mod client;
pub mod entry;
pub mod error;
pub mod protocol;
pub mod rechain;
pub mod retry;
pub mod signed_file;
pub mod signing;
pub mod snapshot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use client::{ClientConfig, SyncClient, Token};
pub use entry::{ChainBreak, ChainVerifier, Digest32, EntryKind, LedgerEntry};
pub use error::SyncError;
pub use retry::{Backoff, FailureClass, RetryPolicy};
/// Re-exported so users of [`LedgerEntry`] name the same `Uuid`.
pub use uuid;
