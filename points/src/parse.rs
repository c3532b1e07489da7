//! Text into the model: the entry points ([`Bundle::parse`],
//! [`Basket::parse_json`], serde's `Deserialize`) and the rendering of shape
//! errors (syntax, unknown or missing fields, wrong types) with the
//! path of the offending field, and the program/rule ids when the document
//! is readable enough to find them.
//!
//! serde alone reports "invalid type: integer `2`, expected a decimal as a
//! string at line 9 column 18"; `serde_path_to_error` adds
//! `programs[0].rules[3].value`, and a schema-free read of the same text
//! turns the indices into `program "main", rule "double-shoes"`.
//!
//! serde stops at the first shape error. To report the others too, the
//! offending field is removed from the schema-free document and the rest is
//! read again, until it reads (then its values are checked as well) or the
//! error cannot be stepped over (a missing field, a bad array element, bad
//! syntax).

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer};
use serde_json::Value;
use serde_path_to_error::{Path, Segment};

use crate::basket::Basket;
use crate::bundle::Bundle;
use crate::error::{Error, ErrorKind, Problem};
use crate::limits::{DOCUMENT_BYTES_MAX, SHAPE_PROBLEMS_MAX};
use crate::raw::{DECIMAL_EXPECTED, RawBasket, RawBundle};

/// The file format of a rules bundle. Both map to the same structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.json`
    Json,
    /// `.toml`
    Toml,
}

impl Format {
    /// The format named by the file extension (`json` or `toml`, any case);
    /// `None` for anything else. The content is never sniffed: a bundle means
    /// what its name says it is.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?;
        if extension.eq_ignore_ascii_case("json") {
            Some(Format::Json)
        } else if extension.eq_ignore_ascii_case("toml") {
            Some(Format::Toml)
        } else {
            None
        }
    }
}

impl Bundle {
    /// Parses and validates a bundle; every problem found is in the error.
    pub fn parse(text: &str, format: Format) -> Result<Bundle, Error> {
        match deserialize::<RawBundle>(text, format, "bundle") {
            Ok(raw) => Bundle::try_from(raw),
            Err(shape) => Err(shape.into_error(|rest| Bundle::try_from(rest).map(drop))),
        }
    }
}

impl Basket {
    /// Parses and validates a JSON basket; every problem found is in the error.
    pub fn parse_json(text: &str) -> Result<Basket, Error> {
        match deserialize::<RawBasket>(text, Format::Json, "basket") {
            Ok(raw) => Basket::try_from(raw),
            Err(shape) => Err(shape.into_error(|rest| Basket::try_from(rest).map(drop))),
        }
    }
}

/// Deserializing validates, as `#[serde(try_from)]` would: the raw shape,
/// then the conversion, its problems as one custom error.
impl<'de> Deserialize<'de> for Bundle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Bundle, D::Error> {
        let raw = RawBundle::deserialize(deserializer)?;
        Bundle::try_from(raw).map_err(de::Error::custom)
    }
}

/// As for [`Bundle`].
impl<'de> Deserialize<'de> for Basket {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Basket, D::Error> {
        let raw = RawBasket::deserialize(deserializer)?;
        Basket::try_from(raw).map_err(de::Error::custom)
    }
}

/// A document that did not read: its shape problems and, when every bad
/// field could be stepped over, what the rest of it reads as.
pub(crate) struct ShapeErrors<T> {
    pub(crate) problems: Vec<Problem>,
    pub(crate) rest: Option<T>,
}

impl<T> ShapeErrors<T> {
    /// The problems, plus those `check` finds in the rest of the document.
    pub(crate) fn into_error(self, check: impl FnOnce(T) -> Result<(), Error>) -> Error {
        let mut problems = self.problems;
        if let Some(rest) = self.rest
            && let Err(more) = check(rest)
        {
            problems.extend(more.problems().iter().cloned());
        }
        Error::new(ErrorKind::Syntax, problems)
    }
}

/// Deserializes `text` as `T`, or every shape problem found.
pub(crate) fn deserialize<T: DeserializeOwned>(
    text: &str,
    format: Format,
    what: &str,
) -> Result<T, ShapeErrors<T>> {
    if text.len() > DOCUMENT_BYTES_MAX {
        return Err(ShapeErrors {
            problems: vec![problem(
                None,
                None,
                format!(
                    "the {what} is {} bytes; at most {DOCUMENT_BYTES_MAX} are accepted",
                    text.len()
                ),
            )],
            rest: None,
        });
    }
    let (path, message) = match read_typed(text, format) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let document: Option<Value> = match format {
        Format::Json => serde_json::from_str(text).ok(),
        Format::Toml => toml::from_str(text).ok(),
    };
    Err(read_past_errors(document, path, message))
}

/// The first shape error: where (if serde says) and what.
type ShapeError = (Option<Path>, String);

