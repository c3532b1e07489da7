//! The channel API for web shops and apps (`docs/channels.md`): JSON
//! bodies, every route behind a channel token
//! ([`super::auth::AuthChannel`]), served on the sync listener beside the
//! registers' routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use pos_sync::protocol::{HoldAnswer, HoldRelease, HoldRequest};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::AuthChannel;
use super::error::{ApiError, ApiResult, body_error};
use super::{AppState, Shared, blocking};
use crate::apply::channel::{ORDER_LINES_MAX, OrderRequest, ReturnRequest, Via};
use crate::error::CentralError;

/// Largest order (or hold) body: [`ORDER_LINES_MAX`] lines of a few
/// hundred bytes each.
pub const ORDER_BYTES_MAX: usize = 256 * 1_024;
/// Largest return or release body.
pub const RETURN_BYTES_MAX: usize = 64 * 1_024;

/// Every route of the channel API; [`super::router`] puts each behind the
/// channel token.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<AppState>>)> {
    vec![
        (
            "/v1/channel/orders",
            post(post_order).layer(DefaultBodyLimit::max(ORDER_BYTES_MAX)),
        ),
        (
            "/v1/channel/returns",
            post(post_return).layer(DefaultBodyLimit::max(RETURN_BYTES_MAX)),
        ),
        (
            "/v1/channel/holds",
            post(post_holds).layer(DefaultBodyLimit::max(ORDER_BYTES_MAX)),
        ),
        (
            "/v1/channel/holds/release",
            post(post_release).layer(DefaultBodyLimit::max(RETURN_BYTES_MAX)),
        ),
    ]
}

/// `POST /v1/channel/orders`: 200 with the order's answer (the stored one
/// for a repeat).
async fn post_order(
    State(state): Shared,
    AuthChannel(channel): AuthChannel,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: OrderRequest = json_body(body, "order")?;
    let storage = state.storage.clone();
    let id = request.order_id.clone();
    let answer = blocking({
        let channel = channel.clone();
        move || storage.channel_order(&channel, &request, jiff::Timestamp::now(), Via::Api)
    })
    .await?;
    if answer.new {
        tracing::info!(message = "Channel order recorded.", channel, order = id);
    }
    Ok(json_text(answer.answer))
}

/// `POST /v1/channel/returns`: 200 with the return's answer.
async fn post_return(
    State(state): Shared,
    AuthChannel(channel): AuthChannel,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let request: ReturnRequest = json_body(body, "return")?;
    let storage = state.storage.clone();
    let id = request.return_id.clone();
    let answer = blocking({
        let channel = channel.clone();
        move || storage.channel_return(&channel, &request, jiff::Timestamp::now())
    })
    .await?;
    tracing::info!(message = "Channel return recorded.", channel, r#return = id);
    Ok(json_text(answer))
}

/// `POST /v1/channel/holds`: the order as it will be sent, its
/// redemptions reserved for the order (the registers' holds, sync spec
/// §4, under the channel's pseudo-terminal), one answer per redemption.
async fn post_holds(
    State(state): Shared,
    AuthChannel(channel): AuthChannel,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let order: OrderRequest = json_body(body, "order")?;
    if order.redeem.is_empty() {
        return Err(ApiError(CentralError::Invalid(
            "redeem: a hold needs at least one redemption".into(),
        )));
    }
    if order.lines.len() > ORDER_LINES_MAX {
        return Err(ApiError(CentralError::Invalid(format!(
            "lines: at most {ORDER_LINES_MAX}"
        ))));
    }
    if crate::guard::is_payment_card(&order.member) {
        return Err(ApiError(CentralError::Invalid(
            crate::guard::PAYMENT_CARD_REASON.into(),
        )));
    }
    // The basket the hold is checked against (points spec §6's share of
    // the order's amount): its lines, time and id.
    let basket =
        json!({"sale_id": order.order_id, "time": order.time, "lines": order.lines}).to_string();
    let requests: Vec<HoldRequest> = order
        .redeem
        .iter()
        .map(|r| HoldRequest {
            terminal_id: channel.clone(),
            member: order.member.clone(),
            program: r.program.clone(),
            sale_id: order.order_id.clone(),
            points: r.points,
            basket: basket.clone(),
        })
        .collect();
    let storage = state.storage.clone();
    let answers = blocking(move || {
        let now = jiff::Timestamp::now();
        requests
            .iter()
            .map(|request| Ok((request.program.clone(), storage.place_hold(request, now)?)))
            .collect::<Result<Vec<_>, CentralError>>()
    })
    .await?;
    let holds: Vec<serde_json::Value> = answers
        .into_iter()
        .map(|(program, answer)| match answer {
            HoldAnswer::Granted { available } => {
                json!({"program": program, "granted": true, "available": available})
            }
            HoldAnswer::Insufficient { available } => json!({
                "program": program, "granted": false, "code": "insufficient_points",
                "available": available
            }),
            HoldAnswer::Blocked => {
                json!({"program": program, "granted": false, "code": "member_blocked"})
            }
            HoldAnswer::Refused { reason } => json!({
                "program": program, "granted": false, "code": "refused", "reason": reason
            }),
        })
        .collect();
    Ok(axum::Json(json!({"order_id": order.order_id, "holds": holds})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    order_id: String,
    program: String,
}

/// `POST /v1/channel/holds/release`: an abandoned checkout gives its
/// points back; 204 (also when there was no open hold).
async fn post_release(
    State(state): Shared,
    AuthChannel(channel): AuthChannel,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let release: Release = json_body(body, "release")?;
    let release = HoldRelease {
        terminal_id: channel,
        sale_id: release.order_id,
        program: release.program,
    };
    let storage = state.storage.clone();
    blocking(move || storage.release_hold(&release)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, what: &str) -> ApiResult<T> {
    let body = body.map_err(body_error)?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError(CentralError::Invalid(format!("{what}: {e}"))))
}

fn json_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}
