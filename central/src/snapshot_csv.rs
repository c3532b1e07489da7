//! Member and catalog snapshots as CSV: the second import format of sync
//! spec §5 ("the agent spec's `import` formats, or CSV"). The spec names no
//! columns, so these are ours (README, "Central"); they carry exactly what
//! the JSON snapshot carries, and the same checks apply to both.
//!
//! - One header line names the columns, in any order. An unknown or repeated
//!   column is refused; so is a missing required one.
//! - Members: `id` (required), `cards` (card tokens separated by spaces),
//!   `birthday` (`YYYY-MM-DD`), `blocked` (`true`/`false`, empty is false),
//!   `program`, `tier`, `available`, `pending` (integers, empty is 0). One
//!   row per member and program; a member in several programs has several
//!   rows, which must agree on cards, birthday and blocked. A row with an
//!   empty `program` adds a member enrolled in nothing (or nothing more).
//! - Products: `sku`, `name`, `price` (required; the price a decimal string
//!   like `59.99`), `category`.
//!
//! Fields are trimmed (spreadsheet exports pad them), quoted with `"` when
//! they hold commas. Every problem names its line, and all are listed at once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::error::CentralError;
use crate::snapshot::{
    CatalogSnapshot, CheckedSnapshot, Locate, MemberData, MemberProgramData, MembersSnapshot,
    Product, finish,
};

/// Columns of a members CSV; `id` is required.
pub const MEMBER_COLUMNS: [&str; 8] = [
    "id",
    "cards",
    "birthday",
    "blocked",
    "program",
    "tier",
    "available",
    "pending",
];
/// Columns of a catalog CSV; all but `category` are required.
pub const PRODUCT_COLUMNS: [&str; 4] = ["sku", "name", "category", "price"];

/// A members snapshot from CSV, validated as a JSON one is.
pub fn members(text: &str) -> Result<MembersSnapshot, CentralError> {
    read_members(text).map_err(|e| in_file("members", e))
}

/// A catalog snapshot from CSV, validated as a JSON one is.
pub fn catalog(text: &str) -> Result<CatalogSnapshot, CentralError> {
    read_catalog(text).map_err(|e| in_file("catalog", e))
}

/// Says which kind of file a refusal is about.
fn in_file(what: &str, error: CentralError) -> CentralError {
    match error {
        CentralError::Invalid(message) => CentralError::Invalid(format!("{what} CSV: {message}")),
        other => other,
    }
}

fn read_members(text: &str) -> Result<MembersSnapshot, CentralError> {
    let mut rows = Rows::read(text, &MEMBER_COLUMNS, &["id"])?;
    let mut acc = MemberRows::default();
    let mut errors = Vec::new();
    while let Some(row) = rows.next_row(&mut errors) {
        let Some(member) = member_of_row(&row, &mut errors) else {
            continue;
        };
        let index = acc.merge(member, row.line, &mut errors);
        acc.add_program(&row, index, &mut errors);
    }
    finish(errors)?;
    let snapshot = MembersSnapshot {
        members: acc.members,
    };
    snapshot.validate_in(&Locate::lines(&acc.first_lines))?;
    Ok(snapshot)
}

/// The member a row names, without its program; None (with the error
/// noted) when its id is empty or a payment card.
fn member_of_row(row: &Row<'_>, errors: &mut Vec<String>) -> Option<MemberData> {
    let line = row.line;
    let id = row.get("id").to_string();
    if id.is_empty() {
        errors.push(format!("line {line}, id: empty"));
        return None;
    }
    // Checked before any message can quote them, and never echoed.
    let cards = row.get("cards");
    let clean = [
        screened(line, "id", &id, errors),
        screened(line, "cards", cards_as_screened(cards), errors),
        screened(line, "tier", row.get("tier"), errors),
        screened(line, "program", row.get("program"), errors),
    ];
    if clean.contains(&false) {
        return None;
    }
    Some(MemberData {
        id,
        cards: row
            .get("cards")
            .split_whitespace()
            .map(String::from)
            .collect(),
        birthday: Some(row.get("birthday"))
            .filter(|b| !b.is_empty())
            .map(String::from),
        blocked: match row.get("blocked") {
            "" | "false" => false,
            "true" => true,
            other => {
                errors.push(format!(
                    "line {line}, blocked: must be true or false, got {other:?}"
                ));
                false
            }
        },
        programs: Default::default(),
    })
}

/// Screens `value` of `column` on `line` with the payment-card guard; false
/// (with the error noted, naming the place but not the digits) on a hit.
fn screened(line: u64, column: &str, value: &str, errors: &mut Vec<String>) -> bool {
    match pos_codes::payment_card::screen_field(&format!("line {line}, {column}"), value) {
        Ok(()) => true,
        Err(e) => {
            errors.push(e.to_string());
            false
        }
    }
}

