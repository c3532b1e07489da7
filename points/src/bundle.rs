//! The rules bundle (spec §1): the typed model.
//!
//! Only the types and what they mean live here; reading them from text is
//! the job of the layers above (`raw` → `validate` → `parse`, see the crate
//! documentation), so the model never depends on how it is written.

use jiff::civil::{DateTime, Time, Weekday};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize, Serializer};

use crate::decimal::Rounding;
use crate::localtime;

/// A published rules bundle.
///
/// Serializes back to the bundle JSON/TOML shape (decimals as strings; absent
/// options as `null` in JSON, omitted in TOML) and deserializing validates,
/// so a bundle read back is equal to the one written. Decimals are stored
/// normalized (`"2.50"` reads as `2.5`) and rules in evaluation order.
/// The serde forms are meant for self-describing formats (JSON, TOML): the
/// parser reads names such as `rounding` as strings, so a bundle travels
/// between processes as its text, not as postcard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bundle {
    /// Publication number, strictly increasing between bundles.
    pub version: u64,
    /// The programs, in the order quotes list them.
    pub programs: Vec<Program>,
}

/// One loyalty program of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Program {
    /// `[a-z0-9_-]{1,64}`, unique in the bundle.
    pub id: String,
    /// ISO 4217 code (checked as three ASCII capital letters).
    pub currency: String,
    /// Points per 1 currency unit of eligible spend, >= 0.
    pub base_rate: Decimal,
    /// How exact points become whole points.
    pub rounding: Rounding,
    /// Lines in these categories earn nothing at all.
    pub exclude_categories: Vec<String>,
    /// Whether spend paid with points earns base points.
    pub earn_on_redeemed: bool,
    /// Member tiers and their multipliers.
    pub tiers: Vec<Tier>,
    /// Rule groups (`best` / `sum`, optional shared cap).
    pub groups: Vec<Group>,
    /// Promotion rules. Parsing stores them in evaluation order (priority,
    /// then id by bytes), which serializes and parses back unchanged; a
    /// program built or edited in code may hold any order, see
    /// [`Program::evaluation_order`].
    pub rules: Vec<Rule>,
    /// Per-sale and per-member-day caps.
    pub limits: Limits,
    /// Present when the program's points can pay for purchases (spec §6).
    pub redeem: Option<Redeem>,
}

impl Program {
    /// Indices into [`Program::rules`] in evaluation order: `priority`
    /// ascending, then `id` ascending **by bytes** (spec §3.4). Rule ids are
    /// unique in a valid program, so the order is total. Parsed bundles hold
    /// their rules in that order already, which is checked first (O(n)).
    pub fn evaluation_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.rules.len()).collect();
        let key = |index: &usize| {
            let rule = &self.rules[*index];
            (rule.priority, rule.id.as_bytes())
        };
        if !order.is_sorted_by_key(key) {
            order.sort_by(|a, b| key(a).cmp(&key(b)));
        }
        order
    }

    /// The declared tier with this id.
    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|tier| tier.id == id)
    }

    /// The declared group with this id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.id == id)
    }
}

/// A member tier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tier {
    /// Unique in the program.
    pub id: String,
    /// Applied to base points, >= 1.
    pub multiplier: Decimal,
}

/// How the rules of a group combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupMode {
    /// Every rule that applied keeps its points.
    Sum,
    /// Only the rule with the most points keeps them (ties: earlier in evaluation order).
    Best,
}

impl GroupMode {
    /// Parses a bundle spelling.
    pub fn from_name(name: &str) -> Option<GroupMode> {
        match name {
            "sum" => Some(GroupMode::Sum),
            "best" => Some(GroupMode::Best),
            _ => None,
        }
    }
}

/// A group of rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    /// Unique in the program.
    pub id: String,
    /// `sum` or `best`.
    pub mode: GroupMode,
    /// Points shared by the group's rules in evaluation order, >= 0.
    pub cap: Option<i64>,
}

/// What a rule's `value` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `M × base_rate × (value − 1)`: value multiplies the base rate, >= 1.
    Multiplier,
    /// `M × value`: points per currency unit of matched spend.
    PerUnit,
    /// `Q × value`: points per unit of matched quantity.
    PerItem,
    /// `value`: a flat number of points.
    Fixed,
}

impl RuleKind {
    /// Parses a bundle spelling.
    pub fn from_name(name: &str) -> Option<RuleKind> {
        Some(match name {
            "multiplier" => RuleKind::Multiplier,
            "per_unit" => RuleKind::PerUnit,
            "per_item" => RuleKind::PerItem,
            "fixed" => RuleKind::Fixed,
            _ => return None,
        })
    }

