//! Raw documents into the model: every value read, every problem recorded,
//! then the model checked as a whole (`super::bundle`, `super::basket`).

use rust_decimal::Decimal;

use crate::basket::{Basket, Line, Member, MemberProgram, line_context};
use crate::bundle::{
    Bundle, Day, Group, GroupMode, Hours, Limits, Match, Program, Redeem, Rule, RuleKind, Tier,
    When, program_context,
};
use crate::decimal::{self, Rounding};
use crate::error::{Error, Problems};
use crate::localtime;
use crate::raw::{
    DateTimeText, DecText, RawBasket, RawBundle, RawGroup, RawLine, RawMember, RawProgram,
    RawRedeem, RawRule, RawTier, RawWhen,
};

/// Converts one decimal, recording a problem (and returning a harmless
/// placeholder, 1, which satisfies every range) when it does not parse.
fn dec(text: &DecText, problems: &mut Problems, path: &str, context: &str, field: &str) -> Decimal {
    match decimal::parse(&text.0) {
        Ok(value) => value,
        Err(why) => {
            problems.push(path, context, format!("{field} {why}"));
            Decimal::ONE
        }
    }
}

impl TryFrom<RawBundle> for Bundle {
    type Error = Error;

    /// Interprets every value, then validates; all problems of both steps are reported.
    fn try_from(raw: RawBundle) -> Result<Bundle, Error> {
        let mut problems = Problems::default();
        let programs = raw
            .programs
            .into_iter()
            .enumerate()
            .map(|(index, program)| convert_program(program, index, &mut problems))
            .collect();
        let mut bundle = Bundle {
            version: raw.version,
            programs,
        };
        problems.extend(super::bundle(&bundle));
        problems.into_result()?;
        // Store rules in evaluation order, once, so that quoting only checks
        // the order (see `Program::evaluation_order`). Problems above were
        // reported with the written positions.
        for program in &mut bundle.programs {
            program
                .rules
                .sort_by(|a, b| (a.priority, a.id.as_bytes()).cmp(&(b.priority, b.id.as_bytes())));
        }
        Ok(bundle)
    }
}

fn convert_program(raw: RawProgram, index: usize, problems: &mut Problems) -> Program {
    let path = format!("programs[{index}]");
    let context = program_context(&raw.id);
    let base_rate = dec(
        &raw.base_rate,
        problems,
        &format!("{path}.base_rate"),
        &context,
        "base_rate",
    );
    let rounding = convert_rounding(raw.rounding.as_deref(), &path, &context, problems);
    let tiers = convert_tiers(raw.tiers.unwrap_or_default(), &path, &context, problems);
    let groups = convert_groups(raw.groups.unwrap_or_default(), &path, &context, problems);
    let rules = raw
        .rules
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(r, rule)| convert_rule(rule, &format!("{path}.rules[{r}]"), &context, problems))
        .collect();
    let limits = raw.limits.map_or_else(Limits::default, |limits| Limits {
        sale_cap: limits.sale_cap,
        member_daily_cap: limits.member_daily_cap,
    });
    let redeem = raw
        .redeem
        .map(|redeem| convert_redeem(redeem, &path, &context, problems));
    Program {
        id: raw.id,
        currency: raw.currency,
        base_rate,
        rounding,
        exclude_categories: raw.exclude_categories.unwrap_or_default(),
        earn_on_redeemed: raw.earn_on_redeemed.unwrap_or(false),
        tiers,
        groups,
        rules,
        limits,
        redeem,
    }
}

fn convert_rounding(
    name: Option<&str>,
    path: &str,
    context: &str,
    problems: &mut Problems,
) -> Rounding {
    match name {
        None => Rounding::default(),
        Some(name) => Rounding::from_name(name).unwrap_or_else(|| {
            problems.push(
                format!("{path}.rounding"),
                context,
                format!("rounding must be one of floor, ceil, half_up, half_even, got {name:?}"),
            );
            Rounding::default()
        }),
    }
}

fn convert_tiers(
    raw: Vec<RawTier>,
    path: &str,
    context: &str,
    problems: &mut Problems,
) -> Vec<Tier> {
    raw.into_iter()
        .enumerate()
        .map(|(t, tier)| {
            let tier_context = format!("{context}, tier {:?}", tier.id);
            let multiplier = dec(
                &tier.multiplier,
                problems,
                &format!("{path}.tiers[{t}].multiplier"),
                &tier_context,
                "multiplier",
            );
            Tier {
                id: tier.id,
                multiplier,
            }
        })
        .collect()
}

fn convert_groups(
    raw: Vec<RawGroup>,
    path: &str,
    context: &str,
    problems: &mut Problems,
) -> Vec<Group> {
    raw.into_iter()
        .enumerate()
        .map(|(g, group)| {
            let mode = GroupMode::from_name(&group.mode).unwrap_or_else(|| {
                problems.push(
                    format!("{path}.groups[{g}].mode"),
                    &format!("{context}, group {:?}", group.id),
                    format!("mode must be sum or best, got {:?}", group.mode),
                );
                GroupMode::Sum
            });
            Group {
                id: group.id,
                mode,
                cap: group.cap,
            }
        })
        .collect()
}

fn convert_redeem(raw: RawRedeem, path: &str, context: &str, problems: &mut Problems) -> Redeem {
    Redeem {
        points_per_unit: raw.points_per_unit,
        min_points: raw.min_points,
        step: raw.step,
        max_share: dec(
            &raw.max_share,
            problems,
            &format!("{path}.redeem.max_share"),
            context,
            "redeem.max_share",
        ),
        offline_allowance: raw.offline_allowance,
    }
}

