//! The local API for the POS application (agent spec §3): an axum router
//! served on the Unix socket and, when configured, on loopback TCP.
//!
//! Layout: [`routes`] holds the handlers, [`extract`] the extractors that
//! turn bad input into JSON errors, [`error`] the one error shape,
//! [`server`] the listeners and the limits `pos_http` serves them within;
//! the `GET /v1/events` route streams the agent's event bus
//! ([`crate::events`]), which the session and the devices publish on
//! without knowing the API. [`router`] wires them and adds the cross-cutting
//! layers: body limit, per-request timeout, metrics and the "every error is
//! JSON" safety net.
//!
//! # Routes
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/health` | | [`crate::health::Health`]; always 200, `status` is `ok` or `degraded` (with `problems`) |
//! | `POST /v1/quote` | [`crate::model::QuoteRequest`] | the quote (points spec §4); no side effect |
//! | `POST /v1/sales` | [`crate::model::SaleRequest`] | [`crate::model::SaleAnswer`], replayed byte for byte for the same `sale_id` and content |
//! | `GET /v1/sales/{sale_id}` | | [`crate::model::SaleRecord`] |
//! | `POST /v1/sales/{sale_id}/returns` | [`crate::model::ReturnRequest`] | [`crate::model::ReturnAnswer`], idempotent by `return_id` |
//! | `GET /v1/ledger?from_seq=N&limit=M` | | `{"entries": [...], "next_from_seq": N or null}`; `limit` 1..=1000, default 100 |
//! | `GET /v1/members/{id or card}` | | [`crate::model::MemberBalances`] |
//! | `GET /v1/session` | | `{"checkout": null or {sale_id, member, lines, ...}, "amount": "0"}` |
//! | `POST /v1/session/start` | `{}` or `{"sale_id": "..."}` | the session; 409 `session_open` while a checkout has lines |
//! | `POST /v1/session/member` | `{"member": {"id": ..} or {"card": ..} or null}` | the session (opens one if none) |
//! | `POST /v1/session/add` | `{"sku": "...", "qty": "1"}` (`qty` optional) | the session, the line priced from the catalog cache |
//! | `POST /v1/session/remove` | `{"line": 2}` | the session |
//! | `POST /v1/session/clear` | none | the (empty) session |
//! | `POST /v1/session/commit` | `{}` or `{"redeem": [{program, points}]}` | [`crate::model::SaleAnswer`]; the checkout closes |
//! | `GET /v1/sync` | | `{"state": "off" or "on", "detail": "..."}` |
//! | `POST /v1/sync/now` | none | 409 `sync_off` without `[central]` |
//! | `GET /v1/events` | | `text/event-stream`: `session` events, the device events of [`crate::devices::notice`] (`scan` with its outcome, `device_up`, `device_down`, `frame_discarded`, `payment_card_rejected`), `lagged` when a slow reader lost events |
//! | `GET /metrics` | | Prometheus text format 0.0.4 |
//!
//! # Errors
//!
//! Every error is `{"error": {"code": "...", "message": "..."}}`:
//!
//! | status | codes |
//! |---|---|
//! | 400 | `malformed_json`, `invalid_query`, `invalid_path`, `unreadable_body` |
//! | 401 | `unauthorized` (TCP only: no or wrong `Authorization: Bearer` token) |
//! | 403 | `unexpected_host` (TCP only: the `Host` header names no accepted host) |
//! | 404 | `not_found` (route), `unknown_sale`, `unknown_member` (members endpoint), `no_session`, `unknown_line` (session), `unknown_sku` |
//! | 405 | `method_not_allowed` |
//! | 409 | `conflict` (same id, other content), `exceeds_remaining`, the redemption refusals of points spec §6 (`below_minimum`, `not_a_step`, `exceeds_max_share`, `insufficient_points`, `offline_allowance_exceeded`, `member_blocked`, `not_redeemable`), `session_open`, `sync_off` |
//! | 413 | `body_too_large` (`[api] max_body_bytes`) |
//! | 415 | `unsupported_media_type` (a body must be `application/json`) |
//! | 422 | `invalid_request` (wrong type, unknown or missing field, invalid basket; the message names the field path), `payment_card` (a member, sale id or return id holding a payment card number, however grouped: refused, never stored or echoed), `unknown_member` (a sale or session naming an unknown id), `unknown_line` (return), `member_required`, `unknown_program`, `invalid_qty`, `empty_session` |
//! | 503 | `no_rules` (no bundle cached yet), `unavailable`, `storage_error`, `timeout`, `too_many_event_streams`, `too_many_connections` (Unix socket: one process holds [`server::CONNECTIONS_PER_PROCESS_MAX`]) |
//! | 507 | `storage_full` |
//!
//! The 409/422 split follows the store's own classification
//! ([`crate::store::ErrorClass`]): 422 when the request itself is wrong,
//! 409 when it conflicts with what is stored (balances included).

pub mod card_guard;
pub mod client;
pub mod error;
pub mod extract;
pub mod routes;
pub mod server;
pub mod tcp_gate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::api::error::{ApiError, ErrorCode};
use crate::api::extract::BodyLimitBytes;
use crate::events::EventBus;
use crate::health::HealthState;
use crate::metrics::Metrics;
use crate::session::Session;
use crate::store::Store;

/// Longest a request may take to produce its answer's headers. Sale
/// commits are milliseconds; this bounds a stuck store call. A commit that
/// times out here may still complete in the store: the POS retries with the
/// same `sale_id` and gets the committed answer (sales are idempotent).
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Most `GET /v1/events` streams open at once: each holds a connection for
/// as long as the POS listens, and they must not use up
/// [`server::CONNECTIONS_MAX`].
pub const EVENT_STREAMS_MAX: usize = 8;

/// Everything a handler may touch. Cheap to clone (all shared).
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub session: Arc<Session>,
    pub events: EventBus,
    pub metrics: Arc<Metrics>,
    pub health: Arc<HealthState>,
    /// Cancelled at shutdown: ends the event streams so connections drain.
    pub shutdown: CancellationToken,
    /// Permits for [`EVENT_STREAMS_MAX`].
    pub event_streams: Arc<Semaphore>,
}

/// The whole API as one router (the Unix socket's: no gate).
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    router_with_gate(state, max_body_bytes, None)
}

/// The API behind `gate` (the TCP listener's [`tcp_gate::TcpGate`]), when
/// given. The gate runs inside the metrics layer, so refusals are counted
/// (`unexpected_host`, `unauthorized`) like any other error.
pub fn router_with_gate(
    state: AppState,
    max_body_bytes: usize,
    gate: Option<Arc<tcp_gate::TcpGate>>,
) -> Router {
    let metrics = state.metrics.clone();
    let routes = routes(state, max_body_bytes);
    let routes = match gate {
        Some(gate) => routes.layer(middleware::from_fn_with_state(gate, tcp_gate::check)),
        None => routes,
    };
    routes.layer(middleware::from_fn_with_state(metrics, observe))
}

fn routes(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/v1/quote", post(routes::quote))
        .route("/v1/sales", post(routes::commit_sale))
        .route("/v1/sales/{sale_id}", get(routes::sale))
        .route("/v1/sales/{sale_id}/returns", post(routes::commit_return))
        .route("/v1/ledger", get(routes::ledger))
        .route("/v1/members/{id_or_card}", get(routes::member))
        .route("/v1/session", get(routes::session_view))
        .route("/v1/session/start", post(routes::session_start))
        .route("/v1/session/member", post(routes::session_member))
        .route("/v1/session/add", post(routes::session_add))
        .route("/v1/session/remove", post(routes::session_remove))
        .route("/v1/session/clear", post(routes::session_clear))
        .route("/v1/session/commit", post(routes::session_commit))
        .route("/v1/sync", get(routes::sync_state))
        .route("/v1/sync/now", post(routes::sync_now))
        .route("/v1/events", get(routes::events))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::Extension(BodyLimitBytes(max_body_bytes)))
}

/// Per request: the timeout, the JSON-error safety net, and metrics.
async fn observe(
    State(metrics): State<Arc<Metrics>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = known_method(request.method());
    let started = Instant::now();
    let mut response =
        match tokio::time::timeout(Duration::from_millis(REQUEST_TIMEOUT_MS), next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!("no answer within {REQUEST_TIMEOUT_MS} ms; a sale may still have been committed: retry with the same sale_id"),
            )
            .into_response(),
        };
    // Safety net: an error answer that did not come from ApiError (a layer
    // or a framework path we did not foresee) is rewritten into the JSON
    // shape, keeping its status.
    let status = response.status();
    if (status.is_client_error() || status.is_server_error())
        && response.extensions().get::<ErrorCode>().is_none()
    {
        let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
        let code = reason.replace([' ', '-'], "_");
        response = ApiError::new(status, code, format!("{reason} ({route})")).into_response();
    }
    let elapsed = started.elapsed();
    // Route template and status only: bodies may hold card tokens.
    tracing::debug!(message = "Request.", %route, method, status = response.status().as_u16(), elapsed_us = elapsed.as_micros());
    metrics.observe_request(&route, method, response.status().as_u16(), elapsed);
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        metrics.count_error(code);
    }
    response
}

/// The method as a metrics label; anything unusual is `other` so a client
/// cannot invent label values.
fn known_method(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
