//! Evaluation (spec §3) and the quote it produces (spec §4).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use jiff::civil::DateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::basket::{Basket, Member};
use crate::bundle::{Bundle, Day, GroupMode, Program, Rule, RuleKind, Tier, program_context};
use crate::decimal;
use crate::error::{Error, ErrorKind};
use crate::localtime;

/// What a basket earns, per program (spec §4). Field order is the output order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The bundle `version` the quote was computed with.
    pub rules_version: u64,
    /// The basket's `sale_id`, or `null`.
    pub sale_id: Option<String>,
    /// The member id, or `null`.
    pub member: Option<String>,
    /// In bundle order: the programs the member earns in (all without a member).
    pub programs: Vec<ProgramQuote>,
}

/// One program's points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramQuote {
    /// Program id.
    pub program: String,
    /// `round(E_base × base_rate)`.
    pub base: i64,
    /// `round(base_exact × (m − 1))`.
    pub tier_bonus: i64,
    /// In evaluation order, the rules whose final points are > 0.
    pub rules: Vec<RuleQuote>,
    /// `base + tier_bonus + Σ rule points`.
    pub subtotal: i64,
    /// The subtotal after the sale cap and the member daily cap.
    pub total: i64,
    /// The limits that lowered the total, in the order `sale_cap`, `member_daily_cap`.
    pub limited_by: Vec<Limit>,
}

/// One rule's final points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleQuote {
    /// Rule id.
    pub id: String,
    /// Final points, > 0.
    pub points: i64,
    /// True when the rule's own cap or its group's cap lowered the points.
    pub capped: bool,
}

/// A program limit that lowered a total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `limits.sale_cap`.
    SaleCap,
    /// `limits.member_daily_cap`, after what the member earned today.
    MemberDailyCap,
}

/// Quotes a basket against a bundle. The basket is assumed validated
/// ([`Basket::validate`]); if it is not, or if evaluation would leave exact
/// arithmetic, the result is an error, never a panic or a rounded guess.
pub fn quote(bundle: &Bundle, basket: &Basket) -> Result<Quote, Error> {
    let sale = Sale::new(basket)?;
    let programs = bundle
        .programs
        .iter()
        .filter(|program| match basket.member.as_ref() {
            Some(member) => member.programs.contains_key(&program.id),
            None => true,
        })
        .map(|program| quote_program(program, &sale))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(Quote {
        rules_version: bundle.version,
        sale_id: basket.sale_id.clone(),
        member: basket.member.as_ref().map(|member| member.id.clone()),
        programs,
    })
}

/// What every program's evaluation needs from the basket, computed once.
struct Sale<'a> {
    basket: &'a Basket,
    member: Option<&'a Member>,
    /// Local wall clock as written in `time`.
    wall: DateTime,
    day: Day,
    /// The member's birthday month, when a member with a birthday is present.
    birthday_month: Option<i8>,
    /// Each line's amount and quantity as integers at the basket's scales.
    lines: Vec<Totals>,
    /// The scale of every amount in `lines` (the largest line amount scale).
    amount_scale: u32,
    /// The scale of every quantity in `lines`.
    qty_scale: u32,
}

