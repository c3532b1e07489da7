//! `[cards]` and `[[variable_measure]]`.

use crate::common::*;
use pos_config::{Measure, VariableMeasure};

#[test]
fn card_prefixes_are_read() {
    let text = format!(
        "{MINIMAL}[cards]\nloyalty_prefixes = [\"999\", \"2400\"]\ntrack_prefixes = [\"6009\"]\n"
    );
    let cards = parse_ok(&text).cards;
    assert_eq!(cards.loyalty_prefixes, vec!["999", "2400"]);
    assert_eq!(cards.track_prefixes, vec!["6009"]);
}

#[test]
fn card_prefixes_must_be_1_to_12_digits() {
    for bad in ["", "99a", "1234567890123", " 999"] {
        let text = format!("{MINIMAL}[cards]\nloyalty_prefixes = [\"999\", \"{bad}\"]\n");
        assert_problem(
            &text,
            "loyalty_prefixes",
            "[cards] loyalty_prefixes",
            "entry 2 must be 1 to 12 digits",
        );
    }
    let text = format!("{MINIMAL}[cards]\ntrack_prefixes = [\"x\"]\n");
    assert_problem(
        &text,
        "track_prefixes",
        "[cards] track_prefixes",
        "entry 1 must be 1 to 12 digits",
    );
}

#[test]
fn card_prefix_lists_are_bounded() {
    let many: Vec<String> = (0..=pos_config::PREFIXES_MAX)
        .map(|i| format!("\"{i}\""))
        .collect();
    let text = format!(
        "{MINIMAL}[cards]\nloyalty_prefixes = [{}]\n",
        many.join(", ")
    );
    assert_problem(
        &text,
        "loyalty_prefixes",
        "[cards] loyalty_prefixes",
        "at most 32 prefixes, got 33",
    );
}

fn layout(body: &str) -> String {
    format!("{MINIMAL}\n[[variable_measure]]\n{body}")
}

const PRICE_21: &str =
    "prefix = \"21\"\nitem_digits = 5\nvalue = \"price\"\nvalue_digits = 5\ndecimals = 2\n";

#[test]
fn variable_measure_layouts_are_read() {
    let text = format!(
        "{}\n[[variable_measure]]\nprefix = \"28\"\nitem_digits = 5\nvalue = \"weight\"\n\
         value_digits = 4\ndecimals = 3\nvalue_check_digit = true\n",
        layout(PRICE_21)
    );
    let layouts = parse_ok(&text).variable_measure;
    assert_eq!(
        layouts,
        vec![
            VariableMeasure {
                prefix: "21".into(),
                item_digits: 5,
                value: Measure::Price,
                value_digits: 5,
                decimals: 2,
                value_check_digit: false,
            },
            VariableMeasure {
                prefix: "28".into(),
                item_digits: 5,
                value: Measure::Weight,
                value_digits: 4,
                decimals: 3,
                value_check_digit: true,
            },
        ]
    );
    parse_ok(&layout(&PRICE_21.replace("\"21\"", "\"02\"")));
}

#[test]
fn variable_measure_prefix_is_in_store() {
    for bad in ["30", "2", "210", "2a", "01"] {
        let text = layout(&PRICE_21.replace("\"21\"", &format!("\"{bad}\"")));
        assert_problem(
            &text,
            "prefix",
            "[[variable_measure]] #1 prefix",
            "must be \"02\" or \"20\" to \"29\"",
        );
    }
}

#[test]
fn variable_measure_layout_must_fill_an_ean13() {
    let text = layout(&PRICE_21.replace("value_digits = 5", "value_digits = 4"));
    assert_problem(
        &text,
        "value_digits",
        "[[variable_measure]] #1 value_digits",
        "layout does not fill an EAN-13",
    );
    let text = layout(&format!("{PRICE_21}value_check_digit = true\n"));
    assert_problem(
        &text,
        "value_digits",
        "[[variable_measure]] #1 value_digits",
        "= 14, must be 13",
    );
}

#[test]
fn variable_measure_value_rules() {
    let text = layout(
        "prefix = \"21\"\nitem_digits = 6\nvalue = \"price\"\nvalue_digits = 3\ndecimals = 2\nvalue_check_digit = true\n",
    );
    assert_problem(
        &text,
        "value_check_digit",
        "[[variable_measure]] #1 value_check_digit",
        "needs value_digits 4 or 5, got 3",
    );
    let text = layout(&PRICE_21.replace("decimals = 2", "decimals = 6"));
    assert_problem(
        &text,
        "decimals",
        "[[variable_measure]] #1 decimals",
        "must be at most value_digits (5), got 6",
    );
    let text = layout(&PRICE_21.replace("\"price\"", "\"volume\""));
    assert_problem(
        &text,
        "value =",
        "[[variable_measure]] #1 value",
        "must be one of \"price\", \"weight\"",
    );
    let text = layout(&PRICE_21.replace("item_digits = 5\n", ""));
    assert_problem(
        &text,
        "[[variable_measure]]",
        "[[variable_measure]] #1 item_digits",
        "missing required key",
    );
    let text = layout(&format!("{PRICE_21}unit = \"kg\"\n"));
    assert_problem(&text, "unit", "[[variable_measure]] #1 unit", "unknown key");
}

#[test]
fn variable_measure_prefixes_are_unique() {
    let text = format!("{}\n[[variable_measure]]\n{PRICE_21}", layout(PRICE_21));
    let err = parse_err(&text);
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("prefix = \"21\""))
        .map(|(i, _)| i + 1)
        .nth(1)
        .unwrap();
    assert_problem_at(
        &err,
        Some(second),
        "[[variable_measure]] #2 prefix",
        "duplicate prefix \"21\": layout #1 has it already",
    );
}
