//! The register's HTTP client for central (sync spec §2–§4).
//!
//! HTTPS with rustls (ring provider), built here rather than by reqwest so
//! the trust roots are ours to choose: the CA file from the config when given
//! (a private central with its own CA), else the platform verifier (the
//! operating system's roots). The server name is always checked. `http://` is
//! refused except to loopback or with `allow_insecure_http`.
//!
//! The client does one request per call and never retries on its own: the
//! sync worker owns the loop and the [`crate::retry::Backoff`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use rustls::DigitallySignedStruct;
use rustls::SignatureScheme;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::error::SyncError;
use crate::protocol::{
    ANSWER_BYTES_MAX, CHANGES_PAGE_MAX, CatalogChanges, HoldAnswer, HoldRelease, HoldRequest,
    MemberChanges, RulesAnswer, SignedBundle, TerminalReport, UploadAnswer, UploadBatch,
};
use crate::wire;

/// Default time to establish a TCP + TLS connection.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default time for a whole request, answer included.
pub const REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Most bytes of an error body kept for the log.
pub const ERROR_BODY_BYTES_MAX: usize = 4_096;
/// Largest CA file read: 1 MiB.
pub const CA_FILE_BYTES_MAX: u64 = 1_048_576;

/// A bearer token: trimmed, non-empty printable ASCII (it goes into an
/// HTTP header), held in a [`SecretString`] so it is wiped from memory on
/// drop and `Debug` shows `[REDACTED]`. [`Token::authorization`] is the one
/// place its text is exposed.
#[derive(Clone, Debug)]
pub struct Token(SecretString);

impl Token {
    /// From text the caller holds (a test, a benchmark): the trimmed text
    /// is copied into the secret.
    pub fn new(text: &str) -> Result<Token, SyncError> {
        Token::check(text.trim())?;
        Ok(Token(SecretString::from(text.trim())))
    }

    /// From a secret already read (the config's token file): kept as it is
    /// when it needs no trimming, so the text is not copied again.
    pub fn from_secret(secret: SecretString) -> Result<Token, SyncError> {
        let text = secret.expose_secret();
        Token::check(text.trim())?;
        if text.trim().len() == text.len() {
            Ok(Token(secret))
        } else {
            Ok(Token(SecretString::from(text.trim())))
        }
    }

    fn check(text: &str) -> Result<(), SyncError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SyncError::Config(
                "the central token must be non-empty printable ASCII".into(),
            ));
        }
        Ok(())
    }

    /// The `Authorization: Bearer` header value, marked sensitive (HTTP/2
    /// never indexes it, `Debug` hides it). The text is assembled in a
    /// buffer that is wiped on drop; the header value itself is the `http`
    /// crate's and lives as long as the client that sends it.
    pub fn authorization(&self) -> Result<HeaderValue, SyncError> {
        const SCHEME: &str = "Bearer ";
        let token = self.0.expose_secret();
        let mut text = Zeroizing::new(String::with_capacity(SCHEME.len() + token.len()));
        text.push_str(SCHEME);
        text.push_str(token);
        let mut value = HeaderValue::from_str(&text)
            .map_err(|_| SyncError::Config("the central token is not a valid header".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// How to reach central.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://loyalty.example.com`.
    pub url: String,
    /// The terminal's bearer token (read by the caller from a file or a
    /// systemd credential, never from the config text).
    pub token: Token,
    /// PEM file of the CA(s) to trust instead of the platform roots.
    pub ca_file: Option<PathBuf>,
    /// Permit `http://` to a non-loopback host (tests, labs).
    pub allow_insecure_http: bool,
    /// The name central's certificate must carry when it differs from the
    /// URL's host (e.g. the URL names an IP address and the certificate a
    /// DNS name). `None`: the URL's host.
    pub server_name: Option<String>,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
}

impl ClientConfig {
    pub fn new(url: impl Into<String>, token: Token) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            token,
            ca_file: None,
            allow_insecure_http: false,
            server_name: None,
            connect_timeout_ms: CONNECT_TIMEOUT_MS,
            request_timeout_ms: REQUEST_TIMEOUT_MS,
        }
    }
}

