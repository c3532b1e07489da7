//! Central's HTTP API (sync spec §5): the sync API for registers (postcard,
//! terminal bearer token) and the admin API (JSON, admin bearer token).
//!
//! Every error is JSON `{"error": {"code", "message"}}`, including axum's
//! own rejections (bad query, body too large), which are mapped here
//! ([`error`]). Storage calls block (SQLite), so they run on
//! `spawn_blocking`. The token is checked before anything else of a
//! request is read: [`auth`]'s extractors run as a route layer over every
//! route of `sync_api` (terminal token) and `admin_api` (admin token).
//! [`serve`] runs a router on `pos_http`'s serving loop, the one the
//! agent uses too, within an [`Edge`]: the sync API ([`sync_router`],
//! [`SYNC_EDGE`]) and the admin API ([`admin_router`], [`ADMIN_EDGE`],
//! loopback by default) each on its own listener with its own bounds.
//! Bodies are read within a size bound per route (`DefaultBodyLimit`), a
//! total time and a minimum rate (`pos_http::BodyBoundsLayer`, 408 when
//! missed); connections are bounded in total and per client address, and
//! a saturated listener sheds with 503 and `Retry-After`. What refused
//! uploads (`gap`, `seq_reused`) write is budgeted per terminal
//! ([`refusals`]).
//!
//! | route | token | body → answer |
//! |---|---|---|
//! | `POST /v1/sync/upload` | terminal | postcard `UploadBatch` (≤ 1 MiB) → `UploadAnswer`; the batch's terminal must be the token's (else 403) |
//! | `GET /v1/sync/rules?after=V` | terminal | newest `SignedBundle` above V, or 204 |
//! | `GET /v1/sync/rules/{version}` | terminal | that `SignedBundle`, or 404 |
//! | `GET /v1/sync/members?cursor=C&limit=N` | terminal | `MemberChanges` |
//! | `GET /v1/sync/catalog?cursor=C&limit=N` | terminal | `CatalogChanges` |
//! | `POST /v1/sync/holds` | terminal | `HoldRequest` → `HoldAnswer` |
//! | `POST /v1/sync/holds/release` | terminal | `HoldRelease` → 204 |
//! | `POST /v1/channel/orders` | channel | JSON order → 200 answer (`docs/channels.md`); the same order again → the same answer; 409 with a code (`order_id_reused`, `insufficient_points`, …) |
//! | `POST /v1/channel/returns` | channel | JSON return of an order of the channel → 200 answer |
//! | `POST /v1/channel/holds`, `/v1/channel/holds/release` | channel | an online checkout's redemptions held for its order, released when abandoned |
//! | `POST /v1/admin/rules` | admin | bundle JSON (or TOML with a `toml` content type) → 201 `{"version", "programs"}`; 409 if not newer |
//! | `POST /v1/admin/members`, `/v1/admin/catalog` | admin | snapshot JSON (agent spec §2), or CSV as `text/csv` (`snapshot_csv`) → `{"imported": n}` |
//! | `GET /v1/admin/members/{id or card}` | admin | `{"member", "programs": {P: {"balance", "available", "pending"}}}` |
//! | `GET /v1/admin/ledger?terminal=&member=&limit=` | admin | `{"entries": [...]}` in (terminal, seq) order |
//! | `GET /v1/admin/terminals` | admin | `{"terminals": [{"terminal_id", "last_seq", "last_hash", "last_contact", "created_at", "last_used_at", "state", "revoked_at", "previous_token_valid_until"}]}` |
//! | `GET /v1/admin/conflicts?kind=&terminal=&since=&until=&before=&limit=` | admin | `{"conflicts": [{..., "count", "first_at", "last_at"}], "next_before"}`, newest first; a bad value is 400 naming the parameter |
//! | `POST /v1/admin/adjustments` | admin | `{"member", "program", "points", "reason", "author"}` → 201 `{"entry", "programs"}`; 400 naming a bad field, 404 for an unknown member |

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::middleware::from_extractor_with_state;
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use pos_sync::wire;
use tokio::net::TcpListener;

use crate::error::CentralError;
use crate::storage::Storage;

mod admin_api;
pub mod auth;
mod channel_api;
pub mod error;
pub mod import;
pub mod metrics;
pub mod refusals;
mod sync_api;

pub use auth::{AuthAdmin, AuthChannel, AuthTerminal};
pub use error::ApiError;
use error::ApiResult;

