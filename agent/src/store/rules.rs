//! Cached rules bundles: every version ever received stays in the `rules`
//! table (returns recompute with the sale's own version), parsed at most
//! once per process.
//!
//! Signed rules (`docs/signed-rules.md`): every row keeps the bytes, format
//! and Ed25519 signature exactly as central sent them (migration 2). When
//! the store has a rules key (`[central] rules_public_key`), a bundle is
//! parsed only from bytes whose signature verifies with it, at its first
//! load in this process; a row without a signature or with one that does
//! not verify is never used ([`StoreError::RulesUnverified`]). So whoever
//! writes to the database file cannot change the rules a sale is quoted
//! with. Without a key (a standalone register) unsigned bundles are used as
//! before. The `bundle` column (re-encoded JSON) only serves to compare
//! versions and for people reading the file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ed25519_dalek::VerifyingKey;
use pos_points::{Bundle, Format};
use pos_sync::SyncError;
use pos_sync::protocol::SignedBundle;
use pos_sync::signed_file::{format_from_name, format_name};
use pos_sync::signing::{parse_verified, verify_signature};
use rusqlite::{Connection, OptionalExtension};

use crate::store::Shared;
use crate::store::error::{StoreError, StoreResult};

/// Parsed bundles by version (verified ones when the store has a key).
/// Versions never change once stored, except when an unusable row is
/// repaired with central's signed bytes ([`store`]), which evicts it.
#[derive(Default)]
pub(crate) struct RulesCache {
    parsed: Mutex<HashMap<u64, Arc<Bundle>>>,
}

impl RulesCache {
    fn get(&self, version: u64) -> Option<Arc<Bundle>> {
        self.parsed
            .lock()
            .ok()
            .and_then(|m| m.get(&version).cloned())
    }

    fn put(&self, version: u64, bundle: Arc<Bundle>) {
        if let Ok(mut map) = self.parsed.lock() {
            map.insert(version, bundle);
        }
    }

    fn evict(&self, version: u64) {
        if let Ok(mut map) = self.parsed.lock() {
            map.remove(&version);
        }
    }
}

/// A bundle offered to the store.
#[derive(Clone, Debug)]
pub enum RulesInput {
    /// A parsed bundle without a signature: refused when the store has a
    /// rules key.
    Plain(Bundle),
    /// Bytes and signature as central published them.
    Signed(SignedBundle),
}

impl From<Bundle> for RulesInput {
    fn from(bundle: Bundle) -> RulesInput {
        RulesInput::Plain(bundle)
    }
}

/// The store's rules key, when it has one. A configured key that is not a
/// curve point (the config refuses those) verifies nothing.
fn trust(shared: &Shared) -> Option<Result<VerifyingKey, ()>> {
    shared
        .options
        .rules_key
        .map(|bytes| VerifyingKey::from_bytes(&bytes).map_err(|_| ()))
}

/// The newest version of any row, signed or not.
pub(crate) fn newest_version(conn: &Connection) -> StoreResult<Option<u64>> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM rules")?
        .query_row([], |r| r.get(0))?;
    v.map(to_u64).transpose()
}

/// The version sales are quoted with: the newest row that could be used,
/// that is the newest signed one when the store has a key (unsigned rows
/// are skipped, so an unsigned version 9999 never hides central's newer
/// signed ones), the newest of all otherwise.
pub(crate) fn current_version(conn: &Connection, shared: &Shared) -> StoreResult<Option<u64>> {
    if trust(shared).is_none() {
        return newest_version(conn);
    }
    let v: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM rules WHERE signature IS NOT NULL")?
        .query_row([], |r| r.get(0))?;
    v.map(to_u64).transpose()
}