/// Talks to one central for one terminal. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SyncClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Parses and checks the base URL against the transport policy.
pub fn check_url(text: &str, allow_insecure_http: bool) -> Result<Url, SyncError> {
    let url = Url::parse(text)
        .map_err(|e| SyncError::Config(format!("central url {text:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) || allow_insecure_http => {}
        "http" => {
            return Err(SyncError::Config(format!(
                "central url {text:?}: http:// is only allowed to a loopback host \
                 or with allow_insecure_http = true"
            )));
        }
        other => {
            return Err(SyncError::Config(format!(
                "central url {text:?}: scheme {other:?} is not http or https"
            )));
        }
    }
    if url.host().is_none() {
        return Err(SyncError::Config(format!(
            "central url {text:?} has no host"
        )));
    }
    Ok(url)
}

fn config_error(e: impl std::fmt::Display) -> SyncError {
    SyncError::Config(format!("TLS setup: {e}"))
}

fn tls_config(
    ca_file: Option<&PathBuf>,
    server_name: Option<&str>,
) -> Result<rustls::ClientConfig, SyncError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let verifier: Arc<dyn ServerCertVerifier> = match ca_file {
        Some(path) => {
            let pem = read_ca_file(path)?;
            let mut roots = rustls::RootCertStore::empty();
            let mut count = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert
                    .map_err(|e| SyncError::Config(format!("CA file {}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| SyncError::Config(format!("CA file {}: {e}", path.display())))?;
                count += 1;
            }
            if count == 0 {
                return Err(SyncError::Config(format!(
                    "CA file {} holds no PEM certificate",
                    path.display()
                )));
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(config_error)?
        }
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| SyncError::Config(format!("platform TLS roots: {e}")))?,
        ),
    };
    let verifier = match server_name {
        None => verifier,
        Some(name) => {
            let name = ServerName::try_from(name.to_string()).map_err(|e| {
                SyncError::Config(format!("server_name {name:?} is not a DNS name or IP: {e}"))
            })?;
            Arc::new(NamedVerifier {
                inner: verifier,
                name,
            })
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Checks central's certificate against a configured name instead of the
/// URL's host; everything else (chain, expiry, signatures) is the inner
/// verifier's. Hand-written because rustls checks the name the connector
/// derives from the URL, and reqwest has no option to set another.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _url_host: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn read_ca_file(path: &PathBuf) -> Result<Vec<u8>, SyncError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| SyncError::Config(format!("CA file {}: {e}", path.display())))?;
    let mut pem = Vec::new();
    file.take(CA_FILE_BYTES_MAX + 1)
        .read_to_end(&mut pem)
        .map_err(|e| SyncError::Config(format!("CA file {}: {e}", path.display())))?;
    if pem.len() as u64 > CA_FILE_BYTES_MAX {
        return Err(SyncError::Config(format!(
            "CA file {} is over {CA_FILE_BYTES_MAX} bytes",
            path.display()
        )));
    }
    Ok(pem)
}

/// The error text of a reqwest error with its causes (reqwest's own
/// `Display` omits them, and "error sending request" alone helps nobody).
fn network_error(e: &reqwest::Error) -> SyncError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    SyncError::Network(text)
}

/// A non-success answer as [`SyncError::Status`]: central's JSON error (or
/// the raw body, already bounded) and its `Retry-After` in seconds.
fn status_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    bytes: &[u8],
) -> SyncError {
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => (
            "unknown".into(),
            String::from_utf8_lossy(bytes).into_owned(),
        ),
    };
    SyncError::Status {
        status: status.as_u16(),
        code,
        message,
        retry_after,
    }
}

/// Longest `Location` quoted in a redirect error: enough to recognise it,
/// bounded whatever the server sends.
pub const LOCATION_CHARS_MAX: usize = 200;

/// A 3xx answer as the error it is for this client: central's URL is
/// configured, never discovered, so a redirect means a misconfigured proxy
/// or an attack. Not retried quickly (a 3xx is no transient state).
fn redirect_error(status: StatusCode, headers: &reqwest::header::HeaderMap) -> SyncError {
    let location = headers
        .get(reqwest::header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let shown = match location {
        Some(text) if text.chars().count() > LOCATION_CHARS_MAX => {
            let cut: String = text.chars().take(LOCATION_CHARS_MAX).collect();
            format!("{cut:?}...")
        }
        Some(text) => format!("{text:?}"),
        None => "nowhere (no Location header)".to_string(),
    };
    SyncError::Status {
        status: status.as_u16(),
        code: "redirect".to_string(),
        message: format!(
            "central redirected to {shown}; redirects are never followed \
             (nothing was re-sent): check [central] url"
        ),
        retry_after: None,
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl SyncClient {
    pub fn new(config: &ClientConfig) -> Result<SyncClient, SyncError> {
        let base = check_url(&config.url, config.allow_insecure_http)?;
        let tls = tls_config(config.ca_file.as_ref(), config.server_name.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(concat!("pos-agent/", env!("CARGO_PKG_VERSION")))
            // Never follow a redirect: reqwest would re-send the body (a
            // ledger batch) to wherever Location points, plain http://
            // included. A 3xx is an error naming where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SyncError::Config(format!("HTTP client: {e}")))?;
        let auth = config.token.authorization()?;
        Ok(SyncClient { http, base, auth })
    }

    fn url(&self, path_and_query: &str) -> Result<Url, SyncError> {
        self.base
            .join(path_and_query)
            .map_err(|e| SyncError::Config(format!("building the URL {path_and_query}: {e}")))
    }

    /// Sends one request; `Ok(None)` for 204 No Content.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, SyncError> {
        let mut request = self
            .http
            .request(method, self.url(path)?)
            .header(AUTHORIZATION, self.auth.clone())
            .header(reqwest::header::ACCEPT, wire::CONTENT_TYPE)
            .header(wire::PROTOCOL_HEADER, wire::PROTOCOL_VERSION.to_string());
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, wire::CONTENT_TYPE).body(body);
        }
        let mut response = request.send().await.map_err(|e| network_error(&e))?;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        } else if status.is_redirection() {
            return Err(redirect_error(status, response.headers()));
        }
        let limit = if status.is_success() {
            ANSWER_BYTES_MAX
        } else {
            ERROR_BODY_BYTES_MAX
        };
        if let Some(len) = response.content_length()
            && status.is_success()
            && len > limit as u64
        {
            return Err(SyncError::Protocol(format!(
                "answer of {len} bytes is over the limit of {limit}"
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| network_error(&e))? {
            if bytes.len() + chunk.len() > limit {
                if status.is_success() {
                    return Err(SyncError::Protocol(format!(
                        "answer is over the limit of {limit} bytes"
                    )));
                }
                let room = limit - bytes.len();
                bytes.extend_from_slice(&chunk[..room]);
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(Some(bytes));
        }
        Err(status_error(status, response.headers(), &bytes))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, SyncError> {
        match self.exchange(method, path, body).await? {
            Some(bytes) => wire::decode(&bytes, ANSWER_BYTES_MAX),
            None => Err(SyncError::Protocol(format!(
                "{path}: central answered 204 where a body was expected"
            ))),
        }
    }

    fn body<T: Serialize>(message: &T) -> Result<Option<Vec<u8>>, SyncError> {
        wire::encode(message).map(Some)
    }

    /// Uploads one batch (at most [`crate::protocol::BATCH_ENTRIES_MAX`]
    /// entries / 1 MiB; cut it with [`wire::batch_prefix_len`]).
    pub async fn upload(&self, batch: &UploadBatch) -> Result<UploadAnswer, SyncError> {
        let body = wire::encode_upload(batch)?;
        self.call(Method::POST, "v1/sync/upload", Some(body)).await
    }

    /// Central's newest version, and its bundle if newer than `after`
    /// (None: any), unverified: pass it to
    /// [`crate::signing::verify_bundle`].
    pub async fn newest_rules(&self, after: Option<u64>) -> Result<RulesAnswer, SyncError> {
        let path = match after {
            Some(v) => format!("v1/sync/rules?after={v}"),
            None => "v1/sync/rules".to_string(),
        };
        self.call(Method::GET, &path, None).await
    }

    /// One published bundle version (old versions stay available for returns).
    pub async fn rules_version(&self, version: u64) -> Result<SignedBundle, SyncError> {
        self.call(Method::GET, &format!("v1/sync/rules/{version}"), None)
            .await
    }

    /// Member changes after `cursor` (0: from the start), at most `limit`
    /// (capped at [`CHANGES_PAGE_MAX`]).
    pub async fn member_changes(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<MemberChanges, SyncError> {
        let limit = limit.clamp(1, CHANGES_PAGE_MAX);
        self.call(
            Method::GET,
            &format!("v1/sync/members?cursor={cursor}&limit={limit}"),
            None,
        )
        .await
    }

    /// Catalog changes after `cursor`, at most `limit` (capped).
    pub async fn catalog_changes(
        &self,
        cursor: u64,
        limit: usize,
    ) -> Result<CatalogChanges, SyncError> {
        let limit = limit.clamp(1, CHANGES_PAGE_MAX);
        self.call(
            Method::GET,
            &format!("v1/sync/catalog?cursor={cursor}&limit={limit}"),
            None,
        )
        .await
    }

    /// Asks central to reserve points for an online redemption.
    pub async fn place_hold(&self, request: &HoldRequest) -> Result<HoldAnswer, SyncError> {
        self.call(Method::POST, "v1/sync/holds", Self::body(request)?)
            .await
    }

    /// Tells central how this register is (the fleet view). An older
    /// central answers 404, which the caller may ignore.
    pub async fn report(&self, report: &TerminalReport) -> Result<(), SyncError> {
        self.exchange(Method::PUT, "v1/sync/report", Self::body(report)?)
            .await
            .map(|_| ())
    }

    /// Releases a hold whose sale was abandoned.
    pub async fn release_hold(&self, release: &HoldRelease) -> Result<(), SyncError> {
        self.exchange(Method::POST, "v1/sync/holds/release", Self::body(release)?)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_refused_unless_loopback_or_allowed() {
        assert!(check_url("https://loyalty.example.com", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://[::1]:8080", false).is_ok());
        assert!(check_url("http://localhost:8080", false).is_ok());
        let err = check_url("http://loyalty.example.com", false).unwrap_err();
        assert!(err.to_string().contains("allow_insecure_http"), "{err}");
        assert!(check_url("http://loyalty.example.com", true).is_ok());
        assert!(check_url("ftp://loyalty.example.com", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }

    #[test]
    fn a_server_name_that_is_no_name_is_a_config_error() {
        let mut config = ClientConfig::new("https://10.0.0.1", Token::new("t").unwrap());
        config.server_name = Some("not a name!".into());
        let err = SyncClient::new(&config).unwrap_err();
        assert!(err.to_string().contains("server_name"), "{err}");
    }

    #[test]
    fn tokens_are_never_printed() {
        let config = ClientConfig::new("https://x.example", Token::new("s3cret\n").unwrap());
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(Token::new("  ").is_err());
        assert!(Token::new("a b").is_err());
    }

    #[test]
    fn a_token_from_a_secret_is_trimmed_checked_and_sent_as_a_sensitive_header() {
        let token = Token::from_secret(SecretString::from(" tok-9f\n")).unwrap();
        assert!(!format!("{token:?}").contains("tok-9f"), "{token:?}");
        let header = token.authorization().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer tok-9f");
        assert!(!format!("{header:?}").contains("tok-9f"), "{header:?}");
        assert!(Token::from_secret(SecretString::from("\n")).is_err());
        assert!(Token::from_secret(SecretString::from("a\u{e9}")).is_err());
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_config_error() {
        let mut config = ClientConfig::new("https://x.example", Token::new("t").unwrap());
        config.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        assert!(matches!(
            SyncClient::new(&config),
            Err(SyncError::Config(_))
        ));
        let dir = std::env::temp_dir().join(format!("pos-sync-ca-{}", std::process::id()));
        std::fs::write(&dir, "no certificate here").unwrap();
        config.ca_file = Some(dir.clone());
        let err = SyncClient::new(&config).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_file(dir);
    }
}
