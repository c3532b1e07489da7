//! Central's HTTP API (sync spec §5): the sync API for registers (postcard,
//! terminal bearer token) and the admin API (JSON, admin bearer token).
//!
//! Every error is JSON `{"error": {"code", "message"}}`, including axum's
//! own rejections (bad query, body too large), which are mapped here.
//! Storage calls block (SQLite), so they run on `spawn_blocking`.
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
//! | `GET /v1/admin/terminals` | admin | `{"terminals": [{"terminal_id", "last_seq", "last_hash", "last_contact"}]}` |
//! | `GET /v1/admin/conflicts?limit=` | admin | `{"conflicts": [...]}`, newest first |

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::SigningKey;
use pos_sync::protocol::{
    BATCH_BYTES_MAX, BatchOutcome, BundleFormat, CHANGES_PAGE_MAX, EntryResult, HoldRelease,
    HoldRequest,
};
use pos_sync::signing::BUNDLE_BYTES_MAX;
use pos_sync::wire;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::error::CentralError;
use crate::files::token_hash;
use crate::snapshot::{CatalogSnapshot, CheckedSnapshot, MembersSnapshot};
use crate::snapshot_csv;
use crate::storage::{LISTING_ROWS_MAX, LedgerFilter, Storage};

/// Largest member or catalog snapshot accepted: 64 MiB.
pub const SNAPSHOT_BYTES_MAX: usize = 64 * 1_048_576;
/// Largest hold request body.
pub const HOLD_BYTES_MAX: usize = 4_096;
/// Most connections served at once; more wait in the accept queue.
pub const CONNECTIONS_MAX: usize = 512;
/// A TLS handshake that takes longer is dropped (slowloris guard).
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Time a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT_MS: u64 = 30_000;
/// Default rows of an admin listing.
const LISTING_ROWS_DEFAULT: usize = 1_000;

/// What every handler needs.
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    /// Signs published bundles.
    pub signing_key: SigningKey,
    /// SHA-256 of the admin token (the token itself is not kept in memory).
    pub admin_token_hash: [u8; 32],
}

type Shared = State<Arc<AppState>>;

/// An error as the API answers it.
pub struct ApiError(pub CentralError);

impl From<CentralError> for ApiError {
    fn from(e: CentralError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.status_and_code();
        if status >= 500 {
            tracing::error!(message = "Request failed.", error = %self.0);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": code, "message": self.0.to_string()}});
        (status, axum::Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError(CentralError::TooLarge(format!(
            "request body too large: {}",
            e.body_text()
        )))
    } else {
        ApiError(CentralError::Invalid(format!(
            "reading the request body: {}",
            e.body_text()
        )))
    }
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError(CentralError::Invalid(format!("query: {}", e.body_text())))
}

fn path_error(e: PathRejection) -> ApiError {
    ApiError(CentralError::Invalid(format!("path: {}", e.body_text())))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CentralError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(CentralError::Corrupt(format!("storage task failed: {e}"))))?
        .map_err(ApiError)
}

fn bearer(headers: &HeaderMap) -> Result<&str, CentralError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| CentralError::Unauthorized("missing Authorization: Bearer token".into()))?;
    let text = value
        .to_str()
        .map_err(|_| CentralError::Unauthorized("Authorization header is not text".into()))?;
    text.strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| CentralError::Unauthorized("Authorization is not a Bearer token".into()))
}

/// The terminal the request's token belongs to.
async fn terminal(state: &Arc<AppState>, headers: &HeaderMap) -> ApiResult<String> {
    let hash = token_hash(bearer(headers)?);
    let storage = state.storage.clone();
    blocking(move || storage.terminal_for_token(hash))
        .await?
        .ok_or_else(|| ApiError(CentralError::Unauthorized("unknown terminal token".into())))
}

fn admin(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let hash = token_hash(bearer(headers)?);
    if hash == state.admin_token_hash {
        Ok(())
    } else {
        Err(ApiError(CentralError::Unauthorized(
            "not the admin token".into(),
        )))
    }
}