impl<'a> Sale<'a> {
    fn new(basket: &'a Basket) -> Result<Sale<'a>, Error> {
        let wall = localtime::parse_rfc3339_wall_clock(&basket.time).ok_or_else(|| {
            Error::one(
                ErrorKind::Invalid,
                "time",
                "",
                format!(
                    "time must be RFC 3339 with an offset, got {:?}",
                    basket.time
                ),
            )
        })?;
        let birthday_month = basket
            .member
            .as_ref()
            .and_then(|member| member.birthday.as_deref())
            .and_then(localtime::parse_date)
            .map(|date| date.month());
        let overflow = |index: usize| {
            Error::arithmetic(
                &format!("line {}", basket.line_number(index)),
                "the line amount",
            )
        };
        let mut amounts = Vec::with_capacity(basket.lines.len());
        for (index, line) in basket.lines.iter().enumerate() {
            amounts.push(line.amount().ok_or_else(|| overflow(index))?);
        }
        let amount_scale = amounts.iter().map(Decimal::scale).max().unwrap_or(0);
        let qty_scale = basket
            .lines
            .iter()
            .map(|line| line.qty.scale())
            .max()
            .unwrap_or(0);
        let mut lines = Vec::with_capacity(basket.lines.len());
        for (index, (line, amount)) in basket.lines.iter().zip(&amounts).enumerate() {
            lines.push(Totals {
                amount: units(*amount, amount_scale).ok_or_else(|| overflow(index))?,
                qty: units(line.qty, qty_scale).ok_or_else(|| overflow(index))?,
                count: 1,
            });
        }
        Ok(Sale {
            basket,
            member: basket.member.as_ref(),
            wall,
            day: Day::of(wall.weekday()),
            birthday_month,
            lines,
            amount_scale,
            qty_scale,
        })
    }
}

/// `value` as an integer number of `10^-scale` units; `scale` >= its own.
fn units(value: Decimal, scale: u32) -> Option<i128> {
    let factor = 10i128.checked_pow(scale.checked_sub(value.scale())?)?;
    value.mantissa().checked_mul(factor)
}

/// `units × 10^-scale` as a Decimal, exactly, or `None` when it does not fit.
fn from_units(mut units: i128, mut scale: u32) -> Option<Decimal> {
    loop {
        if let Ok(value) = Decimal::try_from_i128_with_scale(units, scale) {
            return Some(value);
        }
        // Too many digits: drop trailing zeros, if there are any.
        if scale == 0 || units % 10 != 0 {
            return None;
        }
        units /= 10;
        scale -= 1;
    }
}

/// Amount, quantity and number of some eligible lines.
///
/// Amounts and quantities are integers at one scale per basket (the largest
/// among its lines), so that matching adds i128s rather than Decimals of
/// mixed scales, which was most of the quote time; they become Decimals
/// again, exactly, once per rule ([`from_units`]).
#[derive(Clone, Copy)]
struct Totals {
    amount: i128,
    qty: i128,
    count: usize,
}

impl Totals {
    const ZERO: Totals = Totals {
        amount: 0,
        qty: 0,
        count: 0,
    };

    fn add(&mut self, other: &Totals) -> Option<()> {
        self.amount = self.amount.checked_add(other.amount)?;
        self.qty = self.qty.checked_add(other.qty)?;
        self.count += other.count;
        Some(())
    }
}

/// FNV-1a, for the per-quote maps keyed by category and sku.
///
/// Hand-written (a dozen lines) rather than a new dependency: std's SipHash
/// was a sixth of the quote time in the benchmark, and these maps hold at
/// most `LINES_MAX` keys of one basket, so flooding resistance buys nothing.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
        self.0 = hash;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// "No next line" in [`Eligible::next_same_sku`].
const NO_LINE: usize = usize::MAX;

/// One program's view of the basket: its eligible lines summed per category
/// and chained per sku. Matching a rule then costs a lookup per listed
/// category and sku instead of a scan of every line per rule.
struct Eligible<'a> {
    all: Totals,
    by_category: FnvMap<&'a str, Totals>,
    /// First eligible line of each sku; the others follow `next_same_sku`.
    by_sku: FnvMap<&'a str, usize>,
    next_same_sku: Vec<usize>,
    lines: Vec<Totals>,
}

