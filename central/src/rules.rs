//! Publishing rules bundles: validated with `pos-points` (points spec §1),
//! then signed over the exact bytes received.

use ed25519_dalek::SigningKey;
use pos_sync::protocol::BundleFormat;
use pos_sync::signing::{BUNDLE_BYTES_MAX, sign_bundle};

use crate::error::CentralError;
use crate::storage::{NewBundle, Storage};

/// Validates bundle bytes and signs them. The bytes are kept exactly as
/// given (the signature covers them), so a register can verify what the
/// publisher wrote, comments and key order included.
pub fn prepare(
    bytes: Vec<u8>,
    format: BundleFormat,
    key: &SigningKey,
) -> Result<NewBundle, CentralError> {
    if bytes.len() > BUNDLE_BYTES_MAX {
        return Err(CentralError::Invalid(format!(
            "bundle of {} bytes is over the limit of {BUNDLE_BYTES_MAX}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| CentralError::Invalid(format!("bundle is not UTF-8: {e}")))?;
    let points_format = match format {
        BundleFormat::Json => pos_points::Format::Json,
        BundleFormat::Toml => pos_points::Format::Toml,
    };
    let bundle = pos_points::Bundle::parse(text, points_format)
        .map_err(|e| CentralError::Invalid(format!("invalid bundle:\n{e}")))?;
    let programs = bundle.programs.iter().map(|p| p.id.clone()).collect();
    let signed = sign_bundle(key, bundle.version, format, bytes);
    Ok(NewBundle { signed, programs })
}

/// The signed rules file of a published version (`docs/signed-rules.md`):
/// what `pos-central export-rules` writes, for `pos-agent import --rules`
/// on a register with `[central]` (provisioning before the first sync).
/// The bytes and signature are the stored ones, exactly as published.
pub fn export(storage: &dyn Storage, version: u64) -> Result<String, CentralError> {
    let signed = storage.bundle(version)?.ok_or_else(|| {
        let newest = storage.current_bundle_version().ok().flatten();
        CentralError::Invalid(match newest {
            Some(n) => format!("rules version {version} was never published (the newest is {n})"),
            None => format!("rules version {version} was never published (none is)"),
        })
    })?;
    pos_sync::signed_file::to_file_text(&signed)
        .map_err(|e| CentralError::Invalid(format!("rules version {version}: {e}")))
}