fn convert_rule(raw: RawRule, path: &str, program: &str, problems: &mut Problems) -> Rule {
    let context = format!("{program}, rule {:?}", raw.id);
    let kind = RuleKind::from_name(&raw.kind).unwrap_or_else(|| {
        problems.push(
            format!("{path}.kind"),
            &context,
            format!(
                "kind must be one of multiplier, per_unit, per_item, fixed, got {:?}",
                raw.kind
            ),
        );
        // A placeholder whose range (>= 0) is the looser one, so no second
        // problem is invented about `value`.
        RuleKind::Fixed
    });
    let value = dec(
        &raw.value,
        problems,
        &format!("{path}.value"),
        &context,
        "value",
    );
    let min_spend = raw.min_spend.map(|text| {
        dec(
            &text,
            problems,
            &format!("{path}.min_spend"),
            &context,
            "min_spend",
        )
    });
    let matches = raw.matches.map_or_else(Match::default, |m| Match {
        categories: m.categories.unwrap_or_default(),
        skus: m.skus.unwrap_or_default(),
    });
    let when = raw.when.map_or_else(When::default, |when| {
        convert_when(when, path, &context, problems)
    });
    Rule {
        id: raw.id,
        priority: raw.priority.unwrap_or(0),
        group: raw.group,
        kind,
        value,
        matches,
        when,
        min_spend,
        tiers: raw.tiers.unwrap_or_default(),
        birthday: raw.birthday.unwrap_or(false),
        cap: raw.cap,
        stop: raw.stop.unwrap_or(false),
    }
}

fn convert_when(raw: RawWhen, path: &str, context: &str, problems: &mut Problems) -> When {
    let mut datetime = |text: Option<DateTimeText>, field: &str| {
        let text = text?.0;
        let parsed = localtime::parse_local_datetime(&text);
        if parsed.is_none() {
            problems.push(
                format!("{path}.when.{field}"),
                context,
                format!("when.{field} must be a local date-time YYYY-MM-DDTHH:MM:SS, got {text:?}"),
            );
        }
        parsed
    };
    let from = datetime(raw.from, "from");
    let to = datetime(raw.to, "to");
    let days = raw.days.map(|days| {
        days.iter()
            .enumerate()
            .filter_map(|(d, name)| {
                let day = Day::from_name(name);
                if day.is_none() {
                    problems.push(
                        format!("{path}.when.days[{d}]"),
                        context,
                        format!("when.days must be among mon, tue, wed, thu, fri, sat, sun, got {name:?}"),
                    );
                }
                day
            })
            .collect()
    });
    let hours = raw.hours.and_then(|hours| {
        let mut time = |text: &str, field: &str| {
            let parsed = localtime::parse_hours_minutes(text);
            if parsed.is_none() {
                problems.push(
                    format!("{path}.when.hours.{field}"),
                    context,
                    format!("when.hours.{field} must be a time of day HH:MM (00:00 to 23:59), got {text:?}"),
                );
            }
            parsed
        };
        let start = time(&hours.start, "start");
        let end = time(&hours.end, "end");
        Some(Hours { start: start?, end: end? })
    });
    When {
        from,
        to,
        days,
        hours,
    }
}

impl TryFrom<RawBasket> for Basket {
    type Error = Error;

    /// Interprets every decimal, then validates; all problems of both steps are reported.
    fn try_from(raw: RawBasket) -> Result<Basket, Error> {
        let mut problems = Problems::default();
        let paid_with_points = raw.paid_with_points.map_or(Decimal::ZERO, |text| {
            dec(
                &text,
                &mut problems,
                "paid_with_points",
                "",
                "paid_with_points",
            )
        });
        let lines = raw
            .lines
            .into_iter()
            .enumerate()
            .map(|(index, line)| convert_line(line, index, &mut problems))
            .collect();
        let member = raw.member.map(convert_member);
        let basket = Basket {
            sale_id: raw.sale_id,
            time: raw.time,
            member,
            earned_today: raw.earned_today.unwrap_or_default(),
            paid_with_points,
            lines,
        };
        // A line whose decimals could not be read holds placeholders; its
        // amount would be a made-up problem, so it is not reported.
        let unreadable: Vec<String> = problems.paths().map(line_prefix).collect();
        let mut checked = super::basket(&basket);
        checked.retain(|path, message| {
            !(message.starts_with("amount")
                && unreadable
                    .iter()
                    .any(|prefix| path.starts_with(prefix.as_str())))
        });
        problems.extend(checked);
        problems.into_result().map(|()| basket)
    }
}

fn convert_line(raw: RawLine, index: usize, problems: &mut Problems) -> Line {
    let path = format!("lines[{index}]");
    let context = line_context(raw.line, index);
    let mut field =
        |text: &DecText, name: &str| dec(text, problems, &format!("{path}.{name}"), &context, name);
    let qty = field(&raw.qty, "qty");
    let unit_price = field(&raw.unit_price, "unit_price");
    let discount = raw
        .discount
        .as_ref()
        .map_or(Decimal::ZERO, |text| field(text, "discount"));
    Line {
        line: raw.line,
        sku: raw.sku,
        category: raw.category,
        qty,
        unit_price,
        discount,
    }
}

fn convert_member(raw: RawMember) -> Member {
    Member {
        id: raw.id,
        birthday: raw.birthday,
        programs: raw
            .programs
            .into_iter()
            .map(|(program, entry)| (program, MemberProgram { tier: entry.tier }))
            .collect(),
    }
}

/// `lines[3]` of `lines[3].qty`; other paths stay as they are.
fn line_prefix(path: &str) -> String {
    match path.find(']') {
        Some(end) if path.starts_with("lines[") => path[..=end].to_owned(),
        _ => path.to_owned(),
    }
}
