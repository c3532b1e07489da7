//! Evaluation (spec §3) and the quote it produces (spec §4).

use std::collections::HashMap;

use jiff::civil::DateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::basket::{Basket, Member};
use crate::bundle::{Bundle, Day, GroupMode, Program, Rule, RuleKind};
use crate::decimal;
use crate::error::{Error, ErrorKind};
use crate::localtime;
use crate::raw::program_context;

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
    amounts: Vec<Decimal>,
    /// Line indices per category and per sku, so matching a rule costs its
    /// list lengths rather than a scan of every line.
    by_category: HashMap<&'a str, Vec<usize>>,
    by_sku: HashMap<&'a str, Vec<usize>>,
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
        let mut amounts = Vec::with_capacity(basket.lines.len());
        let mut by_category: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut by_sku: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, line) in basket.lines.iter().enumerate() {
            let amount = line.amount().ok_or_else(|| {
                Error::arithmetic(
                    &format!("line {}", basket.line_number(index)),
                    "the line amount",
                )
            })?;
            amounts.push(amount);
            if let Some(category) = &line.category {
                by_category.entry(category).or_default().push(index);
            }
            by_sku.entry(&line.sku).or_default().push(index);
        }
        Ok(Sale {
            basket,
            member: basket.member.as_ref(),
            wall,
            day: Day::of(wall.weekday()),
            birthday_month,
            amounts,
            by_category,
            by_sku,
        })
    }
}

/// A rule that applied, before groups.
struct Applied {
    rule: usize,
    points: i64,
    capped: bool,
}

