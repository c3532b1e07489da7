//! Admin commands: thin clients of the admin API, for scripts and the demo.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use pos_central::files::{self, CentralDir};
use pos_sync::Token;
use rustls_platform_verifier::BuilderVerifierExt;

/// Time for a whole admin request (imports of big snapshots included).
const ADMIN_TIMEOUT_MS: u64 = 120_000;
/// Largest file an admin command uploads: 64 MiB, the server's own limit.
const UPLOAD_BYTES_MAX: u64 = pos_central::server::SNAPSHOT_BYTES_MAX as u64;

/// The user gave something unusable (a missing file, a refused request).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(String);

#[derive(clap::Args, Debug)]
pub struct Target {
    /// State directory: admin.token, ca.pem and admin.url are read from it.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The admin API's base URL (default: the URL in DIR/admin.url).
    #[arg(long)]
    url: Option<String>,
    /// File holding the admin token (default: DIR/admin.token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// CA certificate to trust (default: DIR/ca.pem when present, else the
    /// platform roots).
    #[arg(long)]
    ca: Option<PathBuf>,
}

struct Resolved {
    url: String,
    token: Token,
    ca: Option<PathBuf>,
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    if meta.len() > UPLOAD_BYTES_MAX {
        return Err(BadInput(format!(
            "{} is over {UPLOAD_BYTES_MAX} bytes",
            path.display()
        ))
        .into());
    }
    std::fs::read_to_string(path).map_err(|e| BadInput(format!("{}: {e}", path.display())).into())
}

impl Target {
    fn resolve(&self) -> anyhow::Result<Resolved> {
        let dir = self.dir.as_ref().map(CentralDir::new);
        let url = match (&self.url, &dir) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => read_text(&dir.admin_url_path())
                .context(
                    "no --url given and the server's admin.url is unreadable (is it serving?)",
                )?
                .trim()
                .to_string(),
            (None, None) => return Err(BadInput("give --url or --dir".into()).into()),
        };
        let secret = match (&self.token_file, &dir) {
            (Some(file), _) => files::read_token(file).map_err(|e| BadInput(e.to_string()))?,
            (None, Some(dir)) => dir.admin_token()?,
            (None, None) => return Err(BadInput("give --token-file or --dir".into()).into()),
        };
        let token = Token::from_secret(secret).map_err(|e| BadInput(e.to_string()))?;
        let ca = match (&self.ca, &dir) {
            (Some(ca), _) => Some(ca.clone()),
            (None, Some(dir)) if dir.ca_path().exists() => Some(dir.ca_path()),
            _ => None,
        };
        Ok(Resolved { url, token, ca })
    }
}

fn client(ca: Option<&PathBuf>) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let config = match ca {
        Some(path) => {
            let pem = read_text(path)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                roots
                    .add(cert.with_context(|| format!("{}", path.display()))?)
                    .with_context(|| format!("{}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .with_platform_verifier()
            .context("platform TLS roots")?
            .with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(Duration::from_millis(ADMIN_TIMEOUT_MS))
        .build()
        .context("HTTP client")
}

fn request(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    body: Option<(String, &'static str)>,
) -> anyhow::Result<()> {
    let resolved = target.resolve()?;
    let http = client(resolved.ca.as_ref())?;
    let url = format!("{}{}", resolved.url.trim_end_matches('/'), path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut req = http.request(method, &url).header(
            reqwest::header::AUTHORIZATION,
            resolved.token.authorization()?,
        );
        if let Some((body, content_type)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body);
        }
        let response = req.send().await.map_err(|e| anyhow!("{url}: {e:?}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{url}: reading the answer"))?;
        if status.is_success() {
            println!("{text}");
            Ok(())
        } else if status.is_client_error() && status.as_u16() != 401 && status.as_u16() != 403 {
            Err(BadInput(format!("{url}: HTTP {status}: {text}")).into())
        } else {
            Err(anyhow!("{url}: HTTP {status}: {text}"))
        }
    })
}

pub fn publish_rules(file: &Path, target: &Target) -> anyhow::Result<()> {
    let content_type = match pos_points::Format::from_path(file) {
        Some(pos_points::Format::Toml) => "application/toml",
        Some(pos_points::Format::Json) => "application/json",
        None => {
            return Err(BadInput(format!(
                "{}: a bundle file ends in .json or .toml",
                file.display()
            ))
            .into());
        }
    };
    let text = read_text(file)?;
    request(
        target,
        reqwest::Method::POST,
        "/v1/admin/rules",
        Some((text, content_type)),
    )
}

/// Posts a snapshot file: `text/csv` when its name ends in `.csv`, JSON
/// otherwise.
pub fn post_snapshot_file(path: &str, file: &Path, target: &Target) -> anyhow::Result<()> {
    let text = read_text(file)?;
    let is_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let content_type = if is_csv {
        "text/csv"
    } else {
        "application/json"
    };
    request(
        target,
        reqwest::Method::POST,
        path,
        Some((text, content_type)),
    )
}

pub fn get(path: &str, target: &Target) -> anyhow::Result<()> {
    if !path.starts_with("/v1/admin/") {
        return Err(BadInput(format!("{path:?}: admin paths start with /v1/admin/")).into());
    }
    request(target, reqwest::Method::GET, path, None)
}

/// POSTs a JSON body to an admin path and prints the answer.
pub fn post_json(path: &str, body: &serde_json::Value, target: &Target) -> anyhow::Result<()> {
    request(
        target,
        reqwest::Method::POST,
        path,
        Some((body.to_string(), "application/json")),
    )
}
