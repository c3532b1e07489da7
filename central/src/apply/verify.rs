//! Checks 4, 5 and 6 of `docs/sync-v2.md` §3: an entry's points are
//! re-derived from the document it travelled with, under the published
//! bundle it names, and the member context the register quoted with is
//! corrected (only ever downwards) by what central knows.
//!
//! Pure: the facts central knows ([`Facts`]) are loaded before the batch is
//! decided; a [`Verifier`] adds what the batch itself applied, entry after
//! entry, so a return in the same batch as its sale is bounded by it and two
//! earns of one day in one batch share the daily cap.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use pos_points::{Basket, Bundle, redeem, returns};
use pos_sync::protocol::{Document, DocumentKey, ReturnDocument, SaleDocument};
use pos_sync::{EntryKind, LedgerEntry};
use rust_decimal::Decimal;

/// How far back a register's tier is still accepted (`docs/sync-v2.md` §3,
/// "Whose context"): longer than any outage a store trades through.
pub const TIER_GRACE_DAYS: i64 = 31;

/// What central knows before the batch, for the entries the batch names.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Published bundles by version (the versions the batch names).
    pub bundles: HashMap<u64, Arc<Bundle>>,
    /// Credited member → what central knows of them (None: a member
    /// central has no record of). Loaded only for programs whose quote a
    /// tier or a birthday can change.
    pub members: HashMap<String, Option<MemberFacts>>,
    /// (credited member, program, local date `YYYY-MM-DD`) → points central
    /// credited for earns and return_earns of that day, every terminal.
    /// Loaded only for programs with a `member_daily_cap`, the one limit
    /// `earned_today` feeds.
    pub earned_on: HashMap<DayKey, i64>,
    /// (sale, program) of this terminal → what central counted for it.
    pub sales: HashMap<SaleKey, SaleRecord>,
}

/// (member, program, local date).
pub type DayKey = (String, String, String);
/// (sale, program).
pub type SaleKey = (String, String);

/// A member as central's snapshots described them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberFacts {
    pub birthday: Option<String>,
    /// Tier changes, oldest first: from `since` on the member held `tier`
    /// in `program` (until that program's next change).
    pub tiers: Vec<TierSpell>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierSpell {
    pub program: String,
    pub tier: Option<String>,
    pub since: jiff::Timestamp,
}

/// What central counted for one sale and program of one terminal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaleRecord {
    /// Points credited by its earn, if one was counted.
    pub earned: Option<i64>,
    /// Points debited by its redeem (positive), if one was counted.
    pub redeemed: Option<i64>,
    /// Earned points its returns took back so far (positive).
    pub reversed: i64,
    /// Redeemed points its returns gave back so far (positive).
    pub given_back: i64,
}

/// Why an entry is refused, and which conflict kind records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Check 4 (and a second earn or redeem of a sale): conflict `rejected`.
    Rejected(String),
    /// Check 5: the rules could not have produced the entry's points from
    /// its document; conflict `points_mismatch`.
    Mismatch(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rejected(reason) | Failure::Mismatch(reason) => f.write_str(reason),
        }
    }
}

/// An entry that passed checks 4 and 5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The points that move the balance: the entry's, or central's lower
    /// figure for a credit (check 6), or the bound of §3 for a return.
    pub credited: i64,
    /// Why `credited` differs from the entry's points, when it does.
    pub correction: Option<String>,
    /// The sale the entry belongs to (a return's sale for returns).
    pub sale: String,
}

/// Checks entries of one batch against [`Facts`] and what the batch
/// applied so far.
#[derive(Debug)]
pub struct Verifier<'f> {
    facts: &'f Facts,
    earned_on: HashMap<DayKey, i64>,
    sales: HashMap<SaleKey, SaleRecord>,
}

