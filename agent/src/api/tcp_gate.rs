//! The TCP listener's gate: a request there must name this register in its
//! `Host` header and carry the bearer token of `[api] token_file` or
//! `credential`. The Unix socket has no gate: its file mode (0660) already
//! decides who may connect.
//!
//! Why both: any local process, whatever its user, can connect to a
//! loopback port (a process running as `nobody` redeemed a member's points
//! over `127.0.0.1:7311` while the socket refused it), so the token is what
//! tells the POS apart. A web page in a browser on the register can reach
//! loopback too, through DNS rebinding (its own name resolving to
//! 127.0.0.1); it cannot know the token, and the `Host` check refuses it
//! even before that, since its requests carry its own name.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::api::error::ApiError;

/// What a TCP request must present.
pub struct TcpGate {
    /// SHA-256 of the token: compared digest to digest, so the comparison
    /// time says nothing about how much of a guess was right.
    token_digest: [u8; 32],
    /// Accepted `Host` names, lower case, without port.
    hosts: Vec<String>,
}

impl std::fmt::Debug for TcpGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpGate")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl TcpGate {
    /// `hosts`: see [`pos_config::Api::accepted_hosts`].
    pub fn new(token: &SecretString, hosts: Vec<String>) -> TcpGate {
        TcpGate {
            token_digest: Sha256::digest(token.expose_secret().as_bytes()).into(),
            hosts: hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// The `Host` header names one of [`TcpGate::hosts`] (a port after it
    /// is allowed: the client may write the one it connected to).
    fn host_ok(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::HOST).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Ok(text) = value.to_str() else {
            return false;
        };
        let host = strip_port(text).to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// `Authorization: Bearer <token>` with this register's token.
    fn token_ok(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(presented) = value.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        digest
            .iter()
            .zip(self.token_digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` without the port.
fn strip_port(text: &str) -> &str {
    if text.starts_with('[') {
        return match text.find(']') {
            Some(end) => &text[..=end],
            None => text,
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => text,
    }
}

/// The middleware: the request goes on only through both checks. Neither
/// answer echoes what was sent (a Host header or a token is never shown).
pub async fn check(State(gate): State<Arc<TcpGate>>, request: Request, next: Next) -> Response {
    if !gate.host_ok(request.headers()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "unexpected_host",
            "the Host header does not name this register (accepted: localhost, its \
             loopback addresses and [api] allowed_hosts)",
        )
        .into_response();
    }
    if !gate.token_ok(request.headers()) {
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the TCP API needs \"Authorization: Bearer <token>\" with the token of \
             [api] token_file or credential",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> TcpGate {
        TcpGate::new(
            &SecretString::from("tok-123"),
            vec![
                "localhost".into(),
                "127.0.0.1".into(),
                "[::1]".into(),
                "reg-3.local".into(),
            ],
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hosts_are_matched_without_port_and_case() {
        let g = gate();
        for ok in [
            "localhost",
            "LOCALHOST:7311",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:7311",
            "reg-3.local",
        ] {
            assert!(g.host_ok(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7311",
            "127.0.0.2",
            "localhost.evil.example",
            "",
            "[::2]",
        ] {
            assert!(!g.host_ok(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(!g.host_ok(&headers(&[])), "no Host");
        assert!(
            !g.host_ok(&headers(&[("host", "localhost"), ("host", "evil.example")])),
            "two"
        );
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let g = gate();
        assert!(g.token_ok(&headers(&[("authorization", "Bearer tok-123")])));
        for bad in [
            "Bearer tok-12",
            "Bearer tok-1234",
            "bearer tok-123",
            "Basic tok-123",
            "tok-123",
            "Bearer ",
        ] {
            assert!(!g.token_ok(&headers(&[("authorization", bad)])), "{bad}");
        }
        assert!(!g.token_ok(&headers(&[])));
        assert!(!format!("{g:?}").contains("tok"), "{g:?}");
    }
}
