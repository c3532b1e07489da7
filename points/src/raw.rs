//! The documents exactly as written, before their values are interpreted.
//!
//! serde checks the shape here (`deny_unknown_fields`, JSON/TOML types):
//! decimals must be strings, points and counts integers. Names (kind, mode,
//! rounding, days), decimals and times stay strings so that converting them
//! (`validate::convert`, one layer up) can report *every* bad value with its
//! program and rule, instead of serde stopping at the first. Nothing here
//! knows the model.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// What the decimal fields' deserializer says it expects; `parse` looks
/// for it to step over a decimal of the wrong type.
pub(crate) const DECIMAL_EXPECTED: &str = "a decimal as a string";

/// A decimal written as a string. Anything else (a JSON/TOML number in
/// particular) is a shape error: `0.1` as a float is already inexact.
#[derive(Debug)]
pub(crate) struct DecText(pub(crate) String);

impl<'de> Deserialize<'de> for DecText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DecText, D::Error> {
        struct DecVisitor;
        impl Visitor<'_> for DecVisitor {
            type Value = DecText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}, e.g. \"12.34\"", DECIMAL_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<DecText, E> {
                Ok(DecText(value.to_owned()))
            }
        }
        deserializer.deserialize_str(DecVisitor)
    }
}

/// A `when.from`/`when.to` date-time: a string, or in TOML also a native
/// local date-time (`from = 2026-11-01T00:00:00`, unquoted), which TOML
/// users write naturally. Either way it is kept as text and read by the
/// same rule (spec §1: `YYYY-MM-DDTHH:MM:SS`), so both forms mean the same.
#[derive(Debug)]
pub(crate) struct DateTimeText(pub(crate) String);

impl<'de> Deserialize<'de> for DateTimeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DateTimeText, D::Error> {
        struct DateTimeVisitor;
        impl<'de> Visitor<'de> for DateTimeVisitor {
            type Value = DateTimeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a local date-time, e.g. \"2026-11-01T00:00:00\"")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<DateTimeText, E> {
                Ok(DateTimeText(value.to_owned()))
            }
            // toml hands its native date-times to serde as a one-entry map;
            // any other map (a JSON object) is the wrong type.
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<DateTimeText, A::Error> {
                toml::value::Datetime::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|value| DateTimeText(value.to_string()))
                    .map_err(|_| de::Error::invalid_type(de::Unexpected::Map, &self))
            }
        }
        deserializer.deserialize_any(DateTimeVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBundle {
    pub(crate) version: u64,
    pub(crate) programs: Vec<RawProgram>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProgram {
    pub(crate) id: String,
    pub(crate) currency: String,
    pub(crate) base_rate: DecText,
    pub(crate) rounding: Option<String>,
    pub(crate) exclude_categories: Option<Vec<String>>,
    pub(crate) earn_on_redeemed: Option<bool>,
    pub(crate) tiers: Option<Vec<RawTier>>,
    pub(crate) groups: Option<Vec<RawGroup>>,
    pub(crate) rules: Option<Vec<RawRule>>,
    pub(crate) limits: Option<RawLimits>,
    pub(crate) redeem: Option<RawRedeem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTier {
    pub(crate) id: String,
    pub(crate) multiplier: DecText,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub(crate) id: String,
    pub(crate) mode: String,
    pub(crate) cap: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) id: String,
    pub(crate) priority: Option<i64>,
    pub(crate) group: Option<String>,
    pub(crate) kind: String,
    pub(crate) value: DecText,
    #[serde(rename = "match")]
    pub(crate) matches: Option<RawMatch>,
    pub(crate) when: Option<RawWhen>,
    pub(crate) min_spend: Option<DecText>,
    pub(crate) tiers: Option<Vec<String>>,
    pub(crate) birthday: Option<bool>,
    pub(crate) cap: Option<i64>,
    pub(crate) stop: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub(crate) categories: Option<Vec<String>>,
    pub(crate) skus: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWhen {
    pub(crate) from: Option<DateTimeText>,
    pub(crate) to: Option<DateTimeText>,
    pub(crate) days: Option<Vec<String>>,
    pub(crate) hours: Option<RawHours>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHours {
    pub(crate) start: String,
    pub(crate) end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub(crate) sale_cap: Option<i64>,
    pub(crate) member_daily_cap: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedeem {
    pub(crate) points_per_unit: i64,
    pub(crate) min_points: i64,
    pub(crate) step: i64,
    pub(crate) max_share: DecText,
    pub(crate) offline_allowance: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBasket {
    pub(crate) sale_id: Option<String>,
    pub(crate) time: String,
    pub(crate) member: Option<RawMember>,
    pub(crate) earned_today: Option<BTreeMap<String, i64>>,
    pub(crate) paid_with_points: Option<DecText>,
    pub(crate) lines: Vec<RawLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub(crate) id: String,
    pub(crate) birthday: Option<String>,
    pub(crate) programs: BTreeMap<String, RawMemberProgram>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMemberProgram {
    pub(crate) tier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLine {
    pub(crate) line: Option<u32>,
    pub(crate) sku: String,
    pub(crate) category: Option<String>,
    pub(crate) qty: DecText,
    pub(crate) unit_price: DecText,
    pub(crate) discount: Option<DecText>,
}
