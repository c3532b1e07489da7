//! The handlers of the local API (agent spec §3). Each one parses with the
//! extractors of [`crate::api::extract`], calls the store or the session,
//! and answers JSON; every failure is an [`ApiError`].

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::api::AppState;
use crate::api::card_guard;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::events::Event;
use crate::health::{Health, SyncMode};
use crate::metrics::StoreFigures;
use crate::model::{LedgerRow, MemberRef, QuoteRequest, Redemption, ReturnRequest, SaleRequest};
use crate::session::SessionView;

/// Default and largest page of `GET /v1/ledger`.
pub const LEDGER_PAGE_DEFAULT: u32 = 100;
pub const LEDGER_PAGE_MAX: u32 = 1_000;

type ApiResult<T> = Result<T, ApiError>;

/// A committed answer as the store kept it: sent byte for byte, so a
/// replayed sale or return answers exactly what the first commit did.
fn stored_json(json: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// A health snapshot of this agent (also used by `status`).
pub async fn health_snapshot(state: &AppState) -> Health {
    let stats = state.store.stats().await.map_err(|e| e.to_string());
    state.health.snapshot(stats, state.store.writer_health())
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(health_snapshot(&state).await)
}

pub async fn quote(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<QuoteRequest>,
) -> ApiResult<Response> {
    card_guard::check_quote(&request)?;
    let quote = state.store.quote(&request).await?;
    Ok(Json(quote).into_response())
}

pub async fn commit_sale(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SaleRequest>,
) -> ApiResult<Response> {
    card_guard::check_sale(&request)?;
    // Online redemption holds while member data is fresh (sync spec §4);
    // released again if the store then refuses the sale.
    let holds = match state.health.sync_monitor() {
        Some(sync) => sync.authorise_redemptions(&state.store, &request).await?,
        None => Default::default(),
    };
    let committed = match state.store.commit_sale(request).await {
        Ok(committed) => committed,
        Err(error) => {
            holds.release();
            return Err(error.into());
        }
    };
    Ok(stored_json(committed.json))
}

pub async fn sale(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
) -> ApiResult<Response> {
    // Not stored, but a "not found" would echo it.
    card_guard::refuse_payment_card("path", &sale_id)?;
    let record = state.store.sale(&sale_id).await?;
    Ok(Json(record).into_response())
}

pub async fn commit_return(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    ApiJson(request): ApiJson<ReturnRequest>,
) -> ApiResult<Response> {
    card_guard::check_return(&sale_id, &request)?;
    let committed = state.store.commit_return(&sale_id, request).await?;
    Ok(stored_json(committed.json))
}

/// `GET /v1/ledger` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// First `seq` wanted (default 1).
    #[serde(default)]
    pub from_seq: Option<u64>,
    /// Page size, 1..=[`LEDGER_PAGE_MAX`] (default [`LEDGER_PAGE_DEFAULT`]).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `GET /v1/ledger` answer.
#[derive(Debug, Serialize)]
pub struct LedgerPage {
    pub entries: Vec<LedgerRow>,
    /// Where the next page starts; `null` when this page was not full.
    pub next_from_seq: Option<u64>,
}

pub async fn ledger(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<LedgerPage>> {
    let from_seq = query.from_seq.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(LEDGER_PAGE_DEFAULT);
    if limit == 0 || limit > LEDGER_PAGE_MAX {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be between 1 and {LEDGER_PAGE_MAX}, got {limit}"),
        ));
    }
    let entries = state.store.ledger(from_seq, limit).await?;
    let next_from_seq = if entries.len() == limit as usize {
        entries.last().map(|row| row.entry.seq + 1)
    } else {
        None
    };
    Ok(Json(LedgerPage {
        entries,
        next_from_seq,
    }))
}

pub async fn member(
    State(state): State<AppState>,
    ApiPath(id_or_card): ApiPath<String>,
) -> ApiResult<Response> {
    card_guard::refuse_payment_card("path", &id_or_card)?;
    let balances = state.store.member(&id_or_card).await?;
    Ok(Json(balances).into_response())
}

// --- checkout session --------------------------------------------------------

pub async fn session_view(State(state): State<AppState>) -> Json<SessionView> {
    Json(state.session.view().await)
}

/// `POST /v1/session/start` body (may be `{}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// The sale id to commit under; a UUIDv7 when absent.
    #[serde(default)]
    pub sale_id: Option<String>,
}

