//! The sync API for registers (sync spec §2–§4): postcard bodies, every
//! route behind a terminal token ([`super::auth::AuthTerminal`]).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use pos_sync::protocol::{
    BATCH_BYTES_MAX, BatchOutcome, CHANGES_PAGE_MAX, EntryResult, HoldRelease, HoldRequest,
    RulesAnswer, UploadAnswer,
};
use pos_sync::wire;
use serde::Deserialize;

use super::auth::{AuthTerminal, same_terminal};
use super::error::{ApiError, ApiResult, body_error, path_error, query_error};
use super::refusals::RefusalBudget;
use super::{AppState, HOLD_BYTES_MAX, Shared, blocking, postcard};
use crate::apply::Refusals;
use crate::error::CentralError;
use crate::storage::Storage;

/// Every route of the sync API; [`super::router`] puts each behind the
/// terminal token.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (
            "/v1/sync/upload",
            post(upload).layer(DefaultBodyLimit::max(BATCH_BYTES_MAX)),
        ),
        ("/v1/sync/rules", get(rules_newest)),
        ("/v1/sync/rules/{version}", get(rules_version)),
        ("/v1/sync/members", get(member_changes)),
        ("/v1/sync/catalog", get(catalog_changes)),
        (
            "/v1/sync/holds",
            post(place_hold).layer(DefaultBodyLimit::max(HOLD_BYTES_MAX)),
        ),
        (
            "/v1/sync/holds/release",
            post(release_hold).layer(DefaultBodyLimit::max(HOLD_BYTES_MAX)),
        ),
        (
            "/v1/sync/report",
            put(report).layer(DefaultBodyLimit::max(REPORT_BYTES_MAX)),
        ),
    ]
}

/// Refuses a sync request that does not say it speaks this central's
/// protocol (the `Pos-Sync-Protocol` header, `docs/sync-v2.md` §1) with
/// HTTP 426, before its body is read. Runs after the token check.
pub(super) async fn require_protocol(request: Request, next: Next) -> Response {
    let spoken = request
        .headers()
        .get(wire::PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let ours = wire::PROTOCOL_VERSION.to_string();
    if spoken == Some(ours.as_str()) {
        return next.run(request).await;
    }
    let theirs = match spoken {
        Some(version) if version.len() <= 8 => format!("protocol {version}"),
        Some(_) => "another protocol".to_string(),
        None => "protocol 1".to_string(),
    };
    ApiError(CentralError::ProtocolVersion(format!(
        "this central speaks sync protocol {ours} and refuses {theirs}: upgrade pos-agent on this register"
    )))
    .into_response()
}

/// Largest fleet report body: its texts are bounded one by one, so a
/// report near this is not one a register wrote.
pub const REPORT_BYTES_MAX: usize = 32 * 1_024;

/// `PUT /v1/sync/report`: the register's newest fleet report
/// (`docs/sync-v2.md` §8), kept per terminal; 204.
async fn report(
    State(state): Shared,
    terminal: AuthTerminal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(body_error)?;
    let report: pos_sync::protocol::TerminalReport =
        wire::decode(&body, REPORT_BYTES_MAX).map_err(CentralError::from)?;
    same_terminal(&terminal, &report.terminal_id)?;
    let fleet = crate::fleet::FleetReport::accept(&report, jiff::Timestamp::now())?;
    let storage = state.storage.clone();
    let AuthTerminal(id) = terminal;
    blocking(move || storage.store_report(&id, &fleet)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn upload(
    State(state): Shared,
    Extension(budget): Extension<Arc<RefusalBudget>>,
    terminal: AuthTerminal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(body_error)?;
    // Decoding screens every entry for payment card numbers (pos-codes' guard).
    let batch = wire::decode_upload(&body).map_err(CentralError::from)?;
    same_terminal(&terminal, &batch.terminal_id)?;
    let storage = state.storage.clone();
    let AuthTerminal(id) = &terminal;
    let grant = budget.take(id, Instant::now());
    let refusals = grant.refusals;
    let started = Instant::now();
    let answer =
        blocking(move || storage.apply_batch_with(&batch, jiff::Timestamp::now(), refusals)).await;
    let refused = answer
        .as_ref()
        .is_ok_and(|a| !matches!(a.outcome, BatchOutcome::Entries(_)));
    budget.settle(id, grant, refused);
    let answer = answer?;
    state.metrics.observe_batch(&answer, started.elapsed());
    if refusals == Refusals::Record {
        log_outcome(&terminal, &answer);
    }
    postcard(&answer)
}

/// One log line per batch: how many entries, and the conflicts among them.
fn log_outcome(AuthTerminal(terminal): &AuthTerminal, answer: &UploadAnswer) {
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesQuery {
    after: Option<u64>,
}

async fn rules_newest(
    State(state): Shared,
    query: Result<Query<RulesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(query_error)?;
    let storage = state.storage.clone();
    let newest = blocking(move || storage.newest_bundle(None)).await?;
    postcard(&RulesAnswer {
        newest: newest.as_ref().map_or(0, |b| b.version),
        bundle: newest.filter(|b| query.after.is_none_or(|after| b.version > after)),
    })
}

async fn rules_version(
    State(state): Shared,
    version: Result<Path<u64>, PathRejection>,
) -> ApiResult<Response> {
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

/// One page of a change feed (members or catalog): the same query and
/// paging for both, only the storage call differs.
async fn changes_page<T: serde::Serialize + Send + 'static>(
    state: &Arc<AppState>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
    fetch: fn(&dyn Storage, u64, usize) -> Result<T, CentralError>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(query_error)?;
    let storage = state.storage.clone();
    let limit = q.limit.unwrap_or(CHANGES_PAGE_MAX);
    postcard(&blocking(move || fetch(storage.as_ref(), q.cursor, limit)).await?)
}

async fn member_changes(
    State(state): Shared,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    changes_page(&state, query, |s, cursor, n| s.member_changes(cursor, n)).await
}

async fn catalog_changes(
    State(state): Shared,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> ApiResult<Response> {
    changes_page(&state, query, |s, cursor, n| s.catalog_changes(cursor, n)).await
}

async fn place_hold(
    State(state): Shared,
    terminal: AuthTerminal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
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
    terminal: AuthTerminal,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(body_error)?;
    let release: HoldRelease = wire::decode(&body, HOLD_BYTES_MAX).map_err(CentralError::from)?;
    same_terminal(&terminal, &release.terminal_id)?;
    let storage = state.storage.clone();
    blocking(move || storage.release_hold(&release)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
