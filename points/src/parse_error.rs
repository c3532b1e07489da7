//! Shape errors (syntax, unknown or missing fields, wrong types) with the
//! path of the offending field, and the program/rule ids when the document
//! is readable enough to find them.
//!
//! serde alone reports "invalid type: integer `2`, expected a decimal as a
//! string at line 9 column 18"; `serde_path_to_error` adds
//! `programs[0].rules[3].value`, and a second, schema-free read of the same
//! text turns the indices into `program "main", rule "double-shoes"`.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::bundle::Format;
use crate::error::{Error, ErrorKind};
use crate::limits::DOCUMENT_BYTES_MAX;

/// Deserializes `text` as `T`, or one [`ErrorKind::Syntax`] error naming where.
pub(crate) fn deserialize<T: DeserializeOwned>(
    text: &str,
    format: Format,
    what: &str,
) -> Result<T, Error> {
    if text.len() > DOCUMENT_BYTES_MAX {
        return Err(Error::one(
            ErrorKind::Syntax,
            "",
            "",
            format!(
                "the {what} is {} bytes; at most {DOCUMENT_BYTES_MAX} are accepted",
                text.len()
            ),
        ));
    }
    let result = match format {
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
    };
    result.map_err(|(path, message)| {
        let segments: Vec<&Segment> = path
            .as_ref()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let path_text = match &path {
            Some(path) if !segments.is_empty() => path.to_string(),
            _ => String::new(),
        };
        let context = context_of(text, format, &segments);
        let message = message.trim_end().to_owned();
        Error::one(ErrorKind::Syntax, &path_text, &context, message)
    })
}

/// `program "main", rule "x"` for a path such as `programs[0].rules[3].value`,
/// read from a schema-free parse of the text; empty when it cannot be found.
fn context_of(text: &str, format: Format, segments: &[&Segment]) -> String {
    let document: Option<serde_json::Value> = match format {
        Format::Json => serde_json::from_str(text).ok(),
        Format::Toml => toml::from_str(text).ok(),
    };
    let Some(mut node) = document.as_ref() else {
        return String::new();
    };
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
