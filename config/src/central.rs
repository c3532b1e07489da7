//! `[central]`: the loyalty platform this register syncs with, and how the
//! register proves who it is (a token read from a file or a systemd
//! credential, never written in the config itself).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use secrecy::SecretString;
use url::{Host, Url};

use crate::env::Env;
use crate::error::Error;
use crate::reader::{Ctx, Field, Table, quote};
use crate::secret::Origin;
pub use crate::secret::{CREDENTIAL_NAME_CHARS_MAX, TOKEN_BYTES_MAX, TokenSource};
use crate::values::path;

pub(crate) const KEYS: &[&str] = &[
    "url",
    "allow_insecure_http",
    "token_file",
    "credential",
    "ca_file",
    "server_name",
    "rules_public_key",
    "sync_interval_secs",
    "member_fresh_secs",
    "request_timeout_secs",
];

pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 30;
/// One day: a register that syncs less often than daily is effectively offline.
pub const SYNC_INTERVAL_SECS_MAX: u64 = 86_400;
/// Sync spec §4's default freshness window for member data.
pub const DEFAULT_MEMBER_FRESH_SECS: u64 = 300;
/// One week: older member data is stale whatever the config says.
pub const MEMBER_FRESH_SECS_MAX: u64 = 604_800;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Ten minutes: longer and a dead connection blocks the sync worker for good.
pub const REQUEST_TIMEOUT_SECS_MAX: u64 = 600;
/// The central platform. Present only when the file has `[central]`:
/// without it the agent runs standalone, with sync off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Central {
    /// Base URL of the central API; `https`, or `http` to loopback or with
    /// `allow_insecure_http`. Has no user, password, query or fragment.
    pub url: Url,
    /// Lets `url` be plain `http://` to a non-loopback host (a lab setup):
    /// the token would cross the network in clear, so it takes a decision.
    pub allow_insecure_http: bool,
    pub token: TokenSource,
    /// Extra CA certificate (PEM) to trust instead of the platform roots,
    /// for a central with a private CA. Only with `https`.
    pub ca_file: Option<PathBuf>,
    /// The name the TLS certificate must carry: `server_name` when given,
    /// else the URL's host. Always filled.
    pub server_name: String,
    /// Ed25519 public key that rules bundles must be signed with; checked
    /// to be a valid curve point.
    pub rules_public_key: [u8; 32],
    pub sync_interval_secs: u64,
    /// Member data younger than this is fresh (sync spec §4).
    pub member_fresh_secs: u64,
    /// Bound on each request to central, connect to last byte.
    pub request_timeout_secs: u64,
    /// Where the token key was written, so that a token that cannot be
    /// read is reported at its line in the config.
    token_origin: Origin,
}

impl Central {
    pub fn sync_interval(&self) -> Duration {
        Duration::from_secs(self.sync_interval_secs)
    }

    pub fn member_fresh(&self) -> Duration {
        Duration::from_secs(self.member_fresh_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Reads the bearer token from `token_file` or from the systemd
    /// credential, trimmed of surrounding whitespace. Errors name the config
    /// line that points at the token, never the token's content.
    pub fn read_token(&self, env: &Env) -> Result<SecretString, Error> {
        crate::secret::load(&self.token, &self.token_origin, env)
    }
}

/// Loopback hosts: `http://` to them never leaves the machine.
fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn read_url(ctx: &mut Ctx<'_>, field: &Field<'_, '_>, allow_insecure_http: bool) -> Option<Url> {
    let text = field.string(ctx)?;
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(err) => {
            field.invalid(ctx, format!("not a valid URL ({err}): {}", quote(text)));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Do not quote the URL back: it holds a credential.
        field.invalid(
            ctx,
            "must not contain a user or password (secrets never go in the config; use token_file or credential)",
        );
        return None;
    }
    let Some(host) = url.host() else {
        field.invalid(ctx, format!("must name a host, got {}", quote(text)));
        return None;
    };
    if url.query().is_some() || url.fragment().is_some() {
        field.invalid(
            ctx,
            format!(
                "must be a base URL without ?query or #fragment, got {}",
                quote(text)
            ),
        );
        return None;
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) || allow_insecure_http => {}
        "http" => {
            field.invalid(
                ctx,
                format!(
                    "http:// to {host} would send the token in clear: use https://, \
                     or set allow_insecure_http = true"
                ),
            );
            return None;
        }
        other => {
            field.invalid(
                ctx,
                format!(
                    "must be an https:// (or http://) URL, got scheme {}",
                    quote(other)
                ),
            );
            return None;
        }
    }
    Some(url)
}

fn read_public_key(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<[u8; 32]> {
    let text = field.string(ctx)?;
    let bytes = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(bytes) => bytes,
        Err(err) => {
            field.invalid(ctx, format!("not valid base64 ({err})"));
            return None;
        }
    };
    let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        field.invalid(
            ctx,
            format!(
                "an Ed25519 public key is 32 bytes, this decodes to {}",
                bytes.len()
            ),
        );
        return None;
    };
    if let Err(err) = ed25519_dalek::VerifyingKey::from_bytes(&key) {
        field.invalid(ctx, format!("not a valid Ed25519 public key ({err})"));
        return None;
    }
    Some(key)
}