impl<'f> Verifier<'f> {
    pub fn new(facts: &'f Facts) -> Verifier<'f> {
        Verifier {
            facts,
            earned_on: HashMap::new(),
            sales: HashMap::new(),
        }
    }

    /// Checks 4–6 for `entry`, whose points go to `credited_member`.
    pub fn check(
        &self,
        entry: &LedgerEntry,
        credited_member: &str,
        documents: &BTreeMap<DocumentKey, Document>,
    ) -> Result<Verified, Failure> {
        let Some(key) = DocumentKey::of(entry) else {
            return Err(rejected(format!(
                "{} entry without the {} it belongs to",
                entry.kind.as_str(),
                if is_return(entry.kind) {
                    "return_id"
                } else {
                    "sale_id"
                }
            )));
        };
        let document = documents
            .get(&key)
            .ok_or_else(|| rejected(format!("no {} document for {key}", doc_name(&key))))?;
        let who = Who {
            entry,
            member: credited_member,
        };
        match (entry.kind, document) {
            (EntryKind::Earn, Document::Sale(sale)) => self.earn(who, sale),
            (EntryKind::Redeem, Document::Sale(sale)) => self.redeem(who, sale),
            (EntryKind::ReturnEarn, Document::Return(ret)) => self.return_earn(who, ret),
            (EntryKind::ReturnRedeem, Document::Return(ret)) => self.return_redeem(who, ret),
            _ => Err(rejected(format!(
                "{} entry with a document of another kind",
                entry.kind.as_str()
            ))),
        }
    }

    /// Adds an entry the batch counted with `credited` points.
    pub fn record(&mut self, entry: &LedgerEntry, credited_member: &str, verified: &Verified) {
        let sale = (verified.sale.clone(), entry.program.clone());
        let mut record = self.sale(&sale);
        let points = verified.credited;
        match entry.kind {
            EntryKind::Earn => record.earned = Some(points),
            EntryKind::Redeem => record.redeemed = Some(points.saturating_neg()),
            EntryKind::ReturnEarn => record.reversed = record.reversed.saturating_sub(points),
            EntryKind::ReturnRedeem => record.given_back = record.given_back.saturating_add(points),
            EntryKind::Adjust => {}
        }
        self.sales.insert(sale, record);
        if matches!(entry.kind, EntryKind::Earn | EntryKind::ReturnEarn) {
            let day = day_key(credited_member, &entry.program, &entry.occurred_at);
            let sum = self.earned_on.entry(day).or_insert(0);
            *sum = sum.saturating_add(points);
        }
    }

    fn sale(&self, key: &SaleKey) -> SaleRecord {
        self.sales
            .get(key)
            .or_else(|| self.facts.sales.get(key))
            .copied()
            .unwrap_or_default()
    }

    /// Central's sum for the member, program and local date of `entry`.
    fn earned_today(&self, member: &str, entry: &LedgerEntry) -> i64 {
        let day = day_key(member, &entry.program, &entry.occurred_at);
        let before = self.facts.earned_on.get(&day).copied().unwrap_or(0);
        let batch = self.earned_on.get(&day).copied().unwrap_or(0);
        before.saturating_add(batch).max(0)
    }

    fn earn(&self, who: Who<'_>, doc: &SaleDocument) -> Result<Verified, Failure> {
        let entry = who.entry;
        let (bundle, basket) = self.sale_document(entry, doc)?;
        let written = program_total(&bundle, &basket, &entry.program)?;
        if written != entry.points {
            return Err(Failure::Mismatch(format!(
                "earn of {} points for sale {} in program {}, but rules version {} give {written} for this sale",
                entry.points, doc.sale_id, entry.program, doc.rules_version
            )));
        }
        let key = (doc.sale_id.clone(), entry.program.clone());
        if self.sale(&key).earned.is_some() {
            return Err(rejected(format!(
                "sale {} already earned in program {} from this terminal",
                doc.sale_id, entry.program
            )));
        }
        let (corrected, differences) = self.context(who, &bundle, &basket);
        let central = program_total(&bundle, &corrected, &entry.program)?;
        Ok(credit(entry, &doc.sale_id, "earn", central, &differences))
    }

    fn redeem(&self, who: Who<'_>, doc: &SaleDocument) -> Result<Verified, Failure> {
        let entry = who.entry;
        let (bundle, basket) = self.sale_document(entry, doc)?;
        let Some(p) = redeemed(doc, &entry.program) else {
            return Err(Failure::Mismatch(format!(
                "redeem of {} points for sale {} in program {}, but the sale redeemed 0 in it",
                -entry.points, doc.sale_id, entry.program
            )));
        };
        if entry.points != p.saturating_neg() {
            return Err(Failure::Mismatch(format!(
                "redeem of {} points for sale {} in program {}, but the sale redeemed {p}",
                entry.points.saturating_neg(),
                doc.sale_id,
                entry.program
            )));
        }
        let program = bundle
            .program(&entry.program)
            .ok_or_else(|| not_in(entry, doc))?;
        if let Err(refusal) = redeem::check(program, p, basket.amount()) {
            return Err(Failure::Mismatch(format!(
                "redeem of {p} points for sale {} in program {}, but rules version {} refuse it: {}",
                doc.sale_id,
                entry.program,
                doc.rules_version,
                refusal.code()
            )));
        }
        let key = (doc.sale_id.clone(), entry.program.clone());
        if self.sale(&key).redeemed.is_some() {
            return Err(rejected(format!(
                "sale {} already redeemed in program {} from this terminal",
                doc.sale_id, entry.program
            )));
        }
        Ok(Verified {
            credited: entry.points,
            correction: None,
            sale: doc.sale_id.clone(),
        })
    }

    fn return_earn(&self, who: Who<'_>, doc: &ReturnDocument) -> Result<Verified, Failure> {
        let entry = who.entry;
        let (bundle, sale, remaining) = self.return_document(entry, doc)?;
        let reversal = |basket: &Basket| {
            returns::reversal(&bundle, basket, &remaining.before, &remaining.after)
                .map(|r| r.get(&entry.program).copied().unwrap_or(0).max(0))
                .map_err(|e| rejected(format!("return {}: {e}", doc.return_id)))
        };
        let written = reversal(&sale)?;
        if entry.points != written.saturating_neg() {
            return Err(Failure::Mismatch(format!(
                "return_earn of {} points for return {} in program {}, but rules version {} reverse {written} for this return",
                entry.points, doc.return_id, entry.program, doc.sale.rules_version
            )));
        }
        // The sale as central credited it: its corrected context, and never
        // more than central credited for it, less earlier reversals.
        let (corrected, _) = self.context(who, &bundle, &sale);
        let central = reversal(&corrected)?;
        let record = self.sale(&(doc.sale_id.clone(), entry.program.clone()));
        let left = record
            .earned
            .unwrap_or(0)
            .saturating_sub(record.reversed)
            .max(0);
        let reversed = written.min(central).min(left);
        Ok(bounded(
            entry,
            doc,
            reversed.saturating_neg(),
            format!("central credited {left} for the sale not yet reversed"),
        ))
    }

    fn return_redeem(&self, who: Who<'_>, doc: &ReturnDocument) -> Result<Verified, Failure> {
        let entry = who.entry;
        let (_, _, remaining) = self.return_document(entry, doc)?;
        let record = self.sale(&(doc.sale_id.clone(), entry.program.clone()));
        let p = redeemed(&doc.sale, &entry.program).unwrap_or(0);
        let written = returns::redeemed_back(
            p,
            record.given_back,
            remaining.returned_amount,
            remaining.original_amount,
            remaining.is_last(),
        );
        if entry.points != written {
            return Err(Failure::Mismatch(format!(
                "return_redeem of {} points for return {} in program {}, but rules version {} give back {written} for this return",
                entry.points, doc.return_id, entry.program, doc.sale.rules_version
            )));
        }
        let left = record
            .redeemed
            .unwrap_or(0)
            .saturating_sub(record.given_back)
            .max(0);
        Ok(bounded(
            entry,
            doc,
            written.min(left),
            format!("central debited {left} for the sale not yet given back"),
        ))
    }

    /// Check 4 for a sale document: it agrees with the entry and its
    /// basket parses under a published bundle.
    fn sale_document(
        &self,
        entry: &LedgerEntry,
        doc: &SaleDocument,
    ) -> Result<(Arc<Bundle>, Basket), Failure> {
        if doc.rules_version != entry.rules_version {
            return Err(rejected(format!(
                "entry names rules version {} but the document of sale {} rules version {}",
                entry.rules_version, doc.sale_id, doc.rules_version
            )));
        }
        if entry.sale_id.as_deref().is_some_and(|s| s != doc.sale_id) {
            return Err(rejected(format!(
                "entry names sale {:?} but its document is sale {}",
                entry.sale_id, doc.sale_id
            )));
        }
        let bundle = self
            .facts
            .bundles
            .get(&doc.rules_version)
            .cloned()
            .ok_or_else(|| {
                rejected(format!(
                    "rules version {} was never published",
                    doc.rules_version
                ))
            })?;
        let basket = Basket::parse_json(&doc.basket).map_err(|e| {
            rejected(format!(
                "the basket of sale {} does not validate: {e}",
                doc.sale_id
            ))
        })?;
        if basket.sale_id.as_deref().is_some_and(|s| s != doc.sale_id) {
            return Err(rejected(format!(
                "the basket of sale {} names sale {:?}",
                doc.sale_id, basket.sale_id
            )));
        }
        let member = basket.member.as_ref().map(|m| m.id.as_str());
        if member != Some(entry.member.as_str()) {
            return Err(rejected(format!(
                "the basket of sale {} is for member {:?}, the entry for {:?}",
                doc.sale_id, member, entry.member
            )));
        }
        Ok((bundle, basket))
    }

    /// Check 4 for a return document, and the return planned on it.
    fn return_document(
        &self,
        entry: &LedgerEntry,
        doc: &ReturnDocument,
    ) -> Result<(Arc<Bundle>, Basket, returns::Remaining), Failure> {
        if doc.sale.sale_id != doc.sale_id
            || entry.sale_id.as_deref().is_some_and(|s| s != doc.sale_id)
        {
            return Err(rejected(format!(
                "return {} names sale {} but carries sale {}",
                doc.return_id, doc.sale_id, doc.sale.sale_id
            )));
        }
        let sale_entry = LedgerEntry {
            sale_id: Some(doc.sale_id.clone()),
            ..entry.clone()
        };
        let (bundle, sale) = self.sale_document(&sale_entry, &doc.sale)?;
        let returned_so_far = returned_so_far(&sale, doc)?;
        let lines: Vec<returns::ReturnedLine> = doc
            .lines
            .iter()
            .map(|l| returns::ReturnedLine {
                line: l.line,
                qty: l.qty,
            })
            .collect();
        if lines.iter().any(|l| l.qty <= Decimal::ZERO) {
            return Err(rejected(format!(
                "return {} takes back a quantity that is not positive",
                doc.return_id
            )));
        }
        let remaining = returns::plan(&sale, &returned_so_far, &lines)
            .map_err(|r| rejected(format!("return {}: {r:?}", doc.return_id)))?;
        Ok((bundle, sale, remaining))
    }

    /// The basket with central's member context (check 6), and the
    /// differences found, for the reason.
    fn context(&self, who: Who<'_>, bundle: &Bundle, basket: &Basket) -> (Basket, Vec<String>) {
        let mut corrected = basket.clone();
        let mut differences = Vec::new();
        let entry = who.entry;
        let facts = self.facts.members.get(who.member).and_then(Option::as_ref);
        if let Some(member) = corrected.member.as_mut() {
            for (program, standing) in &mut member.programs {
                let Some(tier) = standing.tier.clone() else {
                    continue;
                };
                // A tier the program does not declare counts as none.
                let declared = bundle
                    .program(program)
                    .is_some_and(|p| p.tier(&tier).is_some());
                if !declared || held_within(facts, program, &tier, &entry.occurred_at) {
                    continue;
                }
                let central = tier_at(facts, program, &entry.occurred_at);
                differences.push(format!(
                    "tier {tier} was not held by {} in the {TIER_GRACE_DAYS} days before {} (central: {})",
                    who.member,
                    entry.occurred_at,
                    central.as_deref().unwrap_or("no tier")
                ));
                standing.tier = central;
            }
            if let Some(birthday) = facts.and_then(|f| f.birthday.clone())
                && member.birthday.as_deref() != Some(birthday.as_str())
            {
                differences.push(format!(
                    "birthday {} is not {}'s (central: {birthday})",
                    member.birthday.as_deref().unwrap_or("none"),
                    who.member
                ));
                member.birthday = Some(birthday);
            }
        }
        let register = basket
            .earned_today
            .get(&entry.program)
            .copied()
            .unwrap_or(0);
        let central = self.earned_today(who.member, entry);
        if central > register {
            differences.push(format!(
                "earned_today {register} is below the {central} central credited that day"
            ));
            corrected
                .earned_today
                .insert(entry.program.clone(), central);
        }
        (corrected, differences)
    }
}

/// One entry and who its points go to.
#[derive(Clone, Copy)]
struct Who<'a> {
    entry: &'a LedgerEntry,
    member: &'a str,
}

