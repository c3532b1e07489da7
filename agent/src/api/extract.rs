//! Extractors that turn every malformed request into an [`ApiError`] in the
//! API's JSON shape, naming the offending field.
//!
//! axum's own `Json`/`Query`/`Path` reject with plain-text bodies and,
//! for JSON, a message without the field path; the POS needs the JSON error
//! shape and a message that says *which* field is wrong
//! (`lines[2].qty: invalid type: integer, expected a decimal string`), so
//! these wrap them with `serde_path_to_error`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;

/// The configured request body limit, put into request extensions by the
/// router so the 413 message can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitBytes(pub usize);

/// A JSON body deserialised with field paths in its errors.
///
/// Refusals: no or another content type → 415 `unsupported_media_type`;
/// body over `[api] max_body_bytes` → 413 `body_too_large`; not JSON (or
/// trailing garbage) → 400 `malformed_json`; JSON of the wrong shape (wrong
/// type, unknown field, missing field) → 422 `invalid_request`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be sent with Content-Type: application/json",
            ));
        }
        let limit = req.extensions().get::<BodyLimitBytes>().map(|l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let limit = limit.map_or_else(|| "the configured".to_string(), |n| n.to_string());
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request body is larger than {limit} bytes ([api] max_body_bytes)"),
                )
            } else {
                ApiError::bad_request(
                    "unreadable_body",
                    format!("cannot read the request body: {}", rejection.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON document into `T`, with the field path in every error.
/// Public so the session and tests use the same rules as the extractor.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let place = if path == "." {
            "request body".to_string()
        } else {
            path
        };
        if inner.is_data() {
            ApiError::unprocessable("invalid_request", format!("{place}: {inner}"))
        } else {
            ApiError::bad_request("malformed_json", format!("{place}: {inner}"))
        }
    })?;
    // Trailing bytes after the document mean the client sent something other
    // than what it thinks; refuse rather than guess.
    de.end()
        .map_err(|e| ApiError::bad_request("malformed_json", format!("request body: {e}")))?;
    Ok(value)
}

fn is_json_content_type(value: Option<&axum::http::HeaderValue>) -> bool {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Query parameters, refused with 400 `invalid_query` naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| ApiQuery(q.0))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// Path parameters, refused with 400 `invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        #[allow(dead_code)]
        qty: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        lines: Vec<Line>,
    }

    #[test]
    fn wrong_type_names_the_field_path() {
        let err = parse_json::<Doc>(br#"{"lines": [{"qty": 1}, {"qty": "x"}]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.code, "invalid_request");
        assert!(err.message.starts_with("lines[1].qty:"), "{}", err.message);
    }

    #[test]
    fn unknown_field_is_refused_and_named() {
        let err = parse_json::<Doc>(br#"{"lines": [], "bogus": 1}"#).unwrap_err();
        assert_eq!(err.code, "invalid_request");
        assert!(err.message.contains("bogus"), "{}", err.message);
    }

    #[test]
    fn syntax_error_is_malformed_json() {
        let err = parse_json::<Doc>(br#"{"lines": [}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "malformed_json");
    }

    #[test]
    fn trailing_garbage_is_malformed_json() {
        let err = parse_json::<Doc>(br#"{"lines": []} x"#).unwrap_err();
        assert_eq!(err.code, "malformed_json");
    }

    #[test]
    fn content_type_with_charset_is_json() {
        let v = axum::http::HeaderValue::from_static("application/json; charset=utf-8");
        assert!(is_json_content_type(Some(&v)));
        let v = axum::http::HeaderValue::from_static("text/plain");
        assert!(!is_json_content_type(Some(&v)));
        assert!(!is_json_content_type(None));
    }
}
