//! A register's chain kept in memory, for tests and benchmarks of the sync
//! path (feature `testing`). The agent's real chain lives in its store
//! (`agent/src/store/ledger.rs`), which takes seq and the last hash from
//! the database; this builds the same chain without one.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::protocol::{Document, ProgramPoints, SaleDocument, UploadBatch};
use crate::{Digest32, EntryKind, LedgerEntry};

/// Appends entries to one terminal's chain: seq from 1, each entry chained
/// after the one before, program `main`, rules version 1.
#[derive(Clone, Debug)]
pub struct Chain {
    terminal_id: String,
    seq: u64,
    last: Digest32,
    occurred_at: String,
}

impl Chain {
    /// An empty chain of `terminal_id`, its entries stamped now (so central
    /// sees no clock skew).
    pub fn new(terminal_id: &str) -> Chain {
        Chain {
            terminal_id: terminal_id.to_string(),
            seq: 0,
            last: Digest32::ZERO,
            occurred_at: jiff::Timestamp::now().to_string(),
        }
    }

    /// Stamps the entries appended from now on with `occurred_at`.
    pub fn occurred_at(mut self, occurred_at: &str) -> Chain {
        self.occurred_at = occurred_at.to_string();
        self
    }

    /// The seq of the last entry appended (0 when empty).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the last entry appended ([`Digest32::ZERO`] when empty):
    /// the chain head central must end with.
    pub fn last(&self) -> Digest32 {
        self.last
    }

    /// Goes on after entry `seq` whose hash is `last`, as a register
    /// restored from a backup or re-numbered after `seq_reused` does.
    pub fn resume_after(&mut self, seq: u64, last: Digest32) {
        self.seq = seq;
        self.last = last;
    }

    /// Appends an entry of `kind` for `member`, sold as sale `S-{seq}`.
    pub fn entry(&mut self, kind: EntryKind, member: &str, points: i64) -> LedgerEntry {
        self.entry_with(|e| {
            e.kind = kind;
            e.member = member.to_string();
            e.points = points;
        })
    }

    /// Appends an earn for `member`.
    pub fn earn(&mut self, member: &str, points: i64) -> LedgerEntry {
        self.entry(EntryKind::Earn, member, points)
    }

    /// Appends an entry after `fill` has set its fields; seq, terminal and
    /// the hashes are then set here, so the chain stays whole.
    pub fn entry_with(&mut self, fill: impl FnOnce(&mut LedgerEntry)) -> LedgerEntry {
        self.seq += 1;
        let mut e = LedgerEntry {
            entry_id: Uuid::now_v7(),
            terminal_id: self.terminal_id.clone(),
            seq: self.seq,
            prev_hash: Digest32::ZERO,
            hash: Digest32::ZERO,
            kind: EntryKind::Earn,
            program: "main".into(),
            member: String::new(),
            points: 0,
            sale_id: Some(format!("S-{}", self.seq)),
            return_id: None,
            rules_version: 1,
            occurred_at: self.occurred_at.clone(),
            detail: "{}".into(),
        };
        fill(&mut e);
        e.terminal_id.clone_from(&self.terminal_id);
        e.seq = self.seq;
        e.chain_after(self.last);
        self.last = e.hash;
        e
    }
}

/// The rules bundle the documents of [`documents_for`] are quoted with, at
/// every version a test publishes (`{version}` is replaced): program `main`,
/// one point per currency unit, redeemable one point per unit with no
/// minimum, so an entry's points are its basket's amount.
pub const BUNDLE_JSON: &str = r#"{"version": {version}, "programs": [
    {"id": "main", "currency": "EUR", "base_rate": "1",
     "redeem": {"points_per_unit": 1, "min_points": 0, "step": 1, "max_share": "1",
                "offline_allowance": 1000000}}]}"#;

/// [`BUNDLE_JSON`] at `version`.
pub fn bundle_json(version: u64) -> String {
    BUNDLE_JSON.replace("{version}", &version.to_string())
}

