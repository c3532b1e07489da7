//! Rules bundle signatures (sync spec §3): Ed25519 over the exact bundle
//! bytes as published. Central signs; the register verifies against the
//! `rules_public_key` of its config before it parses anything.
//!
//! The signature covers the bundle bytes only, so the `version` carried
//! beside them in [`SignedBundle`] is a claim: whoever parses the verified
//! bytes must check that the bundle's own `version` equals it
//! ([`check_parsed_version`]). Central only signs bytes whose version it has
//! read itself.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::SyncError;
use crate::protocol::{BundleFormat, SignedBundle};

/// Largest bundle accepted for signing or verifying: 4 MiB.
pub const BUNDLE_BYTES_MAX: usize = 4 * 1_048_576;

/// Reads a base64 Ed25519 public key (what `pos-central public-key` prints).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SyncError> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| SyncError::Config(format!("rules_public_key is not base64: {e}")))?;
    let bytes: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        SyncError::Config(format!(
            "rules_public_key must be 32 bytes, got {}",
            bytes.len()
        ))
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| SyncError::Config(format!("rules_public_key is not an Ed25519 key: {e}")))
}

/// A public key from its 32 bytes (what the register's config holds).
pub fn parse_public_key_bytes(bytes: &[u8; 32]) -> Result<VerifyingKey, SyncError> {
    VerifyingKey::from_bytes(bytes)
        .map_err(|e| SyncError::Config(format!("rules_public_key is not an Ed25519 key: {e}")))
}

/// The base64 text of a public key.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

/// Signs published bundle bytes. `version` must be the bundle's own version.
pub fn sign_bundle(
    key: &SigningKey,
    version: u64,
    format: BundleFormat,
    bytes: Vec<u8>,
) -> SignedBundle {
    let signature = key.sign(&bytes).to_bytes().to_vec();
    SignedBundle {
        version,
        format,
        bytes,
        signature,
    }
}

/// Checks a downloaded bundle before it is parsed: signed by `key`, and newer
/// than `current_version` (the newest the register already holds, if any).
/// Refusals are [`SyncError::Bundle`]; the register keeps its cached bundle.
pub fn verify_bundle(
    bundle: &SignedBundle,
    key: &VerifyingKey,
    current_version: Option<u64>,
) -> Result<(), SyncError> {
    verify_signature(bundle, key)?;
    if let Some(current) = current_version
        && bundle.version <= current
    {
        return Err(SyncError::Bundle(format!(
            "version {} is not newer than the cached version {current}",
            bundle.version
        )));
    }
    Ok(())
}

/// Checks only the signature (used for an old version fetched on purpose,
/// e.g. to recompute a return).
pub fn verify_signature(bundle: &SignedBundle, key: &VerifyingKey) -> Result<(), SyncError> {
    if bundle.bytes.len() > BUNDLE_BYTES_MAX {
        return Err(SyncError::Bundle(format!(
            "version {}: {} bytes is over the limit of {BUNDLE_BYTES_MAX}",
            bundle.version,
            bundle.bytes.len()
        )));
    }
    let signature: [u8; 64] = bundle.signature.as_slice().try_into().map_err(|_| {
        SyncError::Bundle(format!(
            "version {}: unsigned or malformed signature ({} bytes, 64 expected)",
            bundle.version,
            bundle.signature.len()
        ))
    })?;
    key.verify(&bundle.bytes, &Signature::from_bytes(&signature))
        .map_err(|_| {
            SyncError::Bundle(format!(
                "version {}: signature does not verify with the configured public key",
                bundle.version
            ))
        })
}

/// After parsing verified bytes: the bundle's own version must equal the
/// version it was announced with (the announcement is not signed).
pub fn check_parsed_version(bundle: &SignedBundle, parsed_version: u64) -> Result<(), SyncError> {
    if parsed_version != bundle.version {
        return Err(SyncError::Bundle(format!(
            "announced as version {} but the signed bundle says version {parsed_version}",
            bundle.version
        )));
    }
    Ok(())
}

