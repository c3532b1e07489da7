//! What central stores, behind a trait: [`crate::sqlite`] is the embedded
//! default, [`crate::postgres`] the backend several instances share.
//!
//! The methods are blocking (SQLite is); the HTTP layer calls them from
//! `spawn_blocking`. Every method that writes does so in one transaction.

use pos_sync::Digest32;
use pos_sync::protocol::{
    CatalogChanges, HoldAnswer, HoldRelease, HoldRequest, MemberChanges, ProgramBalance,
    ReceivedBatch, SignedBundle, UploadAnswer,
};
use serde::Serialize;
use uuid::Uuid;

use crate::apply::Refusals;
use crate::apply::adjust::Adjustment;
use crate::apply::channel::{OrderRequest, Recorded, ReturnRequest, Via};
use crate::error::CentralError;
use crate::fleet::FleetReport;
use crate::snapshot::{CatalogSnapshot, MembersSnapshot};
use crate::tokens::TokenState;

/// Most rows one admin listing returns.
pub const LISTING_ROWS_MAX: usize = 10_000;

/// A terminal as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TerminalInfo {
    pub terminal_id: String,
    pub last_seq: u64,
    pub last_hash: Digest32,
    /// RFC 3339, or null before the first upload.
    pub last_contact: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// When its token last authenticated a request (RFC 3339, to the
    /// minute: recorded at most once a minute), or null if never.
    pub last_used_at: Option<String>,
    /// `active`, `rotating` (the previous token is still in its grace
    /// period) or `revoked`.
    pub state: TokenState,
    pub revoked_at: Option<String>,
    /// Until when the token a rotation replaced is valid (RFC 3339).
    pub previous_token_valid_until: Option<String>,
    /// Its newest fleet report (`docs/sync-v2.md` §8), null before the first.
    pub report: Option<FleetReport>,
}

/// A stored entry (or consumed seq) as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredEntry {
    pub terminal_id: String,
    pub seq: u64,
    pub entry_id: Uuid,
    pub hash: Digest32,
    /// Null for a malformed entry.
    pub prev_hash: Option<Digest32>,
    pub kind: Option<String>,
    pub program: Option<String>,
    /// As the register named it: member id or card token.
    pub member: Option<String>,
    /// Who the points went to (the card's member when central knows the card).
    pub credited_member: Option<String>,
    pub points: Option<i64>,
    pub sale_id: Option<String>,
    pub return_id: Option<String>,
    pub rules_version: Option<u64>,
    pub occurred_at: Option<String>,
    pub detail: Option<String>,
    /// `applied`, `overdraft`, `rejected` or `duplicate` (an entry id already
    /// applied, arriving under a new seq: the seq is consumed, nothing counted).
    pub status: String,
    pub reason: Option<String>,
    pub received_at: String,
    /// The points central counted when they differ from the entry's own
    /// (a `corrected` answer, `docs/sync-v2.md` §3); null when it counted
    /// `points` as written.
    pub credited: Option<i64>,
}

/// A recorded conflict (sync spec §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub id: i64,
    /// How often this conflict (same terminal, kind, member, program and
    /// detail) was seen; `seq`, `entry_id` and `shortfall` are the latest's.
    pub count: i64,
    /// When first seen (also `at`, kept for older readers).
    pub first_at: String,
    /// When last seen.
    pub last_at: String,
    /// `overdraft`, `rejected`, `seq_reused` or `clock_skew`.
    pub kind: String,
    pub terminal_id: String,
    pub seq: Option<u64>,
    pub entry_id: Option<Uuid>,
    pub member: Option<String>,
    pub program: Option<String>,
    pub shortfall: Option<i64>,
    pub detail: String,
    pub at: String,
}

/// Filters of `GET /v1/admin/ledger`.
#[derive(Clone, Debug, Default)]
pub struct LedgerFilter {
    pub terminal: Option<String>,
    /// Matches the credited member or the name the register used.
    pub member: Option<String>,
    pub limit: usize,
}

/// Filters of `GET /v1/admin/conflicts`: every given one must hold.
#[derive(Clone, Debug, Default)]
pub struct ConflictFilter {
    pub kind: Option<String>,
    pub terminal: Option<String>,
    /// Seen at or after (its last time is not before this).
    pub since: Option<jiff::Timestamp>,
    /// Seen at or before (its first time is not after this).
    pub until: Option<jiff::Timestamp>,
    /// Only rows with an id below this (the next page, newest first).
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// A published bundle's metadata, for publishing.
#[derive(Clone, Debug)]
pub struct NewBundle {
    pub signed: SignedBundle,
    /// Program ids in the bundle: entries naming any other are `rejected`.
    pub programs: Vec<String>,
}

pub trait Storage: Send + Sync + 'static {
    /// Registers a terminal with the SHA-256 of its token.
    fn add_terminal(&self, terminal_id: &str, token_hash: [u8; 32]) -> Result<(), CentralError>;
    /// The terminal a token lets in at `now`, recording the use (at most
    /// once a minute); `Unauthorized` naming why for an unknown, revoked or
    /// rotated-out token past its grace ([`crate::tokens::admit`]).
    fn authenticate(
        &self,
        token_hash: [u8; 32],
        now: jiff::Timestamp,
    ) -> Result<String, CentralError>;
    /// Registered terminals (not central's own pseudo-terminal), by id.
    fn terminals(&self) -> Result<Vec<TerminalInfo>, CentralError>;
    /// Revokes every token of a terminal: 401 from its next request on.
    /// False when it already was revoked.
    fn revoke_terminal(&self, terminal_id: &str, at: jiff::Timestamp)
    -> Result<bool, CentralError>;
    /// Gives a terminal the token hashed `token_hash`; its current token
    /// stays valid `grace_ms` more (a token rotated out before is dropped).
    fn rotate_terminal(
        &self,
        terminal_id: &str,
        token_hash: [u8; 32],
        grace_ms: i64,
        at: jiff::Timestamp,
    ) -> Result<(), CentralError>;