/// What of a `cards` cell the guard reads: the whole cell when any token is
/// shorter than a card number, so that `4111 1111 1111 1111` (a number the
/// space-separated list would cut into four "cards") is seen whole; else
/// nothing more than each card, which [`crate::snapshot`] screens one by
/// one (two honest 13-digit cards side by side are not one number).
fn cards_as_screened(cards: &str) -> &str {
    let short = cards
        .split_whitespace()
        .any(|card| card.len() < pos_codes::payment_card::PAN_DIGITS_MIN);
    if short { cards } else { "" }
}

/// Members read so far: one per id, whatever number of rows (one per
/// program) it spans.
#[derive(Default)]
struct MemberRows {
    members: Vec<MemberData>,
    /// The line each member first appeared on, by index.
    first_lines: Vec<u64>,
    by_id: HashMap<String, usize>,
    /// (member index, program) → the line it was given on.
    programs: HashMap<(usize, String), u64>,
}

impl MemberRows {
    /// The index of `member`, added when new; a later row of the same id
    /// must agree on cards, birthday and blocked.
    fn merge(&mut self, member: MemberData, line: u64, errors: &mut Vec<String>) -> usize {
        let index = match self.by_id.entry(member.id.clone()) {
            Entry::Vacant(vacant) => {
                vacant.insert(self.members.len());
                self.members.push(member);
                self.first_lines.push(line);
                return self.members.len() - 1;
            }
            Entry::Occupied(occupied) => *occupied.get(),
        };
        let first = &self.members[index];
        let differs = if first.cards != member.cards {
            Some("cards")
        } else if first.birthday != member.birthday {
            Some("birthday")
        } else if first.blocked != member.blocked {
            Some("blocked")
        } else {
            None
        };
        if let Some(field) = differs {
            errors.push(format!(
                "line {line}, {field}: differs from line {} for member {:?}; \
                 every row of a member must agree on cards, birthday and blocked",
                self.first_lines[index], member.id
            ));
        }
        index
    }

    /// The row's program, if it names one, for the member at `index`.
    fn add_program(&mut self, row: &Row<'_>, index: usize, errors: &mut Vec<String>) {
        let line = row.line;
        let program = row.get("program");
        if program.is_empty() {
            for column in ["tier", "available", "pending"] {
                if !row.get(column).is_empty() {
                    errors.push(format!("line {line}, {column}: given without a program"));
                }
            }
            return;
        }
        if let Some(first) = self.programs.insert((index, program.to_string()), line) {
            let id = &self.members[index].id;
            errors.push(format!(
                "line {line}, program: {program:?} again for member {id:?} (first on line {first})"
            ));
            return;
        }
        let data = MemberProgramData {
            tier: Some(row.get("tier"))
                .filter(|t| !t.is_empty())
                .map(String::from),
            available: row.integer("available", errors),
            pending: row.integer("pending", errors),
        };
        self.members[index]
            .programs
            .insert(program.to_string(), data);
    }
}

fn read_catalog(text: &str) -> Result<CatalogSnapshot, CentralError> {
    let mut rows = Rows::read(text, &PRODUCT_COLUMNS, &["sku", "name", "price"])?;
    let mut products = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    while let Some(row) = rows.next_row(&mut errors) {
        let price = match pos_points::parse_decimal(row.get("price")) {
            Ok(price) => price,
            Err(e) => {
                errors.push(format!("line {}, price: {e}", row.line));
                continue;
            }
        };
        products.push(Product {
            sku: row.get("sku").to_string(),
            name: row.get("name").to_string(),
            category: Some(row.get("category"))
                .filter(|c| !c.is_empty())
                .map(String::from),
            price,
        });
        lines.push(row.line);
    }
    finish(errors)?;
    let snapshot = CatalogSnapshot { products };
    snapshot.validate_in(&Locate::lines(&lines))?;
    Ok(snapshot)
}

/// The rows of a CSV text under its checked header.
struct Rows<'a> {
    reader: csv::Reader<&'a [u8]>,
    /// Position of each known column in a row; `None` when not in the file.
    columns: HashMap<&'static str, Option<usize>>,
    record: csv::StringRecord,
}

/// One row: its fields by column name, and the line it starts on.
struct Row<'r> {
    line: u64,
    record: &'r csv::StringRecord,
    columns: &'r HashMap<&'static str, Option<usize>>,
}

