//! Downloads (sync spec §3): the newest signed rules bundle, member changes
//! and catalog changes since the stored cursors.
//!
//! A bundle is verified against `[central] rules_public_key` before it is
//! parsed; an unsigned, badly signed, older or invalid one is refused and
//! reported (the cached bundles stay), and does not stop the rest of the
//! cycle: uploads and member data matter more than a new promotion.

use ed25519_dalek::VerifyingKey;
use pos_points::{Bundle, Format};
use pos_sync::protocol::{
    BundleFormat, CHANGES_PAGE_MAX, MemberChange, ProductChange, SignedBundle,
};
use pos_sync::signing::{check_parsed_version, verify_bundle};
use pos_sync::{SyncClient, SyncError};

use crate::model::{MemberData, MemberProgramData, Product};
use crate::store::sync::{CATALOG_CURSOR, CENTRAL_RULES_NEWEST, MEMBERS_CURSOR};
use crate::store::{RulesInput, Store, StoreError};
use crate::sync_worker::SyncWorkerError;
use crate::sync_worker::holds::OwnHolds;

/// Most change pages fetched per cycle and kind (1,000,000 changes): the
/// next cycle continues from the stored cursor.
pub const CHANGE_PAGES_PER_CYCLE_MAX: u32 = 1_000;

/// What the rules download did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RulesOutcome {
    /// Nothing newer at central.
    UpToDate,
    /// Verified, parsed and cached.
    Stored(u64),
    /// Refused, with the reason; the cached bundles stay.
    Refused(String),
}