/// Verifies a downloaded bundle (signature, newer than `current_version`)
/// and parses it with `pos-points`, checking that the signed bytes carry the
/// announced version. What the sync worker calls before caching a bundle.
pub fn open_bundle(
    bundle: &SignedBundle,
    key: &VerifyingKey,
    current_version: Option<u64>,
) -> Result<pos_points::Bundle, SyncError> {
    verify_bundle(bundle, key, current_version)?;
    parse_verified(bundle)
}

/// Parses bytes whose signature was checked already (e.g. an old version
/// fetched on purpose with [`verify_signature`]) and checks their version.
pub fn parse_verified(bundle: &SignedBundle) -> Result<pos_points::Bundle, SyncError> {
    let text = std::str::from_utf8(&bundle.bytes)
        .map_err(|e| SyncError::Bundle(format!("version {}: not UTF-8: {e}", bundle.version)))?;
    let format = match bundle.format {
        crate::protocol::BundleFormat::Json => pos_points::Format::Json,
        crate::protocol::BundleFormat::Toml => pos_points::Format::Toml,
    };
    let parsed = pos_points::Bundle::parse(text, format).map_err(|e| {
        SyncError::Bundle(format!("version {}: invalid bundle: {e}", bundle.version))
    })?;
    check_parsed_version(bundle, parsed.version)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn key(seed: u64) -> SigningKey {
        SigningKey::generate(&mut StdRng::seed_from_u64(seed))
    }

    #[test]
    fn signed_bundle_verifies_and_any_change_does_not() {
        let k = key(1);
        let bytes = br#"{"version": 3, "programs": []}"#.to_vec();
        let signed = sign_bundle(&k, 3, BundleFormat::Json, bytes);
        let public = parse_public_key(&public_key_base64(&k.verifying_key())).unwrap();
        verify_bundle(&signed, &public, Some(2)).unwrap();
        verify_bundle(&signed, &public, None).unwrap();

        let mut tampered = signed.clone();
        tampered.bytes[12] = b'4';
        assert!(matches!(
            verify_bundle(&tampered, &public, None),
            Err(SyncError::Bundle(_))
        ));

        let other = key(2).verifying_key();
        assert!(verify_bundle(&signed, &other, None).is_err());

        let mut unsigned = signed.clone();
        unsigned.signature.clear();
        let err = verify_bundle(&unsigned, &public, None).unwrap_err();
        assert!(err.to_string().contains("unsigned"), "{err}");
    }

    #[test]
    fn older_or_same_versions_are_refused() {
        let k = key(3);
        let signed = sign_bundle(&k, 5, BundleFormat::Json, b"{}".to_vec());
        for current in [5, 6] {
            let err = verify_bundle(&signed, &k.verifying_key(), Some(current)).unwrap_err();
            assert!(err.to_string().contains("not newer"), "{err}");
        }
        assert!(check_parsed_version(&signed, 5).is_ok());
        assert!(check_parsed_version(&signed, 6).is_err());
    }

    #[test]
    fn open_bundle_parses_verified_bytes_and_checks_the_announced_version() {
        let k = key(4);
        let text =
            br#"{"version": 7, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;
        let signed = sign_bundle(&k, 7, BundleFormat::Json, text.to_vec());
        let bundle = open_bundle(&signed, &k.verifying_key(), Some(6)).unwrap();
        assert_eq!(bundle.version, 7);
        assert_eq!(bundle.programs[0].id, "main");

        // Correctly signed bytes announced under another version.
        let mut lying = sign_bundle(&k, 8, BundleFormat::Json, text.to_vec());
        let err = open_bundle(&lying, &k.verifying_key(), Some(6)).unwrap_err();
        assert!(err.to_string().contains("announced as version 8"), "{err}");

        // Signed but invalid: refused, not cached.
        lying = sign_bundle(&k, 9, BundleFormat::Json, br#"{"version": 9}"#.to_vec());
        assert!(matches!(
            open_bundle(&lying, &k.verifying_key(), None),
            Err(SyncError::Bundle(_))
        ));
    }

    #[test]
    fn bad_public_keys_are_config_errors() {
        assert!(matches!(
            parse_public_key("not base64!"),
            Err(SyncError::Config(_))
        ));
        assert!(matches!(
            parse_public_key("AAAA"),
            Err(SyncError::Config(_))
        ));
    }
}