impl<'a> Rows<'a> {
    /// Reads and checks the header: every column known and named once,
    /// every `required` one present.
    fn read(
        text: &'a str,
        known: &[&'static str],
        required: &[&str],
    ) -> Result<Rows<'a>, CentralError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| CentralError::Invalid(csv_problem(&e)))?
            .clone();
        let mut columns: HashMap<&'static str, Option<usize>> =
            known.iter().map(|c| (*c, None)).collect();
        let mut errors = Vec::new();
        for (at, name) in header.iter().enumerate() {
            match known.iter().find(|k| **k == name) {
                None => errors.push(format!(
                    "line 1: unknown column {name:?}; the columns are {}",
                    known.join(", ")
                )),
                Some(known) => {
                    if columns.insert(known, Some(at)).flatten().is_some() {
                        errors.push(format!("line 1: column {name:?} named twice"));
                    }
                }
            }
        }
        for name in required {
            if columns.get(name).copied().flatten().is_none() {
                errors.push(format!("line 1: no column {name:?}, which is required"));
            }
        }
        finish(errors)?;
        Ok(Rows {
            reader,
            columns,
            record: csv::StringRecord::new(),
        })
    }

    /// The next row, or `None` at the end or at a row the reader cannot
    /// read (its problem is added to `errors`; the rest of the file is
    /// not trusted after it).
    fn next_row(&mut self, errors: &mut Vec<String>) -> Option<Row<'_>> {
        match self.reader.read_record(&mut self.record) {
            Ok(true) => Some(Row {
                line: self.record.position().map_or(0, csv::Position::line),
                record: &self.record,
                columns: &self.columns,
            }),
            Ok(false) => None,
            Err(e) => {
                errors.push(csv_problem(&e));
                None
            }
        }
    }
}

impl Row<'_> {
    /// The field of `column`, empty when the file has no such column.
    fn get(&self, column: &str) -> &str {
        self.columns
            .get(column)
            .copied()
            .flatten()
            .and_then(|at| self.record.get(at))
            .unwrap_or("")
    }

    /// The field of `column` as an integer; empty is 0.
    fn integer(&self, column: &str, errors: &mut Vec<String>) -> i64 {
        let text = self.get(column);
        if text.is_empty() {
            return 0;
        }
        text.parse().unwrap_or_else(|_| {
            errors.push(format!(
                "line {}, {column}: must be a whole number, got {text:?}",
                self.line
            ));
            0
        })
    }
}

