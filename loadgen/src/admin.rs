//! Central's admin API as the generator uses it: publish the rules bundle
//! the documents are quoted with, import the members the entries name, and
//! at the end read every terminal's chain head (`GET /v1/admin/terminals`)
//! and the conflicts recorded (`GET /v1/admin/conflicts`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pos_sync::Digest32;
use reqwest::StatusCode;
use serde::Deserialize;

use crate::error::LoadError;

/// Time for one admin request (a members snapshot of a million records
/// included).
pub const ADMIN_TIMEOUT_MS: u64 = 300_000;
/// Most conflicts read back at the end: enough to see that there are some
/// and of which kind; none are expected.
pub const CONFLICTS_READ_MAX: usize = 100;

/// Central's admin listener: its base URL and the admin token.
#[derive(Clone, Debug)]
pub struct AdminTarget {
    pub url: String,
    /// The admin token's text (from the state directory's `admin.token`).
    pub token: String,
}

/// A terminal's chain head as central reports it.
#[derive(Clone, Debug, Deserialize)]
pub struct Head {
    pub terminal_id: String,
    pub last_seq: u64,
    pub last_hash: Digest32,
}

#[derive(Deserialize)]
struct Terminals {
    terminals: Vec<Head>,
}

#[derive(Deserialize)]
struct Conflicts {
    conflicts: Vec<serde_json::Value>,
}

/// An admin API client.
pub struct Admin {
    http: reqwest::Client,
    target: AdminTarget,
}

/// A rustls client configuration trusting only the CA in `ca_file`
/// (central's `ca.pem`): the generator talks to centrals it was pointed at
/// together with their CA. Without a CA file the admin URL must be plain
/// `http://` (a central serving `--insecure-http` on loopback).
pub fn tls(ca_file: &Path) -> Result<rustls::ClientConfig, LoadError> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| LoadError::Plan(format!("CA file {}: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.map_err(|e| LoadError::Plan(format!("CA file {}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| LoadError::Plan(format!("CA file {}: {e}", ca_file.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LoadError::Plan(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Admin {
    pub fn new(target: AdminTarget, ca_file: Option<&Path>) -> Result<Admin, LoadError> {
        let mut builder =
            reqwest::Client::builder().timeout(Duration::from_millis(ADMIN_TIMEOUT_MS));
        if let Some(ca) = ca_file {
            builder = builder.tls_backend_preconfigured(tls(ca)?);
        }
        let http = builder
            .build()
            .map_err(|e| LoadError::Plan(format!("admin HTTP client: {e}")))?;
        Ok(Admin { http, target })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(StatusCode, String), LoadError> {
        let answer = request
            .bearer_auth(&self.target.token)
            .send()
            .await
            .map_err(|e| LoadError::Admin(format!("{what}: {e}")))?;
        let status = answer.status();
        let text = answer
            .text()
            .await
            .map_err(|e| LoadError::Admin(format!("{what}: {e}")))?;
        Ok((status, text))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.url.trim_end_matches('/'))
    }

    /// Publishes the bundle the generated documents are quoted with
    /// ([`pos_sync::testing::bundle_json`] at `version`). A central that
    /// already has `version` (409) is used as it is: true when this call
    /// published it.
    pub async fn publish_rules(&self, version: u64) -> Result<bool, LoadError> {
        let body = pos_sync::testing::bundle_json(version);
        let request = self
            .http
            .post(self.url("/v1/admin/rules"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match self.send(request, "publishing the rules").await? {
            (s, _) if s.is_success() => Ok(true),
            (StatusCode::CONFLICT, _) => Ok(false),
            (s, text) => Err(LoadError::Setup(format!(
                "publishing rules version {version}: HTTP {s}: {text}"
            ))),
        }
    }

    /// Imports `count` members named [`crate::plan::member`] (no tier, no
    /// birthday: the documents claim none), in one snapshot.
    pub async fn import_members(&self, count: u64) -> Result<(), LoadError> {
        let members: Vec<serde_json::Value> = (0..count)
            .map(|i| {
                serde_json::json!({"id": crate::plan::member(i), "cards": [],
                    "programs": {"main": {"available": 0, "pending": 0}}})
            })
            .collect();
        let body = serde_json::json!({ "members": members }).to_string();
        let request = self
            .http
            .post(self.url("/v1/admin/members"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match self.send(request, "importing members").await? {
            (s, _) if s.is_success() => Ok(()),
            (s, text) => Err(LoadError::Setup(format!(
                "importing {count} members: HTTP {s}: {text}"
            ))),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, LoadError> {
        let request = self.http.get(self.url(path));
        match self.send(request, path).await? {
            (s, text) if s.is_success() => serde_json::from_str(&text)
                .map_err(|e| LoadError::Admin(format!("{path}: {e}: {text:.200}"))),
            (s, text) => Err(LoadError::Admin(format!("{path}: HTTP {s}: {text:.500}"))),
        }
    }

    /// Every terminal's chain head.
    pub async fn heads(&self) -> Result<Vec<Head>, LoadError> {
        Ok(self
            .get_json::<Terminals>("/v1/admin/terminals")
            .await?
            .terminals)
    }

    /// The conflicts central recorded (at most [`CONFLICTS_READ_MAX`]).
    pub async fn conflicts(&self) -> Result<Vec<serde_json::Value>, LoadError> {
        let path = format!("/v1/admin/conflicts?limit={CONFLICTS_READ_MAX}");
        Ok(self.get_json::<Conflicts>(&path).await?.conflicts)
    }
}
