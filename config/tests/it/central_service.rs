//! pos-central's config file (`CentralConfig`): the same rules as the
//! agent's — every problem named with file, line and key, defaults where
//! a service expects them, and no secret in the text.

use std::path::{Path, PathBuf};

use pos_config::{CentralConfig, CentralLimits, DEFAULT_POOL_SIZE, Env, Error};
use secrecy::ExposeSecret;

use crate::common::line_of;

const SOURCE: &str = "/etc/pos-central/central.toml";

fn service_env() -> Env {
    Env {
        state_directory: Some(PathBuf::from("/var/lib/pos-central")),
        runtime_directory: None,
        credentials_directory: None,
    }
}

fn parse(text: &str) -> Result<CentralConfig, Error> {
    CentralConfig::parse(text, Path::new(SOURCE), &service_env())
}

fn parse_ok(text: &str) -> CentralConfig {
    parse(text).unwrap_or_else(|e| panic!("should be valid, got:\n{e}\n--- text ---\n{text}"))
}

/// The one problem of `text`: (line, key, message).
fn only_problem(text: &str) -> (Option<usize>, Option<String>, String) {
    let err = match parse(text) {
        Ok(c) => panic!("should be refused, got {c:?}\n--- text ---\n{text}"),
        Err(e) => e,
    };
    assert_eq!(err.problems().len(), 1, "{err}");
    let p = &err.problems()[0];
    assert_eq!(p.file, Path::new(SOURCE));
    (p.line, p.key.clone(), p.message.clone())
}

#[test]
fn the_smallest_config_is_a_sync_address_with_service_defaults() {
    let c = parse_ok("[listen]\nsync = \"0.0.0.0:8443\"\n");
    assert_eq!(c.dir, Path::new("/var/lib/pos-central"));
    assert_eq!(c.listen.sync, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(c.listen.admin, "127.0.0.1:8444".parse().unwrap());
    assert!(!c.listen.insecure_http);
    assert_eq!(c.storage.url, None);
    assert_eq!(c.storage.pool_size, DEFAULT_POOL_SIZE);
    assert_eq!(c.tls, None);
    assert_eq!(c.limits, CentralLimits::default());
}

#[test]
fn the_packaged_example_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/central.toml"
    ))
    .unwrap();
    let c = parse_ok(&text);
    assert_eq!(c.dir, Path::new("/var/lib/pos-central"));
}

#[test]
fn every_section_is_read() {
    let text = r#"
[state]
dir = "state"
[listen]
sync = "[::]:9443"
admin = "10.0.0.5:9444"
[storage]
url = "postgres://pos_central@db.internal/pos_central"
password_file = "/etc/pos-central/db-password"
pool_size = 32
[tls]
cert_file = "tls/server.pem"
key_file = "/etc/pos-central/tls/server.key"
[limits]
connections = 2048
connections_per_address = 128
header_timeout_ms = 3000
sync_body_timeout_ms = 60000
[log]
level = "debug"
format = "json"
"#;
    let c = parse_ok(text);
    // Relative paths are taken from the config file's directory.
    assert_eq!(c.dir, Path::new("/etc/pos-central/state"));
    assert_eq!(c.listen.admin, "10.0.0.5:9444".parse().unwrap());
    assert_eq!(
        c.storage.url.as_deref(),
        Some("postgres://pos_central@db.internal/pos_central")
    );
    assert_eq!(c.storage.pool_size, 32);
    let tls = c.tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/etc/pos-central/tls/server.pem"));
    assert_eq!(
        c.limits,
        CentralLimits {
            connections: 2048,
            connections_per_address: 128,
            header_timeout_ms: 3000,
            sync_body_timeout_ms: 60000,
        }
    );
}

#[test]
fn a_password_in_the_url_is_refused_without_repeating_it() {
    let text =
        "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\nurl = \"postgres://pos:s3cr3t-pw@db/pos\"\n";
    let (line, key, message) = only_problem(text);
    assert_eq!(line, Some(line_of(text, "url =")));
    assert_eq!(key.as_deref(), Some("[storage] url"));
    assert!(message.contains("password_file"), "{message}");
    assert!(!message.contains("s3cr3t"), "{message}");
}

#[test]
fn wrong_values_are_named_with_their_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("[listen]\nsync = \"8443\"\n", "[listen] sync", "IP:PORT"),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\ninsecure_http = true\n",
            "[listen] sync",
            "loopback",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\nurl = \"mysql://x/y\"\n",
            "[storage] url",
            "postgres://",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\npool_size = 0\n",
            "[storage] pool_size",
            "",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\npassword_file = \"/p\"\n",
            "[storage] password_file",
            "only applies with url",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\n[limits]\nconnections = 16\nconnections_per_address = 17\n",
            "[limits] connections_per_address",
            "must not exceed connections",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\n[tls]\ncert_file = \"/c.pem\"\n",
            "[tls] key_file",
            "",
        ),
        (
            "[listen]\nsync = \"0.0.0.0:8443\"\nadmin_listen = \"127.0.0.1:1\"\n",
            "[listen] admin_listen",
            "",
        ),
    ];
    for (text, want_key, want_message) in cases {
        let (_, key, message) = only_problem(text);
        assert_eq!(key.as_deref(), Some(*want_key), "{text}: {message}");
        assert!(message.contains(want_message), "{text}: {message}");
    }
}

#[test]
fn missing_listen_and_state_are_both_reported() {
    let err = CentralConfig::parse("", Path::new(SOURCE), &Env::default()).unwrap_err();
    let keys: Vec<_> = err
        .problems()
        .iter()
        .map(|p| p.key.clone().unwrap_or_default())
        .collect();
    assert!(keys.iter().any(|k| k == "[state] dir"), "{err}");
    assert!(keys.iter().any(|k| k == "[listen]"), "{err}");
}

#[test]
fn the_database_password_is_read_from_a_private_file_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db-password");
    std::fs::write(&file, "pw-123\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\nurl = \"postgres://pos@db/pos\"\npassword_file = \"{}\"\n",
        file.display()
    );
    let c = parse_ok(&text);
    let pw = c.storage.read_password(&Env::default()).unwrap().unwrap();
    assert_eq!(pw.expose_secret(), "pw-123");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = c.storage.read_password(&Env::default()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("cannot read password from"), "{message}");
    assert!(!message.contains("pw-123"), "{message}");
}

#[test]
fn a_unix_socket_url_without_host_is_accepted() {
    let url = "postgres://pos_central@/pos_central?host=/run/postgresql";
    let c = parse_ok(&format!(
        "[listen]\nsync = \"0.0.0.0:8443\"\n[storage]\nurl = \"{url}\"\n"
    ));
    assert_eq!(c.storage.url.as_deref(), Some(url));
}