/// The sale an entry belongs to: its own `sale_id`, or for a return the
/// sale its document names.
pub fn sale_of(entry: &LedgerEntry, documents: &BTreeMap<DocumentKey, Document>) -> Option<String> {
    match DocumentKey::of(entry).and_then(|key| documents.get(&key)) {
        Some(Document::Return(ret)) => Some(ret.sale_id.clone()),
        _ => entry.sale_id.clone(),
    }
}

fn rejected(reason: String) -> Failure {
    Failure::Rejected(reason)
}

fn is_return(kind: EntryKind) -> bool {
    matches!(kind, EntryKind::ReturnEarn | EntryKind::ReturnRedeem)
}

fn doc_name(key: &DocumentKey) -> &'static str {
    match key {
        DocumentKey::Sale(_) => "sale",
        DocumentKey::Return(_) => "return",
    }
}

fn not_in(entry: &LedgerEntry, doc: &SaleDocument) -> Failure {
    rejected(format!(
        "program {} is not in rules version {}",
        entry.program, doc.rules_version
    ))
}

fn redeemed(doc: &SaleDocument, program: &str) -> Option<i64> {
    doc.redeemed
        .iter()
        .find(|r| r.program == program)
        .map(|r| r.points)
}

/// The quote's total in `program` (0 when the member does not earn in it).
fn program_total(bundle: &Bundle, basket: &Basket, program: &str) -> Result<i64, Failure> {
    let quote = pos_points::quote(bundle, basket).map_err(|e| {
        rejected(format!(
            "the basket of sale {} cannot be quoted: {e}",
            basket.sale_id.as_deref().unwrap_or("?")
        ))
    })?;
    Ok(quote
        .programs
        .iter()
        .find(|p| p.program == program)
        .map_or(0, |p| p.total))
}

