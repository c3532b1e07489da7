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

/// Most problems listed in one refusal; the rest are counted. A broken
/// million-row file must not turn into a million-line answer.
pub const PROBLEMS_LISTED_MAX: usize = 100;

/// Central's reading of a snapshot: the shared format (`pos_sync::snapshot`,
/// one definition for register and central), then central's own checks,
/// every problem at once with the record and field it concerns.
pub trait CheckedSnapshot: Sized {
    /// Parses JSON strictly (the path of a shape error is named) and
    /// validates.
    fn parse(text: &str) -> Result<Self, CentralError>;
    /// Every problem at once, one per line, records named as in JSON
    /// (`members[3].birthday`).
    fn validate(&self) -> Result<(), CentralError> {
        self.validate_in(&Locate::indexed(Self::ARRAY))
    }
    /// The same, records named by `locate` (a CSV file names lines).
    fn validate_in(&self, locate: &Locate<'_>) -> Result<(), CentralError>;
    /// The JSON array the records are in.
    const ARRAY: &'static str;
}

/// How a problem names the record it is in: `members[3].birthday` for a
/// JSON snapshot, `line 5, birthday` for a CSV one.
pub struct Locate<'a> {
    record: Box<dyn Fn(usize) -> String + 'a>,
    separator: &'static str,
}