/// A reader error as "line N: what".
fn csv_problem(error: &csv::Error) -> String {
    let line = error.position().map_or(0, csv::Position::line);
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("line {line}: {len} fields, but the header has {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => format!("line {line}: not UTF-8 text"),
        _ => format!("line {line}: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: &str = "\
id,cards,birthday,blocked,program,tier,available,pending
M-1001,9990000010013,1990-11-03,false,main,gold,1500,0
M-1001,9990000010013,1990-11-03,false,coffee,,20,
M-1002, 9990000010020 9990000010037 ,,true,,,,
";

    fn refusal(result: Result<impl std::fmt::Debug, CentralError>) -> String {
        match result {
            Err(CentralError::Invalid(message)) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_members_csv_means_what_the_json_snapshot_means() {
        let from_csv = members(MEMBERS).unwrap();
        let from_json = MembersSnapshot::parse(
            r#"{"members": [
              {"id": "M-1001", "cards": ["9990000010013"], "birthday": "1990-11-03",
               "programs": {"main": {"tier": "gold", "available": 1500, "pending": 0},
                            "coffee": {"available": 20}}},
              {"id": "M-1002", "cards": ["9990000010020", "9990000010037"], "blocked": true}]}"#,
        )
        .unwrap();
        assert_eq!(from_csv, from_json);
    }

    #[test]
    fn columns_come_in_any_order_and_only_id_is_required() {
        let m = members("program,id,available\nmain,M-1,7\n,M-2,\n").unwrap();
        assert_eq!(m.members.len(), 2);
        assert_eq!(m.members[0].programs["main"].available, 7);
        assert!(m.members[1].programs.is_empty());
    }

    #[test]
    fn a_spreadsheet_export_with_bom_and_crlf_reads_the_same() {
        let exported = format!("\u{feff}{}", MEMBERS.replace('\n', "\r\n"));
        assert_eq!(members(&exported).unwrap(), members(MEMBERS).unwrap());
    }

    #[test]
    fn blank_lines_are_not_rows() {
        let m = members("id,program\n\nM-1,main\n\n\n").unwrap();
        assert_eq!(m.members.len(), 1);
    }

    #[test]
    fn a_catalog_csv_means_what_the_json_snapshot_means() {
        let from_csv = catalog(
            "sku,name,category,price\n4006381333931,Trail shoe,shoes,59.99\n\
             4006381333948,\"Socks, wool\",,4.99\n",
        )
        .unwrap();
        let from_json = CatalogSnapshot::parse(
            r#"{"products": [
              {"sku": "4006381333931", "name": "Trail shoe", "category": "shoes", "price": "59.99"},
              {"sku": "4006381333948", "name": "Socks, wool", "price": "4.99"}]}"#,
        )
        .unwrap();
        assert_eq!(from_csv, from_json);
    }

    #[test]
    fn a_bad_header_is_refused_naming_every_column_problem() {
        let message = refusal(members("id,id,colour\n"));
        assert!(message.contains("unknown column \"colour\""), "{message}");
        assert!(message.contains("column \"id\" named twice"), "{message}");
        let message = refusal(catalog("sku,name\n"));
        assert!(message.contains("no column \"price\""), "{message}");
    }

    #[test]
    fn every_row_problem_is_named_by_its_line() {
        let message = refusal(members(
            "id,cards,blocked,program,available\n\
             M-1,111,false,main,12x\n\
             M-1,222,false,coffee,1\n\
             M-1,111,false,main,1\n\
             M-2,,maybe,,\n\
             ,,,,\n",
        ));
        for expected in [
            "line 2, available: must be a whole number, got \"12x\"",
            "line 3, cards: differs from line 2 for member \"M-1\"",
            "line 4, program: \"main\" again for member \"M-1\" (first on line 2)",
            "line 5, blocked: must be true or false, got \"maybe\"",
            "line 6, id: empty",
        ] {
            assert!(
                message.contains(expected),
                "{expected:?} not in:\n{message}"
            );
        }
    }

    #[test]
    fn content_checks_name_the_members_first_line() {
        let message = refusal(members(
            "id,birthday,program,pending\nM-1,1990-01-01,main,0\nM-2,11/03,main,5\nM-1,,coffee,\n",
        ));
        // Rows that do not read (line 4's birthday differs from line 2's)
        // are reported first; the content is checked once every row reads.
        assert!(
            message.contains("line 4, birthday: differs from line 2"),
            "{message}"
        );
        let message = refusal(members("id,birthday,program,pending\nM-2,11/03,main,5\n"));
        assert!(
            message.contains("line 2, birthday: \"11/03\" is not a date"),
            "{message}"
        );
        assert!(
            message.contains("line 2, programs.main.pending: must be 0"),
            "{message}"
        );
    }

    #[test]
    fn a_row_with_a_missing_field_is_refused() {
        let message = refusal(catalog("sku,name,price\n1,Shoe\n"));
        assert!(
            message.contains("line 2: 2 fields, but the header has 3"),
            "{message}"
        );
        let message = refusal(catalog("sku,name,price\n1,Shoe,12.3.4\n"));
        assert!(
            message.contains("line 2, price: is not a decimal string"),
            "{message}"
        );
    }

    #[test]
    fn payment_card_numbers_are_refused_without_being_echoed() {
        const PAN: &str = "4111111111111111";
        let message = refusal(members(&format!("id,cards\nM-1,{PAN}\n")));
        assert!(message.contains("line 2, cards[0]"), "{message}");
        assert!(!message.contains(PAN), "{message}");
        // As a member id, on rows that would otherwise be quoted in errors.
        let message = refusal(members(&format!(
            "id,cards,program\n{PAN},1,main\n{PAN},2,main\n"
        )));
        assert!(message.contains("line 2, id: "), "{message}");
        assert!(message.contains("line 3, id: "), "{message}");
        assert!(!message.contains(PAN), "{message}");
    }

    /// Issue 10: grouped with spaces (which the cards column splits on), as
    /// a tier or as a program, a card number is still refused and not echoed.
    #[test]
    fn grouped_card_numbers_are_refused_in_every_column() {
        for (csv, place) in [
            ("id,cards\nM-1,4111 1111 1111 1111\n", "line 2, cards: "),
            ("id,cards\nM-1,4111.1111.1111.1111\n", "line 2, cards[0]: "),
            (
                "id,program,tier\nM-1,main,04111111111111111\n",
                "line 2, tier: ",
            ),
            ("id,program\nM-1,4111_1111_1111_1111\n", "line 2, program: "),
        ] {
            let message = refusal(members(csv));
            assert!(message.contains(place), "{message}");
            assert!(!message.contains("1111"), "{message}");
        }
        let ok = members("id,cards,program,tier\nM-1,9990000010013 9990000010020,main,gold\n");
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn problems_beyond_the_listed_maximum_are_counted() {
        let mut text = String::from("id,available,program\n");
        for i in 0..150 {
            text.push_str(&format!("M-{i},x,main\n"));
        }
        let message = refusal(members(&text));
        assert!(
            message.starts_with("members CSV: line 2, available"),
            "{message}"
        );
        assert_eq!(
            message.lines().count(),
            crate::snapshot::PROBLEMS_LISTED_MAX + 1
        );
        assert!(message.ends_with("... and 50 more problems"), "{message}");
    }
}