/// A credit of `central` or the entry's points, whichever is lower.
fn credit(entry: &LedgerEntry, sale: &str, what: &str, central: i64, why: &[String]) -> Verified {
    let credited = entry.points.min(central);
    let correction = (credited != entry.points).then(|| {
        format!(
            "{what} of {} for sale {sale} in program {} credited as {credited}: {}",
            entry.points,
            entry.program,
            why.join("; ")
        )
    });
    Verified {
        credited,
        correction,
        sale: sale.to_string(),
    }
}

/// A return's points as bounded by what central counted for its sale.
fn bounded(entry: &LedgerEntry, doc: &ReturnDocument, points: i64, why: String) -> Verified {
    let correction = (points != entry.points).then(|| {
        format!(
            "{} of {} for return {} in program {} counted as {points}: {why}",
            entry.kind.as_str(),
            entry.points,
            doc.return_id,
            entry.program
        )
    });
    Verified {
        credited: points,
        correction,
        sale: doc.sale_id.clone(),
    }
}

/// Per line, what earlier returns took back: sold less `remaining_before`.
fn returned_so_far(sale: &Basket, doc: &ReturnDocument) -> Result<BTreeMap<u32, Decimal>, Failure> {
    let mut taken = BTreeMap::new();
    for (index, line) in sale.lines.iter().enumerate() {
        let number = sale.line_number(index);
        let left = doc
            .remaining_before
            .iter()
            .find(|l| l.line == number)
            .map_or(line.qty, |l| l.qty);
        if left < Decimal::ZERO || left > line.qty {
            return Err(rejected(format!(
                "return {}: line {number} has {left} remaining of the {} sold",
                doc.return_id, line.qty
            )));
        }
        taken.insert(number, line.qty - left);
    }
    Ok(taken)
}