impl<'a> Locate<'a> {
    /// Records named by their index in the JSON array `array`.
    pub fn indexed(array: &'static str) -> Locate<'static> {
        Locate {
            record: Box::new(move |i| format!("{array}[{i}]")),
            separator: ".",
        }
    }

    /// Record `i` named by `lines[i]`, the line of the file it starts on.
    pub fn lines(lines: &'a [u64]) -> Locate<'a> {
        Locate {
            record: Box::new(move |i| match lines.get(i) {
                Some(line) => format!("line {line}"),
                None => format!("record {}", i + 1),
            }),
            separator: ", ",
        }
    }

    /// Record `i`.
    pub fn record(&self, i: usize) -> String {
        (self.record)(i)
    }

    /// `field` of record `i`.
    pub fn field(&self, i: usize, field: &str) -> String {
        format!("{}{}{field}", self.record(i), self.separator)
    }
}

/// A member's stored text (id, card, program, tier): first the payment-card
/// guard of `pos-codes` (the register's own, so both sides agree; the
/// message names `path`, never the digits), then [`check_text`].
pub(crate) fn check_member_text(path: &str, text: &str) -> Result<(), String> {
    pos_codes::payment_card::screen_field(path, text).map_err(|e| e.to_string())?;
    check_text(path, text)
}

fn check_text(path: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > TEXT_BYTES_MAX || text.chars().any(char::is_control) {
        return Err(format!(
            "{path}: must be 1 to {TEXT_BYTES_MAX} bytes without control characters, got {text:?}"
        ));
    }
    Ok(())
}

/// `Ok` without problems, else all of them (at most
/// [`PROBLEMS_LISTED_MAX`] listed) as one `Invalid`.
pub(crate) fn finish(mut errors: Vec<String>) -> Result<(), CentralError> {
    if errors.is_empty() {
        return Ok(());
    }
    if errors.len() > PROBLEMS_LISTED_MAX {
        let more = errors.len() - PROBLEMS_LISTED_MAX;
        errors.truncate(PROBLEMS_LISTED_MAX);
        errors.push(format!("... and {more} more problems"));
    }
    Err(CentralError::Invalid(errors.join("\n")))
}

/// Reads a JSON body, naming the path of the first problem.
fn parse_json<'a, T: Deserialize<'a>>(what: &str, text: &'a str) -> Result<T, CentralError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| CentralError::Invalid(format!("{what}: {}: {}", e.path(), e.inner())))
}

impl CheckedSnapshot for MembersSnapshot {
    const ARRAY: &'static str = "members";

    fn parse(text: &str) -> Result<MembersSnapshot, CentralError> {
        let snapshot: MembersSnapshot = parse_json("members snapshot", text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    fn validate_in(&self, locate: &Locate<'_>) -> Result<(), CentralError> {
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
            let id_at = locate.field(i, "id");
            if let Err(e) = check_member_text(&id_at, &m.id) {
                errors.push(e);
            } else if let Some(first) = ids.insert(&m.id, i) {
                errors.push(format!(
                    "{id_at}: {:?} repeats {}",
                    m.id,
                    locate.record(first)
                ));
            }
            if m.cards.len() > CARDS_PER_MEMBER_MAX {
                errors.push(format!(
                    "{}: {} cards is over the limit of {CARDS_PER_MEMBER_MAX}",
                    locate.field(i, "cards"),
                    m.cards.len()
                ));
            }
            check_cards(m, i, locate, &mut cards, &mut errors);
            if let Some(b) = &m.birthday
                && b.parse::<jiff::civil::Date>().is_err()
            {
                errors.push(format!(
                    "{}: {b:?} is not a date YYYY-MM-DD",
                    locate.field(i, "birthday")
                ));
            }
            check_programs(m, i, locate, &mut errors);
        }
        finish(errors)
    }
}

/// A member's cards: none a payment card, each well formed and nobody
/// else's (`cards` holds those seen so far, with their member's index).
fn check_cards<'a>(
    m: &'a MemberData,
    i: usize,
    locate: &Locate<'_>,
    cards: &mut HashMap<&'a str, usize>,
    errors: &mut Vec<String>,
) {
    for (c, card) in m.cards.iter().enumerate() {
        let card_at = locate.field(i, &format!("cards[{c}]"));
        if let Err(e) = check_member_text(&card_at, card) {
            // A card number is never echoed, by this or a later message.
            errors.push(e);
            continue;
        }
        if let Some(first) = cards.insert(card, i) {
            errors.push(format!(
                "{card_at}: card {card:?} is already {}'s",
                locate.record(first)
            ));
        }
    }
}

/// A member's programs: well-formed ids and tiers, nothing pending.
fn check_programs(m: &MemberData, i: usize, locate: &Locate<'_>, errors: &mut Vec<String>) {
    for (program, p) in &m.programs {
        // The program id is part of the path of every message about it.
        if let Err(e) = check_member_text(&locate.field(i, "programs"), program) {
            errors.push(e);
            continue;
        }
        let at = locate.field(i, &format!("programs.{program}"));
        if let Some(t) = &p.tier
            && let Err(e) = check_member_text(&format!("{at}.tier"), t)
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

impl CheckedSnapshot for CatalogSnapshot {
    const ARRAY: &'static str = "products";

    fn parse(text: &str) -> Result<CatalogSnapshot, CentralError> {
        let snapshot: CatalogSnapshot = parse_json("catalog snapshot", text)?;
        snapshot.validate()?;
        Ok(snapshot)
    }

    fn validate_in(&self, locate: &Locate<'_>) -> Result<(), CentralError> {
        let mut errors = Vec::new();
        if self.products.len() > RECORDS_MAX {
            errors.push(format!(
                "products: {} records is over the limit of {RECORDS_MAX}",
                self.products.len()
            ));
        }
        let mut skus: HashMap<&str, usize> = HashMap::new();
        for (i, p) in self.products.iter().enumerate() {
            for (field, text) in [("sku", &p.sku), ("name", &p.name)] {
                if let Err(e) = check_text(&locate.field(i, field), text) {
                    errors.push(e);
                }
            }
            if let Some(c) = &p.category
                && let Err(e) = check_text(&locate.field(i, "category"), c)
            {
                errors.push(e);
            }
            if let Some(first) = skus.insert(&p.sku, i) {
                errors.push(format!(
                    "{}: {:?} repeats {}",
                    locate.field(i, "sku"),
                    p.sku,
                    locate.record(first)
                ));
            }
            if p.price.is_sign_negative() {
                errors.push(format!(
                    "{}: must be >= 0, got \"{}\"",
                    locate.field(i, "price"),
                    p.price
                ));
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

    /// Issue 10: a card number as id, card or tier, grouped any way, is
    /// refused by field and never echoed; honest cards and tiers pass.
    #[test]
    fn payment_card_numbers_are_refused_in_every_member_field() {
        for (member, field) in [
            (r#"{"id": "4111.1111.1111.1111"}"#, "members[0].id"),
            (
                r#"{"id": "M-1", "cards": ["04111111111111111"]}"#,
                "members[0].cards[0]",
            ),
            (
                r#"{"id": "M-1", "programs": {"main": {"tier": "4111_1111_1111_1111", "available": 0, "pending": 0}}}"#,
                "members[0].programs.main.tier",
            ),
            (
                r#"{"id": "M-1", "programs": {"4111-1111-1111-1111": {"available": 0, "pending": 0}}}"#,
                "members[0].programs",
            ),
        ] {
            let err = MembersSnapshot::parse(&format!(r#"{{"members": [{member}]}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{field}: holds a payment card")),
                "{err}"
            );
            assert!(!err.contains("1111"), "{err}");
        }
        MembersSnapshot::parse(
            r#"{"members": [{"id": "M-1001", "cards": ["9990000010013", "4006381333931"],
              "programs": {"main": {"tier": "gold", "available": 1, "pending": 0}}}]}"#,
        )
        .unwrap();
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
