//! The crate's one error type.
//!
//! Invalid bundles and baskets are refused as a whole, and the person who
//! wrote the file needs every mistake at once rather than one per attempt, so
//! an [`Error`] carries a *list* of [`Problem`]s. Each problem names where it is
//! twice: in words (`program "main", rule "double-shoes"`) for people, and as a
//! path into the document (`programs[0].rules[3].value`) for tools.

use std::fmt;

/// One thing wrong with an input, or one reason a quote could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the offending field in the document, e.g. `programs[0].rules[3].value`.
    /// Empty when the problem is about the document as a whole (e.g. bad syntax).
    pub path: String,
    /// The owners of the field in words, e.g. `program "main", rule "double-shoes"`;
    /// empty at the top level.
    pub context: String,
    /// What is wrong, starting with the field name, e.g.
    /// `value must be >= 1 for a multiplier, got "0.5"`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

/// What kind of failure an [`Error`] is, so callers can map it (e.g. exit codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not well-formed JSON/TOML or does not have the expected
    /// shape (unknown field, missing field, wrong type).
    Syntax,
    /// Well-formed, but a value breaks a rule of the spec (§1, §2) or a limit of this crate.
    Invalid,
    /// Evaluation would need more than the 28 significant digits `rust_decimal`
    /// holds exactly, or a point count beyond `i64`. Validation bounds make
    /// this unreachable for realistic data; it is an error rather than a panic
    /// or a silently rounded result.
    Arithmetic,
}

/// Every problem found in one input: first the values that could not be
/// read (in document order), then the rules they break (in document order).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    problems: Vec<Problem>,
}

impl Error {
    /// An error with at least one problem. An empty list is a bug in this crate.
    pub(crate) fn new(kind: ErrorKind, problems: Vec<Problem>) -> Error {
        debug_assert!(
            !problems.is_empty(),
            "an Error must carry at least one problem"
        );
        Error { kind, problems }
    }

    pub(crate) fn one(kind: ErrorKind, path: &str, context: &str, message: String) -> Error {
        Error::new(
            kind,
            vec![Problem {
                path: path.to_owned(),
                context: context.to_owned(),
                message,
            }],
        )
    }

    pub(crate) fn arithmetic(context: &str, what: &str) -> Error {
        Error::one(
            ErrorKind::Arithmetic,
            "",
            context,
            format!(
                "{what} exceeds the exact range of the arithmetic (28 significant digits, points within i64)"
            ),
        )
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Every problem: unreadable values first, then broken rules.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

impl fmt::Display for Error {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while walking a document.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, context: &str, message: String) {
        self.list.push(Problem {
            path: path.into(),
            context: context.to_owned(),
            message,
        });
    }

    pub(crate) fn extend(&mut self, other: Problems) {
        self.list.extend(other.list);
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|problem| problem.path.as_str())
    }

    /// Keeps only the problems `keep(path, message)` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.list
            .retain(|problem| keep(&problem.path, &problem.message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `Ok(())` when nothing was found, else an [`ErrorKind::Invalid`] error with all of it.
    pub(crate) fn into_result(self) -> Result<(), Error> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::Invalid, self.list))
        }
    }
}
