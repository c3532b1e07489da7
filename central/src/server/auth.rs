//! Who is asking: the bearer token of a request, checked before anything
//! else of it is read.
//!
//! [`AuthTerminal`], [`AuthChannel`] and [`AuthAdmin`] are extractors.
//! [`super::router`] runs them as a route layer over every route of the
//! sync API, the channel API and the admin API respectively, so a handler
//! added to a list is guarded whether or not it asks for the caller; a
//! handler that needs the terminal's (or channel's) id takes the extractor
//! as an argument and gets the id the layer already looked up (it is kept
//! in the request's extensions). A register's token is refused on the
//! channel routes and a channel's on the sync routes ([`Scope`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::{ApiError, ApiResult};
use super::{AppState, blocking};
use crate::error::CentralError;
use crate::files::token_hash;
use crate::tokens::Scope;

/// The terminal whose token the request carries.
#[derive(Clone, Debug)]
pub struct AuthTerminal(pub String);

impl FromRequestParts<Arc<AppState>> for AuthTerminal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<AuthTerminal>() {
            return Ok(known.clone());
        }
        let terminal = authenticate(parts, state, Scope::Terminal).await?;
        let found = AuthTerminal(terminal);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

/// The channel (web shop, app) whose token the request carries: the id of
/// its pseudo-terminal, `@channel/<name>` ([`crate::apply::channel`]).
#[derive(Clone, Debug)]
pub struct AuthChannel(pub String);

impl FromRequestParts<Arc<AppState>> for AuthChannel {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(known) = parts.extensions.get::<AuthChannel>() {
            return Ok(known.clone());
        }
        let terminal = authenticate(parts, state, Scope::Channel).await?;
        let found = AuthChannel(terminal);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

/// The id a token belongs to, admitted in `scope`: a register's token on
/// the sync routes, a channel's on the channel routes, never across.
async fn authenticate(
    parts: &Parts,
    state: &Arc<AppState>,
    scope: Scope,
) -> Result<String, ApiError> {
    let hash = token_hash(bearer(&parts.headers)?);
    let storage = state.storage.clone();
    let id = blocking(move || storage.authenticate(hash, jiff::Timestamp::now())).await?;
    Ok(scope.admit(id)?)
}

/// The request carries the admin token.
#[derive(Clone, Copy, Debug)]
pub struct AuthAdmin;

impl FromRequestParts<Arc<AppState>> for AuthAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        if token_hash(bearer(&parts.headers)?) == state.admin_token_hash {
            Ok(AuthAdmin)
        } else {
            Err(ApiError(CentralError::Unauthorized(
                "not the admin token".into(),
            )))
        }
    }
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

/// A register may only speak for itself: the terminal a request names must
/// be the one its token belongs to (else 403).
pub(super) fn same_terminal(token_terminal: &AuthTerminal, named: &str) -> ApiResult<()> {
    let AuthTerminal(token_terminal) = token_terminal;
    if named == token_terminal {
        Ok(())
    } else {
        Err(ApiError(CentralError::Forbidden(format!(
            "this token belongs to terminal {token_terminal:?}, not {named:?}"
        ))))
    }
}
