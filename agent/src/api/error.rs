//! The one shape every API error takes: `{"error": {"code", "message"}}`
//! with a 4xx/5xx status (agent spec §3).
//!
//! Every failure path of the API ends here — handler errors, store errors,
//! extractor rejections, unknown routes, wrong methods, timeouts, overload —
//! so a POS client needs exactly one error parser and can switch on `code`.
//! The `code` strings are part of the API contract; the message is for
//! humans and names the offending field or value where there is one.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An API error: status, stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (always 4xx or 5xx).
    pub status: StatusCode,
    /// Stable, snake_case code the POS can switch on.
    pub code: String,
    /// Human explanation, naming the field or value at fault.
    pub message: String,
}

/// Largest message we put into an error answer: echoing a huge bad value
/// back would make the error itself a large body.
pub const ERROR_MESSAGE_CHARS_MAX: usize = 1_000;

impl ApiError {
    /// An error with an explicit status and code. A non-error status is a
    /// programming mistake and is turned into 500 rather than trusted.
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        let status = if status.is_client_error() || status.is_server_error() {
            status
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut message: String = message.into();
        // A message may quote what the client sent (a path, a card): a
        // payment card number in it is masked, never echoed.
        if let std::borrow::Cow::Owned(masked) = pos_http::error::mask_cards(&message) {
            message = masked;
        }
        if message.chars().count() > ERROR_MESSAGE_CHARS_MAX {
            message = message.chars().take(ERROR_MESSAGE_CHARS_MAX).collect();
            message.push('…');
        }
        ApiError {
            status,
            code: code.into(),
            message,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422 with `code`: well-formed JSON whose content is wrong.
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 `not_found` for a path no route serves.
    pub fn no_route(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {method} {path}"),
        )
    }

    /// 405 `method_not_allowed` for a known path with the wrong method.
    pub fn wrong_method(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} does not accept {method}"),
        )
    }

    /// 500 `internal`: something that is our bug, not the client's. The
    /// detail goes to the log, never to the client (it may name paths).
    pub fn internal(what: &str) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("internal error while {what}; see the agent log"),
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: &self.code,
                message: &self.message,
            },
        };
        // Serialising two strings cannot fail; if it ever did, a fixed body
        // still keeps the contract (JSON error shape).
        let text = serde_json::to_string(&body).unwrap_or_else(|_| {
            r#"{"error":{"code":"internal","message":"error encoding failed"}}"#.to_string()
        });
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            text,
        )
            .into_response();
        // Lets the metrics layer count errors by code without parsing bodies.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The code of an error answer, attached to the response for the metrics
/// middleware.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

impl From<crate::store::StoreError> for ApiError {
    /// Store errors keep their code; the status follows the store's own
    /// classification so there is one source of truth for "whose fault".
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::{ErrorClass, StoreError};
        let status = match (&error, error.class()) {
            // Not provisioned yet: the register cannot quote at all, which
            // is the service being unavailable, not a missing resource.
            (StoreError::NoRules, _) => StatusCode::SERVICE_UNAVAILABLE,
            (StoreError::StorageFull, _) => StatusCode::INSUFFICIENT_STORAGE,
            (StoreError::Damaged(_), _) => StatusCode::INTERNAL_SERVER_ERROR,
            (_, ErrorClass::BadRequest) => StatusCode::UNPROCESSABLE_ENTITY,
            (_, ErrorClass::NotFound) => StatusCode::NOT_FOUND,
            (_, ErrorClass::Conflict) => StatusCode::CONFLICT,
            (_, ErrorClass::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(message = "Store request failed.", code = error.code(), %error);
        }
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<crate::session::SessionFailure> for ApiError {
    fn from(failure: crate::session::SessionFailure) -> Self {
        use crate::session::{SessionError, SessionFailure};
        match failure {
            SessionFailure::Store(e) => e.into(),
            SessionFailure::Session(e) => {
                let status = match e {
                    SessionError::NoSession
                    | SessionError::UnknownLine(_)
                    | SessionError::UnknownSku(_) => StatusCode::NOT_FOUND,
                    SessionError::Busy(_) => StatusCode::CONFLICT,
                    SessionError::Empty
                    | SessionError::TooManyLines
                    | SessionError::BadQty(_)
                    | SessionError::BadSaleId(_) => StatusCode::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, e.code(), e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_status_is_not_trusted() {
        let e = ApiError::new(StatusCode::OK, "x", "y");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn card_numbers_are_not_echoed() {
        let e = ApiError::no_route("GET", "/v1/cards/4111111111111111");
        assert!(!e.message.contains("4111"), "{}", e.message);
    }

    #[test]
    fn long_messages_are_cut() {
        let e = ApiError::bad_request("x", "a".repeat(5_000));
        assert_eq!(e.message.chars().count(), ERROR_MESSAGE_CHARS_MAX + 1);
    }
}
