//! `[[variable_measure]]`: GS1 in-store codes with a price or weight
//! embedded in the EAN-13 (the scale label of a deli counter).

use std::collections::HashMap;

use crate::reader::{Ctx, Field, element_table, quote};

pub(crate) const KEYS: &[&str] = &[
    "prefix",
    "item_digits",
    "value",
    "value_digits",
    "decimals",
    "value_check_digit",
];

/// Digits of an EAN-13, the carrier of every layout.
pub const EAN13_DIGITS: u8 = 13;

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

fn is_in_store_prefix(text: &str) -> bool {
    text == "02"
        || (text.len() == 2 && text.starts_with('2') && text.as_bytes()[1].is_ascii_digit())
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
        let prefix = table.required(ctx, "prefix").and_then(|f| {
            let text = f.string(ctx)?;
            if !is_in_store_prefix(text) {
                f.invalid(
                    ctx,
                    format!(
                        "must be \"02\" or \"20\" to \"29\" (GS1 in-store prefixes), got {}",
                        quote(text)
                    ),
                );
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
            seen.insert(text.to_string(), index + 1);
            Some(text.to_string())
        });
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
        let decimals = table.required(ctx, "decimals").and_then(|f| {
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
        });
        let value_check_digit = match table.field("value_check_digit") {
            Some(f) => f.boolean(ctx).and_then(|yes| match value_digits {
                // GS1 defines the price check digit for 4- and 5-digit values only.
                Some(digits) if yes && !(4..=5).contains(&digits) => {
                    f.invalid(
                        ctx,
                        format!("a value check digit needs value_digits 4 or 5, got {digits}"),
                    );
                    None
                }
                _ => Some(yes),
            }),
            None => Some(false),
        };
        let mut fits = true;
        if let (Some(item), Some(digits), Some(check), Some(f)) = (
            item_digits,
            value_digits,
            value_check_digit,
            &value_digits_field,
        ) {
            // prefix + item + [value check] + value + EAN check digit.
            let total = 2 + item + u8::from(check) + digits + 1;
            if total != EAN13_DIGITS {
                f.invalid(
                    ctx,
                    format!(
                        "layout does not fill an EAN-13: 2 (prefix) + {item} (item_digits) + \
                         {} (value check digit) + {digits} (value_digits) + 1 (check digit) = {total}, \
                         must be {EAN13_DIGITS}",
                        u8::from(check)
                    ),
                );
                fits = false;
            }
        }
        table.finish(ctx);
        if !fits {
            continue;
        }
        if let (
            Some(prefix),
            Some(item_digits),
            Some(value),
            Some(value_digits),
            Some(decimals),
            Some(value_check_digit),
        ) = (
            prefix,
            item_digits,
            value,
            value_digits,
            decimals,
            value_check_digit,
        ) {
            layouts.push(VariableMeasure {
                prefix,
                item_digits,
                value,
                value_digits,
                decimals,
                value_check_digit,
            });
        }
    }
    layouts
}
