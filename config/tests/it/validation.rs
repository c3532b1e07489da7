//! Every validation rule of the config: each refused input names file,
//! line and key.

use std::path::{Path, PathBuf};

use crate::common::*;
use pos_config::{Config, Env, LogFormat, LogLevel};

#[test]
fn minimal_config_takes_paths_from_the_environment() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.terminal.id, "store-042-reg-3");
    assert_eq!(config.terminal.store_id, "store-042");
    assert_eq!(config.terminal.timezone_name, "Europe/Berlin");
    assert_eq!(
        config.storage.path,
        Path::new("/var/lib/pos-agent/agent.db")
    );
    assert_eq!(config.api.socket, Path::new("/run/pos-agent/api.sock"));
    assert_eq!(config.api.listen, None);
    assert_eq!(config.api.max_body_bytes, 262_144);
    assert!(config.central.is_none());
    assert!(config.devices.is_empty());
    assert!(config.cards.loyalty_prefixes.is_empty());
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.log.format, LogFormat::Auto);
    assert_eq!(config.source, Path::new(SOURCE));
}

#[test]
fn without_state_directory_or_storage_path_the_error_says_how_to_fix_it() {
    let env = Env {
        state_directory: None,
        ..systemd_env()
    };
    let err = Config::parse(MINIMAL, Path::new(SOURCE), &env).unwrap_err();
    assert_problem_at(
        &err,
        None,
        "[storage] path",
        "no storage path: set [storage] path or STATE_DIRECTORY",
    );

    // With a [storage] table but no path, the error points at the table.
    let text = format!("{MINIMAL}[storage]\n");
    let err = Config::parse(&text, Path::new(SOURCE), &env).unwrap_err();
    assert_problem_at(
        &err,
        Some(line_of(&text, "[storage]")),
        "[storage] path",
        "set [storage] path or STATE_DIRECTORY",
    );
}

#[test]
fn without_runtime_directory_or_socket_the_error_says_how_to_fix_it() {
    let env = Env {
        runtime_directory: None,
        ..systemd_env()
    };
    let err = Config::parse(MINIMAL, Path::new(SOURCE), &env).unwrap_err();
    assert_problem_at(
        &err,
        None,
        "[api] socket",
        "no API socket: set [api] socket or RUNTIME_DIRECTORY",
    );
}

#[test]
fn configured_paths_win_over_the_environment() {
    let text = format!(
        "{MINIMAL}[storage]\npath = \"/srv/pos/a.db\"\n[api]\nsocket = \"/srv/pos/a.sock\"\n"
    );
    let config = Config::parse(&text, Path::new(SOURCE), &Env::default()).unwrap();
    assert_eq!(config.storage.path, Path::new("/srv/pos/a.db"));
    assert_eq!(config.api.socket, Path::new("/srv/pos/a.sock"));
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let text = format!("{MINIMAL}[storage]\npath = \"data/agent.db\"\n");
    let config = parse_ok(&text);
    assert_eq!(
        config.storage.path,
        Path::new("/etc/pos-agent/data/agent.db")
    );
}

#[test]
fn too_long_socket_path_is_refused() {
    let long = format!("/run/{}/api.sock", "d".repeat(120));
    let text = format!("{MINIMAL}[api]\nsocket = \"{long}\"\n");
    assert_problem(
        &text,
        "socket =",
        "[api] socket",
        "a Unix socket path must be at most 107",
    );
}

#[test]
fn unknown_key_at_top_level() {
    let text = format!("{MINIMAL}colour = \"red\"\n[storage]\npath = \"/a.db\"\n");
    // `colour` is under [terminal] there; a real top-level key comes before any table.
    assert_problem(&text, "colour", "[terminal] colour", "unknown key");

    let text = format!("colour = \"red\"\n{MINIMAL}");
    assert_problem(
        &text,
        "colour",
        "colour",
        "unknown key; expected one of: terminal",
    );

    let text = format!("{MINIMAL}[sync]\ninterval = 3\n");
    assert_problem(&text, "[sync]", "sync", "unknown key");
}