/// The day an entry counts towards: its `occurred_at`'s local date as
/// written (the register's own date, offset and all).
pub fn day_key(member: &str, program: &str, occurred_at: &str) -> DayKey {
    let date = occurred_at.get(..10).unwrap_or(occurred_at);
    (member.to_string(), program.to_string(), date.to_string())
}

/// The spells of `program`, each with the moment it ended (None: current).
fn spells<'a>(
    facts: Option<&'a MemberFacts>,
    program: &'a str,
) -> impl Iterator<Item = (&'a TierSpell, Option<jiff::Timestamp>)> + 'a {
    let of_program: Vec<&TierSpell> = facts
        .map(|f| f.tiers.iter().filter(|s| s.program == program).collect())
        .unwrap_or_default();
    let ends: Vec<Option<jiff::Timestamp>> = of_program
        .iter()
        .skip(1)
        .map(|s| Some(s.since))
        .chain([None])
        .collect();
    of_program.into_iter().zip(ends)
}

/// Whether the member held `tier` in `program` at any moment of
/// `[occurred_at − TIER_GRACE_DAYS, occurred_at]`.
fn held_within(facts: Option<&MemberFacts>, program: &str, tier: &str, occurred_at: &str) -> bool {
    let Ok(at) = occurred_at.parse::<jiff::Timestamp>() else {
        return false;
    };
    let from = at - jiff::SignedDuration::from_hours(24 * TIER_GRACE_DAYS);
    spells(facts, program).any(|(spell, end)| {
        spell.tier.as_deref() == Some(tier) && spell.since <= at && end.is_none_or(|e| e > from)
    })
}

/// The tier the member held in `program` at `occurred_at`.
pub(crate) fn tier_at(
    facts: Option<&MemberFacts>,
    program: &str,
    occurred_at: &str,
) -> Option<String> {
    let at = occurred_at.parse::<jiff::Timestamp>().ok()?;
    spells(facts, program)
        .filter(|(spell, _)| spell.since <= at)
        .last()
        .and_then(|(spell, _)| spell.tier.clone())
}

#[cfg(test)]
mod tests {
    use pos_points::Format;
    use pos_sync::protocol::{LineQty, ProgramPoints};
    use pos_sync::testing::Chain;

    use super::*;

    const SALE_AT: &str = "2026-11-28T11:05:00+01:00";

    fn bundle() -> Arc<Bundle> {
        let text = r#"{"version": 5, "programs": [
            {"id": "main", "currency": "EUR", "base_rate": "1",
             "tiers": [{"id": "silver", "multiplier": "1.25"}, {"id": "gold", "multiplier": "1.5"}],
             "limits": {"member_daily_cap": 100},
             "redeem": {"points_per_unit": 100, "min_points": 500, "step": 100,
                        "max_share": "0.5", "offline_allowance": 2000}}]}"#;
        Arc::new(Bundle::parse(text, Format::Json).unwrap())
    }

    /// One line of 49.00 (73 points for gold, 61 for silver, 49 without a
    /// tier), or two when `lines` is 2 (the second line 10.00).
    fn basket(sale: &str, tier: Option<&str>, lines: u32) -> String {
        let tier = tier.map_or("null".to_string(), |t| format!("\"{t}\""));
        let second = if lines == 2 {
            r#",{"line": 2, "sku": "B", "qty": "1", "unit_price": "10.00"}"#
        } else {
            ""
        };
        format!(
            r#"{{"sale_id": "{sale}", "time": "{SALE_AT}",
                "member": {{"id": "M-1", "programs": {{"main": {{"tier": {tier}}}}}}},
                "lines": [{{"line": 1, "sku": "A", "qty": "1", "unit_price": "49.00"}}{second}]}}"#
        )
    }

    fn sale_doc(sale: &str, tier: Option<&str>) -> SaleDocument {
        SaleDocument {
            sale_id: sale.into(),
            rules_version: 5,
            basket: basket(sale, tier, 1),
            redeemed: vec![],
        }
    }

    fn docs(list: Vec<Document>) -> BTreeMap<DocumentKey, Document> {
        list.into_iter().map(|d| (d.key(), d)).collect()
    }

    fn facts() -> Facts {
        Facts {
            bundles: HashMap::from([(5, bundle())]),
            ..Facts::default()
        }
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn spell(tier: &str, since: &str) -> TierSpell {
        TierSpell {
            program: "main".into(),
            tier: Some(tier.into()),
            since: at(since),
        }
    }

    fn with_tiers(spells: Vec<TierSpell>) -> Facts {
        let mut f = facts();
        let member = MemberFacts {
            birthday: None,
            tiers: spells,
        };
        f.members.insert("M-1".into(), Some(member));
        f
    }

    fn earn(points: i64, sale: &str) -> LedgerEntry {
        Chain::new("t-1").occurred_at(SALE_AT).entry_with(|e| {
            e.member = "M-1".into();
            e.points = points;
            e.rules_version = 5;
            e.sale_id = Some(sale.into());
        })
    }

    fn check(
        f: &Facts,
        entry: &LedgerEntry,
        documents: Vec<Document>,
    ) -> Result<Verified, Failure> {
        Verifier::new(f).check(entry, "M-1", &docs(documents))
    }

    fn gold_since_forever() -> Vec<TierSpell> {
        vec![spell("gold", "2026-01-01T00:00:00Z")]
    }

    #[test]
    fn an_earn_the_rules_give_is_credited_as_written() {
        let f = with_tiers(gold_since_forever());
        let v = check(
            &f,
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        );
        assert_eq!(
            v.unwrap(),
            Verified {
                credited: 73,
                correction: None,
                sale: "S-1".into()
            }
        );
    }

    #[test]
    fn points_the_rules_do_not_give_are_a_mismatch_naming_both_figures() {
        let f = with_tiers(gold_since_forever());
        let v = check(
            &f,
            &earn(50_000, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        );
        let want = "earn of 50000 points for sale S-1 in program main, but rules version 5 give 73 for this sale";
        assert_eq!(v, Err(Failure::Mismatch(want.into())));
    }

    #[test]
    fn a_missing_or_disagreeing_document_is_rejected_naming_it() {
        let f = with_tiers(gold_since_forever());
        let v = check(&f, &earn(73, "S-1"), vec![]);
        assert_eq!(
            v,
            Err(Failure::Rejected("no sale document for sale S-1".into()))
        );

        let mut other = sale_doc("S-1", Some("gold"));
        other.basket = other.basket.replace("M-1", "M-2");
        let Err(Failure::Rejected(reason)) =
            check(&f, &earn(73, "S-1"), vec![Document::Sale(other)])
        else {
            panic!("another member's basket must be rejected");
        };
        assert!(reason.contains("\"M-2\""), "{reason}");

        let mut version = sale_doc("S-1", Some("gold"));
        version.rules_version = 4;
        let v = check(&f, &earn(73, "S-1"), vec![Document::Sale(version)]);
        assert!(matches!(v, Err(Failure::Rejected(r)) if r.contains("rules version 4")));

        let mut broken = sale_doc("S-1", Some("gold"));
        broken.basket = "{\"time\": 1}".into();
        let v = check(&f, &earn(73, "S-1"), vec![Document::Sale(broken)]);
        assert!(matches!(v, Err(Failure::Rejected(r)) if r.contains("does not validate")));
    }

    #[test]
    fn a_stale_tier_within_the_grace_window_is_credited_as_the_cashier_saw_it() {
        // Demoted to silver four days before the sale: the offline register
        // still had gold, and the receipt said 73.
        let f = with_tiers(vec![
            spell("gold", "2026-10-01T00:00:00Z"),
            spell("silver", "2026-11-24T00:00:00Z"),
        ]);
        let v = check(
            &f,
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        );
        assert_eq!(v.unwrap().credited, 73);

        // Gold ended 40 days before the sale: past the grace window.
        let f = with_tiers(vec![
            spell("gold", "2026-09-01T00:00:00Z"),
            spell("silver", "2026-10-19T00:00:00Z"),
        ]);
        let v = check(
            &f,
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        );
        assert_eq!(v.unwrap().credited, 61);
    }

    #[test]
    fn a_tier_never_held_is_corrected_to_centrals_and_says_why() {
        let f = with_tiers(vec![spell("silver", "2026-01-01T00:00:00Z")]);
        let v = check(
            &f,
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        )
        .unwrap();
        let want = "earn of 73 for sale S-1 in program main credited as 61: tier gold was not held by \
                    M-1 in the 31 days before 2026-11-28T11:05:00+01:00 (central: silver)";
        assert_eq!(v.credited, 61);
        assert_eq!(v.correction.as_deref(), Some(want));

        // Central never heard of the member: the tier is not held, none is.
        let v = check(
            &facts(),
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        )
        .unwrap();
        assert_eq!(v.credited, 49);
        assert!(v.correction.unwrap().contains("(central: no tier)"));
    }

    #[test]
    fn earned_today_at_another_terminal_lowers_the_credit_to_the_daily_cap() {
        let mut f = with_tiers(gold_since_forever());
        let day = (
            "M-1".to_string(),
            "main".to_string(),
            "2026-11-28".to_string(),
        );
        f.earned_on.insert(day, 80);
        let v = check(
            &f,
            &earn(73, "S-1"),
            vec![Document::Sale(sale_doc("S-1", Some("gold")))],
        )
        .unwrap();
        assert_eq!(
            v.credited, 20,
            "daily cap 100, 80 already credited elsewhere"
        );
        assert!(
            v.correction
                .unwrap()
                .contains("earned_today 0 is below the 80")
        );
    }

    #[test]
    fn a_batch_counts_its_own_earns_for_the_day_and_the_sale() {
        let f = with_tiers(gold_since_forever());
        let mut verifier = Verifier::new(&f);
        let documents = docs(vec![
            Document::Sale(sale_doc("S-1", Some("gold"))),
            Document::Sale(sale_doc("S-2", Some("gold"))),
        ]);
        let first = earn(73, "S-1");
        let v = verifier.check(&first, "M-1", &documents).unwrap();
        verifier.record(&first, "M-1", &v);
        let again = verifier.check(&earn(73, "S-1"), "M-1", &documents);
        assert!(matches!(again, Err(Failure::Rejected(r)) if r.contains("already earned")));
        let second = verifier.check(&earn(73, "S-2"), "M-1", &documents).unwrap();
        assert_eq!(second.credited, 27, "100 a day, 73 of it already earned");
    }

    fn redeem_doc(points: i64) -> SaleDocument {
        SaleDocument {
            basket: basket("S-1", Some("gold"), 2)
                .replace("\"lines\"", "\"paid_with_points\": \"5.00\", \"lines\""),
            redeemed: vec![ProgramPoints {
                program: "main".into(),
                points,
            }],
            ..sale_doc("S-1", Some("gold"))
        }
    }

    fn redeem(points: i64) -> LedgerEntry {
        LedgerEntry {
            kind: EntryKind::Redeem,
            ..earn(points, "S-1")
        }
    }

    #[test]
    fn a_redeem_is_the_documents_redemption_and_passes_the_static_checks() {
        let f = with_tiers(gold_since_forever());
        let v = check(&f, &redeem(-500), vec![Document::Sale(redeem_doc(500))]).unwrap();
        assert_eq!(v.credited, -500);
        let v = check(&f, &redeem(-900), vec![Document::Sale(redeem_doc(500))]);
        assert!(
            matches!(v, Err(Failure::Mismatch(r)) if r.contains("900") && r.contains("redeemed 500"))
        );
        let v = check(&f, &redeem(-550), vec![Document::Sale(redeem_doc(550))]);
        assert!(matches!(v, Err(Failure::Mismatch(r)) if r.contains("not_a_step")));
    }

    fn return_doc(lines: &[(u32, &str)]) -> ReturnDocument {
        let mut sale = redeem_doc(500);
        sale.basket = basket("S-1", Some("gold"), 2)
            .replace("\"lines\"", "\"paid_with_points\": \"5.00\", \"lines\"");
        ReturnDocument {
            return_id: "R-1".into(),
            sale_id: "S-1".into(),
            sale,
            remaining_before: vec![
                LineQty {
                    line: 1,
                    qty: "1".parse().unwrap(),
                },
                LineQty {
                    line: 2,
                    qty: "1".parse().unwrap(),
                },
            ],
            lines: lines
                .iter()
                .map(|(line, qty)| LineQty {
                    line: *line,
                    qty: qty.parse().unwrap(),
                })
                .collect(),
        }
    }

    fn returned(kind: EntryKind, points: i64) -> LedgerEntry {
        LedgerEntry {
            kind,
            return_id: Some("R-1".into()),
            ..earn(points, "S-1")
        }
    }

    fn with_sale(record: SaleRecord) -> Facts {
        let mut f = with_tiers(gold_since_forever());
        f.sales.insert(("S-1".into(), "main".into()), record);
        f
    }

    #[test]
    fn a_full_return_reverses_what_the_rules_give_bounded_by_what_central_credited() {
        // Both lines, gold: 49.00 + 10.00 − 5.00 paid with points = 54, and 27 tier bonus.
        let full = vec![Document::Return(return_doc(&[(1, "1"), (2, "1")]))];
        let credited = SaleRecord {
            earned: Some(81),
            redeemed: Some(500),
            ..SaleRecord::default()
        };
        let v = check(
            &with_sale(credited),
            &returned(EntryKind::ReturnEarn, -81),
            full.clone(),
        );
        assert_eq!(v.unwrap().credited, -81);

        let v = check(
            &with_sale(credited),
            &returned(EntryKind::ReturnEarn, -500),
            full.clone(),
        );
        assert!(
            matches!(v, Err(Failure::Mismatch(r)) if r.contains("-500") && r.contains("reverse 81"))
        );

        // Central credited only 30 (a corrected earn): the return takes back 30.
        let less = SaleRecord {
            earned: Some(30),
            ..credited
        };
        let v = check(
            &with_sale(less),
            &returned(EntryKind::ReturnEarn, -81),
            full.clone(),
        )
        .unwrap();
        assert_eq!(v.credited, -30);
        assert!(v.correction.unwrap().contains("central credited 30"));
    }

    #[test]
    fn a_return_gives_back_what_the_rules_give_never_more_than_central_debited() {
        let full = vec![Document::Return(return_doc(&[(1, "1"), (2, "1")]))];
        let debited = SaleRecord {
            earned: Some(81),
            redeemed: Some(500),
            ..SaleRecord::default()
        };
        let v = check(
            &with_sale(debited),
            &returned(EntryKind::ReturnRedeem, 500),
            full.clone(),
        );
        assert_eq!(v.unwrap().credited, 500);

        let v = check(
            &with_sale(debited),
            &returned(EntryKind::ReturnRedeem, 9_000),
            full.clone(),
        );
        assert!(matches!(v, Err(Failure::Mismatch(r)) if r.contains("give back 500")));

        let half = SaleRecord {
            redeemed: Some(200),
            ..debited
        };
        let v = check(
            &with_sale(half),
            &returned(EntryKind::ReturnRedeem, 500),
            full,
        )
        .unwrap();
        assert_eq!(v.credited, 200);

        // A partial return: the 10.00 line of 59.00 gives back floor(500 × 10 / 59) = 84.
        let part = vec![Document::Return(return_doc(&[(2, "1")]))];
        let v = check(
            &with_sale(debited),
            &returned(EntryKind::ReturnRedeem, 84),
            part,
        );
        assert_eq!(v.unwrap().credited, 84);
    }

    #[test]
    fn a_return_of_more_than_remains_is_rejected() {
        let mut doc = return_doc(&[(1, "1")]);
        doc.remaining_before[0].qty = Decimal::ZERO;
        let f = with_sale(SaleRecord {
            earned: Some(81),
            ..SaleRecord::default()
        });
        let v = check(
            &f,
            &returned(EntryKind::ReturnEarn, -73),
            vec![Document::Return(doc)],
        );
        assert!(matches!(v, Err(Failure::Rejected(r)) if r.contains("R-1")));
    }
}
