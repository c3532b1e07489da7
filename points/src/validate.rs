//! Every refusal of spec §1 (bundle) and §2 (basket), plus this crate's
//! limits, collected rather than stopping at the first; and (`convert`)
//! the reading of raw documents into the model that these checks finish.
//!
//! Ranges the spec does not state are chosen so that a quote is never
//! negative and never needs more digits than `rust_decimal` holds exactly:
//! money amounts and caps are >= 0, decimals have at most
//! [`DECIMAL_SCALE_MAX`] places and an absolute value <= [`DECIMAL_ABS_MAX`].

use std::collections::BTreeSet;

use rust_decimal::Decimal;

use crate::basket::{Basket, Line, Member, line_context};
use crate::bundle::{Bundle, Program, Rule, RuleKind, program_context};
use crate::decimal;
use crate::error::{Error, Problems};
use crate::limits::*;
use crate::localtime;

mod convert;

impl Bundle {
    /// Checks every rule of spec §1 and this crate's limits, reporting all problems.
    pub fn validate(&self) -> Result<(), Error> {
        bundle(self).into_result()
    }
}

impl Basket {
    /// Checks every rule of spec §2 and this crate's limits, reporting all problems.
    pub fn validate(&self) -> Result<(), Error> {
        basket(self).into_result()
    }
}

/// Problems with a decimal's size, whatever its meaning.
fn bounded(
    value: Decimal,
    problems: &mut Problems,
    path: &str,
    context: &str,
    field: &str,
) -> bool {
    let normalized = value.normalize();
    if normalized.scale() > DECIMAL_SCALE_MAX || normalized.abs() > Decimal::from(DECIMAL_ABS_MAX) {
        problems.push(
            path,
            context,
            format!(
                "{field} is out of range, got \"{value}\" (at most {DECIMAL_SCALE_MAX} decimal places and absolute value <= {DECIMAL_ABS_MAX})"
            ),
        );
        return false;
    }
    true
}

/// `field` must be >= `min` (a decimal).
fn at_least(
    value: Decimal,
    min: Decimal,
    what: &str,
    problems: &mut Problems,
    path: &str,
    context: &str,
    field: &str,
) {
    if bounded(value, problems, path, context, field) && value < min {
        problems.push(
            path,
            context,
            format!("{field} must be >= {min}{what}, got \"{value}\""),
        );
    }
}

/// `field` (an integer) must be >= `min`.
fn int_at_least(
    value: i64,
    min: i64,
    problems: &mut Problems,
    path: &str,
    context: &str,
    field: &str,
) {
    if value < min {
        problems.push(
            path,
            context,
            format!("{field} must be >= {min}, got {value}"),
        );
    }
}

fn text(value: &str, max: usize, problems: &mut Problems, path: &str, context: &str, field: &str) {
    if value.len() > max {
        problems.push(
            path,
            context,
            format!("{field} must be at most {max} bytes, got {}", value.len()),
        );
    }
}

fn count(
    len: usize,
    max: usize,
    problems: &mut Problems,
    path: &str,
    context: &str,
    field: &str,
) -> bool {
    if len > max {
        problems.push(
            path,
            context,
            format!("{field} must have at most {max} entries, got {len}"),
        );
        return false;
    }
    true
}

fn texts(values: &[String], problems: &mut Problems, path: &str, context: &str, field: &str) {
    if count(
        values.len(),
        LIST_ENTRIES_MAX,
        problems,
        path,
        context,
        field,
    ) {
        for (index, value) in values.iter().enumerate() {
            text(
                value,
                TEXT_BYTES_MAX,
                problems,
                &format!("{path}[{index}]"),
                context,
                &format!("{field}[{index}]"),
            );
        }
    }
}

