//! Command-line parsing and the commands that act on the state directory.

mod admin;
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use pos_central::embedded;
use pos_central::error::CentralError;
use pos_central::files::{CentralDir, new_token, token_hash};
use pos_central::tokens;
use secrecy::ExposeSecret;

#[derive(Parser, Debug)]
#[command(
    name = "pos-central",
    version,
    about = "Reference central loyalty platform"
)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the signing key, admin token, development TLS CA and
    /// certificate, and the database in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Extra DNS name or IP for the development certificate (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// Keep central's data on PostgreSQL at this URL
        /// (postgres://user:password@host/db) instead of DIR/central.db;
        /// recorded in DIR/database.url (0600). Several directories (one
        /// per `serve` instance) may name one database.
        #[arg(long)]
        database: Option<String>,
    },
    /// Copy this directory's SQLite central into an empty PostgreSQL
    /// database, verify the copy (row counts, every balance, every
    /// terminal's chain head), and record the URL in DIR/database.url so
    /// every command on DIR, `serve` included, uses PostgreSQL from now on
    /// (central.db stays as it was, a backup). Stop `serve` first.
    Migrate {
        #[arg(long)]
        dir: PathBuf,
        /// The target, e.g. postgres://pos@db.example/pos_central.
        #[arg(long)]
        to: String,
    },
    /// Manage registers.
    Terminal {
        #[command(subcommand)]
        command: TerminalCommand,
    },
    /// Record a channel's orders from a file (JSON Lines or CSV), checked
    /// whole first; a file sent again records nothing twice.
    ImportOrders {
        file: PathBuf,
        /// The channel the orders are of (`pos-central channel add`).
        #[arg(long)]
        channel: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Manage the other channels (web shop, app) that post orders.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// Serve the sync and admin APIs, as the flags or a config file say.
    Serve {
        /// The config file (examples/central.toml; the packaged unit uses
        /// /etc/pos-central/central.toml): everything below, and more.
        #[arg(long, conflicts_with_all = ["dir", "listen", "admin_listen", "insecure_http"])]
        config: Option<PathBuf>,
        #[arg(long, required_unless_present = "config")]
        dir: Option<PathBuf>,
        /// Address of the sync API (registers), e.g. 0.0.0.0:8443 or
        /// 127.0.0.1:0.
        #[arg(long, required_unless_present = "config")]
        listen: Option<SocketAddr>,
        /// Address of the admin API, its own listener with its own limits.
        /// Loopback by default (a free port, written to DIR/admin.url where
        /// the admin commands find it); expose it only on an
        /// administration network.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Plain HTTP instead of TLS; only allowed on a loopback address.
        #[arg(long)]
        insecure_http: bool,
    },
    /// Print the base64 Ed25519 key registers verify bundles with
    /// (`rules_public_key` in their config).
    PublicKey {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Publish a rules bundle (.json or .toml) through the admin API.
    PublishRules {
        file: PathBuf,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Write a published rules bundle with its signature (a signed rules
    /// file, docs/signed-rules.md): what `pos-agent import --rules` takes on
    /// a register with [central]. Reads the state directory directly.
    ExportRules {
        version: u64,
        #[arg(long)]
        dir: PathBuf,
        /// Where to write it (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a members snapshot through the admin API: JSON (agent spec
    /// §2), or CSV when FILE ends in `.csv` (columns in the README).
    ImportMembers {
        file: PathBuf,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Import a catalog snapshot through the admin API: JSON, or CSV when
    /// FILE ends in `.csv`.
    ImportCatalog {
        file: PathBuf,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Record a manual adjustment of a member's points through the admin
    /// API (an `adjust` entry of central's own ledger, with who and why).
    Adjust {
        /// Member id or card.
        #[arg(long)]
        member: String,
        #[arg(long)]
        program: String,
        /// Signed: + credits, − debits (e.g. --points=-500).
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        author: String,
        #[command(flatten)]
        target: admin::Target,
    },
    /// GET an admin API path and print the JSON, e.g. `/v1/admin/conflicts`.
    AdminGet {
        path: String,
        #[command(flatten)]
        target: admin::Target,
    },
}

#[derive(Subcommand, Debug)]
enum TerminalCommand {
    /// Register a terminal and print its token (only its hash is stored).
    Add {
        id: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// List terminals: created, last use (to the minute) and token state.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke a terminal's tokens: 401 from its next request on.
    Revoke {
        id: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a new token for a terminal; the old one stays valid for the
    /// grace period, then gets 401.
    Rotate {
        id: String,
        /// How long the old token stays valid, in seconds (default 24 h,
        /// at most 30 days; 0 ends it at once).
        #[arg(long, default_value_t = tokens::ROTATE_GRACE_SECS)]
        grace_secs: u64,
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ChannelCommand {
    /// Register a channel (`[a-z0-9_-]{1,32}`, e.g. `web`) and print its
    /// token, which the channel routes accept and the sync routes refuse.
    Add {
        name: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke a channel's tokens: 401 from its next request on.
    Revoke {
        name: String,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Print a new token for a channel; the old one stays valid for the
    /// grace period.
    Rotate {
        name: String,
        #[arg(long, default_value_t = tokens::ROTATE_GRACE_SECS)]
        grace_secs: u64,
        #[arg(long)]
        dir: PathBuf,
    },
}

/// `import-orders`: the file read and checked whole (every problem named
/// by line, nothing recorded if any), then each order recorded in file
/// order, with a progress line on a terminal and a summary at the end.
fn import_orders(file: &Path, channel: &str, dir: &Path) -> anyhow::Result<()> {
    use pos_central::apply::channel::{OrderAnswer, Via};
    use pos_central::orders_file::{self, FILE_BYTES_MAX, OrdersFormat};
    use std::io::IsTerminal as _;
    let terminal = tokens::channel_terminal(channel)?;
    let format = OrdersFormat::from_path(file).ok_or_else(|| {
        CentralError::Invalid(format!(
            "{}: name a .jsonl, .ndjson or .csv file",
            file.display()
        ))
    })?;
    let size = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    if size > FILE_BYTES_MAX {
        return Err(CentralError::Invalid(format!(
            "{}: {size} bytes, at most {FILE_BYTES_MAX}",
            file.display()
        ))
        .into());
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let orders = orders_file::parse(&text, format)
        .map_err(|e| anyhow::Error::new(e).context(format!("{}", file.display())))?;
    let storage = CentralDir::new(dir).open_storage()?;
    let progress = std::io::stderr().is_terminal();
    let total = orders.len();
    let (mut recorded, mut repeated, mut earned, mut redeemed) = (0usize, 0usize, 0i64, 0i64);
    let started = std::time::Instant::now();
    for (done, o) in orders.iter().enumerate() {
        let now = jiff::Timestamp::now();
        let answer = storage
            .channel_order(&terminal, &o.order, now, Via::Import)
            .map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "{} line {}: order {:?} (orders before it are recorded; fix the file and send it again)",
                    file.display(),
                    o.line,
                    o.order.order_id
                ))
            })?;
        if answer.new {
            recorded += 1;
        } else {
            repeated += 1;
        }
        let answer: OrderAnswer = serde_json::from_str(&answer.answer)?;
        earned += answer.programs.iter().map(|p| p.earned).sum::<i64>();
        redeemed += answer.programs.iter().map(|p| p.redeemed).sum::<i64>();
        if progress && (done + 1 == total || (done + 1) % (total / 100).max(1) == 0) {
            eprint!(
                "\rimporting orders: {}/{total} ({}%)",
                done + 1,
                (done + 1) * 100 / total
            );
        }
    }
    if progress && total > 0 {
        eprintln!();
    }
    println!(
        "{total} orders in {}: {recorded} recorded, {repeated} already recorded; \
         {earned} points earned, {redeemed} redeemed (channel {channel}, {} ms)",
        file.display(),
        started.elapsed().as_millis()
    );
    Ok(())
}

/// A channel is a pseudo-terminal ([`crate::apply::channel`]): its token
/// commands are the terminal's, on `@channel/<name>`.
fn channel(command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::Add { name, dir } => {
            let id = tokens::channel_terminal(&name)?;
            let storage = CentralDir::new(dir).open_storage()?;
            let token = new_token();
            storage
                .add_terminal(&id, token_hash(token.expose_secret()))
                .map_err(|e| match e {
                    CentralError::Conflict(_) => {
                        CentralError::Conflict(format!("channel {name:?} already exists"))
                    }
                    other => other,
                })?;
            println!("{}", token.expose_secret());
        }
        ChannelCommand::Revoke { name, dir } => {
            terminal(TerminalCommand::Revoke {
                id: tokens::channel_terminal(&name)?,
                dir,
            })?;
        }
        ChannelCommand::Rotate {
            name,
            grace_secs,
            dir,
        } => {
            terminal(TerminalCommand::Rotate {
                id: tokens::channel_terminal(&name)?,
                grace_secs,
                dir,
            })?;
        }
    }
    Ok(())
}

/// Errors that mean the user gave bad input (exit 2).
pub fn is_bad_input(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        matches!(
            e.downcast_ref::<CentralError>(),
            Some(
                CentralError::Invalid(_)
                    | CentralError::Conflict(_)
                    | CentralError::Refused { .. }
                    | CentralError::NotFound(_)
            )
        ) || e.downcast_ref::<admin::BadInput>().is_some()
            || e.downcast_ref::<pos_config::Error>().is_some()
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Init {
            dir,
            names,
            database,
        } => {
            let central = CentralDir::new(&dir);
            match &database {
                Some(url) => central.init_on_database(&names, url)?,
                None => central.init(&names)?,
            }
            println!("initialised {}", dir.display());
            println!("admin token: {}", central.admin_token_path().display());
            println!(
                "CA for registers (ca_file): {}",
                central.ca_path().display()
            );
            println!(
                "rules_public_key = \"{}\"",
                public_key(&central).context("reading the new key")?
            );
            Ok(())
        }
        Command::Terminal { command } => terminal(command),
        Command::Channel { command } => channel(command),
        Command::ImportOrders { file, channel, dir } => import_orders(&file, &channel, &dir),
        Command::Migrate { dir, to } => {
            let migrated = CentralDir::new(&dir).migrate_to(&to)?;
            println!("{migrated}");
            println!(
                "{} now serves from {}",
                dir.display(),
                pos_central::postgres::redacted(&to)
            );
            Ok(())
        }
        Command::Serve {
            config,
            dir,
            listen,
            admin_listen,
            insecure_http,
        } => {
            let settings = match (config, dir, listen) {
                (Some(config), _, _) => serve::Settings::from_config(&config)?,
                (None, Some(dir), Some(listen)) => serve::Settings::from_flags(
                    dir,
                    listen,
                    admin_listen.unwrap_or(embedded::ADMIN_LISTEN_DEFAULT),
                    insecure_http,
                ),
                // clap requires --dir and --listen without --config.
                _ => anyhow::bail!("serve needs --config, or --dir and --listen"),
            };
            serve::run(settings)
        }
        Command::PublicKey { dir } => {
            println!("{}", public_key(&CentralDir::new(dir))?);
            Ok(())
        }
        Command::PublishRules { file, target } => admin::publish_rules(&file, &target),
        Command::ExportRules { version, dir, out } => export_rules(&dir, version, out.as_deref()),
        Command::ImportMembers { file, target } => {
            admin::post_snapshot_file("/v1/admin/members", &file, &target)
        }
        Command::ImportCatalog { file, target } => {
            admin::post_snapshot_file("/v1/admin/catalog", &file, &target)
        }
        Command::Adjust {
            member,
            program,
            points,
            reason,
            author,
            target,
        } => {
            let body = serde_json::json!({"member": member, "program": program,
                "points": points, "reason": reason, "author": author});
            admin::post_json("/v1/admin/adjustments", &body, &target)
        }
        Command::AdminGet { path, target } => admin::get(&path, &target),
    }
}

fn export_rules(dir: &Path, version: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let storage = CentralDir::new(dir).open_storage()?;
    let text = pos_central::rules::export(&*storage, version)?;
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "rules version {version} with its signature written to {}",
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn terminal(command: TerminalCommand) -> anyhow::Result<()> {
    match command {
        TerminalCommand::Add { id, dir } => {
            check_terminal_id(&id)?;
            let storage = CentralDir::new(dir).open_storage()?;
            let token = new_token();
            storage.add_terminal(&id, token_hash(token.expose_secret()))?;
            println!("{}", token.expose_secret());
        }
        TerminalCommand::List { dir } => {
            let storage = CentralDir::new(dir).open_storage()?;
            println!(
                "{:<24} {:<9} {:<22} {:<22} NOTE",
                "ID", "STATE", "CREATED", "LAST USED"
            );
            for t in storage.terminals()? {
                let note = match (&t.revoked_at, &t.previous_token_valid_until) {
                    (Some(at), _) => format!("revoked at {at}"),
                    (None, Some(until)) => format!("previous token valid until {until}"),
                    (None, None) => String::new(),
                };
                println!(
                    "{:<24} {:<9} {:<22} {:<22} {note}",
                    t.terminal_id,
                    t.state.as_str(),
                    minute(&t.created_at),
                    t.last_used_at.as_deref().map(minute).unwrap_or("never"),
                );
            }
        }
        TerminalCommand::Revoke { id, dir } => {
            let storage = CentralDir::new(dir).open_storage()?;
            if storage.revoke_terminal(&id, jiff::Timestamp::now())? {
                println!("revoked {id}: its tokens get 401 from the next request on");
            } else {
                println!("{id} was already revoked");
            }
        }
        TerminalCommand::Rotate {
            id,
            grace_secs,
            dir,
        } => {
            let grace_ms = tokens::grace_ms(grace_secs)?;
            let storage = CentralDir::new(dir).open_storage()?;
            let token = new_token();
            let hash = token_hash(token.expose_secret());
            storage.rotate_terminal(&id, hash, grace_ms, jiff::Timestamp::now())?;
            println!("{}", token.expose_secret());
            eprintln!("the previous token of {id} stays valid for {grace_secs} s");
        }
    }
    Ok(())
}

/// An RFC 3339 time to the minute, for the terminal list.
fn minute(at: &str) -> &str {
    at.get(..16).unwrap_or(at)
}

fn check_terminal_id(id: &str) -> anyhow::Result<()> {
    let ok = !id.is_empty()
        && id.len() <= pos_sync::protocol::ID_BYTES_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !ok {
        return Err(CentralError::Invalid(format!(
            "terminal id {id:?}: use 1 to {} of A-Z a-z 0-9 - _ .",
            pos_sync::protocol::ID_BYTES_MAX
        ))
        .into());
    }
    Ok(())
}

fn public_key(dir: &CentralDir) -> anyhow::Result<String> {
    let key = dir.signing_key()?;
    Ok(pos_sync::signing::public_key_base64(&key.verifying_key()))
}
