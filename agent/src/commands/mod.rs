//! One module per command. Each returns `Result<(), Failure>` so `main`
//! maps bad input to exit code 2 and everything else to 1.

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