fn is_program_id(id: &str) -> bool {
    (1..=PROGRAM_ID_BYTES_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// All problems of a bundle.
pub(crate) fn bundle(bundle: &Bundle) -> Problems {
    let mut problems = Problems::default();
    if !count(
        bundle.programs.len(),
        PROGRAMS_MAX,
        &mut problems,
        "programs",
        "",
        "programs",
    ) {
        return problems;
    }
    let mut seen = BTreeSet::new();
    for (index, program_item) in bundle.programs.iter().enumerate() {
        let path = format!("programs[{index}]");
        let context = program_context(&program_item.id);
        if !is_program_id(&program_item.id) {
            problems.push(
                format!("{path}.id"),
                &context,
                format!(
                    "id must match [a-z0-9_-]{{1,{PROGRAM_ID_BYTES_MAX}}}, got {:?}",
                    program_item.id
                ),
            );
        }
        if !seen.insert(program_item.id.as_str()) {
            problems.push(
                format!("{path}.id"),
                &context,
                format!("id {:?} repeats an earlier program", program_item.id),
            );
        }
        program(program_item, &path, &context, &mut problems);
    }
    problems
}

fn program(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    program_fields(program, path, context, problems);
    tiers(program, path, context, problems);
    groups(program, path, context, problems);
    rules(program, path, context, problems);
    limits(program, path, context, problems);
    redeem(program, path, context, problems);
}

/// The program's own fields: currency, base rate, excluded categories.
fn program_fields(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    let currency = &program.currency;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        problems.push(
            format!("{path}.currency"),
            context,
            format!("currency must be an ISO 4217 code (three capital letters), got {currency:?}"),
        );
    }
    at_least(
        program.base_rate,
        Decimal::ZERO,
        "",
        problems,
        &format!("{path}.base_rate"),
        context,
        "base_rate",
    );
    texts(
        &program.exclude_categories,
        problems,
        &format!("{path}.exclude_categories"),
        context,
        "exclude_categories",
    );
}

/// Tier ids unique and bounded, multipliers >= 1.
fn tiers(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    let mut tier_ids = BTreeSet::new();
    if count(
        program.tiers.len(),
        TIERS_PER_PROGRAM_MAX,
        problems,
        &format!("{path}.tiers"),
        context,
        "tiers",
    ) {
        for (t, tier) in program.tiers.iter().enumerate() {
            let tier_path = format!("{path}.tiers[{t}]");
            let tier_context = format!("{context}, tier {:?}", tier.id);
            text(
                &tier.id,
                TEXT_BYTES_MAX,
                problems,
                &format!("{tier_path}.id"),
                &tier_context,
                "id",
            );
            if !tier_ids.insert(tier.id.as_str()) {
                problems.push(
                    format!("{tier_path}.id"),
                    &tier_context,
                    format!("id {:?} repeats an earlier tier", tier.id),
                );
            }
            at_least(
                tier.multiplier,
                Decimal::ONE,
                "",
                problems,
                &format!("{tier_path}.multiplier"),
                &tier_context,
                "multiplier",
            );
        }
    }
}

/// Group ids unique and bounded, caps >= 0.
fn groups(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    let mut group_ids = BTreeSet::new();
    if count(
        program.groups.len(),
        GROUPS_PER_PROGRAM_MAX,
        problems,
        &format!("{path}.groups"),
        context,
        "groups",
    ) {
        for (g, group) in program.groups.iter().enumerate() {
            let group_path = format!("{path}.groups[{g}]");
            let group_context = format!("{context}, group {:?}", group.id);
            text(
                &group.id,
                TEXT_BYTES_MAX,
                problems,
                &format!("{group_path}.id"),
                &group_context,
                "id",
            );
            if !group_ids.insert(group.id.as_str()) {
                problems.push(
                    format!("{group_path}.id"),
                    &group_context,
                    format!("id {:?} repeats an earlier group", group.id),
                );
            }
            if let Some(cap) = group.cap {
                int_at_least(
                    cap,
                    0,
                    problems,
                    &format!("{group_path}.cap"),
                    &group_context,
                    "cap",
                );
            }
        }
    }
}

/// Rule ids unique; each rule checked.
fn rules(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    if count(
        program.rules.len(),
        RULES_PER_PROGRAM_MAX,
        problems,
        &format!("{path}.rules"),
        context,
        "rules",
    ) {
        let mut rule_ids = BTreeSet::new();
        for (r, rule_item) in program.rules.iter().enumerate() {
            let rule_path = format!("{path}.rules[{r}]");
            let rule_context = format!("{context}, rule {:?}", rule_item.id);
            if !rule_ids.insert(rule_item.id.as_str()) {
                problems.push(
                    format!("{rule_path}.id"),
                    &rule_context,
                    format!("id {:?} repeats an earlier rule", rule_item.id),
                );
            }
            rule(rule_item, program, &rule_path, &rule_context, problems);
        }
    }
}

/// Caps >= 0.
fn limits(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    let limits = &program.limits;
    if let Some(cap) = limits.sale_cap {
        int_at_least(
            cap,
            0,
            problems,
            &format!("{path}.limits.sale_cap"),
            context,
            "limits.sale_cap",
        );
    }
    if let Some(cap) = limits.member_daily_cap {
        int_at_least(
            cap,
            0,
            problems,
            &format!("{path}.limits.member_daily_cap"),
            context,
            "limits.member_daily_cap",
        );
    }
}

/// Redemption settings in range.
fn redeem(program: &Program, path: &str, context: &str, problems: &mut Problems) {
    if let Some(redeem) = &program.redeem {
        let redeem_path = format!("{path}.redeem");
        int_at_least(
            redeem.points_per_unit,
            1,
            problems,
            &format!("{redeem_path}.points_per_unit"),
            context,
            "redeem.points_per_unit",
        );
        int_at_least(
            redeem.min_points,
            0,
            problems,
            &format!("{redeem_path}.min_points"),
            context,
            "redeem.min_points",
        );
        int_at_least(
            redeem.step,
            1,
            problems,
            &format!("{redeem_path}.step"),
            context,
            "redeem.step",
        );
        at_least(
            redeem.max_share,
            Decimal::ZERO,
            "",
            problems,
            &format!("{redeem_path}.max_share"),
            context,
            "redeem.max_share",
        );
        int_at_least(
            redeem.offline_allowance,
            0,
            problems,
            &format!("{redeem_path}.offline_allowance"),
            context,
            "redeem.offline_allowance",
        );
    }
}

fn rule(rule: &Rule, program: &Program, path: &str, context: &str, problems: &mut Problems) {
    rule_points(rule, program, path, context, problems);
    rule_when(rule, path, context, problems);
    rule_limits(rule, program, path, context, problems);
}

/// Id, group, value for its kind and match lists.
fn rule_points(rule: &Rule, program: &Program, path: &str, context: &str, problems: &mut Problems) {
    text(
        &rule.id,
        TEXT_BYTES_MAX,
        problems,
        &format!("{path}.id"),
        context,
        "id",
    );
    if let Some(group) = &rule.group
        && program.group(group).is_none()
    {
        problems.push(
            format!("{path}.group"),
            context,
            format!("group {group:?} is not declared in the program"),
        );
    }
    let value_path = format!("{path}.value");
    match rule.kind {
        RuleKind::Multiplier => at_least(
            rule.value,
            Decimal::ONE,
            " for a multiplier",
            problems,
            &value_path,
            context,
            "value",
        ),
        kind => at_least(
            rule.value,
            Decimal::ZERO,
            &format!(" for {}", kind.name()),
            problems,
            &value_path,
            context,
            "value",
        ),
    }
    texts(
        &rule.matches.categories,
        problems,
        &format!("{path}.match.categories"),
        context,
        "match.categories",
    );
    texts(
        &rule.matches.skus,
        problems,
        &format!("{path}.match.skus"),
        context,
        "match.skus",
    );
}

/// The time conditions: a window that is not empty, bounded days.
fn rule_when(rule: &Rule, path: &str, context: &str, problems: &mut Problems) {
    if let (Some(from), Some(to)) = (rule.when.from, rule.when.to)
        && from >= to
    {
        problems.push(
            format!("{path}.when"),
            context,
            format!(
                "when.from must be before when.to, got {:?} >= {:?}",
                localtime::format_local_datetime(&from),
                localtime::format_local_datetime(&to)
            ),
        );
    }
    if let Some(days) = &rule.when.days {
        count(
            days.len(),
            LIST_ENTRIES_MAX,
            problems,
            &format!("{path}.when.days"),
            context,
            "when.days",
        );
    }
    if let Some(hours) = &rule.when.hours
        && hours.start >= hours.end
    {
        problems.push(
            format!("{path}.when.hours"),
            context,
            format!(
                "when.hours.start must be before when.hours.end (same day), got {:?} >= {:?}",
                localtime::format_hours_minutes(&hours.start),
                localtime::format_hours_minutes(&hours.end)
            ),
        );
    }
}

/// Minimum spend, declared tiers, cap.
fn rule_limits(rule: &Rule, program: &Program, path: &str, context: &str, problems: &mut Problems) {
    if let Some(min_spend) = rule.min_spend {
        at_least(
            min_spend,
            Decimal::ZERO,
            "",
            problems,
            &format!("{path}.min_spend"),
            context,
            "min_spend",
        );
    }
    if count(
        rule.tiers.len(),
        LIST_ENTRIES_MAX,
        problems,
        &format!("{path}.tiers"),
        context,
        "tiers",
    ) {
        for (t, tier) in rule.tiers.iter().enumerate() {
            if program.tier(tier).is_none() {
                problems.push(
                    format!("{path}.tiers[{t}]"),
                    context,
                    format!("tiers names {tier:?}, which is not declared in the program"),
                );
            }
        }
    }
    if let Some(cap) = rule.cap {
        int_at_least(cap, 0, problems, &format!("{path}.cap"), context, "cap");
    }
}

/// All problems of a basket.
pub(crate) fn basket(basket: &Basket) -> Problems {
    let mut problems = Problems::default();
    if let Some(sale_id) = &basket.sale_id {
        text(
            sale_id,
            TEXT_BYTES_MAX,
            &mut problems,
            "sale_id",
            "",
            "sale_id",
        );
    }
    if localtime::parse_rfc3339_wall_clock(&basket.time).is_none() {
        problems.push(
            "time",
            "",
            format!("time must be RFC 3339 with an offset, e.g. \"2026-11-28T11:05:00+01:00\", got {:?}", basket.time),
        );
    }
    if let Some(member) = &basket.member {
        basket_member(member, &mut problems);
    }
    count(
        basket.earned_today.len(),
        MEMBER_PROGRAMS_MAX,
        &mut problems,
        "earned_today",
        "",
        "earned_today",
    );
    at_least(
        basket.paid_with_points,
        Decimal::ZERO,
        "",
        &mut problems,
        "paid_with_points",
        "",
        "paid_with_points",
    );

    basket_lines(basket, &mut problems);
    problems
}

/// The lines, bounded, each checked, and their total amount exact.
fn basket_lines(basket: &Basket, problems: &mut Problems) {
    if !count(
        basket.lines.len(),
        LINES_MAX,
        problems,
        "lines",
        "",
        "lines",
    ) {
        return;
    }
    let mut numbers = BTreeSet::new();
    let mut total = Some(Decimal::ZERO);
    for (index, line) in basket.lines.iter().enumerate() {
        let path = format!("lines[{index}]");
        let context = line_context(line.line, index);
        let number = basket.line_number(index);
        line_fields(line, number, &mut numbers, &path, &context, problems);
        match line.amount() {
            Some(amount) if amount < Decimal::ZERO => problems.push(
                format!("{path}.discount"),
                &context,
                format!(
                    "amount qty × unit_price − discount must be >= 0, got \"{}\" × \"{}\" − \"{}\" = \"{amount}\"",
                    line.qty, line.unit_price, line.discount
                ),
            ),
            Some(amount) => total = total.and_then(|sum| decimal::add(sum, amount)),
            None => {
                problems.push(path.clone(), &context, "amount exceeds the exact range of the arithmetic".to_owned());
                total = None;
            }
        }
    }
    if total.is_none() && problems.is_empty() {
        problems.push(
            "lines",
            "",
            "total amount exceeds the exact range of the arithmetic".to_owned(),
        );
    }
}

/// The member snapshot: id, birthday, bounded programs and tiers.
fn basket_member(member: &Member, problems: &mut Problems) {
    text(
        &member.id,
        TEXT_BYTES_MAX,
        problems,
        "member.id",
        "",
        "member.id",
    );
    if let Some(birthday) = &member.birthday
        && localtime::parse_date(birthday).is_none()
    {
        problems.push(
            "member.birthday",
            "",
            format!("member.birthday must be a date YYYY-MM-DD, got {birthday:?}"),
        );
    }
    count(
        member.programs.len(),
        MEMBER_PROGRAMS_MAX,
        problems,
        "member.programs",
        "",
        "member.programs",
    );
    for (program, entry) in &member.programs {
        text(
            program,
            TEXT_BYTES_MAX,
            problems,
            "member.programs",
            "",
            "member.programs key",
        );
        if let Some(tier) = &entry.tier {
            text(
                tier,
                TEXT_BYTES_MAX,
                problems,
                &format!("member.programs.{program}.tier"),
                "",
                "tier",
            );
        }
    }
}

/// One line's own fields; its number unique among `numbers`.
fn line_fields(
    line: &Line,
    number: u32,
    numbers: &mut BTreeSet<u32>,
    path: &str,
    context: &str,
    problems: &mut Problems,
) {
    if !numbers.insert(number) {
        problems.push(
            format!("{path}.line"),
            context,
            format!("line number {number} repeats an earlier line"),
        );
    }
    text(
        &line.sku,
        TEXT_BYTES_MAX,
        problems,
        &format!("{path}.sku"),
        context,
        "sku",
    );
    if let Some(category) = &line.category {
        text(
            category,
            TEXT_BYTES_MAX,
            problems,
            &format!("{path}.category"),
            context,
            "category",
        );
    }
    let qty_ok = bounded(line.qty, problems, &format!("{path}.qty"), context, "qty");
    if qty_ok && line.qty <= Decimal::ZERO {
        problems.push(
            format!("{path}.qty"),
            context,
            format!("qty must be > 0, got \"{}\"", line.qty),
        );
    }
    at_least(
        line.unit_price,
        Decimal::ZERO,
        "",
        problems,
        &format!("{path}.unit_price"),
        context,
        "unit_price",
    );
    at_least(
        line.discount,
        Decimal::ZERO,
        "",
        problems,
        &format!("{path}.discount"),
        context,
        "discount",
    );
}