/// A register may only speak for itself: the terminal a request names must
/// be the one its token belongs to (else 403).
fn same_terminal(token_terminal: &str, named: &str) -> ApiResult<()> {
    if named == token_terminal {
        Ok(())
    } else {
        Err(ApiError(CentralError::Forbidden(format!(
            "this token belongs to terminal {token_terminal:?}, not {named:?}"
        ))))
    }
}

fn postcard<T: serde::Serialize>(message: &T) -> ApiResult<Response> {
    let bytes = wire::encode(message).map_err(CentralError::from)?;
    Ok(([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response())
}

/// The router with both APIs.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/v1/sync/upload",
            post(upload).layer(DefaultBodyLimit::max(BATCH_BYTES_MAX)),
        )
        .route("/v1/sync/rules", get(rules_newest))
        .route("/v1/sync/rules/{version}", get(rules_version))
        .route("/v1/sync/members", get(member_changes))
        .route("/v1/sync/catalog", get(catalog_changes))
        .route(
            "/v1/sync/holds",
            post(place_hold).layer(DefaultBodyLimit::max(HOLD_BYTES_MAX)),
        )
        .route(
            "/v1/sync/holds/release",
            post(release_hold).layer(DefaultBodyLimit::max(HOLD_BYTES_MAX)),
        )
        .route(
            "/v1/admin/rules",
            post(publish_rules).layer(DefaultBodyLimit::max(BUNDLE_BYTES_MAX)),
        )
        .route(
            "/v1/admin/members",
            post(import_members).layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX)),
        )
        .route(
            "/v1/admin/catalog",
            post(import_catalog).layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX)),
        )
        .route("/v1/admin/members/{id}", get(admin_member))
        .route("/v1/admin/ledger", get(admin_ledger))
        .route("/v1/admin/terminals", get(admin_terminals))
        .route("/v1/admin/conflicts", get(admin_conflicts))
        .fallback(|| async { ApiError(CentralError::NotFound("no such route".into())) })
        .with_state(state)
}

