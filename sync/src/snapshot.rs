//! The member and catalog snapshot formats of agent spec §2: what
//! `pos-agent import` reads, what `pos-central import-members` /
//! `import-catalog` receive, and the shape of a member in a download. One
//! definition for both sides, so the register and central cannot drift on
//! what a snapshot file means. Strict: unknown fields are refused, prices
//! are decimal strings read as the points spec reads them.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Per-program data of a member in a snapshot or download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberProgramData {
    #[serde(default)]
    pub tier: Option<String>,
    /// At the register: central's available balance when the data was
    /// made. At central (an import): the member's opening balance in the
    /// program, carried over from the system the snapshot comes from;
    /// points applied from ledgers are added to it.
    #[serde(default)]
    pub available: i64,
    /// Central has no pending period in v1, so an import must say 0.
    #[serde(default)]
    pub pending: i64,
}

/// One member of a snapshot (agent spec §2) or of a member download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberData {
    pub id: String,
    #[serde(default)]
    pub cards: Vec<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub birthday: Option<String>,
    #[serde(default)]
    pub blocked: bool,
    /// The programs the member is enrolled in.
    #[serde(default)]
    pub programs: BTreeMap<String, MemberProgramData>,
}

/// `pos-agent import --members FILE`: `{"members": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersSnapshot {
    pub members: Vec<MemberData>,
}

/// One catalog product (agent spec §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(deserialize_with = "pos_points::deserialize_decimal")]
    pub price: Decimal,
}

/// `pos-agent import --catalog FILE`: `{"products": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSnapshot {
    pub products: Vec<Product>,
}
