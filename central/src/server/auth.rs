//! Who is asking: the bearer token of a request, checked before anything
//! else of it is read.
//!
//! [`AuthTerminal`] and [`AuthAdmin`] are extractors. [`super::router`]
//! runs them as a route layer over every route of the sync API and of the
//! admin API respectively, so a handler added to either list is guarded
//! whether or not it asks for the caller; a handler that needs the
//! terminal's id takes [`AuthTerminal`] as an argument and gets the id the
//! layer already looked up (it is kept in the request's extensions).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::{ApiError, ApiResult};
use super::{AppState, blocking};
use crate::error::CentralError;
use crate::files::token_hash;

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
        let hash = token_hash(bearer(&parts.headers)?);
        let storage = state.storage.clone();
        let terminal = blocking(move || storage.authenticate(hash, jiff::Timestamp::now())).await?;
        let found = AuthTerminal(terminal);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
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