fn quote_program(program: &Program, sale: &Sale<'_>) -> Result<ProgramQuote, Error> {
    let context = program_context(&program.id);
    let overflow = |what: &str| Error::arithmetic(&context, what);
    let basket = sale.basket;

    // 1. Eligible lines and E.
    let eligible: Vec<bool> = basket
        .lines
        .iter()
        .map(|line| {
            line.category
                .as_ref()
                .is_none_or(|category| !program.exclude_categories.contains(category))
        })
        .collect();
    let mut eligible_amount = Decimal::ZERO;
    let mut eligible_qty = Decimal::ZERO;
    let mut eligible_count = 0usize;
    for (index, line) in basket.lines.iter().enumerate() {
        if eligible[index] {
            eligible_amount = decimal::add(eligible_amount, sale.amounts[index])
                .ok_or_else(|| overflow("the eligible amount"))?;
            eligible_qty = decimal::add(eligible_qty, line.qty)
                .ok_or_else(|| overflow("the eligible quantity"))?;
            eligible_count += 1;
        }
    }

    // 2. Base.
    let base_amount = if program.earn_on_redeemed {
        eligible_amount
    } else {
        decimal::sub(eligible_amount, basket.paid_with_points)
            .ok_or_else(|| overflow("the eligible amount less paid_with_points"))?
            .max(Decimal::ZERO)
    };
    let base_exact =
        decimal::mul(base_amount, program.base_rate).ok_or_else(|| overflow("base points"))?;
    let base = program
        .rounding
        .apply(base_exact)
        .ok_or_else(|| overflow("base points"))?;

    // 3. Tier: an undeclared tier id counts as no tier.
    let tier = sale
        .member
        .and_then(|member| member.programs.get(&program.id))
        .and_then(|entry| entry.tier.as_deref())
        .and_then(|id| program.tier(id));
    let tier_bonus = match tier {
        Some(tier) => {
            let extra = decimal::sub(tier.multiplier, Decimal::ONE)
                .ok_or_else(|| overflow("the tier multiplier"))?;
            let exact =
                decimal::mul(base_exact, extra).ok_or_else(|| overflow("the tier bonus"))?;
            program
                .rounding
                .apply(exact)
                .ok_or_else(|| overflow("the tier bonus"))?
        }
        None => 0,
    };

    // 4. Rules, in evaluation order.
    let mut applied: Vec<Applied> = Vec::new();
    let mut stamp = vec![usize::MAX; basket.lines.len()];
    for (position, &index) in program.evaluation_order().iter().enumerate() {
        let rule = &program.rules[index];
        if !conditions_hold(rule, tier.map(|tier| tier.id.as_str()), sale) {
            continue;
        }
        let rule_overflow = || {
            Error::arithmetic(
                &format!("{context}, rule {:?}", rule.id),
                "the rule's points",
            )
        };
        // Matched eligible lines: amount M, quantity Q, count.
        let (matched_amount, matched_qty, matched_count) = if rule.matches.is_all() {
            (eligible_amount, eligible_qty, eligible_count)
        } else {
            let mut amount = Decimal::ZERO;
            let mut qty = Decimal::ZERO;
            let mut count = 0usize;
            let lists = rule
                .matches
                .categories
                .iter()
                .filter_map(|category| sale.by_category.get(category.as_str()))
                .chain(
                    rule.matches
                        .skus
                        .iter()
                        .filter_map(|sku| sale.by_sku.get(sku.as_str())),
                );
            for list in lists {
                for &line in list {
                    // A line listed by category and by sku counts once.
                    if eligible[line] && stamp[line] != position {
                        stamp[line] = position;
                        amount =
                            decimal::add(amount, sale.amounts[line]).ok_or_else(rule_overflow)?;
                        qty =
                            decimal::add(qty, basket.lines[line].qty).ok_or_else(rule_overflow)?;
                        count += 1;
                    }
                }
            }
            (amount, qty, count)
        };
        if matched_count == 0 || rule.min_spend.is_some_and(|min| matched_amount < min) {
            continue;
        }
        let exact = match rule.kind {
            RuleKind::Multiplier => decimal::sub(rule.value, Decimal::ONE).and_then(|extra| {
                decimal::mul(decimal::mul(matched_amount, program.base_rate)?, extra)
            }),
            RuleKind::PerUnit => decimal::mul(matched_amount, rule.value),
            RuleKind::PerItem => decimal::mul(matched_qty, rule.value),
            RuleKind::Fixed => Some(rule.value),
        }
        .ok_or_else(rule_overflow)?;
        let rounded = program.rounding.apply(exact).ok_or_else(rule_overflow)?;
        let (points, capped) = match rule.cap {
            // Caps are >= 0 in a validated bundle; `max(0)` keeps an
            // unvalidated one from producing negative points.
            Some(cap) if rounded > cap.max(0) => (cap.max(0), true),
            _ => (rounded, false),
        };
        applied.push(Applied {
            rule: index,
            points,
            capped,
        });
        if rule.stop && points > 0 {
            break;
        }
    }

    // 5. Groups, over the rules that applied, each in evaluation order.
    for group in &program.groups {
        let members: Vec<usize> = applied
            .iter()
            .enumerate()
            .filter(|(_, entry)| {
                program.rules[entry.rule].group.as_deref() == Some(group.id.as_str())
            })
            .map(|(position, _)| position)
            .collect();
        if group.mode == GroupMode::Best {
            // The first rule with the most points wins; ties go to the earlier.
            let mut winner: Option<usize> = None;
            for &position in &members {
                if winner.is_none_or(|best| applied[position].points > applied[best].points) {
                    winner = Some(position);
                }
            }
            for &position in &members {
                if Some(position) != winner {
                    applied[position].points = 0;
                }
            }
        }
        if let Some(cap) = group.cap {
            let mut left = cap.max(0);
            for &position in &members {
                let entry = &mut applied[position];
                let kept = entry.points.min(left);
                if kept < entry.points {
                    entry.capped = true;
                }
                entry.points = kept;
                left -= kept;
            }
        }
    }

    // 6. Subtotal.
    let mut subtotal = i128::from(base) + i128::from(tier_bonus);
    let mut rules = Vec::new();
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
            total = i64::try_from(room).map_err(|_| overflow("the member daily cap"))?;
            limited_by.push(Limit::MemberDailyCap);
        }
    }

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