async fn upload(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let terminal = terminal(&state, &headers).await?;
    let body = body.map_err(body_error)?;
    let mut batch = wire::decode_upload(&body).map_err(CentralError::from)?;
    same_terminal(&terminal, &batch.terminal_id)?;
    crate::guard::screen_batch(&mut batch);
    let storage = state.storage.clone();
    let answer = blocking(move || storage.apply_batch(&batch, jiff::Timestamp::now())).await?;
    match &answer.outcome {
        BatchOutcome::Entries(results) => {
            let overdrafts = results
                .iter()
                .filter(|r| matches!(r, EntryResult::Overdraft { .. }))
                .count();
            let rejected = results
                .iter()
                .filter(|r| matches!(r, EntryResult::Rejected { .. }))
                .count();
            if overdrafts + rejected > 0 {
                tracing::warn!(
                    message = "Batch applied with conflicts.",
                    terminal = %terminal,
                    entries = results.len(),
                    overdrafts,
                    rejected
                );
            } else {
                tracing::info!(message = "Batch applied.", terminal = %terminal, entries = results.len());
            }
        }
        other => {
            tracing::warn!(message = "Batch not applied.", terminal = %terminal, outcome = ?other)
        }
    }
    postcard(&answer)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesQuery {
    after: Option<u64>,
}

async fn rules_newest(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    terminal(&state, &headers).await?;
    let Query(query) = query.map_err(query_error)?;
    let storage = state.storage.clone();
    match blocking(move || storage.newest_bundle(query.after)).await? {
        Some(bundle) => postcard(&bundle),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

async fn rules_version(
    State(state): Shared,
    headers: HeaderMap,
    version: Result<Path<u64>, PathRejection>,
) -> ApiResult<Response> {
    terminal(&state, &headers).await?;
    let Path(version) = version.map_err(path_error)?;
    let storage = state.storage.clone();
    match blocking(move || storage.bundle(version)).await? {
        Some(bundle) => postcard(&bundle),
        None => Err(ApiError(CentralError::NotFound(format!(
            "no bundle version {version}"
        )))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesQuery {
    #[serde(default)]
    cursor: u64,
    limit: Option<usize>,
}

/// One page of a change feed (members or catalog): the same token check,
/// query and paging for both, only the storage call differs.
async fn changes_page<T: serde::Serialize + Send + 'static>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    query: Result<Query<ChangesQuery>, QueryRejection>,
    fetch: fn(&dyn Storage, u64, usize) -> Result<T, CentralError>,
) -> ApiResult<Response> {
    terminal(state, headers).await?;
    let Query(q) = query.map_err(query_error)?;
    let storage = state.storage.clone();
    let limit = q.limit.unwrap_or(CHANGES_PAGE_MAX);
    postcard(&blocking(move || fetch(storage.as_ref(), q.cursor, limit)).await?)
}

async fn member_changes(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    changes_page(&state, &headers, query, |s, cursor, n| {
        s.member_changes(cursor, n)
    })
    .await
}

async fn catalog_changes(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    changes_page(&state, &headers, query, |s, cursor, n| {
        s.catalog_changes(cursor, n)
    })
    .await
}

async fn place_hold(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let terminal = terminal(&state, &headers).await?;
    let body = body.map_err(body_error)?;
    let request: HoldRequest = wire::decode(&body, HOLD_BYTES_MAX).map_err(CentralError::from)?;
    if crate::guard::is_payment_card(&request.member) {
        return Err(ApiError(CentralError::Invalid(
            crate::guard::PAYMENT_CARD_REASON.into(),
        )));
    }
    same_terminal(&terminal, &request.terminal_id)?;
    let storage = state.storage.clone();
    postcard(&blocking(move || storage.place_hold(&request, jiff::Timestamp::now())).await?)
}

async fn release_hold(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let terminal = terminal(&state, &headers).await?;
    let body = body.map_err(body_error)?;
    let release: HoldRelease = wire::decode(&body, HOLD_BYTES_MAX).map_err(CentralError::from)?;
    same_terminal(&terminal, &release.terminal_id)?;
    let storage = state.storage.clone();
    blocking(move || storage.release_hold(&release)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `application/toml` (or `text/toml`) bodies are TOML; anything else JSON.
fn bundle_format(headers: &HeaderMap) -> BundleFormat {
    let is_toml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("toml"));
    if is_toml {
        BundleFormat::Toml
    } else {
        BundleFormat::Json
    }
}

async fn publish_rules(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let body = body.map_err(body_error)?;
    let format = bundle_format(&headers);
    let st = state.clone();
    let (version, programs) = blocking(move || {
        let bundle = crate::rules::prepare(body.to_vec(), format, &st.signing_key)?;
        let version = bundle.signed.version;
        let programs = bundle.programs.clone();
        st.storage.publish_bundle(bundle, jiff::Timestamp::now())?;
        Ok((version, programs))
    })
    .await?;
    tracing::info!(message = "Rules bundle published.", version);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"version": version, "programs": programs})),
    )
        .into_response())
}

fn utf8(body: &[u8]) -> Result<&str, CentralError> {
    std::str::from_utf8(body)
        .map_err(|e| CentralError::Invalid(format!("request body is not UTF-8: {e}")))
}

/// A snapshot import (members or catalog): the same admin check, body
/// handling and answer for both; `import` parses the UTF-8 text and stores
/// it (off the async runtime: parsing 64 MiB and SQLite both block).
async fn import_snapshot(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    import: Import,
) -> ApiResult<Response> {
    admin(state, headers)?;
    let body = body.map_err(body_error)?;
    let storage = state.storage.clone();
    let count = blocking(move || import(storage.as_ref(), utf8(&body)?)).await?;
    Ok(axum::Json(json!({"imported": count})).into_response())
}

async fn import_members(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let import: Import = if is_csv(&headers) {
        |s, text| s.import_members(&snapshot_csv::members(text)?)
    } else {
        |s, text| s.import_members(&MembersSnapshot::parse(text)?)
    };
    import_snapshot(&state, &headers, body, import).await
}

async fn import_catalog(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let import: Import = if is_csv(&headers) {
        |s, text| s.import_catalog(&snapshot_csv::catalog(text)?)
    } else {
        |s, text| s.import_catalog(&CatalogSnapshot::parse(text)?)
    };
    import_snapshot(&state, &headers, body, import).await
}

/// Reads a snapshot's text into storage; the number of records imported.
type Import = fn(&dyn Storage, &str) -> Result<usize, CentralError>;

/// `text/csv` bodies are CSV (`snapshot_csv`); anything else JSON.
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/csv"))
}

