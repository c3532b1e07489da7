//! The agent's config file: parsing never panics, and an error lists at most
//! `PROBLEMS_MAX` problems.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pos_config::{Config, Env, PROBLEMS_MAX};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = Env {
        state_directory: Some("/var/lib/pos-agent".into()),
        runtime_directory: Some("/run/pos-agent".into()),
        credentials_directory: None,
    };
    if let Err(error) = Config::parse(text, Path::new("/etc/pos-agent/agent.toml"), &env) {
        assert!(
            error.problems().len() <= PROBLEMS_MAX,
            "the problem list is unbounded"
        );
        let _ = error.to_string();
    }
});