/// The typed read, stopping at the first shape error.
fn read_typed<T: DeserializeOwned>(text: &str, format: Format) -> Result<T, ShapeError> {
    match format {
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut deserializer)
                .map_err(|e| (Some(e.path().clone()), e.into_inner().to_string()))
                .and_then(|value: T| {
                    // Trailing characters after the document are an error too.
                    deserializer
                        .end()
                        .map(|()| value)
                        .map_err(|e| (None, e.to_string()))
                })
        }
        Format::Toml => match toml::Deserializer::parse(text) {
            Ok(deserializer) => serde_path_to_error::deserialize(deserializer)
                .map_err(|e| (Some(e.path().clone()), e.into_inner().to_string())),
            Err(e) => Err((None, e.to_string())),
        },
    }
}

/// Steps over each bad field of the schema-free `document` and reads the
/// rest again, collecting problems, until it reads or cannot go on.
fn read_past_errors<T: DeserializeOwned>(
    mut document: Option<Value>,
    mut path: Option<Path>,
    mut message: String,
) -> ShapeErrors<T> {
    let mut problems = vec![problem(path.as_ref(), document.as_ref(), message.clone())];
    let mut rest = None;
    let mut removed: Vec<String> = Vec::new();
    while let Some(doc) = document.as_mut() {
        if problems.len() >= SHAPE_PROBLEMS_MAX {
            break;
        }
        // A decimal of the wrong type is replaced by "1", which every decimal
        // range accepts, so that required decimals do not stop the reading;
        // any other bad field is removed.
        let replacement = message
            .contains(DECIMAL_EXPECTED)
            .then(|| Value::String("1".to_owned()));
        match step_over(doc, path.as_ref(), replacement) {
            Some(field) => removed.push(field),
            None => break,
        }
        match serde_path_to_error::deserialize::<_, T>(&*doc) {
            Ok(value) => {
                rest = Some(value);
                break;
            }
            Err(e) => {
                message = e.inner().to_string();
                path = Some(e.path().clone());
                if let Some(field) = missing_field(&message) {
                    // A field this loop removed is not missing from the
                    // input; either way reading cannot go on.
                    if !removed.contains(&field_path(path.as_ref(), field)) {
                        problems.push(problem(path.as_ref(), Some(doc), message));
                    }
                    break;
                }
                problems.push(problem(path.as_ref(), Some(doc), message.clone()));
            }
        }
    }
    ShapeErrors { problems, rest }
}

/// `parent.field`, or `field` at the root.
fn field_path(parent: Option<&Path>, field: &str) -> String {
    match parent.map(ToString::to_string) {
        Some(parent) if !parent.is_empty() && parent != "." => format!("{parent}.{field}"),
        _ => field.to_owned(),
    }
}

/// `value` of "missing field `value`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

fn problem(path: Option<&Path>, document: Option<&Value>, message: String) -> Problem {
    let segments: Vec<&Segment> = path.map(|p| p.iter().collect()).unwrap_or_default();
    Problem {
        path: match path {
            Some(path) if !segments.is_empty() => path.to_string(),
            _ => String::new(),
        },
        context: document.map_or_else(String::new, |doc| context_of(doc, &segments)),
        message: message.trim_end().to_owned(),
    }
}

/// Removes (or replaces) the object field `path` names and returns its path;
/// `None` when it names no field (the root, an array element, or a path
/// that is not in the document).
fn step_over(
    document: &mut Value,
    path: Option<&Path>,
    replacement: Option<Value>,
) -> Option<String> {
    let path = path?;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key }, parents)) = segments.split_last() else {
        return None;
    };
    let mut node = document;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        node = next?;
    }
    let object = node.as_object_mut()?;
    match replacement {
        Some(value) => {
            *object.get_mut(key.as_str())? = value;
        }
        None => {
            object.remove(key.as_str())?;
        }
    }
    Some(path.to_string())
}

/// `program "main", rule "x"` for a path such as `programs[0].rules[3].value`,
/// read from the schema-free document; empty when it cannot be found.
fn context_of(document: &Value, segments: &[&Segment]) -> String {
    let mut node = document;
    let mut parts = Vec::new();
    let mut owner: Option<&str> = None;
    for segment in segments {
        match segment {
            Segment::Map { key } => {
                owner = match key.as_str() {
                    "programs" => Some("program"),
                    "rules" => Some("rule"),
                    "tiers" => Some("tier"),
                    "groups" => Some("group"),
                    "lines" => Some("line"),
                    _ => None,
                };
                match node.get(key) {
                    Some(next) => node = next,
                    None => break,
                }
            }
            Segment::Seq { index } => {
                let Some(next) = node.get(index) else { break };
                node = next;
                match (owner.take(), next.get("id").and_then(|id| id.as_str())) {
                    (Some("line"), _) => {
                        parts.push(match next.get("line").and_then(|n| n.as_u64()) {
                            Some(number) => format!("line {number}"),
                            None => format!("line {} (by position)", index + 1),
                        })
                    }
                    (Some(name), Some(id)) => parts.push(format!("{name} {id:?}")),
                    _ => {}
                }
            }
            Segment::Enum { .. } | Segment::Unknown => break,
        }
    }
    parts.join(", ")
}