async fn admin_member(
    State(state): Shared,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let Path(id) = id.map_err(path_error)?;
    let storage = state.storage.clone();
    let lookup = id.clone();
    let found = blocking(move || storage.member_balances(&lookup, jiff::Timestamp::now())).await?;
    let Some((member, programs)) = found else {
        return Err(ApiError(CentralError::NotFound(format!(
            "no member or card {id:?}"
        ))));
    };
    let programs: BTreeMap<String, serde_json::Value> = programs
        .into_iter()
        .map(|p| {
            (
                p.program,
                json!({"balance": p.balance, "available": p.available, "pending": p.pending}),
            )
        })
        .collect();
    Ok(axum::Json(json!({"member": member, "programs": programs})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerQuery {
    terminal: Option<String>,
    member: Option<String>,
    limit: Option<usize>,
}

async fn admin_ledger(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<LedgerQuery>, QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let Query(q) = query.map_err(query_error)?;
    let filter = LedgerFilter {
        terminal: q.terminal,
        member: q.member,
        limit: q
            .limit
            .unwrap_or(LISTING_ROWS_DEFAULT)
            .min(LISTING_ROWS_MAX),
    };
    let storage = state.storage.clone();
    let entries = blocking(move || storage.ledger(&filter)).await?;
    Ok(axum::Json(json!({"entries": entries})).into_response())
}

async fn admin_terminals(State(state): Shared, headers: HeaderMap) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let storage = state.storage.clone();
    let terminals = blocking(move || storage.terminals()).await?;
    Ok(axum::Json(json!({"terminals": terminals})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn admin_conflicts(
    State(state): Shared,
    headers: HeaderMap,
    query: Result<Query<LimitQuery>, QueryRejection>,
) -> ApiResult<Response> {
    admin(&state, &headers)?;
    let Query(q) = query.map_err(query_error)?;
    let limit = q.limit.unwrap_or(LISTING_ROWS_DEFAULT);
    let storage = state.storage.clone();
    let conflicts = blocking(move || storage.conflicts(limit)).await?;
    Ok(axum::Json(json!({"conflicts": conflicts})).into_response())
}

/// Serves `router` on `listener` (TLS when `tls` is given) until `shutdown`
/// completes. At most [`CONNECTIONS_MAX`] connections are served at once.
/// On shutdown, open connections finish their request in flight and close
/// (idle keep-alive connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: wait a moment rather than spin.
                    tracing::warn!(message = "Accept failed.", error = %e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let acceptor = acceptor.clone();
        let closing = closing_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => drive(tls, router, closing).await,
                        Ok(Err(e)) => {
                            tracing::debug!(message = "TLS handshake failed.", %peer, error = %e);
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(message = "TLS handshake timed out.", %peer);
                            return;
                        }
                    }
                }
                None => drive(stream, router, closing).await,
            };
            if let Err(e) = result {
                tracing::debug!(message = "Connection ended with an error.", %peer, error = %e);
            }
        });
    }
    closing.send_replace(true);
    Ok(())
}

/// Serves HTTP/1.1 on one connection until it ends or the server closes.
async fn drive<I>(
    io: I,
    router: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| router.clone().oneshot(req));
    let mut http = hyper::server::conn::http1::Builder::new();
    // A client that trickles its headers is cut off (hyper needs a timer
    // for its header read timeout to take effect).
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(HEADER_READ_TIMEOUT_MS));
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = closing.wait_for(|closing| *closing) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}
