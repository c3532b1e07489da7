//! The admin API: JSON answers, every route behind the admin token
//! ([`super::auth::AuthAdmin`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use pos_sync::protocol::BundleFormat;
use pos_sync::signing::BUNDLE_BYTES_MAX;
use serde::Deserialize;
use serde_json::json;

use super::error::{ApiError, ApiResult, body_error, path_error, query_error};
use super::import::StoreChunk;
use super::{AppState, SNAPSHOT_BYTES_MAX, Shared, blocking};
use crate::apply::ConflictKind;
use crate::apply::adjust::AdjustmentRequest;
use crate::error::CentralError;
use crate::fleet::FleetFilter;
use crate::snapshot::{CatalogSnapshot, CheckedSnapshot, MemberData, MembersSnapshot, Product};
use crate::snapshot_csv;
use crate::storage::{ConflictFilter, LISTING_ROWS_MAX, LedgerFilter, TerminalInfo};

/// Default rows of an admin listing.
const LISTING_ROWS_DEFAULT: usize = 1_000;
/// Largest adjustment body: its fields are bounded far below this.
const ADJUSTMENT_BYTES_MAX: usize = 16 * 1_024;

/// Every route of the admin API; [`super::router`] puts each behind the
/// admin token.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (
            "/v1/admin/rules",
            post(publish_rules).layer(DefaultBodyLimit::max(BUNDLE_BYTES_MAX)),
        ),
        (
            "/v1/admin/members",
            post(import_members).layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX)),
        ),
        (
            "/v1/admin/catalog",
            post(import_catalog).layer(DefaultBodyLimit::max(SNAPSHOT_BYTES_MAX)),
        ),
        ("/v1/admin/members/{id}", get(admin_member)),
        ("/v1/admin/ledger", get(admin_ledger)),
        ("/v1/admin/terminals", get(admin_terminals)),
        ("/v1/admin/metrics", get(metrics)),
        ("/v1/admin/conflicts", get(admin_conflicts)),
        (
            "/v1/admin/adjustments",
            post(post_adjustment).layer(DefaultBodyLimit::max(ADJUSTMENT_BYTES_MAX)),
        ),
    ]
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

/// Parses and validates a snapshot's UTF-8 text as a whole: its records.
type Parse<R> = fn(&str) -> Result<Vec<R>, CentralError>;

/// A snapshot import (members or catalog): the same body handling and
/// answer for both. The text is parsed and validated whole (off the async
/// runtime: parsing 64 MiB blocks), then stored in chunks
/// ([`super::import`]) so that no terminal waits long behind it.
async fn import_snapshot<R: Send + 'static>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    parse: Parse<R>,
    store: StoreChunk<R>,
) -> ApiResult<Response> {
    let body = body.map_err(body_error)?;
    let records = blocking(move || parse(utf8(&body)?)).await?;
    let count = super::import::in_chunks(&state.storage, records, store).await?;
    Ok(axum::Json(json!({"imported": count})).into_response())
}

async fn import_members(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let parse: Parse<MemberData> = if is_csv(&headers) {
        |text| Ok(snapshot_csv::members(text)?.members)
    } else {
        |text| Ok(MembersSnapshot::parse(text)?.members)
    };
    let store: StoreChunk<MemberData> = |s, members| s.import_members(&MembersSnapshot { members });
    import_snapshot(&state, body, parse, store).await
}

async fn import_catalog(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let parse: Parse<Product> = if is_csv(&headers) {
        |text| Ok(snapshot_csv::catalog(text)?.products)
    } else {
        |text| Ok(CatalogSnapshot::parse(text)?.products)
    };
    let store: StoreChunk<Product> = |s, products| s.import_catalog(&CatalogSnapshot { products });
    import_snapshot(&state, body, parse, store).await
}

/// `text/csv` bodies are CSV (`snapshot_csv`); anything else JSON.
fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/csv"))
}

async fn admin_member(
    State(state): Shared,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
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
    query: Result<Query<LedgerQuery>, QueryRejection>,
) -> ApiResult<Response> {
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

/// `GET /v1/admin/terminals` filters (the fleet view): every given one
/// must hold.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalQuery {
    /// No upload for more than this many minutes (or never).
    silent_mins: Option<u64>,
    /// A reported outbox deeper than this.
    backlog_above: Option<u64>,
    /// `true`: only those on rules older than central's newest.
    rules_behind: Option<bool>,
}

async fn admin_terminals(
    State(state): Shared,
    query: Result<Query<TerminalQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(query_error)?;
    let filter = FleetFilter {
        silent_mins: query.silent_mins,
        backlog_above: query.backlog_above,
        rules_behind: query.rules_behind.unwrap_or(false),
    };
    let (terminals, newest) = fleet(&state).await?;
    let now = jiff::Timestamp::now();
    let terminals: Vec<_> = terminals
        .into_iter()
        .filter(|t| filter.matches(t, now, newest))
        .collect();
    Ok(axum::Json(json!({"terminals": terminals, "newest_rules_version": newest})).into_response())
}