/// Largest member or catalog snapshot accepted: 64 MiB.
pub const SNAPSHOT_BYTES_MAX: usize = 64 * 1_048_576;
/// Largest hold request body: the hold and its sale's basket
/// (`docs/sync-v2.md` §5), which is bounded like a document.
pub const HOLD_BYTES_MAX: usize = pos_sync::protocol::DOCUMENT_BYTES_MAX + 4_096;
/// Most connections the sync listener serves at once.
pub const CONNECTIONS_MAX: usize = 512;
/// Most connections of one client address on the sync listener: a store's
/// registers behind one NAT address fit, one client cannot take them all.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 64;
/// Connections accepted beyond [`CONNECTIONS_MAX`] only to be answered
/// 503 with `Retry-After` ([`RETRY_AFTER_S`]), so registers back off at
/// once instead of timing out in the backlog.
pub const SHED_CONNECTIONS_MAX: usize = 64;
/// The `Retry-After` of a shed answer, in seconds (the agent honours it).
pub const RETRY_AFTER_S: u64 = 2;
/// A TLS handshake that takes longer is dropped (slowloris guard).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Time a client has to send a request's headers (and the longest a
/// keep-alive connection stays idle): a few seconds, so a client that
/// trickles its headers holds a slot only that long.
pub const HEADER_READ_TIMEOUT_MS: u64 = 5_000;
/// At shutdown, requests in flight get this long to finish (an upload is
/// one transaction of at most 1 MiB); connections still open then are
/// dropped. A register whose answer is lost retries the same batch, which
/// central applies exactly once.
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Pause after a failed `accept` (out of file descriptors) before trying
/// again.
pub const ACCEPT_RETRY_MS: u64 = 100;
/// After an answer, time central keeps discarding what the client still
/// sends (a refused body), so that the client reads the answer.
pub const LINGER_TIMEOUT_MS: u64 = 5_000;
/// Most bytes discarded that way.
pub const LINGER_BYTES_MAX: u64 = 16 * 1_048_576;
/// A sync request's body (at most 1 MiB) must arrive within this...
pub const SYNC_BODY_TIMEOUT_MS: u64 = 30_000;
/// ...and, after [`BODY_RATE_GRACE_MS`], at least this fast (bytes/s).
pub const SYNC_BODY_BYTES_PER_S_MIN: u64 = 4_096;
/// Time before a body's minimum rate applies.
pub const BODY_RATE_GRACE_MS: u64 = 5_000;
/// Most connections the admin listener serves at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// An admin body (a snapshot of up to 64 MiB) must arrive within this...
pub const ADMIN_BODY_TIMEOUT_MS: u64 = 300_000;
/// ...and, after [`BODY_RATE_GRACE_MS`], at least this fast (bytes/s).
pub const ADMIN_BODY_BYTES_PER_S_MIN: u64 = 65_536;

/// The bounds of one of central's listeners: the serving loop's limits,
/// connections per client address, and the time bounds of a body.
#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub limits: pos_http::Limits,
    pub connections_per_address_max: usize,
    pub body: pos_http::BodyBounds,
}

const fn limits(connections_max: usize, shed_connections_max: usize) -> pos_http::Limits {
    pos_http::Limits {
        connections_max,
        header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
        handshake_timeout: Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
        drain_timeout: Duration::from_millis(DRAIN_TIMEOUT_MS),
        accept_retry: Duration::from_millis(ACCEPT_RETRY_MS),
        linger_timeout: Duration::from_millis(LINGER_TIMEOUT_MS),
        linger_bytes_max: LINGER_BYTES_MAX,
        shed_connections_max,
        retry_after: Duration::from_secs(RETRY_AFTER_S),
    }
}

/// The sync listener, which faces every store network.
pub const SYNC_EDGE: Edge = Edge {
    limits: limits(CONNECTIONS_MAX, SHED_CONNECTIONS_MAX),
    connections_per_address_max: CONNECTIONS_PER_ADDRESS_MAX,
    body: pos_http::BodyBounds {
        total: Duration::from_millis(SYNC_BODY_TIMEOUT_MS),
        min_bytes_per_s: SYNC_BODY_BYTES_PER_S_MIN,
        grace: Duration::from_millis(BODY_RATE_GRACE_MS),
    },
};

impl Edge {
    /// The sync listener with an operator's limits (`[limits]` of
    /// central.toml); what they leave out stays [`SYNC_EDGE`]'s.
    pub fn sync_with(limits: &pos_config::CentralLimits) -> Edge {
        let mut edge = SYNC_EDGE;
        edge.limits.connections_max = limits.connections as usize;
        edge.limits.header_read_timeout = Duration::from_millis(limits.header_timeout_ms);
        edge.connections_per_address_max = limits.connections_per_address as usize;
        edge.body.total = Duration::from_millis(limits.sync_body_timeout_ms);
        edge
    }
}

