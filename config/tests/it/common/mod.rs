//! Helpers shared by the config tests: a fixed source path and environment,
//! and assertions that a problem names the right file, line and key.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use pos_config::{Config, Env, Error, Problem};

pub const SOURCE: &str = "/etc/pos-agent/agent.toml";

/// The smallest valid config, given directories from the environment.
pub const MINIMAL: &str = r#"[terminal]
id = "store-042-reg-3"
store_id = "store-042"
timezone = "Europe/Berlin"
"#;

/// A valid `[central]` to build on.
pub const CENTRAL: &str = r#"
[central]
url = "https://loyalty.example.com"
token_file = "/etc/pos-agent/token"
rules_public_key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
"#;

/// What systemd gives a service with StateDirectory= and RuntimeDirectory=.
pub fn systemd_env() -> Env {
    Env {
        state_directory: Some(PathBuf::from("/var/lib/pos-agent")),
        runtime_directory: Some(PathBuf::from("/run/pos-agent")),
        credentials_directory: None,
    }
}

pub fn parse(text: &str) -> Result<Config, Error> {
    Config::parse(text, Path::new(SOURCE), &systemd_env())
}

pub fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(err) => panic!("config should be valid, got:\n{err}\n--- text ---\n{text}"),
    }
}

pub fn parse_err(text: &str) -> Error {
    match parse(text) {
        Ok(config) => panic!("config should be refused, got {config:?}\n--- text ---\n{text}"),
        Err(err) => err,
    }
}

/// 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("test bug: {needle:?} not in the config text"))
        + 1
}

/// Asserts that `err` has a problem in SOURCE at `line` under `key` whose
/// message contains `message`, and that Display prints it as
/// `FILE:LINE: KEY: message` on a line of its own.
pub fn assert_problem_at(err: &Error, line: Option<usize>, key: &str, message: &str) -> Problem {
    let found = err.problems().iter().find(|p| {
        p.file == Path::new(SOURCE)
            && p.line == line
            && p.key.as_deref() == Some(key)
            && p.message.contains(message)
    });
    let Some(problem) = found else {
        panic!("no problem at line {line:?} key {key:?} containing {message:?}; got:\n{err}");
    };
    let prefix = match line {
        Some(line) => format!("{SOURCE}:{line}: {key}: "),
        None => format!("{SOURCE}: {key}: "),
    };
    let shown = err.to_string();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(message)),
        "Display lacks a line {prefix:?}...{message:?}:\n{shown}"
    );
    problem.clone()
}

/// Asserts a problem at the line of `text` containing `needle`.
pub fn assert_problem(text: &str, needle: &str, key: &str, message: &str) {
    let err = parse_err(text);
    assert_problem_at(&err, Some(line_of(text, needle)), key, message);
}