#[test]
fn unknown_key_nested() {
    let text = format!("{MINIMAL}{CENTRAL}token = \"s3cret-token\"\n");
    let err = parse_err(&text);
    assert_problem_at(
        &err,
        Some(line_of(&text, "token = ")),
        "[central] token",
        "unknown key; expected one of: url, allow_insecure_http, token_file",
    );
    // An unknown key may hold a secret: its value is never quoted back.
    assert!(!err.to_string().contains("s3cret"), "{err}");

    let text = format!(
        "{MINIMAL}[[devices]]\nname = \"a\"\nkind = \"serial\"\npath = \"/dev/ttyS0\"\nspeed = 9600\n"
    );
    assert_problem(&text, "speed", "[[devices]] #1 speed", "unknown key");

    let text = format!("{MINIMAL}[log]\nlevel = \"info\"\ncolor = true\n");
    assert_problem(&text, "color", "[log] color", "unknown key");
}

#[test]
fn wrong_types() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "sync_interval_secs = \"30\"\n",
            "sync_interval_secs",
            "[central] sync_interval_secs",
            "must be an integer, got a string",
        ),
        (
            "sync_interval_secs = 30.5\n",
            "sync_interval_secs",
            "[central] sync_interval_secs",
            "must be an integer, got a float",
        ),
        (
            "allow_insecure_http = \"no\"\n",
            "allow_insecure_http",
            "[central] allow_insecure_http",
            "must be a boolean",
        ),
        (
            "ca_file = 5\n",
            "ca_file",
            "[central] ca_file",
            "must be a string, got an integer",
        ),
    ];
    for (line, needle, key, message) in cases {
        let text = format!("{MINIMAL}{CENTRAL}{line}");
        assert_problem(&text, needle, key, message);
    }

    let text = format!("{MINIMAL}[api]\nallow_remote = 1\n");
    assert_problem(
        &text,
        "allow_remote",
        "[api] allow_remote",
        "must be a boolean",
    );

    let text = format!("storage = \"/var/lib/x.db\"\n{MINIMAL}");
    assert_problem(
        &text,
        "storage =",
        "storage",
        "must be a table, got a string",
    );

    let text = format!("{MINIMAL}[devices]\nname = \"x\"\n");
    assert_problem(
        &text,
        "[devices]",
        "devices",
        "must be an array, got a table",
    );

    let text = format!("{MINIMAL}[cards]\nloyalty_prefixes = [\"999\", 998]\n");
    assert_problem(
        &text,
        "loyalty_prefixes",
        "[cards] loyalty_prefixes",
        "entry 2 must be a string, got an integer",
    );
}

#[test]
fn the_brief_example_prints_exactly() {
    let text = format!("{MINIMAL}{CENTRAL}sync_interval_secs = 0\n");
    let err = parse_err(&text);
    let line = line_of(&text, "sync_interval_secs");
    assert_eq!(
        err.to_string(),
        format!(
            "/etc/pos-agent/agent.toml:{line}: [central] sync_interval_secs: must be between 1 and 86400, got 0"
        )
    );
}

#[test]
fn central_ranges() {
    let cases: &[(&str, &str)] = &[
        ("sync_interval_secs", "must be between 1 and 86400"),
        ("member_fresh_secs", "must be between 1 and 604800"),
        ("request_timeout_secs", "must be between 1 and 600"),
    ];
    for (key, message) in cases {
        let max: i64 = message
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        for bad in [0, -1, max + 1] {
            let text = format!("{MINIMAL}{CENTRAL}{key} = {bad}\n");
            assert_problem(
                &text,
                &format!("{key} ="),
                &format!("[central] {key}"),
                &format!("{message}, got {bad}"),
            );
        }
        for good in [1, max] {
            let text = format!("{MINIMAL}{CENTRAL}{key} = {good}\n");
            parse_ok(&text);
        }
    }
    let text = format!("{MINIMAL}{CENTRAL}member_fresh_secs = 99999999999999999999\n");
    assert_problem(
        &text,
        "member_fresh_secs",
        "[central] member_fresh_secs",
        "out of range",
    );
}