impl<'a> Eligible<'a> {
    fn new(program: &Program, sale: &Sale<'a>) -> Option<Eligible<'a>> {
        let count = sale.lines.len();
        let mut eligible = Eligible {
            all: Totals::ZERO,
            by_category: FnvMap::with_capacity_and_hasher(count, Default::default()),
            by_sku: FnvMap::with_capacity_and_hasher(count, Default::default()),
            next_same_sku: vec![NO_LINE; count],
            lines: Vec::with_capacity(count),
        };
        for (index, line) in sale.basket.lines.iter().enumerate() {
            let totals = sale.lines[index];
            eligible.lines.push(totals);
            if let Some(category) = &line.category {
                if program.exclude_categories.contains(category) {
                    continue;
                }
                let sum = eligible
                    .by_category
                    .entry(category.as_str())
                    .or_insert(Totals::ZERO);
                sum.add(&totals)?;
            }
            eligible.all.add(&totals)?;
            // Chain in front: the order within a sku does not matter.
            if let Some(first) = eligible.by_sku.insert(line.sku.as_str(), index) {
                eligible.next_same_sku[index] = first;
            }
        }
        Some(eligible)
    }

    /// The eligible lines a rule matches: category listed **or** sku listed,
    /// each line once; every eligible line when both lists are empty.
    fn matched(&self, rule: &Rule, lines: &[crate::basket::Line]) -> Option<Totals> {
        let categories = &rule.matches.categories;
        let skus = &rule.matches.skus;
        if categories.is_empty() && skus.is_empty() {
            return Some(self.all);
        }
        let mut totals = Totals::ZERO;
        for (k, category) in categories.iter().enumerate() {
            // A category listed twice still counts its lines once.
            if categories[..k].contains(category) {
                continue;
            }
            if let Some(sum) = self.by_category.get(category.as_str()) {
                totals.add(sum)?;
            }
        }
        for (k, sku) in skus.iter().enumerate() {
            if skus[..k].contains(sku) {
                continue;
            }
            let mut index = self.by_sku.get(sku.as_str()).copied().unwrap_or(NO_LINE);
            while index != NO_LINE {
                // Lines already counted by their category are not counted again.
                let by_category = lines[index]
                    .category
                    .as_ref()
                    .is_some_and(|category| categories.contains(category));
                if !by_category {
                    totals.add(&self.lines[index])?;
                }
                index = self.next_same_sku[index];
            }
        }
        Some(totals)
    }
}

/// A rule that applied, before groups.
struct Applied {
    rule: usize,
    /// Index of its group in `program.groups`.
    group: Option<usize>,
    points: i64,
    capped: bool,
}

fn quote_program(program: &Program, sale: &Sale<'_>) -> Result<ProgramQuote, Error> {
    let context = program_context(&program.id);
    let overflow = |what: &str| Error::arithmetic(&context, what);
    // 1. Eligible lines and E.
    let eligible = Eligible::new(program, sale).ok_or_else(|| overflow("the eligible amount"))?;
    // 2. Base.
    let (base, base_exact) = base_points(program, sale, &eligible, &context)?;
    // 3. Tier: an undeclared tier id counts as no tier.
    let tier = sale
        .member
        .and_then(|member| member.programs.get(&program.id))
        .and_then(|entry| entry.tier.as_deref())
        .and_then(|id| program.tier(id));
    let tier_bonus = match tier {
        Some(tier) => tier_points(program, tier, base_exact, &context)?,
        None => 0,
    };
    // 4. Rules, in evaluation order.
    let mut applied = apply_rules(program, sale, &eligible, tier, &context)?;
    // 5. Groups, over the rules that applied, each in evaluation order.
    settle_groups(program, &mut applied);
    // 6. Subtotal.
    let mut subtotal = i128::from(base) + i128::from(tier_bonus);
    let mut rules = Vec::with_capacity(applied.len());
    for entry in &applied {
        if entry.points > 0 {
            subtotal += i128::from(entry.points);
            rules.push(RuleQuote {
                id: program.rules[entry.rule].id.clone(),
                points: entry.points,
                capped: entry.capped,
            });
        }
    }
    let subtotal = i64::try_from(subtotal).map_err(|_| overflow("the subtotal"))?;
    // 7. Limits.
    let (total, limited_by) = apply_limits(program, sale.basket, subtotal, &context)?;
    Ok(ProgramQuote {
        program: program.id.clone(),
        base,
        tier_bonus,
        rules,
        subtotal,
        total,
        limited_by,
    })
}

/// Base points, rounded, and exact (the tier bonus multiplies the exact ones).
fn base_points(
    program: &Program,
    sale: &Sale<'_>,
    eligible: &Eligible<'_>,
    context: &str,
) -> Result<(i64, Decimal), Error> {
    let overflow = |what: &str| Error::arithmetic(context, what);
    let eligible_amount = from_units(eligible.all.amount, sale.amount_scale)
        .ok_or_else(|| overflow("the eligible amount"))?;
    let base_amount = if program.earn_on_redeemed {
        eligible_amount
    } else {
        decimal::sub(eligible_amount, sale.basket.paid_with_points)
            .ok_or_else(|| overflow("the eligible amount less paid_with_points"))?
            .max(Decimal::ZERO)
    };
    let base_exact =
        decimal::mul(base_amount, program.base_rate).ok_or_else(|| overflow("base points"))?;
    let base = program
        .rounding
        .apply(base_exact)
        .ok_or_else(|| overflow("base points"))?;
    Ok((base, base_exact))
}

/// `round(base_exact × (multiplier − 1))`.
fn tier_points(
    program: &Program,
    tier: &Tier,
    base_exact: Decimal,
    context: &str,
) -> Result<i64, Error> {
    let overflow = |what: &str| Error::arithmetic(context, what);
    let extra = decimal::sub(tier.multiplier, Decimal::ONE)
        .ok_or_else(|| overflow("the tier multiplier"))?;
    let exact = decimal::mul(base_exact, extra).ok_or_else(|| overflow("the tier bonus"))?;
    program
        .rounding
        .apply(exact)
        .ok_or_else(|| overflow("the tier bonus"))
}

/// The rules that apply, in evaluation order, up to the first `stop` rule
/// that gives points; each with its own (capped) points.
fn apply_rules(
    program: &Program,
    sale: &Sale<'_>,
    eligible: &Eligible<'_>,
    tier: Option<&Tier>,
    context: &str,
) -> Result<Vec<Applied>, Error> {
    let mut applied: Vec<Applied> = Vec::with_capacity(program.rules.len());
    for index in program.evaluation_order() {
        let rule = &program.rules[index];
        if !conditions_hold(rule, tier.map(|tier| tier.id.as_str()), sale) {
            continue;
        }
        let Some(points) = rule_points(program, rule, sale, eligible, context)? else {
            continue;
        };
        let (points, capped) = match rule.cap {
            // Caps are >= 0 in a validated bundle; `max(0)` keeps an
            // unvalidated one from producing negative points.
            Some(cap) if points > cap.max(0) => (cap.max(0), true),
            _ => (points, false),
        };
        let group = rule
            .group
            .as_deref()
            .and_then(|id| program.groups.iter().position(|group| group.id == id));
        applied.push(Applied {
            rule: index,
            group,
            points,
            capped,
        });
        if rule.stop && points > 0 {
            break;
        }
    }
    Ok(applied)
}

/// A rule's rounded points before its cap; `None` when it matches no line
/// or its matched spend is below `min_spend`.
fn rule_points(
    program: &Program,
    rule: &Rule,
    sale: &Sale<'_>,
    eligible: &Eligible<'_>,
    context: &str,
) -> Result<Option<i64>, Error> {
    let rule_overflow = || {
        Error::arithmetic(
            &format!("{context}, rule {:?}", rule.id),
            "the rule's points",
        )
    };
    let matched = eligible
        .matched(rule, &sale.basket.lines)
        .ok_or_else(rule_overflow)?;
    if matched.count == 0 {
        return Ok(None);
    }
    // M, made a Decimal only when the rule needs it.
    let needs_amount =
        rule.min_spend.is_some() || matches!(rule.kind, RuleKind::Multiplier | RuleKind::PerUnit);
    let matched_amount = if needs_amount {
        from_units(matched.amount, sale.amount_scale).ok_or_else(rule_overflow)?
    } else {
        Decimal::ZERO
    };
    if rule.min_spend.is_some_and(|min| matched_amount < min) {
        return Ok(None);
    }
    let exact = match rule.kind {
        RuleKind::Multiplier => decimal::sub(rule.value, Decimal::ONE).and_then(|extra| {
            decimal::mul(decimal::mul(matched_amount, program.base_rate)?, extra)
        }),
        RuleKind::PerUnit => decimal::mul(matched_amount, rule.value),
        RuleKind::PerItem => from_units(matched.qty, sale.qty_scale)
            .and_then(|matched_qty| decimal::mul(matched_qty, rule.value)),
        RuleKind::Fixed => Some(rule.value),
    }
    .ok_or_else(rule_overflow)?;
    program
        .rounding
        .apply(exact)
        .map(Some)
        .ok_or_else(rule_overflow)
}

/// Per group: `best` keeps only its first rule with the most points, then
/// a group cap is shared out in evaluation order.
fn settle_groups(program: &Program, applied: &mut [Applied]) {
    for (group_index, group) in program.groups.iter().enumerate() {
        let in_group = |entry: &&mut Applied| entry.group == Some(group_index);
        if group.mode == GroupMode::Best {
            // The first rule with the most points wins; ties go to the earlier.
            let mut best: Option<i64> = None;
            let mut winner: Option<usize> = None;
            for (position, entry) in applied.iter().enumerate() {
                if entry.group == Some(group_index) && best.is_none_or(|most| entry.points > most) {
                    best = Some(entry.points);
                    winner = Some(position);
                }
            }
            for (position, entry) in applied.iter_mut().enumerate() {
                if entry.group == Some(group_index) && Some(position) != winner {
                    entry.points = 0;
                }
            }
        }
        if let Some(cap) = group.cap {
            let mut left = cap.max(0);
            for entry in applied.iter_mut().filter(in_group) {
                let kept = entry.points.min(left);
                if kept < entry.points {
                    entry.capped = true;
                }
                entry.points = kept;
                left -= kept;
            }
        }
    }
}

/// The sale cap, then the member's room under the daily cap.
fn apply_limits(
    program: &Program,
    basket: &Basket,
    subtotal: i64,
    context: &str,
) -> Result<(i64, Vec<Limit>), Error> {
    let mut total = subtotal;
    let mut limited_by = Vec::new();
    if let Some(cap) = program.limits.sale_cap.map(|cap| cap.max(0))
        && total > cap
    {
        total = cap;
        limited_by.push(Limit::SaleCap);
    }
    if let Some(cap) = program.limits.member_daily_cap {
        let earned = basket.earned_today.get(&program.id).copied().unwrap_or(0);
        let room = (i128::from(cap.max(0)) - i128::from(earned)).max(0);
        if i128::from(total) > room {
            // room < total <= i64::MAX, so it fits.
            total = i64::try_from(room)
                .map_err(|_| Error::arithmetic(context, "the member daily cap"))?;
            limited_by.push(Limit::MemberDailyCap);
        }
    }
    Ok((total, limited_by))
}

/// The conditions that do not depend on lines: `when`, `tiers`, `birthday`.
/// `tier` is the member's *declared* tier in this program, if any.
fn conditions_hold(rule: &Rule, tier: Option<&str>, sale: &Sale<'_>) -> bool {
    let when = &rule.when;
    if when.from.is_some_and(|from| sale.wall < from) || when.to.is_some_and(|to| sale.wall >= to) {
        return false;
    }
    if when
        .days
        .as_ref()
        .is_some_and(|days| !days.contains(&sale.day))
    {
        return false;
    }
    if let Some(hours) = &when.hours {
        let time = sale.wall.time();
        if time < hours.start || time >= hours.end {
            return false;
        }
    }
    if !rule.tiers.is_empty() && !tier.is_some_and(|tier| rule.tiers.iter().any(|id| id == tier)) {
        return false;
    }
    if rule.birthday && sale.birthday_month != Some(sale.wall.month()) {
        return false;
    }
    true
}
