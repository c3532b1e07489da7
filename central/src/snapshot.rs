//! Member and catalog snapshots (agent spec §2 `import` formats), as the
//! admin API receives them. Parsed strictly (unknown fields refused) and
//! validated with errors that name the record and field.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::CentralError;

/// Longest member id, card token, sku, name or category accepted.
pub const TEXT_BYTES_MAX: usize = 256;
/// Most members or products in one import.
pub const RECORDS_MAX: usize = 1_000_000;
/// Most cards per member.
pub const CARDS_PER_MEMBER_MAX: usize = 64;

pub use pos_sync::snapshot::{
    CatalogSnapshot, MemberData, MemberProgramData, MembersSnapshot, Product,
};

/// Central's reading of a snapshot: the shared format (`pos_sync::snapshot`,
/// one definition for register and central), then central's own checks,
/// every problem at once with the record and field it concerns.
pub trait CheckedSnapshot: Sized {
    /// Parses strictly (the path of a shape error is named) and validates.
    fn parse(text: &str) -> Result<Self, CentralError>;
    /// Every problem at once, one per line.
    fn validate(&self) -> Result<(), CentralError>;
}

fn check_text(path: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > TEXT_BYTES_MAX || text.chars().any(char::is_control) {
        return Err(format!(
            "{path}: must be 1 to {TEXT_BYTES_MAX} bytes without control characters, got {text:?}"
        ));
    }
    Ok(())
}

fn finish(errors: Vec<String>) -> Result<(), CentralError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CentralError::Invalid(errors.join("\n")))
    }
}

/// Reads a JSON body, naming the path of the first problem.
fn parse_json<'a, T: Deserialize<'a>>(what: &str, text: &'a str) -> Result<T, CentralError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| CentralError::Invalid(format!("{what}: {}: {}", e.path(), e.inner())))
}

impl CheckedSnapshot for MembersSnapshot {
    fn parse(text: &str) -> Result<MembersSnapshot, CentralError> {
        let snapshot: MembersSnapshot = parse_json("members snapshot", text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    fn validate(&self) -> Result<(), CentralError> {
        let mut errors = Vec::new();
        if self.members.len() > RECORDS_MAX {
            errors.push(format!(
                "members: {} records is over the limit of {RECORDS_MAX}",
                self.members.len()
            ));
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut cards: HashMap<&str, usize> = HashMap::new();
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("members[{i}]");
            if crate::guard::is_payment_card(&m.id) {
                errors.push(format!("{at}.id: {}", crate::guard::PAYMENT_CARD_REASON));
            } else if let Err(e) = check_text(&format!("{at}.id"), &m.id) {
                errors.push(e);
            }
            if let Some(first) = ids.insert(&m.id, i) {
                errors.push(format!("{at}.id: {:?} repeats members[{first}]", m.id));
            }
            if m.cards.len() > CARDS_PER_MEMBER_MAX {
                errors.push(format!(
                    "{at}.cards: {} cards is over the limit of {CARDS_PER_MEMBER_MAX}",
                    m.cards.len()
                ));
            }
            for (c, card) in m.cards.iter().enumerate() {
                if crate::guard::is_payment_card(card) {
                    // Checked first, and never echoed: the number must not
                    // reach a log or an answer either.
                    errors.push(format!(
                        "{at}.cards[{c}]: {}",
                        crate::guard::PAYMENT_CARD_REASON
                    ));
                    continue;
                }
                if let Err(e) = check_text(&format!("{at}.cards[{c}]"), card) {
                    errors.push(e);
                }
                if let Some(first) = cards.insert(card, i) {
                    errors.push(format!(
                        "{at}.cards[{c}]: card {card:?} is already members[{first}]'s"
                    ));
                }
            }
            if let Some(b) = &m.birthday
                && b.parse::<jiff::civil::Date>().is_err()
            {
                errors.push(format!("{at}.birthday: {b:?} is not a date YYYY-MM-DD"));
            }
            for (program, p) in &m.programs {
                let at = format!("{at}.programs.{program}");
                if let Err(e) = check_text(&at, program) {
                    errors.push(e);
                }
                if let Some(t) = &p.tier
                    && let Err(e) = check_text(&format!("{at}.tier"), t)
                {
                    errors.push(e);
                }
                if p.pending != 0 {
                    errors.push(format!(
                        "{at}.pending: must be 0 (no pending period in v1), got {}",
                        p.pending
                    ));
                }
            }
        }
        finish(errors)
    }
}

impl CheckedSnapshot for CatalogSnapshot {
    fn parse(text: &str) -> Result<CatalogSnapshot, CentralError> {
        let snapshot: CatalogSnapshot = parse_json("catalog snapshot", text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    fn validate(&self) -> Result<(), CentralError> {
        let mut errors = Vec::new();
        if self.products.len() > RECORDS_MAX {
            errors.push(format!(
                "products: {} records is over the limit of {RECORDS_MAX}",
                self.products.len()
            ));
        }
        let mut skus: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.products.iter().enumerate() {
            let at = format!("products[{i}]");
            for (field, text) in [("sku", &p.sku), ("name", &p.name)] {
                if let Err(e) = check_text(&format!("{at}.{field}"), text) {
                    errors.push(e);
                }
            }
            if let Some(c) = &p.category
                && let Err(e) = check_text(&format!("{at}.category"), c)
            {
                errors.push(e);
            }
            if let Some(first) = skus.insert(&p.sku, i) {
                errors.push(format!("{at}.sku: {:?} repeats products[{first}]", p.sku));
            }
            if p.price.is_sign_negative() {
                errors.push(format!("{at}.price: must be >= 0, got \"{}\"", p.price));
            }
        }
        finish(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_spec_examples_parse() {
        let m = MembersSnapshot::parse(
            r#"{"members": [{"id": "M-1001", "cards": ["9990000010013"], "birthday": "1990-11-03",
              "blocked": false,
              "programs": {"main": {"tier": "gold", "available": 1500, "pending": 0}}}]}"#,
        )
        .unwrap();
        assert_eq!(m.members[0].programs["main"].available, 1500);
        let c = CatalogSnapshot::parse(
            r#"{"products": [{"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"}]}"#,
        )
        .unwrap();
        assert_eq!(c.products[0].price.to_string(), "59.99");
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let err = MembersSnapshot::parse(
            r#"{"members": [{"id": "A", "cards": ["1"]}, {"id": "B", "cards": ["1"], "birthday": "11/03"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("members[1].cards[0]"), "{err}");
        assert!(err.contains("members[1].birthday"), "{err}");

        let err =
            CatalogSnapshot::parse(r#"{"products": [{"sku": "1", "name": "x", "price": 5}]}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("products[0].price"), "{err}");

        let err = CatalogSnapshot::parse(
            r#"{"products": [{"sku": "1", "name": "x", "price": "1", "colour": "red"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
