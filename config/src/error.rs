//! The crate's one error type: a list of problems, each naming file, line and key.
//!
//! An operator fixing a register's config wants every mistake at once, with
//! enough location to jump straight to it, so an [`Error`] carries all the
//! problems found, and its `Display` prints one per line in the
//! `FILE:LINE: KEY: message` shape that editors and terminals link.

use std::fmt;
use std::path::PathBuf;

/// At most this many problems are kept; a file with more is broken beyond
/// listing, and an unbounded list would make one bad file an unbounded print.
pub const PROBLEMS_MAX: usize = 100;

/// One thing wrong with a config (or with reading it, or its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in: the config, or the token file.
    pub file: PathBuf,
    /// 1-based line in `file`; `None` when the problem has no place in the
    /// file (a missing table, a file that cannot be read).
    pub line: Option<usize>,
    /// The key as an operator finds it: `[central] sync_interval_secs`,
    /// `[[devices]] #2 baud`; `None` for whole-file problems.
    pub key: Option<String>,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Everything wrong with a config. `Display` prints one problem per line,
/// ready to show an operator as is (`pos-agent check-config` prints it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems, *.omitted))]
pub struct Error {
    problems: Vec<Problem>,
    /// Problems beyond [`PROBLEMS_MAX`], counted but not kept.
    omitted: usize,
}

fn render(problems: &[Problem], omitted: usize) -> String {
    let mut lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    if omitted > 0 {
        lines.push(format!("... and {omitted} more problems"));
    }
    lines.join("\n")
}

impl Error {
    /// Builds an error from problems, sorted by file and line so that the
    /// output reads top to bottom like the file.
    pub(crate) fn from_problems(mut problems: Vec<Problem>, omitted: usize) -> Error {
        // Problems without a line (missing tables) come first: they concern the whole file.
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Error { problems, omitted }
    }

    /// One problem with no place in a file (unreadable file, missing env).
    pub(crate) fn single(problem: Problem) -> Error {
        Error {
            problems: vec![problem],
            omitted: 0,
        }
    }

    /// The problems found, in file order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}
