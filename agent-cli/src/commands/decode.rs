//! `pos-agent decode barcode|track DATA`: what the drivers make of one scan
//! or swipe, as JSON (agent spec §4). A payment card prints only
//! `{"payment_card": true}`.
//!
//! Member-card prefixes and variable-measure layouts come from `--config`
//! when given; without it only the built-in decoding applies.

use std::path::Path;

use pos_codes::{DecodeKind, DecodeSettings, decode_command};
use pos_config::Config;

use crate::commands::{Failure, bad_input, other};

pub fn run(kind: DecodeKind, data: &str, config: Option<&Path>) -> Result<(), Failure> {
    let settings = match config {
        Some(path) => {
            let config = Config::load(path).map_err(bad_input)?;
            pos_agent::devices::decode_settings(&config)
        }
        None => DecodeSettings::default(),
    };
    let decoded = decode_command(kind, data, &settings);
    let json = serde_json::to_string(&decoded).map_err(other)?;
    println!("{json}");
    Ok(())
}
