//! One module per command. Each returns `Result<(), Failure>` so `main`
//! maps bad input to exit code 2 and everything else to 1.

pub mod check_config;
pub mod db;
pub mod decode;
#[cfg(feature = "demo")]
pub mod demo;
pub mod import;
pub mod quote;
pub mod run;
pub mod status;

use std::process::ExitCode;

/// Why a command failed, which decides its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad input or usage: exit code 2.
    BadInput(anyhow::Error),
    /// Anything else: exit code 1.
    Other(anyhow::Error),
}

impl Failure {
    /// Prints the error chain on stderr and gives the exit code.
    pub fn report(self) -> ExitCode {
        let (error, code) = match self {
            Failure::BadInput(e) => (e, 2),
            Failure::Other(e) => (e, 1),
        };
        eprintln!("error: {error:#}");
        ExitCode::from(code)
    }
}

/// Marks an error as bad input (exit 2).
pub fn bad_input(error: impl Into<anyhow::Error>) -> Failure {
    Failure::BadInput(error.into())
}

/// Marks an error as an operational failure (exit 1).
pub fn other(error: impl Into<anyhow::Error>) -> Failure {
    Failure::Other(error.into())
}

/// Limit on an input file read by a command: rules bundles, baskets and
/// snapshots are small; anything bigger is a mistake, not data to load.
pub const INPUT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Reads a UTF-8 input file named on the command line. A missing, unreadable
/// or oversized file is bad input (exit 2), named in the message.
pub fn read_input(path: &std::path::Path) -> Result<String, Failure> {
    use anyhow::Context;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read", path.display()))
        .map_err(bad_input)?;
    if meta.len() > INPUT_FILE_BYTES_MAX {
        return Err(bad_input(anyhow::anyhow!(
            "{}: file is {} bytes, more than the {} allowed",
            path.display(),
            meta.len(),
            INPUT_FILE_BYTES_MAX
        )));
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read as UTF-8 text", path.display()))
        .map_err(bad_input)
}
