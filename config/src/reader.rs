//! Walks the parsed TOML tree key by key, turning each value into a typed
//! setting and each mistake into a [`Problem`] with its line.
//!
//! Why not `#[derive(Deserialize)]` with `deny_unknown_fields`: serde stops at
//! the first unknown key or wrong type, and an operator fixing a register's
//! config over a remote shell wants every problem in one run. toml's
//! [`DeTable`] keeps the span of every key and value, so walking it by hand
//! costs little code and reports unknown keys, wrong types and impossible
//! values all together, each with its own line.

use std::ops::{Range, RangeInclusive};
use std::path::Path;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::error::{PROBLEMS_MAX, Problem};

/// Where problems are collected while one config text is read.
pub(crate) struct Ctx<'t> {
    source: &'t Path,
    text: &'t str,
    problems: Vec<Problem>,
    omitted: usize,
}

impl<'t> Ctx<'t> {
    pub(crate) fn new(source: &'t Path, text: &'t str) -> Ctx<'t> {
        Ctx {
            source,
            text,
            problems: Vec::new(),
            omitted: 0,
        }
    }

    pub(crate) fn source(&self) -> &'t Path {
        self.source
    }

    /// 1-based line of a byte offset in the text.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Records a problem at `span` (or at no line) under `key`.
    pub(crate) fn report(
        &mut self,
        span: Option<Range<usize>>,
        key: Option<String>,
        message: impl Into<String>,
    ) {
        if self.problems.len() >= PROBLEMS_MAX {
            self.omitted += 1;
            return;
        }
        let line = span.map(|s| self.line_of(s.start));
        self.problems.push(Problem {
            file: self.source.to_path_buf(),
            line,
            key,
            message: message.into(),
        });
    }

    pub(crate) fn has_problems(&self) -> bool {
        !self.problems.is_empty() || self.omitted > 0
    }

    pub(crate) fn into_problems(self) -> (Vec<Problem>, usize) {
        (self.problems, self.omitted)
    }
}

/// One TOML table being read: hands out its keys and, at the end, reports
/// the keys nobody asked for as unknown.
pub(crate) struct Table<'a, 'i> {
    /// How the table is named in messages: `[central]`, `[[devices]] #2`,
    /// or empty for the document root.
    label: String,
    /// Where the table is named in the file (its header key), for problems
    /// about keys that are missing from it.
    header: Option<Range<usize>>,
    entries: &'a DeTable<'i>,
    /// Every key this table may hold, listed in unknown-key messages.
    known: &'static [&'static str],
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn root(entries: &'a DeTable<'i>, known: &'static [&'static str]) -> Self {
        Table {
            label: String::new(),
            header: None,
            entries,
            known,
        }
    }

    /// The label of a key in this table, as messages show it.
    pub(crate) fn key_label(&self, key: &str) -> String {
        if self.label.is_empty() {
            key.to_string()
        } else {
            format!("{} {key}", self.label)
        }
    }

    /// Where this table is named, for problems about the table as a whole.
    pub(crate) fn header(&self) -> Option<Range<usize>> {
        self.header.clone()
    }

    /// The value under `key`, if present.
    pub(crate) fn field(&self, key: &'static str) -> Option<Field<'a, 'i>> {
        debug_assert!(
            self.known.contains(&key),
            "config code asks for key {key:?} missing from its table's known list"
        );
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, v)| Field {
                key: self.key_label(key),
                key_span: k.span(),
                span: v.span(),
                value: v.get_ref(),
            })
    }

    /// The value under `key`, reporting it missing when absent.
    pub(crate) fn required(&self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Field<'a, 'i>> {
        let field = self.field(key);
        if field.is_none() {
            ctx.report(
                self.header(),
                Some(self.key_label(key)),
                "missing required key",
            );
        }
        field
    }

    /// Reports every key that is not in this table's known list.
    pub(crate) fn finish(self, ctx: &mut Ctx<'_>) {
        for (key, _) in self.entries.iter() {
            if !self.known.contains(&key.get_ref().as_ref()) {
                ctx.report(
                    Some(key.span()),
                    Some(self.key_label(key.get_ref())),
                    format!("unknown key; expected one of: {}", self.known.join(", ")),
                );
            }
        }
    }
}

/// One value found under a key, with where it is.
pub(crate) struct Field<'a, 'i> {
    key: String,
    key_span: Range<usize>,
    span: Range<usize>,
    value: &'a DeValue<'i>,
}

/// "a string", "an integer": how a TOML value's type reads in a message.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Longest excerpt of a bad value quoted back in a message.
const QUOTED_CHARS_MAX: usize = 40;

