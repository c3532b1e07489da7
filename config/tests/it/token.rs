//! `Central::read_token`: from a file or a systemd credential, trimmed,
//! and never shown.

use std::path::Path;

use crate::common::*;
use pos_config::{Central, Config, Env};
use secrecy::ExposeSecret;

fn central(token_line: &str) -> (String, Central) {
    let text = format!(
        "{MINIMAL}[central]\nurl = \"https://c.example\"\n{token_line}\n\
         rules_public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n"
    );
    let central = parse_ok(&text).central.unwrap();
    (text, central)
}

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "  tok-AbC.123_xyz \n").unwrap();
    let (_, central) = central(&format!("token_file = \"{}\"", file.display()));
    let token = central.read_token(&Env::default()).unwrap();
    assert_eq!(token.expose_secret(), "tok-AbC.123_xyz");
    assert!(!format!("{token:?}").contains("AbC"));
}

#[test]
fn debug_never_shows_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "tok-Zq81\n").unwrap();
    let (_, central) = central(&format!("token_file = \"{}\"", file.display()));
    let token = central.read_token(&Env::default()).unwrap();
    for shown in [
        format!("{token:?}"),
        format!("{token:#?}"),
        format!("{central:?}"),
    ] {
        assert!(!shown.contains("Zq81"), "{shown}");
    }
    assert!(format!("{token:?}").contains("REDACTED"));
}

#[test]
fn credential_is_read_from_the_credentials_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("central-token"), "cred-token-1\n").unwrap();
    let (_, central) = central("credential = \"central-token\"");
    let env = Env {
        credentials_directory: Some(dir.path().to_path_buf()),
        ..Env::default()
    };
    assert_eq!(
        central.read_token(&env).unwrap().expose_secret(),
        "cred-token-1"
    );
}

#[test]
fn credential_without_credentials_directory_names_the_config_line() {
    let (text, central) = central("credential = \"central-token\"");
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(
        &err,
        Some(line_of(&text, "credential")),
        "[central] credential",
        "needs $CREDENTIALS_DIRECTORY",
    );
}

#[test]
fn unreadable_token_file_names_the_config_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let (text, central) = central(&format!("token_file = \"{}\"", missing.display()));
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(
        &err,
        Some(line_of(&text, "token_file")),
        "[central] token_file",
        &format!("cannot read token from {}", missing.display()),
    );
}

#[test]
fn empty_huge_or_odd_tokens_are_refused_without_showing_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let (text, central) = central(&format!("token_file = \"{}\"", file.display()));
    let line = Some(line_of(&text, "token_file"));

    std::fs::write(&file, " \n\t\n").unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "is empty");

    std::fs::write(&file, "secret part\n").unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "printable ASCII");
    assert!(!err.to_string().contains("secret"), "{err}");

    std::fs::write(&file, "x".repeat(pos_config::TOKEN_BYTES_MAX as usize + 1)).unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "larger than 4096 bytes");
}

#[test]
fn load_reads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    let text = format!("{MINIMAL}[storage]\npath = \"a.db\"\n[api]\nsocket = \"/run/x.sock\"\n");
    std::fs::write(&file, &text).unwrap();
    let config = Config::load(&file).unwrap();
    assert_eq!(config.source, file);
    assert_eq!(config.storage.path, dir.path().join("a.db"));

    std::fs::write(&file, format!("{text}bogus = 1\n")).unwrap();
    let err = Config::load(&file).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}:{}: [api] bogus: unknown key",
            file.display(),
            text.lines().count() + 1
        )),
        "{shown}"
    );

    let err = Config::load(&dir.path().join("absent.toml")).unwrap_err();
    assert!(
        err.to_string().contains("absent.toml: cannot open config"),
        "{err}"
    );

    std::fs::write(&file, [0xffu8, 0xfe, b'\n']).unwrap();
    let err = Config::load(&file).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn parse_does_not_need_the_source_to_exist() {
    let config = Config::parse(MINIMAL, Path::new("relative.toml"), &systemd_env()).unwrap();
    assert_eq!(config.source, Path::new("relative.toml"));
}
