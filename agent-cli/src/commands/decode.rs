//! `pos-agent decode barcode|track DATA`: what the drivers make of one scan
//! or swipe, as JSON (agent spec §4). A payment card prints only
//! `{"payment_card": true}`.
//!
//! Member-card prefixes and variable-measure layouts come from `--config`
//! when given; without it only the built-in decoding applies.
//!
//! The command line's own spellings (a GS typed as `<GS>`) are this
//! command's business, not the decoders': `pos-codes` reads what a scanner
//! sends and knows nothing of shells.

use std::path::Path;

use pos_codes::gs1::GS;
use pos_codes::{DecodeSettings, Decoded, decode_barcode, decode_track};
use pos_config::Config;
use zeroize::Zeroizing;

use crate::commands::{Failure, bad_input, other};

/// What `pos-agent decode` is asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// `pos-agent decode barcode DATA`: GS spellings are unescaped first.
    Barcode,
    /// `pos-agent decode track DATA`: taken as is (`^` is track 1's field separator).
    Track,
}

pub fn run(kind: DecodeKind, data: &str, config: Option<&Path>) -> Result<(), Failure> {
    let settings = match config {
        Some(path) => {
            let config = Config::load(path).map_err(bad_input)?;
            pos_agent::devices::decode_settings(&config)
        }
        None => DecodeSettings::default(),
    };
    let decoded = decode(kind, data, &settings);
    let json = serde_json::to_string(&decoded).map_err(other)?;
    println!("{json}");
    Ok(())
}

/// Everything `pos-agent decode` does before printing.
fn decode(kind: DecodeKind, data: &str, settings: &DecodeSettings) -> Decoded {
    match kind {
        DecodeKind::Barcode => {
            // The unescaped copy may hold a card number: wiped when dropped.
            let unescaped = Zeroizing::new(unescape_cli_data(data));
            decode_barcode(&unescaped, settings)
        }
        DecodeKind::Track => decode_track(data, settings),
    }
}

/// Turns the GS spellings usable on a command line into the GS byte (0x1D), for
/// `pos-agent decode barcode DATA`: `\x1d` (any case of the hex digits), `<GS>` (any
/// case) and `^]` (the caret notation of Ctrl+]). Use for barcodes only: in track 1 data
/// `^` is the field separator.
fn unescape_cli_data(data: &str) -> String {
    let mut out = String::with_capacity(data.len());
    let mut rest = data;
    while let Some(c) = rest.chars().next() {
        let lower = rest.get(..4).map(str::to_ascii_lowercase);
        if lower.as_deref() == Some("\\x1d") || lower.as_deref() == Some("<gs>") {
            out.push(GS);
            rest = &rest[4..];
        } else if rest.starts_with("^]") {
            out.push(GS);
            rest = &rest[2..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings() -> DecodeSettings {
        DecodeSettings {
            loyalty_prefixes: vec!["999".into()],
            track_member_prefixes: vec!["6299".into(), "999".into()],
            variable_measure: Vec::new(),
        }
    }

    fn barcode(data: &str) -> Value {
        serde_json::to_value(decode_barcode(data, &settings())).unwrap()
    }

    #[test]
    fn cli_spellings_of_gs_decode_as_gs1() {
        let expected_ais = json!({"01": "09501101530003", "17": "261231", "10": "ABC"});
        let cli = unescape_cli_data("]d20109501101530003<gs>17261231^]10ABC\\x1D");
        assert_eq!(barcode(&cli)["ais"], expected_ais);
    }

    #[test]
    fn decode_command_unescapes_barcodes_only() {
        let gs1 = decode(
            DecodeKind::Barcode,
            "]C10109501101530003<GS>10ABC",
            &settings(),
        );
        assert_eq!(serde_json::to_value(&gs1).unwrap()["ais"]["10"], "ABC");
        let swipe = decode(DecodeKind::Track, "%NA^]B?", &settings());
        assert_eq!(serde_json::to_value(&swipe).unwrap()["data"], "NA^]B");
    }

    #[test]
    fn cli_unescape() {
        assert_eq!(
            unescape_cli_data("a\\x1db<GS>c<gs>d^]e"),
            "a\u{1d}b\u{1d}c\u{1d}d\u{1d}e"
        );
        assert_eq!(unescape_cli_data("plain ^ text ü"), "plain ^ text ü");
    }
}
