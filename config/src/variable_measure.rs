//! `[[variable_measure]]`: GS1 in-store codes with a price or weight
//! embedded in the EAN-13 (the scale label of a deli counter).

use std::collections::HashMap;

use pos_codes::variable_measure::{
    IN_STORE_PREFIX_DIGITS, IN_STORE_PREFIX_RULE, VALUE_CHECK_DIGIT_VALUE_DIGITS,
    is_in_store_prefix,
};

use crate::reader::{Ctx, Field, Table, element_table, quote};

pub(crate) const KEYS: &[&str] = &[
    "prefix",
    "item_digits",
    "value",
    "value_digits",
    "decimals",
    "value_check_digit",
];

/// Digits of an EAN-13, the carrier of every layout: the decoder's constant.
pub use pos_codes::variable_measure::EAN13_DIGITS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableMeasure {
    /// "02" or "20" to "29": the GS1 prefixes reserved for in-store use;
    /// a barcode starting with it is read with this layout.
    pub prefix: String,
    /// Digits of the item reference after the prefix.
    pub item_digits: u8,
    pub value: Measure,
    /// Digits of the embedded value.
    pub value_digits: u8,
    /// Implied decimals of the value (2 for cents, 3 for grams in kg).
    pub decimals: u8,
    /// Whether a GS1 price check digit precedes the value (4 or 5 value digits only).
    pub value_check_digit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Price,
    Weight,
}

/// Reads `[[variable_measure]]`. Bad layouts are reported and left out.
pub(crate) fn read(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Vec<VariableMeasure> {
    let Some(array) = field.array(ctx) else {
        return Vec::new();
    };
    let mut layouts = Vec::new();
    // prefix -> 1-based position of the first layout with it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, element) in array.iter().enumerate() {
        let label = format!("[[variable_measure]] #{}", index + 1);
        let Some(table) = element_table(ctx, element, label, KEYS) else {
            continue;
        };
        if let Some(layout) = read_layout(ctx, table, index + 1, &mut seen) {
            layouts.push(layout);
        }
    }
    layouts
}

/// One layout, the `position`-th (1-based); its problems are reported in key order.
fn read_layout(
    ctx: &mut Ctx<'_>,
    table: Table<'_, '_>,
    position: usize,
    seen: &mut HashMap<String, usize>,
) -> Option<VariableMeasure> {
    let prefix = read_prefix(ctx, &table, position, seen);
    let item_digits = table
        .required(ctx, "item_digits")
        .and_then(|f| f.integer(ctx, 1..=9))
        .map(|n| n as u8);
    let value = table.required(ctx, "value").and_then(|f| {
        f.choice(
            ctx,
            &[("price", Measure::Price), ("weight", Measure::Weight)],
        )
    });
    let value_digits_field = table.required(ctx, "value_digits");
    let value_digits = value_digits_field
        .as_ref()
        .and_then(|f| f.integer(ctx, 1..=9))
        .map(|n| n as u8);
    let decimals = read_decimals(ctx, &table, value_digits);
    let value_check_digit = read_value_check_digit(ctx, &table, value_digits);
    let fits = match (
        item_digits,
        value_digits,
        value_check_digit,
        &value_digits_field,
    ) {
        (Some(item), Some(digits), Some(check), Some(f)) => {
            fills_ean13(ctx, f, item, check, digits)
        }
        _ => true,
    };
    table.finish(ctx);
    if !fits {
        return None;
    }
    Some(VariableMeasure {
        prefix: prefix?,
        item_digits: item_digits?,
        value: value?,
        value_digits: value_digits?,
        decimals: decimals?,
        value_check_digit: value_check_digit?,
    })
}

/// The decoder's in-store rule ([`pos_codes::variable_measure::is_in_store_prefix`]),
/// and no prefix twice: the first layout would always win.
fn read_prefix(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    position: usize,
    seen: &mut HashMap<String, usize>,
) -> Option<String> {
    let f = table.required(ctx, "prefix")?;
    let text = f.string(ctx)?;
    if !is_in_store_prefix(text) {
        f.invalid(ctx, format!("{IN_STORE_PREFIX_RULE}, got {}", quote(text)));
        return None;
    }
    if let Some(first) = seen.get(text) {
        f.invalid(
            ctx,
            format!(
                "duplicate prefix {}: layout #{first} has it already",
                quote(text)
            ),
        );
        return None;
    }
    seen.insert(text.to_string(), position);
    Some(text.to_string())
}

fn read_decimals(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, value_digits: Option<u8>) -> Option<u8> {
    let f = table.required(ctx, "decimals")?;
    let n = f.integer(ctx, 0..=9)? as u8;
    match value_digits {
        Some(digits) if n > digits => {
            f.invalid(
                ctx,
                format!("must be at most value_digits ({digits}), got {n}"),
            );
            None
        }
        _ => Some(n),
    }
}

fn read_value_check_digit(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    value_digits: Option<u8>,
) -> Option<bool> {
    let Some(f) = table.field("value_check_digit") else {
        return Some(false);
    };
    let yes = f.boolean(ctx)?;
    match value_digits {
        // GS1 defines the price check digit for 4- and 5-digit values only.
        Some(digits) if yes && !VALUE_CHECK_DIGIT_VALUE_DIGITS.contains(&digits) => {
            f.invalid(
                ctx,
                format!("a value check digit needs value_digits 4 or 5, got {digits}"),
            );
            None
        }
        _ => Some(yes),
    }
}

/// prefix + item + [value check] + value + EAN check digit must be the 13 digits of an
/// EAN-13; reported on `value_digits` when not.
fn fills_ean13(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, item: u8, check: bool, digits: u8) -> bool {
    let total = IN_STORE_PREFIX_DIGITS + item + u8::from(check) + digits + 1;
    if total == EAN13_DIGITS {
        return true;
    }
    f.invalid(
        ctx,
        format!(
            "layout does not fill an EAN-13: {IN_STORE_PREFIX_DIGITS} (prefix) + {item} (item_digits) + \
             {} (value check digit) + {digits} (value_digits) + 1 (check digit) = {total}, \
             must be {EAN13_DIGITS}",
            u8::from(check)
        ),
    );
    false
}
