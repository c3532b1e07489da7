//! Cached rules bundles: every version ever received stays in the `rules`
//! table (returns recompute with the sale's own version), parsed at most
//! once per process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pos_points::{Bundle, Format};
use rusqlite::{Connection, OptionalExtension};

use crate::store::Shared;
use crate::store::error::{StoreError, StoreResult};

/// Parsed bundles by version. Versions never change once stored, so the
/// cache never needs invalidating.
#[derive(Default)]
pub(crate) struct RulesCache {
    parsed: Mutex<HashMap<u64, Arc<Bundle>>>,
}

/// The newest cached version, if any.
pub(crate) fn newest_version(conn: &Connection) -> StoreResult<Option<u64>> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT MAX(version) FROM rules")?
        .query_row([], |r| r.get(0))?;
    v.map(to_u64).transpose()
}

fn to_u64(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Damaged(format!("negative rules version {v}")))
}

fn to_i64(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::invalid("rules.version", "too large"))
}

/// The bundle of `version` (parsed once, then from the cache).
pub(crate) fn bundle(conn: &Connection, shared: &Shared, version: u64) -> StoreResult<Arc<Bundle>> {
    if let Some(b) = shared
        .rules
        .parsed
        .lock()
        .ok()
        .and_then(|m| m.get(&version).cloned())
    {
        return Ok(b);
    }
    let text: Option<String> = conn
        .prepare_cached("SELECT bundle FROM rules WHERE version = ?1")?
        .query_row([to_i64(version)?], |r| r.get(0))
        .optional()?;
    let text =
        text.ok_or_else(|| StoreError::Damaged(format!("rules version {version} is not cached")))?;
    let parsed = Bundle::parse(&text, Format::Json)
        .map_err(|e| StoreError::Damaged(format!("cached rules version {version}: {e}")))?;
    let parsed = Arc::new(parsed);
    if let Ok(mut map) = shared.rules.parsed.lock() {
        map.insert(version, parsed.clone());
    }
    Ok(parsed)
}

/// The newest bundle, or `NoRules`.
pub(crate) fn newest(conn: &Connection, shared: &Shared) -> StoreResult<Arc<Bundle>> {
    let version = newest_version(conn)?.ok_or(StoreError::NoRules)?;
    bundle(conn, shared, version)
}

/// Stores `bundle` unless that exact version and content is already cached.
/// Refuses an invalid bundle, an older version than the newest, and the same
/// version with other content. Gives the version when stored.
pub(crate) fn store(
    conn: &Connection,
    shared: &Shared,
    bundle: &Bundle,
    source: &str,
) -> StoreResult<Option<u64>> {
    bundle
        .validate()
        .map_err(|e| StoreError::InvalidRules(e.to_string()))?;
    let text = serde_json::to_string(bundle)
        .map_err(|e| StoreError::InvalidRules(format!("cannot encode: {e}")))?;
    let existing: Option<String> = conn
        .prepare_cached("SELECT bundle FROM rules WHERE version = ?1")?
        .query_row([to_i64(bundle.version)?], |r| r.get(0))
        .optional()?;
    if let Some(existing) = existing {
        return if existing == text {
            Ok(None)
        } else {
            Err(StoreError::RulesConflict(bundle.version))
        };
    }
    if let Some(newest) = newest_version(conn)?
        && bundle.version < newest
    {
        return Err(StoreError::RulesOutdated {
            offered: bundle.version,
            newest,
        });
    }
    conn.prepare_cached(
        "INSERT INTO rules (version, bundle, source, received_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(rusqlite::params![
        to_i64(bundle.version)?,
        text,
        source,
        shared.now_rfc3339()
    ])?;
    Ok(Some(bundle.version))
}
