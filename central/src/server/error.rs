//! The one error shape of the API, `{"error": {"code", "message"}}`, and
//! axum's rejections (bad query, path or body) mapped into it.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::CentralError;

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
        // Bounded, and never a card number, whatever the message quotes.
        let message = self.0.to_string();
        let message = pos_http::error::safe_message(&message);
        let body = json!({"error": {"code": code, "message": message}});
        (status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

pub(super) fn body_error(e: BytesRejection) -> ApiError {
    if pos_http::BodyTimeout::is_in(&e) {
        ApiError(CentralError::Timeout(format!(
            "reading the request body: {}",
            e.body_text()
        )))
    } else if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
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

pub(super) fn query_error(e: QueryRejection) -> ApiError {
    ApiError(CentralError::Invalid(format!("query: {}", e.body_text())))
}

pub(super) fn path_error(e: PathRejection) -> ApiError {
    ApiError(CentralError::Invalid(format!("path: {}", e.body_text())))
}
