//! Published rules bundles, newest version last. Publishing takes a lock
//! of its own, so two instances publishing at once cannot both pass the
//! "newer than the current version" check with versions out of order.

use std::collections::BTreeSet;

use pos_sync::protocol::SignedBundle;

use super::{PgTx, i64_of, u64_of};
use crate::error::CentralError;
use crate::storage::{NewBundle, format_from_name, format_name};

/// The advisory lock key publishers take ("pos_bndl").
const PUBLISH_LOCK: i64 = 0x706f_735f_626e_646c;

pub(super) fn publish(
    tx: &PgTx<'_>,
    bundle: &NewBundle,
    at: jiff::Timestamp,
) -> Result<(), CentralError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])?;
    let current = current_version(tx)?;
    let version = i64_of(bundle.signed.version, "version")?;
    if let Some(current) = current
        && bundle.signed.version <= current
    {
        return Err(CentralError::Conflict(format!(
            "bundle version {version} is not newer than the current version {current}"
        )));
    }
    tx.execute(
        "INSERT INTO bundles (version, format, bytes, signature, published_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &version,
            &format_name(bundle.signed.format),
            &bundle.signed.bytes,
            &bundle.signed.signature,
            &at.to_string(),
        ],
    )?;
    tx.execute(
        "INSERT INTO programs (id, first_version) SELECT unnest($1::text[]), $2
         ON CONFLICT DO NOTHING",
        &[&bundle.programs, &version],
    )?;
    tx.execute(
        "INSERT INTO bundle_programs (version, program) SELECT $2, unnest($1::text[])
         ON CONFLICT DO NOTHING",
        &[&bundle.programs, &version],
    )?;
    Ok(())
}

pub(super) fn newest(
    tx: &PgTx<'_>,
    after: Option<u64>,
) -> Result<Option<SignedBundle>, CentralError> {
    let after = match after {
        Some(v) => i64_of(v, "after")?,
        None => -1,
    };
    let row = tx.query_opt(
        "SELECT version, format, bytes, signature FROM bundles
         WHERE version > $1 ORDER BY version DESC LIMIT 1",
        &[&after],
    )?;
    row.map(signed_bundle).transpose()
}

pub(super) fn by_version(
    tx: &PgTx<'_>,
    version: u64,
) -> Result<Option<SignedBundle>, CentralError> {
    // A version beyond 64-bit integers was never published.
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let row = tx.query_opt(
        "SELECT version, format, bytes, signature FROM bundles WHERE version = $1",
        &[&version],
    )?;
    row.map(signed_bundle).transpose()
}

/// The programs of published bundle `version`; None when it was never
/// published.
pub(super) fn programs_of(
    tx: &PgTx<'_>,
    version: u64,
) -> Result<Option<BTreeSet<String>>, CentralError> {
    let Ok(version) = i64::try_from(version) else {
        return Ok(None);
    };
    let published: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM bundles WHERE version = $1)",
            &[&version],
        )?
        .try_get(0)?;
    if !published {
        return Ok(None);
    }
    let rows = tx.query(
        "SELECT program FROM bundle_programs WHERE version = $1",
        &[&version],
    )?;
    let programs = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(programs))
}

pub(super) fn current_version(tx: &PgTx<'_>) -> Result<Option<u64>, CentralError> {
    let v: Option<i64> = tx
        .query_one("SELECT MAX(version) FROM bundles", &[])?
        .try_get(0)?;
    v.map(|v| u64_of(v, "version")).transpose()
}

fn signed_bundle(r: postgres::Row) -> Result<SignedBundle, CentralError> {
    let format: String = r.try_get(1)?;
    Ok(SignedBundle {
        version: u64_of(r.try_get(0)?, "bundle version")?,
        format: format_from_name(&format)
            .ok_or_else(|| CentralError::Corrupt(format!("bundle format {format:?}")))?,
        bytes: r.try_get(2)?,
        signature: r.try_get(3)?,
    })
}
