//! The signed rules file (`docs/signed-rules.md`): a published bundle with
//! central's signature, as `pos-central export-rules` writes it and
//! `pos-agent import --rules` reads it on a register with `[central]`.
//!
//! Why a file of its own and not the bundle with a detached signature: the
//! signature covers the exact bytes central published, so the bytes travel
//! inside the file as a JSON string (bundles are UTF-8 text, and a JSON
//! string gives back exactly the text it was made from). An operator can
//! still read the bundle in it.
//!
//! ```json
//! {"signed_rules": 1, "version": 5, "format": "json",
//!  "bundle": "{\"version\": 5, \"programs\": [...]}",
//!  "signature_base64": "3q2+7w...=="}
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::SyncError;
use crate::protocol::{BundleFormat, SignedBundle};
use crate::signing::BUNDLE_BYTES_MAX;

/// The value of `signed_rules` this build writes and reads: the file
/// format's own version, so a later format is refused by name.
pub const SIGNED_RULES_FILE_VERSION: u32 = 1;

/// Largest signed rules file read: the bundle limit, plus room for JSON
/// escaping (at most 6 bytes per byte for `\u00XX`) and the signature.
pub const SIGNED_RULES_FILE_BYTES_MAX: usize = 6 * BUNDLE_BYTES_MAX + 4096;

/// The file as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedRulesFile {
    signed_rules: u32,
    version: u64,
    /// `json` or `toml`: how `bundle` is written.
    format: String,
    /// The bundle text exactly as published.
    bundle: String,
    /// Ed25519 signature of central over the UTF-8 bytes of `bundle`.
    signature_base64: String,
}

/// The file text (pretty JSON, newline at the end) of a signed bundle.
/// Refuses bytes that are not UTF-8: central publishes only text.
pub fn to_file_text(signed: &SignedBundle) -> Result<String, SyncError> {
    let bundle = std::str::from_utf8(&signed.bytes)
        .map_err(|e| SyncError::Bundle(format!("version {}: not UTF-8: {e}", signed.version)))?;
    let file = SignedRulesFile {
        signed_rules: SIGNED_RULES_FILE_VERSION,
        version: signed.version,
        format: format_name(signed.format).to_string(),
        bundle: bundle.to_string(),
        signature_base64: BASE64.encode(&signed.signature),
    };
    let mut text = serde_json::to_string_pretty(&file)
        .map_err(|e| SyncError::Bundle(format!("cannot encode: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// Reads a signed rules file. Says plainly when the text is not one (a
/// plain bundle, say), so the operator knows which file to take. Checks
/// nothing of the signature: verify with [`crate::signing::verify_signature`].
pub fn from_file_text(text: &str) -> Result<SignedBundle, SyncError> {
    if text.len() > SIGNED_RULES_FILE_BYTES_MAX {
        return Err(SyncError::Bundle(format!(
            "{} bytes is over the limit of {SIGNED_RULES_FILE_BYTES_MAX}",
            text.len()
        )));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        SyncError::Bundle(format!(
            "not a signed rules file (not JSON: {e}); write one with pos-central export-rules"
        ))
    })?;
    match value.get("signed_rules") {
        None => {
            return Err(SyncError::Bundle(
                "not a signed rules file (no \"signed_rules\" field: an unsigned bundle?); \
                 write one with pos-central export-rules"
                    .to_string(),
            ));
        }
        Some(v) if v.as_u64() != Some(u64::from(SIGNED_RULES_FILE_VERSION)) => {
            return Err(SyncError::Bundle(format!(
                "signed rules file format {v} is not supported (this build reads {SIGNED_RULES_FILE_VERSION})"
            )));
        }
        Some(_) => {}
    }
    let file: SignedRulesFile = serde_json::from_value(value)
        .map_err(|e| SyncError::Bundle(format!("invalid signed rules file: {e}")))?;
    let format = format_from_name(&file.format).ok_or_else(|| {
        SyncError::Bundle(format!(
            "format {:?}: expected \"json\" or \"toml\"",
            file.format
        ))
    })?;
    let signature = BASE64
        .decode(file.signature_base64.trim())
        .map_err(|e| SyncError::Bundle(format!("signature_base64 is not base64: {e}")))?;
    Ok(SignedBundle {
        version: file.version,
        format,
        bytes: file.bundle.into_bytes(),
        signature,
    })
}

/// Whether `text` looks like a signed rules file (a JSON object with a
/// `signed_rules` field), to tell it from a plain bundle.
pub fn is_signed_file(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .is_some_and(|v| v.get("signed_rules").is_some())
}

/// How a format is named in the file (and in the register's store).
pub fn format_name(format: BundleFormat) -> &'static str {
    match format {
        BundleFormat::Json => "json",
        BundleFormat::Toml => "toml",
    }
}

/// The format of a name written by [`format_name`].
pub fn format_from_name(name: &str) -> Option<BundleFormat> {
    match name {
        "json" => Some(BundleFormat::Json),
        "toml" => Some(BundleFormat::Toml),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::{sign_bundle, verify_signature};
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_file_gives_back_the_exact_bytes_and_signature() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let text = "{\"version\": 3,\n  \"programs\": [] } # \u{e9}\t\"q\"\n";
        let signed = sign_bundle(&key, 3, BundleFormat::Json, text.as_bytes().to_vec());
        let file = to_file_text(&signed).unwrap();
        assert!(is_signed_file(&file));
        let back = from_file_text(&file).unwrap();
        assert_eq!(back, signed);
        verify_signature(&back, &key.verifying_key()).unwrap();
    }

    #[test]
    fn a_plain_bundle_or_another_format_is_named_as_such() {
        let plain = r#"{"version": 9999, "programs": []}"#;
        assert!(!is_signed_file(plain));
        let err = from_file_text(plain).unwrap_err().to_string();
        assert!(err.contains("not a signed rules file"), "{err}");
        let err = from_file_text("version = 1").unwrap_err().to_string();
        assert!(err.contains("not a signed rules file"), "{err}");
        let later = r#"{"signed_rules": 2, "version": 1}"#;
        let err = from_file_text(later).unwrap_err().to_string();
        assert!(err.contains("format 2 is not supported"), "{err}");
    }
}