    /// The bundle spelling.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Multiplier => "multiplier",
            RuleKind::PerUnit => "per_unit",
            RuleKind::PerItem => "per_item",
            RuleKind::Fixed => "fixed",
        }
    }
}

/// A promotion rule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rule {
    /// Unique in its program.
    pub id: String,
    /// Lower is evaluated first.
    pub priority: i64,
    /// Id of a declared group.
    pub group: Option<String>,
    /// How `value` turns into points.
    pub kind: RuleKind,
    /// >= 1 for `multiplier`, >= 0 otherwise.
    pub value: Decimal,
    /// Which eligible lines the rule looks at.
    #[serde(rename = "match")]
    pub matches: Match,
    /// Time conditions on the sale's local wall clock.
    pub when: When,
    /// Matched eligible amount must be >= this.
    pub min_spend: Option<Decimal>,
    /// The member's tier must be one of these; empty means any (non-members too).
    pub tiers: Vec<String>,
    /// When true, the member's birthday month must be the sale's local month.
    pub birthday: bool,
    /// Most points this rule gives per sale, >= 0.
    pub cap: Option<i64>,
    /// When the rule gives points, no later rule is evaluated.
    pub stop: bool,
}

/// Which lines a rule matches: a line matches if its category is listed
/// **or** its sku is listed; both empty matches every eligible line.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Match {
    /// Line categories.
    pub categories: Vec<String>,
    /// Line skus.
    pub skus: Vec<String>,
}

impl Match {
    /// True when the rule matches every eligible line.
    pub fn is_all(&self) -> bool {
        self.categories.is_empty() && self.skus.is_empty()
    }
}

/// A day of the week as bundles spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    /// Parses a bundle spelling (`mon` … `sun`, lower case only).
    pub fn from_name(name: &str) -> Option<Day> {
        Some(match name {
            "mon" => Day::Mon,
            "tue" => Day::Tue,
            "wed" => Day::Wed,
            "thu" => Day::Thu,
            "fri" => Day::Fri,
            "sat" => Day::Sat,
            "sun" => Day::Sun,
            _ => return None,
        })
    }

    /// The day of a calendar weekday.
    pub fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }
}

/// Time conditions, all on the local wall clock of the basket `time`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct When {
    /// Inclusive start, `YYYY-MM-DDTHH:MM:SS`.
    #[serde(serialize_with = "serialize_datetime")]
    pub from: Option<DateTime>,
    /// Exclusive end; `from < to` when both are present.
    #[serde(serialize_with = "serialize_datetime")]
    pub to: Option<DateTime>,
    /// Days the rule applies on. `None` (absent) is every day. An empty list
    /// is kept distinct and, read literally as "the sale's day is one of
    /// these", matches no day: the spec says "empty counts as absent" for
    /// `tiers` and `match` but not for `days`.
    pub days: Option<Vec<Day>>,
    /// Daily window.
    pub hours: Option<Hours>,
}

/// A daily time window `[start, end)`, same day, `start < end`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hours {
    /// Inclusive, `HH:MM`.
    #[serde(serialize_with = "serialize_time")]
    pub start: Time,
    /// Exclusive, `HH:MM`.
    #[serde(serialize_with = "serialize_time")]
    pub end: Time,
}

/// Caps on what one sale or one member-day earns.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Limits {
    /// Most points one sale may earn in this program, >= 0.
    pub sale_cap: Option<i64>,
    /// Most points one member may earn per local day, >= 0.
    pub member_daily_cap: Option<i64>,
}

/// Redemption settings (spec §6). Every field is required: the spec gives
/// no defaults for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Redeem {
    /// Points that pay 1 currency unit, >= 1.
    pub points_per_unit: i64,
    /// Smallest redemption, >= 0.
    pub min_points: i64,
    /// Redemptions are multiples of this, >= 1.
    pub step: i64,
    /// Largest share of the basket amount points may pay, >= 0.
    pub max_share: Decimal,
    /// Points a register may let a member redeem while its member data is stale, >= 0.
    pub offline_allowance: i64,
}

fn serialize_datetime<S: Serializer>(value: &Option<DateTime>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => s.serialize_some(&localtime::format_local_datetime(value)),
        None => s.serialize_none(),
    }
}

fn serialize_time<S: Serializer>(value: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&localtime::format_hours_minutes(value))
}

impl Bundle {
    /// The program with this id.
    pub fn program(&self, id: &str) -> Option<&Program> {
        self.programs.iter().find(|program| program.id == id)
    }
}

/// `program "main"`: how problems name their program.
pub(crate) fn program_context(id: &str) -> String {
    format!("program {id:?}")
}
