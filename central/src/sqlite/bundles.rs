//! Published rules bundles, newest version last.

use std::collections::BTreeSet;

use pos_sync::protocol::SignedBundle;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{i64_of, u64_of};
use crate::error::CentralError;
use crate::storage::{NewBundle, format_from_name, format_name};

pub(super) fn publish(
    tx: &Transaction<'_>,
    bundle: NewBundle,
    at: jiff::Timestamp,
) -> Result<(), CentralError> {
    let current: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM bundles", [], |r| r.get(0))?;
    let version = i64_of(bundle.signed.version, "version")?;
    if let Some(current) = current
        && version <= current
    {
        return Err(CentralError::Conflict(format!(
            "bundle version {version} is not newer than the current version {current}"
        )));
    }
    tx.execute(
        "INSERT INTO bundles (version, format, bytes, signature, published_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            version,
            format_name(bundle.signed.format),
            bundle.signed.bytes,
            bundle.signed.signature,
            at.to_string()
        ],
    )?;
    for program in &bundle.programs {
        tx.execute(
            "INSERT OR IGNORE INTO programs (id, first_version) VALUES (?1, ?2)",
            params![program, version],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO bundle_programs (version, program) VALUES (?1, ?2)",
            params![version, program],
        )?;
    }
    Ok(())
}

pub(super) fn newest(
    conn: &Connection,
    after: Option<u64>,
) -> Result<Option<SignedBundle>, CentralError> {
    let after = match after {
        Some(v) => i64_of(v, "after")?,
        None => -1,
    };
    read_bundle(
        conn,
        "SELECT version, format, bytes, signature FROM bundles
         WHERE version > ?1 ORDER BY version DESC LIMIT 1",
        after,
    )
}

pub(super) fn by_version(
    conn: &Connection,
    version: u64,
) -> Result<Option<SignedBundle>, CentralError> {
    read_bundle(
        conn,
        "SELECT version, format, bytes, signature FROM bundles WHERE version = ?1",
        i64_of(version, "version")?,
    )
}

/// The programs of published bundle `version`; None when it was never
/// published.
pub(super) fn programs_of(
    conn: &Connection,
    version: u64,
) -> Result<Option<BTreeSet<String>>, CentralError> {
    // A version beyond SQLite's integers was never published; it must not
    // fail the batch it arrived in.
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let published: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM bundles WHERE version = ?1)")?
        .query_row([version], |r| r.get(0))?;
    if !published {
        return Ok(None);
    }
    let programs = conn
        .prepare_cached("SELECT program FROM bundle_programs WHERE version = ?1")?
        .query_map([version], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(Some(programs))
}

pub(super) fn current_version(conn: &Connection) -> Result<Option<u64>, CentralError> {
    let v: Option<i64> = conn.query_row("SELECT MAX(version) FROM bundles", [], |r| r.get(0))?;
    v.map(|v| u64_of(v, "version")).transpose()
}

fn read_bundle(
    conn: &Connection,
    sql: &str,
    arg: i64,
) -> Result<Option<SignedBundle>, CentralError> {
    let row: Option<(i64, String, Vec<u8>, Vec<u8>)> = conn
        .prepare_cached(sql)?
        .query_row([arg], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    row.map(|(version, format, bytes, signature)| {
        Ok(SignedBundle {
            version: u64_of(version, "bundle version")?,
            format: format_from_name(&format)
                .ok_or_else(|| CentralError::Corrupt(format!("bundle format {format:?}")))?,
            bytes,
            signature,
        })
    })
    .transpose()
}
