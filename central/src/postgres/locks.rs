//! The account-name locks and the end-of-transaction revisions of the
//! locking scheme (why: the module doc of [`super`]).

use std::collections::{BTreeSet, HashMap};

use pos_sync::protocol::ReceivedBatch;

use super::PgTx;
use crate::error::CentralError;

/// Members (or products) a transaction changed, each owed one new
/// revision; the order is that of their last change, as SQLite's revisions
/// taken on the spot would be.
#[derive(Default)]
pub(crate) struct PendingRevs {
    members: HashMap<String, (u64, RevKind)>,
    next: u64,
}

/// How a member's revision is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevKind {
    /// Creates the member row when there is none (points arrived).
    Upsert,
    /// Only an existing row gets the revision.
    Update,
}

impl<'c> PgTx<'c> {
    /// Owes `member` a new revision, written at the end of the transaction.
    pub(crate) fn changed(&self, member: &str, kind: RevKind) {
        let mut revs = self.revs.borrow_mut();
        let order = revs.next;
        revs.next += 1;
        let slot = revs
            .members
            .entry(member.to_string())
            .or_insert((order, kind));
        slot.0 = order;
        if kind == RevKind::Upsert {
            slot.1 = RevKind::Upsert;
        }
    }
}

/// Locks the account rows of `names` (created on first use) in byte order,
/// skipping those this transaction holds already.
pub(crate) fn lock_names(
    tx: &PgTx<'_>,
    names: impl IntoIterator<Item = String>,
) -> Result<(), CentralError> {
    let wanted: BTreeSet<String> = {
        let locked = tx.locked.borrow();
        names.into_iter().filter(|n| !locked.contains(n)).collect()
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = wanted.into_iter().collect();
    // Sorted here (Rust's byte order) and there (COLLATE "C"): one order.
    tx.execute(
        "INSERT INTO account_locks (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&wanted],
    )?;
    tx.execute(
        "SELECT name FROM account_locks WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        &[&wanted],
    )?;
    tx.locked.borrow_mut().extend(wanted);
    Ok(())
}

/// Locks every name a batch's entries use and the owners of those that are
/// known cards, before anything reads a balance; returns each name's
/// card owner (None: not a card), read once the card's name is locked
/// (imports lock it to move a card), so it holds to the commit.
pub(crate) fn lock_batch_names(
    tx: &PgTx<'_>,
    batch: &ReceivedBatch,
) -> Result<HashMap<String, Option<String>>, CentralError> {
    let names: BTreeSet<String> = batch
        .entries
        .iter()
        .filter_map(|r| r.entry.as_ref().ok())
        .map(|e| e.member.clone())
        .collect();
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<String> = names.into_iter().collect();
    let before = card_owners(tx, &names)?;
    let mut all: BTreeSet<String> = names.iter().cloned().collect();
    all.extend(before.values().cloned());
    lock_names(tx, all)?;
    let owners = card_owners(tx, &names)?;
    // A card moved between the two reads: its new owner too, out of order.
    lock_names(tx, owners.values().cloned())?;
    Ok(names
        .into_iter()
        .map(|n| {
            let owner = owners.get(&n).cloned();
            (n, owner)
        })
        .collect())
}

fn card_owners(tx: &PgTx<'_>, names: &[String]) -> Result<HashMap<String, String>, CentralError> {
    let mut owners = HashMap::new();
    for row in tx.query(
        "SELECT card, member FROM cards WHERE card = ANY($1)",
        &[&names],
    )? {
        owners.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(owners)
}

/// Gives the members this transaction changed their revisions, taking the
/// counter row last: held to the commit, it makes revisions commit in
/// increasing order.
pub(crate) fn assign_revs(tx: &PgTx<'_>) -> Result<(), CentralError> {
    let revs = std::mem::take(&mut *tx.revs.borrow_mut());
    if revs.members.is_empty() {
        return Ok(());
    }
    let mut members: Vec<(String, (u64, RevKind))> = revs.members.into_iter().collect();
    members.sort_by_key(|(_, (order, _))| *order);
    let n = i64::try_from(members.len())
        .map_err(|_| CentralError::Invalid("too many members in one transaction".into()))?;
    let first = next_revs(tx, n)?;
    let mut upsert = (Vec::new(), Vec::new());
    let mut update = (Vec::new(), Vec::new());
    for (i, (member, (_, kind))) in members.into_iter().enumerate() {
        let rev = first + i as i64;
        let list = match kind {
            RevKind::Upsert => &mut upsert,
            RevKind::Update => &mut update,
        };
        list.0.push(member);
        list.1.push(rev);
    }
    if !upsert.0.is_empty() {
        tx.execute(
            "INSERT INTO members (id, rev) SELECT * FROM unnest($1::text[], $2::int8[])
             ON CONFLICT (id) DO UPDATE SET rev = excluded.rev",
            &[&upsert.0, &upsert.1],
        )?;
    }
    if !update.0.is_empty() {
        tx.execute(
            "UPDATE members m SET rev = u.rev FROM unnest($1::text[], $2::int8[]) AS u(id, rev)
             WHERE m.id = u.id",
            &[&update.0, &update.1],
        )?;
    }
    Ok(())
}

/// Takes `n` revisions from the counter (locking its row): the first.
pub(crate) fn next_revs(tx: &PgTx<'_>, n: i64) -> Result<i64, CentralError> {
    let last: i64 = tx
        .query_one(
            "UPDATE meta SET value = value + $1 WHERE key = 'rev' RETURNING value",
            &[&n],
        )?
        .try_get(0)?;
    Ok(last - n + 1)
}