/// Every terminal and central's newest rules version: what the fleet view
/// and the fleet gauges are computed from.
async fn fleet(state: &AppState) -> ApiResult<(Vec<TerminalInfo>, Option<u64>)> {
    let storage = state.storage.clone();
    blocking(move || Ok((storage.terminals()?, storage.current_bundle_version()?))).await
}

/// `GET /v1/admin/metrics`: Prometheus text format ([`super::metrics`]).
async fn metrics(State(state): Shared) -> ApiResult<Response> {
    let (terminals, newest) = fleet(&state).await?;
    let text = state.metrics.render(&terminals, newest);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /v1/admin/conflicts` as sent: text, each parsed by
/// [`ConflictQuery::filter`] so that a bad value is a 400 naming it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConflictQuery {
    kind: Option<String>,
    terminal: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn bad_parameter(name: &str, value: &str, want: &str) -> CentralError {
    CentralError::Invalid(format!("query parameter {name}={value:?}: {want}"))
}

fn timestamp(name: &str, value: Option<&str>) -> Result<Option<jiff::Timestamp>, CentralError> {
    value
        .map(|v| {
            v.parse::<jiff::Timestamp>().map_err(|_| {
                bad_parameter(name, v, "give an RFC 3339 time, e.g. 2026-12-03T13:00:00Z")
            })
        })
        .transpose()
}

impl ConflictQuery {
    fn filter(self) -> Result<ConflictFilter, CentralError> {
        if let Some(kind) = &self.kind
            && ConflictKind::parse(kind).is_none()
        {
            let kinds: Vec<&str> = ConflictKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(bad_parameter(
                "kind",
                kind,
                &format!("one of {}", kinds.join(", ")),
            ));
        }
        if let Some(t) = &self.terminal
            && (t.is_empty() || t.len() > pos_sync::protocol::ID_BYTES_MAX)
        {
            return Err(bad_parameter("terminal", t, "not a terminal id"));
        }
        let since = timestamp("since", self.since.as_deref())?;
        let until = timestamp("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(CentralError::Invalid(format!(
                "query parameters since={s} and until={u}: since is after until"
            )));
        }
        let before_id = self
            .before
            .map(|b| {
                b.parse::<i64>()
                    .ok()
                    .filter(|&id| id > 0)
                    .ok_or_else(|| bad_parameter("before", &b, "a conflict id (next_before)"))
            })
            .transpose()?;
        let limit = match self.limit {
            None => LISTING_ROWS_DEFAULT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LISTING_ROWS_MAX).contains(n))
                .ok_or_else(|| {
                    bad_parameter(
                        "limit",
                        &l,
                        &format!("a number from 1 to {LISTING_ROWS_MAX}"),
                    )
                })?,
        };
        Ok(ConflictFilter {
            kind: self.kind,
            terminal: self.terminal,
            since,
            until,
            before_id,
            limit,
        })
    }
}

/// The conflicts the filters select, newest first; `next_before` (when the
/// page is full) is the `before` of the next page.
async fn admin_conflicts(
    State(state): Shared,
    query: Result<Query<ConflictQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(query_error)?;
    let filter = q.filter()?;
    let limit = filter.limit;
    let storage = state.storage.clone();
    let conflicts = blocking(move || storage.conflict_page(&filter)).await?;
    let next_before = conflicts
        .last()
        .filter(|_| conflicts.len() == limit)
        .map(|c| c.id);
    Ok(axum::Json(json!({"conflicts": conflicts, "next_before": next_before})).into_response())
}

/// Records an administrator's adjustment (`apply::adjust`): 201 with the
/// stored entry and the member's balances.
async fn post_adjustment(
    State(state): Shared,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(body_error)?;
    let request: AdjustmentRequest = serde_json::from_slice(&body)
        .map_err(|e| CentralError::Invalid(format!("adjustment: {e}")))?;
    let adjustment = request.check()?;
    let storage = state.storage.clone();
    let (entry, programs) = blocking(move || {
        let now = jiff::Timestamp::now();
        let entry = storage.adjust(&adjustment, now)?;
        let credited = entry.credited_member.clone().unwrap_or_default();
        let programs = storage
            .member_balances(&credited, now)?
            .map(|(_, p)| p)
            .unwrap_or_default();
        Ok((entry, programs))
    })
    .await?;
    tracing::info!(
        message = "Adjustment recorded.",
        member = entry.credited_member,
        points = entry.points,
        seq = entry.seq
    );
    let balances: BTreeMap<String, serde_json::Value> = programs
        .into_iter()
        .map(|p| {
            (
                p.program,
                json!({"balance": p.balance, "available": p.available}),
            )
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"entry": entry, "programs": balances})),
    )
        .into_response())
}