/// Fetches the newest bundle above the newest version this register can
/// use, verifies and caches it, and records central's newest version (for
/// the drift health shows).
///
/// Which version to ask after (`docs/signed-rules.md`): the newest whose
/// signature verifies, not the newest row. A version central never
/// published (an unsigned import, a row edited in the file) would
/// otherwise hold back every newer signed version for good, and a row
/// that does not verify is downloaded again and repaired.
pub async fn rules(
    store: &Store,
    client: &SyncClient,
    key: &VerifyingKey,
) -> Result<RulesOutcome, SyncWorkerError> {
    let current = store.newest_rules_version().await?;
    let answer = client.newest_rules(current).await?;
    store
        .set_sync_state(CENTRAL_RULES_NEWEST, &answer.newest.to_string())
        .await?;
    complete_unsigned(store, client, key, answer.newest).await?;
    let Some(signed) = answer.bundle else {
        return Ok(RulesOutcome::UpToDate);
    };
    if let Err(reason) = verify_and_parse(&signed, key, current) {
        return Ok(refused(signed.version, reason));
    }
    match store
        .store_rules(RulesInput::Signed(signed.clone()), "central")
        .await
    {
        Ok(_) => {
            tracing::info!(
                message = "Rules bundle downloaded.",
                version = signed.version
            );
            Ok(RulesOutcome::Stored(signed.version))
        }
        Err(
            e @ (StoreError::InvalidRules(_)
            | StoreError::RulesOutdated { .. }
            | StoreError::RulesConflict(_)
            | StoreError::RulesUnsigned(_)
            | StoreError::BadSignature(_)),
        ) => Ok(refused(signed.version, e.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Most old versions asked for again per cycle by `complete_unsigned`.
pub const RULES_COMPLETED_PER_CYCLE_MAX: u32 = 16;

/// Versions held without a signature (cached before signatures were kept)
/// that central published are fetched again, so that returns of their
/// sales verify: central's signed bytes complete (or, when they differ,
/// replace) the row. One that central does not give, or that does not
/// verify, stays as it is and is logged; only a network or store failure
/// fails the cycle. The newest version comes with the download itself.
async fn complete_unsigned(
    store: &Store,
    client: &SyncClient,
    key: &VerifyingKey,
    central_newest: u64,
) -> Result<(), SyncWorkerError> {
    let versions = store
        .unsigned_rules_versions(central_newest, RULES_COMPLETED_PER_CYCLE_MAX)
        .await?;
    for version in versions {
        let signed = match client.rules_version(version).await {
            Ok(signed) => signed,
            Err(e @ SyncError::Status { .. }) if !e.is_retryable() => {
                tracing::warn!(message = "Central does not give an old rules version; it stays unsigned.", version, error = %e);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if signed.version != version {
            tracing::warn!(
                message = "Central answered another rules version.",
                version,
                answered = signed.version
            );
            continue;
        }
        if let Err(reason) = verify_and_parse(&signed, key, None) {
            tracing::warn!(message = "Old rules version from central refused.", version, %reason);
            continue;
        }
        match store
            .store_rules(RulesInput::Signed(signed), "central")
            .await
        {
            Ok(_) => tracing::info!(
                message = "Old rules version completed with its signature.",
                version
            ),
            Err(e) if !e.is_unavailable() => {
                tracing::warn!(message = "Old rules version not completed.", version, error = %e)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn refused(version: u64, reason: String) -> RulesOutcome {
    tracing::warn!(
        message = "Rules bundle from central refused; keeping the cached bundles.",
        version,
        %reason
    );
    RulesOutcome::Refused(format!("version {version}: {reason}"))
}

/// Signature first (nothing unverified is parsed), then the version claim.
pub fn verify_and_parse(
    signed: &SignedBundle,
    key: &VerifyingKey,
    current: Option<u64>,
) -> Result<Bundle, String> {
    verify_bundle(signed, key, current).map_err(|e| e.to_string())?;
    let text =
        std::str::from_utf8(&signed.bytes).map_err(|e| format!("bundle is not UTF-8 text: {e}"))?;
    let format = match signed.format {
        BundleFormat::Json => Format::Json,
        BundleFormat::Toml => Format::Toml,
    };
    let bundle = Bundle::parse(text, format).map_err(|e| format!("invalid bundle: {e}"))?;
    check_parsed_version(signed, bundle.version).map_err(|e| e.to_string())?;
    Ok(bundle)
}

/// A cursor as stored (a decimal number), or 0 before the first download.
async fn cursor(store: &Store, key: &str) -> Result<u64, SyncWorkerError> {
    match store.sync_state(key).await? {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            StoreError::Damaged(format!("sync state {key} is not a number: {text:?}")).into()
        }),
    }
}

fn member_data(change: MemberChange) -> MemberData {
    MemberData {
        id: change.id,
        cards: change.cards,
        birthday: change.birthday,
        blocked: change.blocked,
        programs: change
            .programs
            .into_iter()
            .map(|(program, p)| {
                (
                    program,
                    MemberProgramData {
                        tier: p.tier,
                        available: p.available,
                        pending: p.pending,
                    },
                )
            })
            .collect(),
    }
}

fn product(change: ProductChange) -> Product {
    Product {
        sku: change.sku,
        name: change.name,
        category: change.category,
        price: change.price,
    }
}

/// Member changes since the cursor, page by page; each page is applied
/// with its cursor and counts as a successful member download (freshness,
/// sync spec §4) — an empty page too: it proves the cache is current.
/// Gives how many members changed.
///
/// Central's `available` already subtracts open holds; this register's own
/// are added back (see [`OwnHolds`]).
pub async fn members(
    store: &Store,
    client: &SyncClient,
    own: &OwnHolds,
) -> Result<u64, SyncWorkerError> {
    let mut at = cursor(store, MEMBERS_CURSOR).await?;
    let mut changed = 0u64;
    for _ in 0..CHANGE_PAGES_PER_CYCLE_MAX {
        let page = client.member_changes(at, CHANGES_PAGE_MAX).await?;
        changed += page.changes.len() as u64;
        let data = page
            .changes
            .into_iter()
            .map(|change| {
                let mut data = member_data(change);
                for (program, p) in data.programs.iter_mut() {
                    p.available = p.available.saturating_add(own.points(&data.id, program));
                }
                data
            })
            .collect();
        store
            .apply_member_download(data, Some(page.next_cursor.to_string()))
            .await?;
        if !page.more || page.next_cursor <= at {
            break;
        }
        at = page.next_cursor;
    }
    Ok(changed)
}

/// Catalog changes since the cursor, page by page. Gives how many changed.
pub async fn catalog(store: &Store, client: &SyncClient) -> Result<u64, SyncWorkerError> {
    let mut at = cursor(store, CATALOG_CURSOR).await?;
    let mut changed = 0u64;
    for _ in 0..CHANGE_PAGES_PER_CYCLE_MAX {
        let page = client.catalog_changes(at, CHANGES_PAGE_MAX).await?;
        if page.changes.is_empty() {
            break;
        }
        changed += page.changes.len() as u64;
        let products = page.changes.into_iter().map(product).collect();
        store
            .apply_catalog_download(products, page.next_cursor.to_string())
            .await?;
        if !page.more || page.next_cursor <= at {
            break;
        }
        at = page.next_cursor;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use pos_sync::signing::sign_bundle;

    const V2: &str =
        r#"{"version": 2, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_bytes(&[byte; 32])
    }

    #[test]
    fn a_signed_newer_bundle_is_accepted_and_anything_else_refused() {
        let k = key(1);
        let signed = sign_bundle(&k, 2, BundleFormat::Json, V2.as_bytes().to_vec());
        let bundle = verify_and_parse(&signed, &k.verifying_key(), Some(1)).unwrap();
        assert_eq!(bundle.version, 2);

        let other = key(2).verifying_key();
        let err = verify_and_parse(&signed, &other, Some(1)).unwrap_err();
        assert!(err.contains("signature"), "{err}");

        let err = verify_and_parse(&signed, &k.verifying_key(), Some(2)).unwrap_err();
        assert!(err.contains("not newer"), "{err}");

        let mut tampered = signed.clone();
        tampered.bytes = V2.replace("\"1\"", "\"9\"").into_bytes();
        assert!(verify_and_parse(&tampered, &k.verifying_key(), None).is_err());

        // Signed bytes say version 2, the unsigned announcement says 3.
        let mut lying = signed.clone();
        lying.version = 3;
        let err = verify_and_parse(&lying, &k.verifying_key(), Some(2)).unwrap_err();
        assert!(err.contains("announced as version 3"), "{err}");

        let invalid = sign_bundle(&k, 4, BundleFormat::Json, b"{\"version\": 4}".to_vec());
        let err = verify_and_parse(&invalid, &k.verifying_key(), None).unwrap_err();
        assert!(err.contains("invalid bundle"), "{err}");
    }
}