fn read_server_name(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<String> {
    let name = field.string(ctx)?;
    match rustls_pki_types::ServerName::try_from(name) {
        Ok(_) => Some(name.to_string()),
        Err(_) => {
            field.invalid(
                ctx,
                format!("must be a DNS name or IP address, got {}", quote(name)),
            );
            None
        }
    }
}

/// A number of seconds in `1..=max`.
fn secs(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &'static str,
    default: u64,
    max: u64,
) -> u64 {
    table
        .field(key)
        .and_then(|f| f.integer(ctx, 1..=max as i64))
        .map_or(default, |n| n as u64)
}

/// `None` when `[central]` has problems (they are reported).
pub(crate) fn read(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Option<Central> {
    let allow_insecure_http = table
        .field("allow_insecure_http")
        .and_then(|f| f.boolean(ctx))
        .unwrap_or(false);
    let url = table
        .required(ctx, "url")
        .and_then(|f| read_url(ctx, &f, allow_insecure_http));
    let is_http = url.as_ref().is_some_and(|u| u.scheme() == "http");

    let (token, token_origin) = read_token(ctx, &table);
    let ca_file = table.field("ca_file").and_then(|f| {
        if is_http {
            f.misplaced(ctx, "only applies to an https:// url");
        }
        path(ctx, &f)
    });
    let server_name = table.field("server_name").and_then(|f| {
        if is_http {
            f.misplaced(ctx, "only applies to an https:// url");
        }
        read_server_name(ctx, &f)
    });
    let rules_public_key = table
        .required(ctx, "rules_public_key")
        .and_then(|f| read_public_key(ctx, &f));
    let sync_interval_secs = secs(
        ctx,
        &table,
        "sync_interval_secs",
        DEFAULT_SYNC_INTERVAL_SECS,
        SYNC_INTERVAL_SECS_MAX,
    );
    let member_fresh_secs = secs(
        ctx,
        &table,
        "member_fresh_secs",
        DEFAULT_MEMBER_FRESH_SECS,
        MEMBER_FRESH_SECS_MAX,
    );
    let request_timeout_secs = secs(
        ctx,
        &table,
        "request_timeout_secs",
        DEFAULT_REQUEST_TIMEOUT_SECS,
        REQUEST_TIMEOUT_SECS_MAX,
    );
    table.finish(ctx);

    let (Some(url), Some(token), Some(rules_public_key)) = (url, token, rules_public_key) else {
        return None;
    };
    let server_name = server_name.or_else(|| host_name(&url))?;
    Some(Central {
        url,
        allow_insecure_http,
        token,
        ca_file,
        server_name,
        rules_public_key,
        sync_interval_secs,
        member_fresh_secs,
        request_timeout_secs,
        token_origin,
    })
}

/// Where the token comes from: exactly one of `token_file` and `credential`
/// (required); and where that was said, for messages about the token later.
fn read_token(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) -> (Option<TokenSource>, Origin) {
    let (token, origin) = crate::secret::read_source(ctx, table);
    if table.field("token_file").is_none() && table.field("credential").is_none() {
        ctx.report(
            table.header(),
            Some(table.key_label("token_file")),
            "missing: set token_file or credential (the token itself never goes in the config)",
        );
    }
    (token, origin)
}

/// The URL's host as a TLS server name (IPv6 without brackets).
fn host_name(url: &Url) -> Option<String> {
    Some(match url.host()? {
        Host::Domain(name) => name.to_string(),
        Host::Ipv4(ip) => IpAddr::V4(ip).to_string(),
        Host::Ipv6(ip) => IpAddr::V6(ip).to_string(),
    })
}