#[test]
fn central_values_and_defaults() {
    let config = parse_ok(&format!("{MINIMAL}{CENTRAL}"));
    let central = config.central.unwrap();
    assert_eq!(central.url.as_str(), "https://loyalty.example.com/");
    assert_eq!(central.server_name, "loyalty.example.com");
    assert_eq!(central.sync_interval_secs, 30);
    assert_eq!(central.member_fresh_secs, 300);
    assert_eq!(central.request_timeout_secs, 30);
    assert_eq!(
        central.token,
        pos_config::TokenSource::File(PathBuf::from("/etc/pos-agent/token"))
    );
    assert_eq!(central.rules_public_key[0], 0xd7);
    assert_eq!(central.ca_file, None);
    assert!(!central.allow_insecure_http);

    let text =
        format!("{MINIMAL}{CENTRAL}server_name = \"central.internal\"\nca_file = \"ca.pem\"\n");
    let central = parse_ok(&text).central.unwrap();
    assert_eq!(central.server_name, "central.internal");
    assert_eq!(
        central.ca_file,
        Some(PathBuf::from("/etc/pos-agent/ca.pem"))
    );

    let text = format!("{MINIMAL}{CENTRAL}server_name = \"not a name!\"\n");
    assert_problem(
        &text,
        "server_name",
        "[central] server_name",
        "must be a DNS name or IP address",
    );
}

fn with_url(url: &str, extra: &str) -> String {
    format!(
        "{MINIMAL}[central]\nurl = \"{url}\"\ntoken_file = \"/t\"\n\
         rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n{extra}"
    )
}

#[test]
fn http_is_refused_unless_loopback_or_allowed() {
    for url in [
        "http://10.0.0.5:8080",
        "http://loyalty.example.com",
        "http://[2001:db8::1]/",
    ] {
        let text = with_url(url, "");
        assert_problem(
            &text,
            "url =",
            "[central] url",
            "would send the token in clear",
        );
        parse_ok(&with_url(url, "allow_insecure_http = true\n"));
    }
    for url in [
        "http://127.0.0.1:7400",
        "http://127.9.9.9",
        "http://localhost:7400",
        "http://LOCALHOST",
        "http://[::1]:7400",
    ] {
        parse_ok(&with_url(url, ""));
    }
    let central = parse_ok(&with_url("http://[::1]:7400", ""))
        .central
        .unwrap();
    assert_eq!(central.server_name, "::1");
}

