//! Central's HTTP API (sync spec §5): the sync API for registers (postcard,
//! terminal bearer token) and the admin API (JSON, admin bearer token).
//!
//! Every error is JSON `{"error": {"code", "message"}}`, including axum's
//! own rejections (bad query, body too large), which are mapped here
//! ([`error`]). Storage calls block (SQLite), so they run on
//! `spawn_blocking`. The token is checked before anything else of a
//! request is read: [`auth`]'s extractors run as a route layer over every
//! route of `sync_api` (terminal token) and `admin_api` (admin token).
//! [`serve`] runs the router on `pos_http`'s serving loop, the one the
//! agent uses too.
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
pub mod error;
mod sync_api;

pub use auth::{AuthAdmin, AuthTerminal};
pub use error::ApiError;
use error::ApiResult;

/// Largest member or catalog snapshot accepted: 64 MiB.
pub const SNAPSHOT_BYTES_MAX: usize = 64 * 1_048_576;
/// Largest hold request body: the hold and its sale's basket
/// (`docs/sync-v2.md` §5), which is bounded like a document.
pub const HOLD_BYTES_MAX: usize = pos_sync::protocol::DOCUMENT_BYTES_MAX + 4_096;
/// Most connections served at once; more wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 512;
/// A TLS handshake that takes longer is dropped (slowloris guard).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Time a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// At shutdown, requests in flight get this long to finish (an upload is
/// one transaction of at most 1 MiB); connections still open then are
/// dropped. A register whose answer is lost retries the same batch, which
/// central applies exactly once.
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;
/// Pause after a failed `accept` (out of file descriptors) before trying
/// again.
pub const ACCEPT_RETRY_MS: u64 = 100;

/// The bounds central is served within, for [`pos_http::Server`].
pub const LIMITS: pos_http::Limits = pos_http::Limits {
    connections_max: CONNECTIONS_MAX,
    header_read_timeout: Duration::from_millis(HEADER_READ_TIMEOUT_MS),
    handshake_timeout: Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
    drain_timeout: Duration::from_millis(DRAIN_TIMEOUT_MS),
    accept_retry: Duration::from_millis(ACCEPT_RETRY_MS),
};

/// What every handler needs.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    /// Signs published bundles.
    pub signing_key: SigningKey,
    /// SHA-256 of the admin token (the token itself is not kept in memory).
    pub admin_token_hash: [u8; 32],
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

/// The router with both APIs, each route behind its API's token. The
/// layer wraps a route's methods only: a wrong method still answers 405
/// and an unknown path 404, token or not.
pub fn router(state: Arc<AppState>) -> Router {
    let terminal = from_extractor_with_state::<AuthTerminal, _>(state.clone());
    let admin = from_extractor_with_state::<AuthAdmin, _>(state.clone());
    let mut router = Router::new();
    for (path, route) in sync_api::routes() {
        let route = route
            .route_layer(axum::middleware::from_fn(sync_api::require_protocol))
            .route_layer(terminal.clone());
        router = router.route(path, route);
    }
    for (path, route) in admin_api::routes() {
        router = router.route(path, route.route_layer(admin.clone()));
    }
    router
        .fallback(|| async { ApiError(CentralError::NotFound("no such route".into())) })
        .with_state(state)
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown`
/// completes, within [`LIMITS`]: at most [`CONNECTIONS_MAX`] connections
/// at once. On shutdown, open connections finish their request in flight
/// and close (idle keep-alive connections close at once), within
/// [`DRAIN_TIMEOUT_MS`]; when this returns no connection is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let server = pos_http::Server::new(LIMITS);
    match tls {
        Some(config) => {
            let tls = pos_http::Tls::new(config);
            server.serve(listener, tls, router, shutdown).await;
        }
        None => {
            server
                .serve(listener, pos_http::Plain, router, shutdown)
                .await
        }
    }
    Ok(())
}