    /// Keeps `report` as the terminal's newest fleet report.
    fn store_report(&self, terminal_id: &str, report: &FleetReport) -> Result<(), CentralError>;

    /// Applies an upload batch in one transaction (sync spec §2),
    /// recording refusals. `received_at` is central's clock, for
    /// clock-skew conflicts.
    fn apply_batch(
        &self,
        batch: &ReceivedBatch,
        received_at: jiff::Timestamp,
    ) -> Result<UploadAnswer, CentralError> {
        self.apply_batch_with(batch, received_at, Refusals::Record)
    }

    /// The same, a refused batch writing what `refusals` says (a backend
    /// passes it on to [`crate::apply::apply_batch`]).
    fn apply_batch_with(
        &self,
        batch: &ReceivedBatch,
        received_at: jiff::Timestamp,
        refusals: Refusals,
    ) -> Result<UploadAnswer, CentralError>;

    /// Stores a signed bundle as the newest version; refuses (Conflict) a
    /// version not above the current one.
    fn publish_bundle(&self, bundle: NewBundle, at: jiff::Timestamp) -> Result<(), CentralError>;
    /// The newest bundle with a version above `after`.
    fn newest_bundle(&self, after: Option<u64>) -> Result<Option<SignedBundle>, CentralError>;
    fn bundle(&self, version: u64) -> Result<Option<SignedBundle>, CentralError>;
    fn current_bundle_version(&self) -> Result<Option<u64>, CentralError>;

    /// Imports members (upsert); returns how many.
    fn import_members(&self, snapshot: &MembersSnapshot) -> Result<usize, CentralError>;
    /// Imports products (upsert); returns how many.
    fn import_catalog(&self, snapshot: &CatalogSnapshot) -> Result<usize, CentralError>;
    fn member_changes(&self, cursor: u64, limit: usize) -> Result<MemberChanges, CentralError>;
    fn catalog_changes(&self, cursor: u64, limit: usize) -> Result<CatalogChanges, CentralError>;

    /// A member's balances per program (None: unknown member or card).
    fn member_balances(
        &self,
        member_or_card: &str,
        now: jiff::Timestamp,
    ) -> Result<Option<(String, Vec<ProgramBalance>)>, CentralError>;

    fn ledger(&self, filter: &LedgerFilter) -> Result<Vec<StoredEntry>, CentralError>;
    /// The conflicts `filter` selects, newest first.
    fn conflict_page(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, CentralError>;
    /// The newest conflicts first.
    fn conflicts(&self, limit: usize) -> Result<Vec<Conflict>, CentralError> {
        self.conflict_page(&ConflictFilter {
            limit,
            ..ConflictFilter::default()
        })
    }

    /// Records an administrator's adjustment as an `adjust` entry of
    /// central's pseudo-terminal; the stored entry. `NotFound` for an
    /// unknown member, `Invalid` for an unknown program or a balance that
    /// would leave its bound; nothing is written then.
    fn adjust(
        &self,
        adjustment: &Adjustment,
        at: jiff::Timestamp,
    ) -> Result<StoredEntry, CentralError>;

    /// Records an order of the channel whose pseudo-terminal is `terminal`
    /// (`docs/channels.md`): its answer as JSON, the stored one when the
    /// same order was recorded before; 409 for another order under a used
    /// id or a redemption the member's points do not cover. Nothing is
    /// written unless it answers `Ok` the first time.
    fn channel_order(
        &self,
        terminal: &str,
        order: &OrderRequest,
        now: jiff::Timestamp,
        via: Via,
    ) -> Result<Recorded, CentralError>;
    /// Records a return of an order of the same channel, as
    /// [`Storage::channel_order`].
    fn channel_return(
        &self,
        terminal: &str,
        request: &ReturnRequest,
        now: jiff::Timestamp,
    ) -> Result<String, CentralError>;

    /// Places (or replaces) the hold of (terminal, sale, program) when the
    /// member's available points cover it (sync spec §4).
    fn place_hold(
        &self,
        request: &HoldRequest,
        now: jiff::Timestamp,
    ) -> Result<HoldAnswer, CentralError>;
    /// Releases an open hold; false when there was none.
    fn release_hold(&self, release: &HoldRelease) -> Result<bool, CentralError>;
}

/// How a bundle format is stored: the names of the signed rules file.
pub use pos_sync::signed_file::{format_from_name, format_name};