#[test]
fn bad_urls() {
    let text = with_url("ftp://loyalty.example.com", "");
    assert_problem(&text, "url =", "[central] url", "must be an https://");
    let text = with_url("not a url", "");
    assert_problem(&text, "url =", "[central] url", "not a valid URL");
    let text = with_url("https://loyalty.example.com/?x=1", "");
    assert_problem(&text, "url =", "[central] url", "without ?query");

    let text = with_url("https://reg3:hunter2@loyalty.example.com", "");
    let err = parse_err(&text);
    assert_problem_at(
        &err,
        Some(line_of(&text, "url =")),
        "[central] url",
        "must not contain a user or password",
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn tls_settings_on_http_are_refused() {
    let text = with_url("http://127.0.0.1:7400", "ca_file = \"/ca.pem\"\n");
    assert_problem(
        &text,
        "ca_file",
        "[central] ca_file",
        "only applies to an https:// url",
    );
}

#[test]
fn token_file_and_credential_together_are_refused() {
    let text = format!("{MINIMAL}{CENTRAL}credential = \"central-token\"\n");
    assert_problem(
        &text,
        "credential",
        "[central] credential",
        "set exactly one of token_file and credential",
    );
}

#[test]
fn central_without_a_token_source_is_refused() {
    let text = format!(
        "{MINIMAL}[central]\nurl = \"https://c.example\"\n\
         rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"
    );
    assert_problem(
        &text,
        "[central]",
        "[central] token_file",
        "set token_file or credential",
    );
}

#[test]
fn credential_must_be_a_plain_name() {
    for bad in ["../token", "a/b", "", ".."] {
        let text = format!(
            "{MINIMAL}[central]\nurl = \"https://c.example\"\ncredential = \"{bad}\"\n\
             rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"
        );
        assert_problem(
            &text,
            "credential",
            "[central] credential",
            "must be a credential name",
        );
    }
}

#[test]
fn missing_required_keys() {
    let text = "[terminal]\nid = \"t1\"\n";
    let err = parse_err(text);
    assert_problem_at(&err, Some(1), "[terminal] store_id", "missing required key");
    assert_problem_at(&err, Some(1), "[terminal] timezone", "missing required key");

    let err = parse_err("[log]\nlevel = \"info\"\n");
    assert_problem_at(&err, None, "[terminal]", "missing required table");

    let text = format!("{MINIMAL}[central]\nurl = \"https://c.example\"\ntoken_file = \"/t\"\n");
    assert_problem(
        &text,
        "[central]",
        "[central] rules_public_key",
        "missing required key",
    );

    let text = format!("{MINIMAL}[central]\ntoken_file = \"/t\"\n");
    assert_problem(&text, "[central]", "[central] url", "missing required key");

    let text = format!("{MINIMAL}\n[[devices]]\nname = \"a\"\npath = \"/dev/ttyS0\"\n");
    assert_problem(
        &text,
        "[[devices]]",
        "[[devices]] #1 kind",
        "missing required key",
    );
}

#[test]
fn terminal_identifiers() {
    for bad in ["", "store 42", "reg/3", &"x".repeat(65)] {
        let text = format!("[terminal]\nid = \"{bad}\"\nstore_id = \"s\"\ntimezone = \"UTC\"\n");
        assert_problem(&text, "id =", "[terminal] id", "must be 1 to 64 characters");
    }
    let text = format!(
        "[terminal]\nid = \"{}\"\nstore_id = \"s.1_a-B\"\ntimezone = \"UTC\"\n",
        "x".repeat(64)
    );
    parse_ok(&text);
}

#[test]
fn bad_timezone() {
    let text = MINIMAL.replace("Europe/Berlin", "Mars/Olympus_Mons");
    assert_problem(
        &text,
        "timezone",
        "[terminal] timezone",
        "not a known IANA time zone name: \"Mars/Olympus_Mons\"",
    );
}

#[test]
fn bad_public_keys() {
    let key_line = "rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"";
    let cases: &[(&str, &str)] = &[
        // 31 bytes.
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
            "is 32 bytes, this decodes to 31",
        ),
        // 33 bytes.
        (
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "is 32 bytes, this decodes to 33",
        ),
        ("not base64!", "not valid base64"),
        // 32 bytes, but y = 2 is not on the curve.
        (
            "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "not a valid Ed25519 public key",
        ),
    ];
    for (key, message) in cases {
        let text = format!("{MINIMAL}{CENTRAL}")
            .replace(key_line, &format!("rules_public_key = \"{key}\""));
        assert_problem(
            &text,
            "rules_public_key",
            "[central] rules_public_key",
            message,
        );
    }
}

#[test]
fn api_listen_must_be_loopback_unless_allowed() {
    // Since issue 10 a TCP listener needs a token (tested below); these
    // texts give one so that only the address is judged here.
    const TOKEN: &str = "token_file = \"/etc/pos-agent/api-token\"\n";
    for addr in ["0.0.0.0:7311", "192.168.1.5:7311", "[::]:7311"] {
        let text = format!("{MINIMAL}[api]\nlisten = \"{addr}\"\n{TOKEN}");
        assert_problem(&text, "listen", "[api] listen", "is not a loopback address");
        let text = format!("{MINIMAL}[api]\nlisten = \"{addr}\"\nallow_remote = true\n{TOKEN}");
        assert_eq!(parse_ok(&text).api.listen, Some(addr.parse().unwrap()));
    }
    for addr in ["127.0.0.1:7311", "[::1]:0"] {
        let text = format!("{MINIMAL}[api]\nlisten = \"{addr}\"\n{TOKEN}");
        assert_eq!(parse_ok(&text).api.listen, Some(addr.parse().unwrap()));
    }
    let text = format!("{MINIMAL}[api]\nlisten = \"localhost:7311\"\n{TOKEN}");
    assert_problem(&text, "listen", "[api] listen", "must be IP:PORT");
}

#[test]
fn a_tcp_listener_needs_a_token_and_a_token_needs_a_listener() {
    let text = format!("{MINIMAL}[api]\nlisten = \"127.0.0.1:7311\"\n");
    assert_problem(
        &text,
        "listen",
        "[api] listen",
        "a TCP listener needs a bearer token, since every local user can reach it: set token_file",
    );
    let text = format!("{MINIMAL}[api]\ntoken_file = \"/etc/pos-agent/api-token\"\n");
    assert_problem(
        &text,
        "token_file",
        "[api] token_file",
        "only applies with listen",
    );
    let text = format!("{MINIMAL}[api]\nallowed_hosts = [\"register-3.local\"]\n");
    assert_problem(
        &text,
        "allowed_hosts",
        "[api] allowed_hosts",
        "only applies with listen",
    );
    let text = format!(
        "{MINIMAL}[api]\nlisten = \"127.0.0.1:7311\"\ntoken_file = \"/t\"\ncredential = \"api\"\n"
    );
    assert_problem(
        &text,
        "credential",
        "[api] credential",
        "exactly one of token_file and credential",
    );
}

#[test]
fn allowed_hosts_are_names_without_port() {
    let base = format!("{MINIMAL}[api]\nlisten = \"127.0.0.1:7311\"\ncredential = \"api-token\"\n");
    let api = parse_ok(&format!(
        "{base}allowed_hosts = [\"Register-3.local\", \"[fd00::3]\"]\n"
    ))
    .api;
    assert_eq!(api.allowed_hosts, vec!["register-3.local", "[fd00::3]"]);
    assert_eq!(
        api.accepted_hosts(),
        vec![
            "127.0.0.1",
            "[::1]",
            "[fd00::3]",
            "localhost",
            "register-3.local"
        ]
    );
    for bad in ["host:80", "http://x", "", "a b"] {
        let text = format!("{base}allowed_hosts = [\"{bad}\"]\n");
        assert_problem(
            &text,
            "allowed_hosts",
            "[api] allowed_hosts",
            "without port",
        );
    }
}

#[test]
fn health_thresholds_have_defaults_and_ranges() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.health, pos_config::Health::default());
    assert_eq!(
        (
            config.health.storage_full_secs,
            config.health.sync_failing_secs,
            config.health.member_stale_secs
        ),
        (300, 300, 3600)
    );
    let text = format!(
        "{MINIMAL}[health]\nstorage_full_secs = 60\nsync_failing_secs = 120\nmember_stale_secs = 7200\n"
    );
    let health = parse_ok(&text).health;
    assert_eq!(
        (
            health.storage_full_secs,
            health.sync_failing_secs,
            health.member_stale_secs
        ),
        (60, 120, 7200)
    );
    for key in [
        "storage_full_secs",
        "sync_failing_secs",
        "member_stale_secs",
    ] {
        for bad in [0, 604_801] {
            let text = format!("{MINIMAL}[health]\n{key} = {bad}\n");
            assert_problem(
                &text,
                key,
                &format!("[health] {key}"),
                "must be between 1 and 604800",
            );
        }
    }
    let text = format!("{MINIMAL}[health]\nbogus = 1\n");
    assert_problem(&text, "bogus", "[health] bogus", "unknown key");
}

