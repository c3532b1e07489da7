//! `pos-agent check-config PATH`: validates a config as `run` would, printing
//! every problem as `FILE:LINE: KEY: message` (exit 2) or `ok: PATH` (exit 0).

use std::path::{Path, PathBuf};

use pos_config::{Config, Env};

use crate::commands::{Failure, bad_input, read_input};

/// The directories the systemd unit gives the service (`StateDirectory=pos-agent`,
/// `RuntimeDirectory=pos-agent`). Checking a config from a shell has no
/// `$STATE_DIRECTORY`/`$RUNTIME_DIRECTORY`, so a config that relies on those
/// defaults is checked against what the unit will provide, and the output says so.
const UNIT_STATE_DIRECTORY: &str = "/var/lib/pos-agent";
const UNIT_RUNTIME_DIRECTORY: &str = "/run/pos-agent";

pub fn run(path: &Path) -> Result<(), Failure> {
    let text = read_input(path)?;
    let mut env = Env::from_process();
    let mut assumed = Vec::new();
    if env.state_directory.is_none() {
        env.state_directory = Some(PathBuf::from(UNIT_STATE_DIRECTORY));
        assumed.push(format!("STATE_DIRECTORY={UNIT_STATE_DIRECTORY}"));
    }
    if env.runtime_directory.is_none() {
        env.runtime_directory = Some(PathBuf::from(UNIT_RUNTIME_DIRECTORY));
        assumed.push(format!("RUNTIME_DIRECTORY={UNIT_RUNTIME_DIRECTORY}"));
    }
    let config = Config::parse(&text, path, &env).map_err(bad_input)?;
    println!("ok: {}", path.display());
    let uses_assumed = config.storage.path.starts_with(UNIT_STATE_DIRECTORY)
        || config.api.socket.starts_with(UNIT_RUNTIME_DIRECTORY);
    if !assumed.is_empty() && uses_assumed {
        println!(
            "  (defaults checked as under the systemd unit: {})",
            assumed.join(", ")
        );
    }
    println!(
        "  terminal {} in store {}",
        config.terminal.id, config.terminal.store_id
    );
    println!("  database {}", config.storage.path.display());
    println!("  api socket {}", config.api.socket.display());
    match &config.central {
        Some(central) => println!("  central {} (sync on)", central.url),
        None => println!("  no [central]: standalone, sync off"),
    }
    println!("  {} device(s)", config.devices.len());
    Ok(())
}
