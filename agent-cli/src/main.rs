//! `pos-agent`: the register loyalty agent's command line (agent spec §1).
//!
//! Thin: every command lives in `commands/`, on top of the `pos_agent`
//! library (and, for `demo`, of `pos_demo`: only with the default feature
//! `demo`, which the Debian package leaves off). anyhow lives only here.
//! Exit codes: 0 success, 2 bad input or usage, 1 anything else.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Offline-first loyalty agent for point-of-sale registers.
#[derive(Debug, Parser)]
#[command(name = "pos-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Configuration file.
        #[arg(long, default_value = "/etc/pos-agent/agent.toml")]
        config: PathBuf,
    },
    /// The whole system on one machine: an embedded central, two registers,
    /// a pty scanner, a store day with a network outage, and a summary.
    #[cfg(feature = "demo")]
    Demo {
        /// Keep the state in this directory (new or empty); default: a
        /// temporary directory removed at the end.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Short pauses (for tests); the default pace is readable.
        #[arg(long)]
        quick: bool,
    },
    /// Compute the points of a basket against a rules bundle (points spec §4).
    Quote {
        /// Rules bundle, JSON (.json) or TOML (.toml).
        #[arg(long)]
        rules: PathBuf,
        /// Basket, JSON.
        #[arg(long)]
        basket: PathBuf,
    },
    /// Print what the drivers make of one scan or swipe, as JSON.
    Decode {
        #[command(subcommand)]
        what: DecodeWhat,
        /// Take member-card prefixes and variable-measure layouts from this config.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Load a rules bundle and member and catalog snapshots into the store.
    Import {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        members: Option<PathBuf>,
        #[arg(long)]
        catalog: Option<PathBuf>,
        #[arg(long, default_value = "/etc/pos-agent/agent.toml")]
        config: PathBuf,
    },
    /// Validate a configuration file.
    CheckConfig {
        /// Configuration file.
        path: PathBuf,
    },
    /// A human summary from the running daemon.
    Status {
        #[arg(long, default_value = "/etc/pos-agent/agent.toml")]
        config: PathBuf,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        what: DbWhat,
    },
}

#[derive(Debug, Subcommand)]
enum DecodeWhat {
    /// A barcode as the scanner sends it (with its AIM identifier if any).
    Barcode { data: String },
    /// A magnetic-stripe track (ISO/IEC 7813 track 1 or 2).
    Track { data: String },
}

#[derive(Debug, Subcommand)]
enum DbWhat {
    /// SQLite integrity check and the whole ledger hash chain.
    Verify {
        /// Database file (default: the configured storage path).
        #[arg(long)]
        db: Option<PathBuf>,
        #[arg(long, default_value = "/etc/pos-agent/agent.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quote { rules, basket } => commands::quote::run(&rules, &basket),
        Command::Import {
            rules,
            members,
            catalog,
            config,
        } => commands::import::run(&rules, members.as_deref(), catalog.as_deref(), &config),
        Command::Db {
            what: DbWhat::Verify { db, config },
        } => commands::db::verify(db.as_deref(), &config),
        Command::CheckConfig { path } => commands::check_config::run(&path),
        Command::Decode { what, config } => {
            let (kind, data) = match what {
                DecodeWhat::Barcode { data } => (commands::decode::DecodeKind::Barcode, data),
                DecodeWhat::Track { data } => (commands::decode::DecodeKind::Track, data),
            };
            commands::decode::run(kind, &data, config.as_deref())
        }
        Command::Run { config } => commands::run::run(&config),
        #[cfg(feature = "demo")]
        Command::Demo { dir, quick } => commands::demo::run(dir.as_deref(), quick),
        Command::Status { config } => commands::status::run(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