pub async fn session_start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartBody>,
) -> ApiResult<Json<SessionView>> {
    if let Some(sale_id) = &body.sale_id {
        card_guard::refuse_payment_card("sale_id", sale_id)?;
    }
    Ok(Json(state.session.start(body.sale_id).await?))
}

/// `POST /v1/session/member` body: `{"member": {"id": ..}}`,
/// `{"member": {"card": ..}}` or `{"member": null}` to detach.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    pub member: Option<MemberRef>,
}

pub async fn session_member(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Json<SessionView>> {
    card_guard::check_member("member", body.member.as_ref())?;
    if let Some(MemberRef::Id(id)) = &body.member {
        // Refuse an unknown id now rather than at commit, while the
        // customer is still at the till; with the same code and status as
        // a sale naming it (it is a bad request here, not a missing page).
        state.store.member(id).await.map_err(|e| match e {
            crate::store::StoreError::MemberNotFound(id) => {
                crate::store::StoreError::UnknownMember(id)
            }
            other => other,
        })?;
    }
    Ok(Json(state.session.attach_member(body.member).await?))
}

/// `POST /v1/session/add` body: `{"sku": "...", "qty": "1"}` (`qty`
/// defaults to 1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    pub sku: String,
    #[serde(default = "one")]
    pub qty: Decimal,
}

fn one() -> Decimal {
    Decimal::ONE
}

pub async fn session_add(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddBody>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(state.session.add_line(&body.sku, body.qty).await?))
}

/// `POST /v1/session/remove` body: `{"line": 2}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    pub line: u32,
}

pub async fn session_remove(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RemoveBody>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(state.session.remove_line(body.line).await?))
}

pub async fn session_clear(State(state): State<AppState>) -> Json<SessionView> {
    Json(state.session.clear().await)
}

/// `POST /v1/session/commit` body (may be `{}`): optional redemptions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    #[serde(default)]
    pub redeem: Vec<Redemption>,
}

pub async fn session_commit(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CommitBody>,
) -> ApiResult<Response> {
    let committed = state.session.commit(body.redeem).await?;
    Ok(stored_json(committed.json))
}

// --- sync, events, metrics ---------------------------------------------------

pub async fn sync_state(State(state): State<AppState>) -> Response {
    Json(state.health.sync()).into_response()
}

/// 409 `sync_off` while no central is configured: the request is valid but
/// conflicts with the register's configuration; retrying will not help
/// until `[central]` is set (503 would invite retries).
pub async fn sync_now(State(state): State<AppState>) -> ApiResult<Response> {
    let sync = state.health.sync();
    match sync.state {
        SyncMode::Off => Err(ApiError::new(StatusCode::CONFLICT, "sync_off", sync.detail)),
        // 202: the worker starts a cycle now (or right after the running
        // one); `GET /v1/sync` shows how it went.
        SyncMode::On if state.health.wake_sync() => {
            Ok((StatusCode::ACCEPTED, Json(state.health.sync())).into_response())
        }
        SyncMode::On => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "sync_unavailable",
            "the sync worker is not running yet",
        )),
    }
}

pub async fn events(
    State(state): State<AppState>,
) -> ApiResult<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>> {
    let permit = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_event_streams",
                format!(
                    "at most {} event streams may be open at once",
                    crate::api::EVENT_STREAMS_MAX
                ),
            )
        })?;
    let receiver = state.events.subscribe();
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(
        (receiver, shutdown, permit),
        |(mut rx, shutdown, permit)| async move {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return None,
                received = rx.recv() => match received {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => Event::Lagged { missed },
                    Err(RecvError::Closed) => return None,
                },
            };
            let data = serde_json::to_string(&event).unwrap_or_else(|_| "null".to_string());
            let sse_event = sse::Event::default().event(event.name()).data(data);
            Some((Ok(sse_event), (rx, shutdown, permit)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    // Store figures are best effort: a scrape must still show the request
    // metrics when the store cannot answer (that is when they matter).
    let stats = state.store.stats().await.map_err(|e| e.to_string());
    let figures = stats.as_ref().ok().map(|s| StoreFigures {
        sales: s.sales,
        points_earned: s.points_earned,
        points_redeemed: s.points_redeemed,
        unsynced_entries: s.unsynced_entries,
        dead_letters: s.dead_letters,
        rules_version: s.rules_version,
    });
    let health = state.health.snapshot(stats, state.store.writer_health());
    let mut text = state.metrics.render(figures.as_ref());
    crate::metrics::render_health(&mut text, &health);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(method.as_str(), uri.path())
}

pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::wrong_method(method.as_str(), uri.path())
}