/// The newest version that loads (verifies, with a key): what the rules
/// download asks central for versions after, so a row that does not verify
/// is downloaded again and repaired.
pub(crate) fn newest_usable_version(
    conn: &Connection,
    shared: &Shared,
) -> StoreResult<Option<u64>> {
    if trust(shared).is_none() {
        return newest_version(conn);
    }
    let versions: Vec<i64> = conn
        .prepare_cached(
            "SELECT version FROM rules WHERE signature IS NOT NULL ORDER BY version DESC",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for v in versions {
        let v = to_u64(v)?;
        match bundle(conn, shared, v) {
            Ok(_) => return Ok(Some(v)),
            Err(StoreError::RulesUnverified { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A refusal's own words, without `SyncError`'s "rules bundle refused:".
fn reason(error: SyncError) -> String {
    match error {
        SyncError::Bundle(text) => text,
        other => other.to_string(),
    }
}

/// Versions up to `up_to` held without a signature, the newest first, at
/// most `limit`: what the rules download asks central for again.
pub(crate) fn unsigned_versions(
    conn: &Connection,
    up_to: u64,
    limit: u32,
) -> StoreResult<Vec<u64>> {
    let versions: Vec<i64> = conn
        .prepare_cached(
            "SELECT version FROM rules WHERE signature IS NULL AND version <= ?1 \
             ORDER BY version DESC LIMIT ?2",
        )?
        .query_map(rusqlite::params![to_i64(up_to)?, limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    versions.into_iter().map(to_u64).collect()
}

fn to_u64(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Damaged(format!("negative rules version {v}")))
}

fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::invalid("rules.version", "too large"))
}

/// One row of `rules`.
struct Row {
    bundle: String,
    signed: Option<SignedBundle>,
}

fn read_row(conn: &Connection, version: u64) -> StoreResult<Option<Row>> {
    type Raw = (String, Option<Vec<u8>>, Option<String>, Option<Vec<u8>>);
    let raw: Option<Raw> = conn
        .prepare_cached(
            "SELECT bundle, signed_bytes, signed_format, signature FROM rules WHERE version = ?1",
        )?
        .query_row([to_i64(version)?], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((bundle, bytes, format, signature)) = raw else {
        return Ok(None);
    };
    let signed = match (bytes, format, signature) {
        (Some(bytes), Some(format), Some(signature)) => Some(SignedBundle {
            version,
            format: format_from_name(&format).ok_or_else(|| {
                StoreError::Damaged(format!("rules version {version}: format {format:?}"))
            })?,
            bytes,
            signature,
        }),
        _ => None,
    };
    Ok(Some(Row { bundle, signed }))
}

/// Parses a row: from verified signed bytes when the store has a key,
/// from the signed bytes or the stored JSON otherwise.
fn parse_row(shared: &Shared, version: u64, row: &Row) -> StoreResult<Bundle> {
    let unverified = |reason: String| StoreError::RulesUnverified { version, reason };
    match (trust(shared), &row.signed) {
        (Some(_), None) => Err(unverified(
            "it was stored without a signature (an unsigned import, or cached before \
             signatures were kept)"
                .to_string(),
        )),
        (Some(Err(())), Some(_)) => Err(unverified(
            "rules_public_key is not a usable Ed25519 key".to_string(),
        )),
        (Some(Ok(key)), Some(signed)) => {
            verify_signature(signed, &key).map_err(|e| unverified(reason(e)))?;
            parse_verified(signed).map_err(|e| unverified(reason(e)))
        }
        (None, Some(signed)) => parse_verified(signed)
            .map_err(|e| StoreError::Damaged(format!("cached rules version {version}: {e}"))),
        (None, None) => Bundle::parse(&row.bundle, Format::Json)
            .map_err(|e| StoreError::Damaged(format!("cached rules version {version}: {e}"))),
    }
}

/// The bundle of `version`, verified and parsed once, then from the cache.
pub(crate) fn bundle(conn: &Connection, shared: &Shared, version: u64) -> StoreResult<Arc<Bundle>> {
    if let Some(b) = shared.rules.get(version) {
        return Ok(b);
    }
    let row = read_row(conn, version)?
        .ok_or_else(|| StoreError::Damaged(format!("rules version {version} is not cached")))?;
    let parsed = Arc::new(parse_row(shared, version, &row)?);
    shared.rules.put(version, parsed.clone());
    Ok(parsed)
}

/// The bundle sales are quoted with ([`current_version`]), or `NoRules`;
/// with a key and only unsigned rows, `RulesUnverified` naming the newest.
pub(crate) fn newest(conn: &Connection, shared: &Shared) -> StoreResult<Arc<Bundle>> {
    match current_version(conn, shared)? {
        Some(version) => bundle(conn, shared, version),
        None => match newest_version(conn)? {
            Some(version) => Err(StoreError::RulesUnverified {
                version,
                reason: "it was stored without a signature (an unsigned import, or cached \
                         before signatures were kept)"
                    .to_string(),
            }),
            None => Err(StoreError::NoRules),
        },
    }
}

/// Why the bundle sales would use cannot be used, if it cannot (for health).
pub(crate) fn problem(conn: &Connection, shared: &Shared) -> StoreResult<Option<String>> {
    match newest(conn, shared) {
        Ok(_) | Err(StoreError::NoRules) => Ok(None),
        Err(e @ StoreError::RulesUnverified { .. }) => Ok(Some(e.to_string())),
        Err(e) => Err(e),
    }
}

/// A bundle checked for storing: parsed, and its signed form if any.
struct Checked {
    bundle: Bundle,
    signed: Option<SignedBundle>,
}

/// Checks an offered bundle against the store's key before anything is
/// stored: with a key, only signed bytes that verify.
fn check(shared: &Shared, input: &RulesInput) -> StoreResult<Checked> {
    let checked = match (trust(shared), input) {
        (Some(_), RulesInput::Plain(b)) => return Err(StoreError::RulesUnsigned(b.version)),
        (Some(Err(())), RulesInput::Signed(_)) => {
            return Err(StoreError::BadSignature(
                "rules_public_key is not a usable Ed25519 key".to_string(),
            ));
        }
        (Some(Ok(key)), RulesInput::Signed(signed)) => {
            verify_signature(signed, &key).map_err(|e| StoreError::BadSignature(reason(e)))?;
            Checked {
                bundle: parse_verified(signed).map_err(|e| StoreError::InvalidRules(reason(e)))?,
                signed: Some(signed.clone()),
            }
        }
        (None, RulesInput::Signed(signed)) => Checked {
            bundle: parse_verified(signed).map_err(|e| StoreError::InvalidRules(reason(e)))?,
            signed: Some(signed.clone()),
        },
        (None, RulesInput::Plain(b)) => Checked {
            bundle: b.clone(),
            signed: None,
        },
    };
    checked
        .bundle
        .validate()
        .map_err(|e| StoreError::InvalidRules(e.to_string()))?;
    Ok(checked)
}

/// Stores a bundle unless that exact version and content is already cached.
/// Refuses an unsigned or badly signed bundle when the store has a key, an
/// invalid bundle, an older version than the current one, and the same
/// version with other content. Gives the version when stored.
///
/// A signed bundle also completes an unsigned row of the same content (a
/// bundle cached before signatures were kept), and, with a key, replaces a
/// row that cannot be used (unsigned with other content, or tampered): the
/// verified bytes are what central published for that version.
pub(crate) fn store(
    conn: &Connection,
    shared: &Shared,
    input: &RulesInput,
    source: &str,
) -> StoreResult<Option<u64>> {
    let Checked { bundle, signed } = check(shared, input)?;
    let version = bundle.version;
    let text = serde_json::to_string(&bundle)
        .map_err(|e| StoreError::InvalidRules(format!("cannot encode: {e}")))?;
    if let Some(existing) = read_row(conn, version)? {
        return store_over(
            conn,
            shared,
            version,
            &existing,
            &text,
            signed.as_ref(),
            source,
        );
    }
    // Against the newest usable version: a row that does not verify (a
    // version central never published, say) must not hold back central's.
    if let Some(current) = newest_usable_version(conn, shared)?
        && version < current
    {
        return Err(StoreError::RulesOutdated {
            offered: version,
            newest: current,
        });
    }
    write_row(conn, shared, version, &text, signed.as_ref(), source)?;
    Ok(Some(version))
}

/// Inserts the row of `version`, or replaces it (a repair, [`store_over`]).
fn write_row(
    conn: &Connection,
    shared: &Shared,
    version: u64,
    text: &str,
    signed: Option<&SignedBundle>,
    source: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO rules (version, bundle, source, received_at, signed_bytes, signed_format, signature) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (version) DO UPDATE SET bundle = excluded.bundle, source = excluded.source, \
         received_at = excluded.received_at, signed_bytes = excluded.signed_bytes, \
         signed_format = excluded.signed_format, signature = excluded.signature",
    )?
    .execute(rusqlite::params![
        to_i64(version)?,
        text,
        source,
        shared.now_rfc3339(),
        signed.map(|s| s.bytes.as_slice()),
        signed.map(|s| format_name(s.format)),
        signed.map(|s| s.signature.as_slice()),
    ])?;
    Ok(())
}

/// `store` when the version has a row already.
fn store_over(
    conn: &Connection,
    shared: &Shared,
    version: u64,
    existing: &Row,
    text: &str,
    signed: Option<&SignedBundle>,
    source: &str,
) -> StoreResult<Option<u64>> {
    let same = existing.bundle == text;
    let Some(signed) = signed else {
        return if same {
            Ok(None)
        } else {
            Err(StoreError::RulesConflict(version))
        };
    };
    let usable = parse_row(shared, version, existing).is_ok();
    if existing.signed.as_ref() == Some(signed) || (usable && existing.signed.is_some() && same) {
        return Ok(None);
    }
    if !same && (usable || trust(shared).is_none()) {
        return Err(StoreError::RulesConflict(version));
    }
    tracing::warn!(
        message = "Rules row replaced by the signed bundle (it was unsigned or did not verify).",
        version,
        same_content = same,
        source
    );
    write_row(conn, shared, version, text, Some(signed), source)?;
    shared.rules.evict(version);
    Ok(Some(version))
}