/// The admin listener (loopback by default): few clients, big bodies.
pub const ADMIN_EDGE: Edge = Edge {
    limits: limits(ADMIN_CONNECTIONS_MAX, 4),
    connections_per_address_max: ADMIN_CONNECTIONS_MAX,
    body: pos_http::BodyBounds {
        total: Duration::from_millis(ADMIN_BODY_TIMEOUT_MS),
        min_bytes_per_s: ADMIN_BODY_BYTES_PER_S_MIN,
        grace: Duration::from_millis(BODY_RATE_GRACE_MS),
    },
};

/// What every handler needs.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    /// Signs published bundles.
    pub signing_key: SigningKey,
    /// SHA-256 of the admin token (the token itself is not kept in memory).
    pub admin_token_hash: [u8; 32],
    /// This instance's counters (`GET /v1/admin/metrics`).
    pub metrics: metrics::Metrics,
}

impl AppState {
    pub fn new(
        storage: Arc<dyn Storage>,
        signing_key: SigningKey,
        admin_token_hash: [u8; 32],
    ) -> AppState {
        AppState {
            storage,
            signing_key,
            admin_token_hash,
            metrics: metrics::Metrics::default(),
        }
    }
}

type Shared = State<Arc<AppState>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CentralError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(CentralError::Corrupt(format!("storage task failed: {e}"))))?
        .map_err(ApiError)
}

fn postcard<T: serde::Serialize>(message: &T) -> ApiResult<Response> {
    let bytes = wire::encode(message).map_err(CentralError::from)?;
    Ok(([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response())
}

/// The sync API's routes, each behind the terminal token.
fn sync_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let terminal = from_extractor_with_state::<AuthTerminal, _>(state.clone());
    let mut router = Router::new();
    for (path, route) in sync_api::routes() {
        let route = route
            .route_layer(axum::middleware::from_fn(sync_api::require_protocol))
            .route_layer(terminal.clone());
        router = router.route(path, route);
    }
    // The channel API (web shops, apps) shares the sync listener: channels
    // reach central over the same networks registers do.
    let channel = from_extractor_with_state::<AuthChannel, _>(state.clone());
    for (path, route) in channel_api::routes() {
        router = router.route(path, route.route_layer(channel.clone()));
    }
    // One budget of recorded refusals per router, shared by its uploads.
    router.layer(axum::Extension(
        Arc::new(refusals::RefusalBudget::default()),
    ))
}

/// The admin API's routes, each behind the admin token.
fn admin_routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    let admin = from_extractor_with_state::<AuthAdmin, _>(state.clone());
    let mut router = Router::new();
    for (path, route) in admin_api::routes() {
        router = router.route(path, route.route_layer(admin.clone()));
    }
    router
}

fn finish(
    router: Router<Arc<AppState>>,
    state: Arc<AppState>,
    api: &'static str,
    unknown: &'static str,
) -> Router {
    router
        .fallback(move || async move { ApiError(CentralError::NotFound(unknown.into())) })
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), api),
            metrics::count_requests,
        ))
        .with_state(state)
}

/// The sync API alone: what the sync listener serves. An admin path is a
/// 404 there (the admin API has its own listener).
pub fn sync_router(state: Arc<AppState>) -> Router {
    let routes = sync_routes(&state);
    finish(
        routes,
        state,
        "sync",
        "no such route (the admin API is served on the admin listener)",
    )
}

/// The admin API alone: what the admin listener serves.
pub fn admin_router(state: Arc<AppState>) -> Router {
    let routes = admin_routes(&state);
    finish(routes, state, "admin", "no such route")
}

/// Both APIs on one router, each route behind its API's token: for
/// in-process tests of the handlers. The layer wraps a route's methods
/// only: a wrong method still answers 405 and an unknown path 404, token
/// or not.
pub fn router(state: Arc<AppState>) -> Router {
    let routes = sync_routes(&state).merge(admin_routes(&state));
    finish(routes, state, "both", "no such route")
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown`
/// completes, within `edge`: its connection bounds (in total and per
/// client address; past them a few are shed with 503), its header and
/// body time bounds. On shutdown, open connections finish their request in
/// flight and close (idle keep-alive connections close at once), within
/// [`DRAIN_TIMEOUT_MS`]; when this returns no connection is left.
pub async fn serve(
    listener: TcpListener,
    edge: Edge,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let server = pos_http::Server::new(edge.limits)
        .with_admission(pos_http::PerAddress::new(edge.connections_per_address_max));
    let service = tower::Layer::layer(&pos_http::BodyBoundsLayer(edge.body), router);
    match tls {
        Some(config) => {
            let tls = pos_http::Tls::new(config);
            server.serve(listener, tls, service, shutdown).await;
        }
        None => {
            server
                .serve(listener, pos_http::Plain, service, shutdown)
                .await
        }
    }
    Ok(())
}