/// A value quoted back to the operator, cut short so that a pasted blob
/// does not flood the terminal.
pub(crate) fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTED_CHARS_MAX {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(QUOTED_CHARS_MAX).collect();
        format!("{cut:?}...")
    }
}

impl<'a, 'i> Field<'a, 'i> {
    /// Reports a problem with this value.
    pub(crate) fn invalid(&self, ctx: &mut Ctx<'_>, message: impl Into<String>) {
        ctx.report(Some(self.span.clone()), Some(self.key.clone()), message);
    }

    /// Reports a problem with the key itself (it should not be here).
    pub(crate) fn misplaced(&self, ctx: &mut Ctx<'_>, message: impl Into<String>) {
        ctx.report(Some(self.key_span.clone()), Some(self.key.clone()), message);
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    fn wrong_type(&self, ctx: &mut Ctx<'_>, expected: &str) {
        self.invalid(
            ctx,
            format!("must be {expected}, got {}", describe(self.value)),
        );
    }

    pub(crate) fn string(&self, ctx: &mut Ctx<'_>) -> Option<&'a str> {
        match self.value {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(ctx, "a string");
                None
            }
        }
    }

    pub(crate) fn boolean(&self, ctx: &mut Ctx<'_>) -> Option<bool> {
        match self.value {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(ctx, "a boolean (true or false)");
                None
            }
        }
    }

    /// An integer within `range`, inclusive on both ends.
    pub(crate) fn integer(&self, ctx: &mut Ctx<'_>, range: RangeInclusive<i64>) -> Option<i64> {
        let DeValue::Integer(int) = self.value else {
            self.wrong_type(ctx, "an integer");
            return None;
        };
        let Ok(n) = i64::from_str_radix(int.as_str(), int.radix()) else {
            self.invalid(
                ctx,
                format!(
                    "must be between {} and {}, got {int} (out of range)",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        };
        if !range.contains(&n) {
            self.invalid(
                ctx,
                format!(
                    "must be between {} and {}, got {n}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        Some(n)
    }

    /// A string that must be one of `choices` (TOML spelling, value).
    pub(crate) fn choice<T: Copy>(&self, ctx: &mut Ctx<'_>, choices: &[(&str, T)]) -> Option<T> {
        let text = self.string(ctx)?;
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.invalid(
            ctx,
            format!("must be one of {}, got {}", names.join(", "), quote(text)),
        );
        None
    }

    pub(crate) fn array(&self, ctx: &mut Ctx<'_>) -> Option<&'a DeArray<'i>> {
        match self.value {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(ctx, "an array");
                None
            }
        }
    }

    /// This value as a table to read further. `label` names the table in
    /// messages (`[central]`).
    pub(crate) fn table(
        &self,
        ctx: &mut Ctx<'_>,
        label: String,
        known: &'static [&'static str],
    ) -> Option<Table<'a, 'i>> {
        match self.value {
            DeValue::Table(entries) => Some(Table {
                label,
                header: Some(self.key_span.clone()),
                entries,
                known,
            }),
            _ => {
                self.wrong_type(ctx, "a table");
                None
            }
        }
    }
}

/// An element of an array of tables (`[[devices]]`) as a table to read.
/// `label` names it in messages (`[[devices]] #2`).
pub(crate) fn element_table<'a, 'i>(
    ctx: &mut Ctx<'_>,
    element: &'a Spanned<DeValue<'i>>,
    label: String,
    known: &'static [&'static str],
) -> Option<Table<'a, 'i>> {
    match element.get_ref() {
        DeValue::Table(entries) => Some(Table {
            label,
            header: Some(element.span()),
            entries,
            known,
        }),
        other => {
            ctx.report(
                Some(element.span()),
                Some(label),
                format!("must be a table, got {}", describe(other)),
            );
            None
        }
    }
}

/// The strings of an array, each with its span; non-strings are reported.
pub(crate) fn strings<'a>(
    ctx: &mut Ctx<'_>,
    field: &Field<'a, '_>,
) -> Vec<(&'a str, Range<usize>)> {
    let Some(array) = field.array(ctx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (index, element) in array.iter().enumerate() {
        match element.get_ref() {
            DeValue::String(s) => out.push((s.as_ref(), element.span())),
            other => ctx.report(
                Some(element.span()),
                Some(field.key().to_string()),
                format!(
                    "entry {} must be a string, got {}",
                    index + 1,
                    describe(other)
                ),
            ),
        }
    }
    out
}