#[test]
fn api_body_limit_range() {
    for bad in [1023, 16 * 1024 * 1024 + 1] {
        let text = format!("{MINIMAL}[api]\nmax_body_bytes = {bad}\n");
        assert_problem(
            &text,
            "max_body_bytes",
            "[api] max_body_bytes",
            &format!("must be between 1024 and 16777216, got {bad}"),
        );
    }
    let text = format!("{MINIMAL}[api]\nmax_body_bytes = 1024\n");
    assert_eq!(parse_ok(&text).api.max_body_bytes, 1024);
}

#[test]
fn log_choices() {
    let text = format!("{MINIMAL}[log]\nlevel = \"verbose\"\nformat = \"json\"\n");
    assert_problem(
        &text,
        "level",
        "[log] level",
        "must be one of \"error\", \"warn\", \"info\", \"debug\", \"trace\", got \"verbose\"",
    );
    let text = format!("{MINIMAL}[log]\nlevel = \"debug\"\nformat = \"json\"\n");
    let log = parse_ok(&text).log;
    assert_eq!((log.level, log.format), (LogLevel::Debug, LogFormat::Json));
    assert_eq!(log.level.as_str(), "debug");
}

#[test]
fn syntax_error_names_its_line() {
    let text = format!("{MINIMAL}[central\nurl = 1\n");
    let err = parse_err(&text);
    assert_eq!(err.problems().len(), 1);
    let problem = &err.problems()[0];
    assert_eq!(problem.line, Some(line_of(&text, "[central")));
    assert!(problem.message.starts_with("TOML syntax error"), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "{SOURCE}:{}: TOML syntax error",
            line_of(&text, "[central")
        )),
        "{err}"
    );

    let text = format!("{MINIMAL}id = \"again\"\n");
    let err = parse_err(&text);
    assert_eq!(
        err.problems()[0].line,
        Some(line_of(&text, "again")),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_in_file_order() {
    let text = format!(
        "{MINIMAL}{CENTRAL}sync_interval_secs = 0\nbogus = 1\n[api]\nlisten = \"0.0.0.0:1\"\ntoken_file = \"/t\"\n[log]\nlevel = 3\n"
    );
    let err = parse_err(&text);
    assert_eq!(err.problems().len(), 4, "{err}");
    assert_problem_at(
        &err,
        Some(line_of(&text, "sync_interval_secs")),
        "[central] sync_interval_secs",
        "between",
    );
    assert_problem_at(
        &err,
        Some(line_of(&text, "bogus")),
        "[central] bogus",
        "unknown key",
    );
    assert_problem_at(
        &err,
        Some(line_of(&text, "listen")),
        "[api] listen",
        "loopback",
    );
    assert_problem_at(
        &err,
        Some(line_of(&text, "level")),
        "[log] level",
        "must be a string",
    );
    let lines: Vec<usize> = err.problems().iter().filter_map(|p| p.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!(err.to_string().lines().count(), 4);
}

#[test]
fn problems_are_capped() {
    let mut text = String::from(MINIMAL);
    for i in 0..150 {
        text.push_str(&format!("unknown_{i} = 1\n"));
    }
    let err = parse_err(&text);
    assert_eq!(err.problems().len(), pos_config::PROBLEMS_MAX);
    assert!(
        err.to_string().ends_with("... and 50 more problems"),
        "{err}"
    );
}

#[test]
fn oversized_config_is_refused() {
    let text = format!("{MINIMAL}# {}\n", "x".repeat(pos_config::CONFIG_BYTES_MAX));
    let err = parse_err(&text);
    assert!(
        err.to_string().contains("at most 1048576 are accepted"),
        "{err}"
    );
}
