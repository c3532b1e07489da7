//! `pos-loadgen`: loads one or several running `pos-central serve`
//! instances with N simulated registers (see the library's docs and the
//! README's "Central under load").
//!
//! ```text
//! pos-loadgen --central-dir /srv/central --url https://127.0.0.1:8443 \
//!     --registers 1000 --entries 1000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pos_loadgen::admin::AdminTarget;
use pos_loadgen::bare::{self, Method};
use pos_loadgen::enroll::{self, Enroll};
use pos_loadgen::plan::{self, Plan, Spread};
use pos_loadgen::{Summary, Target};

#[derive(Parser, Debug)]
#[command(
    name = "pos-loadgen",
    version,
    about = "Simulated registers syncing their queued entries to central at once"
)]
struct Args {
    /// Registers (terminals) to simulate.
    #[arg(long, default_value_t = plan::REGISTERS_DEFAULT)]
    registers: usize,
    /// Entries each register has queued.
    #[arg(long, default_value_t = plan::ENTRIES_DEFAULT)]
    entries: u64,
    /// Entries per upload batch (the agent's batch by default).
    #[arg(long, default_value_t = pos_sync::protocol::BATCH_ENTRIES_MAX)]
    batch: usize,
    /// Registers syncing at once (central admits 64 connections per client
    /// address, and every simulated register is on loopback).
    #[arg(long, default_value_t = plan::CONCURRENCY_DEFAULT)]
    concurrency: usize,
    /// Members the entries spread over (imported before the run).
    #[arg(long, default_value_t = plan::MEMBERS_DEFAULT)]
    members: u64,
    /// Terminal ids are PREFIX1, PREFIX2, ...
    #[arg(long, default_value = "load-reg-")]
    terminal_prefix: String,
    /// Rules bundle version to publish and quote with.
    #[arg(long, default_value_t = 1)]
    rules_version: u64,
    /// With several --url: `register` sticks each register to one
    /// instance, `batch` sends each batch to the next instance.
    #[arg(long, value_enum, default_value_t = SpreadArg::Register)]
    spread: SpreadArg,
    /// Base URL of an instance's sync API (repeat for several instances).
    #[arg(long = "url", required_unless_present = "bare_only")]
    urls: Vec<String>,
    /// Central's state directory: its admin.url, admin.token and ca.pem are
    /// used unless given below, and terminals are registered with
    /// `pos-central terminal add ID --dir DIR`.
    #[arg(long)]
    central_dir: Option<PathBuf>,
    /// The `pos-central` binary for registering terminals.
    #[arg(long, default_value = "pos-central")]
    central_bin: PathBuf,
    /// Instead: a command run per terminal to register it, `{id}` replaced,
    /// printing the token (split on spaces), e.g. "pos-central terminal
    /// add {id} --dir /srv/central".
    #[arg(long)]
    enroll_cmd: Option<String>,
    /// Registration commands at once.
    #[arg(long, default_value_t = enroll::JOBS_DEFAULT)]
    enroll_jobs: usize,
    /// Instead: terminals registered beforehand, lines `TERMINAL_ID TOKEN`.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// CA certificate of the instances (default: DIR/ca.pem).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Admin API base URL (default: DIR/admin.url).
    #[arg(long)]
    admin_url: Option<String>,
    /// File holding the admin token (default: DIR/admin.token).
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// A process whose CPU time over the drain is reported, as PID or
    /// PID=NAME (repeatable: central's serve processes, PostgreSQL).
    #[arg(long = "watch-pid")]
    watch: Vec<String>,
    /// After the run, insert the same rows straight into this PostgreSQL
    /// (a libpq connection string) for the bare insert rate.
    #[arg(long)]
    bare_postgres: Option<String>,
    /// How the bare rows go in.
    #[arg(long, value_enum, default_value_t = BareArg::All)]
    bare_method: BareArg,
    /// Only the bare insert (no central, no load run): the floor alone.
    #[arg(long, requires = "bare_postgres")]
    bare_only: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SpreadArg {
    Register,
    Batch,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BareArg {
    Insert,
    Unnest,
    Copy,
    All,
}

impl Args {
    fn plan(&self) -> Plan {
        Plan {
            registers: self.registers,
            entries_per_register: self.entries,
            batch_entries: self.batch,
            concurrency: self.concurrency,
            members: self.members,
            terminal_prefix: self.terminal_prefix.clone(),
            rules_version: self.rules_version,
            spread: match self.spread {
                SpreadArg::Register => Spread::Register,
                SpreadArg::Batch => Spread::Batch,
            },
        }
    }

    fn in_dir(&self, file: &str) -> anyhow::Result<PathBuf> {
        let dir = self
            .central_dir
            .as_ref()
            .with_context(|| format!("give --central-dir or the option for its {file}"))?;
        Ok(dir.join(file))
    }

    fn enroll(&self) -> anyhow::Result<Enroll> {
        if let Some(tokens) = &self.tokens {
            return Ok(Enroll::TokensFile(tokens.clone()));
        }
        if let Some(cmd) = &self.enroll_cmd {
            let mut words = cmd.split_whitespace().map(String::from);
            let program = words.next().context("--enroll-cmd is empty")?;
            return Ok(Enroll::Command {
                program: program.into(),
                args: words.collect(),
                jobs: self.enroll_jobs,
            });
        }
        let dir = self
            .central_dir
            .as_ref()
            .context("give --central-dir, --enroll-cmd or --tokens to register terminals")?;
        let mut how = Enroll::pos_central(&self.central_bin, dir);
        if let Enroll::Command { jobs, .. } = &mut how {
            *jobs = self.enroll_jobs;
        }
        Ok(how)
    }

    fn target(&self) -> anyhow::Result<Target> {
        let admin_url = match &self.admin_url {
            Some(url) => url.clone(),
            None => read(&self.in_dir("admin.url")?)?,
        };
        let token_file = match &self.admin_token_file {
            Some(f) => f.clone(),
            None => self.in_dir("admin.token")?,
        };
        let ca_file = match (&self.ca, &self.central_dir) {
            (Some(ca), _) => Some(ca.clone()),
            (None, Some(dir)) => Some(dir.join("ca.pem")),
            (None, None) => None,
        };
        let watch = self
            .watch
            .iter()
            .map(|w| {
                let (pid, name) = w.split_once('=').unwrap_or((w, "watched"));
                let pid = pid.parse().with_context(|| format!("--watch-pid {w}"))?;
                Ok((pid, name.to_string()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Target {
            sync_urls: self.urls.clone(),
            ca_file,
            admin: AdminTarget {
                url: admin_url,
                token: read(&token_file)?,
            },
            enroll: self.enroll()?,
            watch,
        })
    }
}

/// A small text file (URL, token), trimmed.
fn read(path: &std::path::Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_string())
}

fn bare_runs(url: &str, plan: &Plan, which: BareArg) -> anyhow::Result<Vec<bare::Bare>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .context("connecting to PostgreSQL for the bare insert")?;
    let methods: &[Method] = match which {
        BareArg::Insert => &[Method::Insert],
        BareArg::Unnest => &[Method::Unnest],
        BareArg::Copy => &[Method::Copy],
        BareArg::All => &[Method::Insert, Method::Unnest, Method::Copy],
    };
    methods
        .iter()
        .map(|m| Ok(bare::insert_rows(&mut client, plan, *m, "bare_entries")?))
        .collect()
}

fn print_bare(bare: &[bare::Bare]) {
    for b in bare {
        println!(
            "bare PostgreSQL ({:?}): {} rows in {}.{:03} s, {} rows/s",
            b.method,
            b.rows,
            b.elapsed_ms / 1_000,
            b.elapsed_ms % 1_000,
            b.rows_per_s
        );
    }
}

fn print(summary: &Summary, bare: &[bare::Bare], json: bool) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({"load": summary, "bare_postgres": bare});
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{summary}");
    print_bare(bare);
    Ok(())
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let plan = args.plan();
    if args.bare_only {
        let url = args.bare_postgres.as_deref().unwrap_or_default();
        let bare = bare_runs(url, &plan, args.bare_method)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&bare)?);
        } else {
            print_bare(&bare);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let target = args.target()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let summary = runtime.block_on(pos_loadgen::run(&plan, &target))?;
    // The postgres client runs its own runtime: outside `block_on`.
    let bare = match &args.bare_postgres {
        Some(url) => bare_runs(url, &plan, args.bare_method)?,
        None => Vec::new(),
    };
    print(&summary, &bare, args.json)?;
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
