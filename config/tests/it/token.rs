//! `Central::read_token`: from a file or a systemd credential, trimmed,
//! and never shown.

use std::path::Path;

use crate::common::*;
use pos_config::{Central, Config, Env};
use secrecy::ExposeSecret;

/// Writes a token file as the README says to: mode 0600 (a file others
/// can read is refused, see `world_readable_token_file_is_refused`).
fn write_private(file: &Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?
        .write_all(text.as_ref())
}

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
    write_private(&file, "  tok-AbC.123_xyz \n").unwrap();
    let (_, central) = central(&format!("token_file = \"{}\"", file.display()));
    let token = central.read_token(&Env::default()).unwrap();
    assert_eq!(token.expose_secret(), "tok-AbC.123_xyz");
    assert!(!format!("{token:?}").contains("AbC"));
}

#[test]
fn debug_never_shows_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    write_private(&file, "tok-Zq81\n").unwrap();
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

    write_private(&file, " \n\t\n").unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "is empty");

    write_private(&file, "secret part\n").unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "printable ASCII");
    assert!(!err.to_string().contains("secret"), "{err}");

    write_private(&file, "x".repeat(pos_config::TOKEN_BYTES_MAX as usize + 1)).unwrap();
    let err = central.read_token(&Env::default()).unwrap_err();
    assert_problem_at(&err, line, "[central] token_file", "larger than 4096 bytes");
}

#[test]
fn world_or_group_readable_token_file_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    write_private(&file, "tok-1\n").unwrap();
    let (text, central) = central(&format!("token_file = \"{}\"", file.display()));
    let line = Some(line_of(&text, "token_file"));
    for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = central.read_token(&Env::default()).unwrap_err();
        assert_problem_at(
            &err,
            line,
            "[central] token_file",
            &format!("(mode {mode:04o})"),
        );
        assert_problem_at(
            &err,
            line,
            "[central] token_file",
            &format!("run `chmod 600 {}`", file.display()),
        );
        assert!(!err.to_string().contains("tok-1"), "{err}");
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let token = central.read_token(&Env::default()).unwrap();
        assert_eq!(token.expose_secret(), "tok-1");
    }
}

#[test]
fn the_tcp_api_token_is_read_under_the_same_rules() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-token");
    write_private(&file, "api-tok-9\n").unwrap();
    let text = format!(
        "{MINIMAL}[api]\nlisten = \"127.0.0.1:7311\"\ntoken_file = \"{}\"\n",
        file.display()
    );
    let api = parse_ok(&text).api;
    let token = api.read_token(&Env::default()).unwrap().unwrap();
    assert_eq!(token.expose_secret(), "api-tok-9");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = api.read_token(&Env::default()).unwrap_err();
    assert_problem_at(
        &err,
        Some(line_of(&text, "token_file")),
        "[api] token_file",
        "chmod 600",
    );

    let text = format!("{MINIMAL}[api]\nlisten = \"127.0.0.1:7311\"\ncredential = \"api-token\"\n");
    let api = parse_ok(&text).api;
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("api-token"), "cred-api\n").unwrap();
    let env = Env {
        credentials_directory: Some(creds.path().to_path_buf()),
        ..Env::default()
    };
    assert_eq!(
        api.read_token(&env).unwrap().unwrap().expose_secret(),
        "cred-api"
    );
    assert!(
        parse_ok(MINIMAL).api.read_token(&env).unwrap().is_none(),
        "no TCP, no token"
    );
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