/// The sale documents (`docs/sync-v2.md` §2) that make `entries` what
/// [`BUNDLE_JSON`] gives, as an honest register would send them: per sale,
/// one line of `earned + redeemed` currency units of which `redeemed` were
/// paid with points. Only `earn` and `redeem` entries of program `main` are
/// covered; the document takes the member, time and rules version of the
/// sale's first entry.
pub fn documents_for(entries: &[LedgerEntry]) -> Vec<Document> {
    let mut sales: BTreeMap<String, (&LedgerEntry, i64, i64)> = BTreeMap::new();
    for entry in entries {
        let Some(sale) = entry.sale_id.clone() else {
            continue;
        };
        if !matches!(entry.kind, EntryKind::Earn | EntryKind::Redeem) {
            continue;
        }
        let slot = sales.entry(sale).or_insert((entry, 0, 0));
        match entry.kind {
            EntryKind::Earn => slot.1 += entry.points,
            EntryKind::Redeem => slot.2 -= entry.points,
            _ => {}
        }
    }
    sales
        .into_iter()
        .map(|(sale_id, (first, earned, redeemed))| {
            Document::Sale(sale_document(&sale_id, first, earned, redeemed))
        })
        .collect()
}

/// One sale's document: a basket of `earned + redeemed` units paying
/// `redeemed` with points, for the member and time of `entry`.
pub fn sale_document(
    sale_id: &str,
    entry: &LedgerEntry,
    earned: i64,
    redeemed: i64,
) -> SaleDocument {
    let basket = serde_json::json!({
        "sale_id": sale_id,
        "time": entry.occurred_at,
        "member": {"id": entry.member, "programs": {"main": {}}},
        "paid_with_points": format!("{redeemed}.00"),
        "lines": [{"line": 1, "sku": "TEST", "qty": "1",
                   "unit_price": format!("{}.00", earned + redeemed)}],
    });
    SaleDocument {
        sale_id: sale_id.to_string(),
        rules_version: entry.rules_version,
        basket: basket.to_string(),
        redeemed: if redeemed > 0 {
            vec![ProgramPoints {
                program: "main".into(),
                points: redeemed,
            }]
        } else {
            Vec::new()
        },
    }
}

/// The quote breakdown a queued earn of [`queued_earn`] keeps in `detail`:
/// of the size the agent's store writes, so benchmarks carry realistic
/// bytes.
pub const QUEUED_DETAIL: &str =
    r#"{"base":54,"tier_bonus":27,"rules":[{"id":"double-shoes","points":54}]}"#;

/// Appends the earn a register queues during an outage, as the benchmarks
/// of central's intake send it (`central/benches/apply.rs`, `pos-loadgen`):
/// for `member`, 1 to 97 points (from the seq), a breakdown of typical size.
pub fn queued_earn(chain: &mut Chain, member: &str) -> LedgerEntry {
    chain.entry_with(|e| {
        e.member = member.to_string();
        e.points = (e.seq % 97) as i64 + 1;
        e.detail = QUEUED_DETAIL.into();
    })
}

/// The upload batch of `entries` (one terminal's, in seq order, at least
/// one) with their sale documents from [`documents_for`], as a register
/// cuts it.
pub fn upload_batch(entries: Vec<LedgerEntry>) -> UploadBatch {
    let terminal_id = entries
        .first()
        .map(|e| e.terminal_id.clone())
        .unwrap_or_default();
    let first_seq = entries.first().map_or(1, |e| e.seq);
    let documents = documents_for(&entries);
    UploadBatch {
        terminal_id,
        first_seq,
        entries,
        documents,
    }
}

/// The basket a hold request carries (`docs/sync-v2.md` §5): sale
/// `sale_id` for `member`, one line of `units` currency units, so under a
/// bundle redeeming one point per unit up to the whole basket (as
/// [`BUNDLE_JSON`]) it justifies holding up to `units` points.
pub fn hold_basket(sale_id: &str, member: &str, units: i64) -> String {
    serde_json::json!({
        "sale_id": sale_id,
        "time": "2026-11-28T11:05:00+01:00",
        "member": {"id": member, "programs": {"main": {}}},
        "lines": [{"line": 1, "sku": "TEST", "qty": "1", "unit_price": format!("{units}.00")}],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_chain_one_after_another() {
        let mut chain = Chain::new("reg-1").occurred_at("2026-11-28T11:05:00+01:00");
        let a = chain.earn("M-1", 10);
        let b = chain.entry_with(|e| e.seq = 99);
        assert_eq!(
            (a.seq, b.seq, chain.seq()),
            (1, 2, 2),
            "seq is the chain's, not the filler's"
        );
        assert_eq!(a.prev_hash, Digest32::ZERO);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(b.hash, b.compute_hash());
        assert_eq!(a.occurred_at, "2026-11-28T11:05:00+01:00");
    }
}
