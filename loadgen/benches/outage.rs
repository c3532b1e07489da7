//! The headline load scenario (issue 11): a regional outage ends and 1,000
//! registers reconnect at once, each with 1,000 queued entries (1,000,000
//! entries), to one `pos-central serve` on its embedded SQLite, started
//! here on a fresh state directory (release build, TLS on loopback).
//!
//! `cargo bench -p pos-loadgen --bench outage` prints the summary: entries
//! per second, batch latency p50/p99, the time to drain everything, what
//! every entry became and whether every terminal's chain head at central is
//! the register's last entry. Sizes from the environment:
//! `LOADGEN_REGISTERS` (1000), `LOADGEN_ENTRIES` (1000),
//! `LOADGEN_CONCURRENCY` (48), `LOADGEN_MEMBERS` (20000),
//! `LOADGEN_BATCH` (1000); `LOADGEN_JSON=1` prints JSON.
//! `LOADGEN_BARE_POSTGRES="host=/run/postgresql dbname=..."` then inserts
//! the same rows straight into that PostgreSQL ([`pos_loadgen::bare`]) in
//! the same run, for the floor. Not criterion:
//! one run mutates central and takes about a minute; repeated samples
//! would measure an ever larger database.
//!
//! Against running instances (PostgreSQL, several of them) use the binary:
//! `pos-loadgen --url ... --central-dir ...` (README, "Central under load").

use anyhow::Context;
use pos_loadgen::admin::AdminTarget;
use pos_loadgen::bare::{self, Method};
use pos_loadgen::enroll::Enroll;
use pos_loadgen::{Plan, Target};
use pos_testkit::central_proc::{Central, central_bin};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={text} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a filter that is not ours skips.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "outage")
    {
        return Ok(());
    }
    let defaults = Plan::default();
    let plan = Plan {
        registers: env_or("LOADGEN_REGISTERS", defaults.registers)?,
        entries_per_register: env_or("LOADGEN_ENTRIES", defaults.entries_per_register)?,
        concurrency: env_or("LOADGEN_CONCURRENCY", defaults.concurrency)?,
        members: env_or("LOADGEN_MEMBERS", defaults.members)?,
        batch_entries: env_or("LOADGEN_BATCH", defaults.batch_entries)?,
        ..defaults
    };
    // LOADGEN_BACKEND=postgres: a durable PostgreSQL (fsync on) started
    // here, LOADGEN_INSTANCES `serve` processes on it, each batch to the
    // next instance; the bare floor then runs on the same server.
    let instances: usize = env_or("LOADGEN_INSTANCES", 1)?;
    let server = match std::env::var("LOADGEN_BACKEND").as_deref() {
        Ok("postgres") => Some(
            pos_testkit::postgres::PgServer::start(pos_testkit::postgres::Durability::Fsync)
                .context("starting PostgreSQL")?,
        ),
        Ok("sqlite") | Err(_) => None,
        Ok(other) => anyhow::bail!("LOADGEN_BACKEND={other}: sqlite or postgres"),
    };
    let central = match &server {
        Some(server) => Central::start_on_database(&server.create_database("outage")?)
            .context("starting pos-central serve on PostgreSQL")?,
        None => Central::start().context("starting pos-central serve")?,
    };
    let others = (1..instances.max(1))
        .map(|_| central.another_instance())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plan = Plan {
        spread: if others.is_empty() {
            plan.spread
        } else {
            pos_loadgen::Spread::Batch
        },
        ..plan
    };
    let mut sync_urls = vec![central.url.clone()];
    sync_urls.extend(others.iter().map(|c| c.url.clone()));
    let target = Target {
        sync_urls,
        ca_file: Some(central.ca_path()),
        admin: AdminTarget {
            url: central.admin_url.clone(),
            token: std::fs::read_to_string(central.dir().join("admin.token"))?
                .trim()
                .to_string(),
        },
        enroll: Enroll::pos_central(&central_bin(), central.dir()),
        watch: std::iter::once(&central)
            .chain(&others)
            .enumerate()
            .filter_map(|(i, c)| {
                c.pid()
                    .map(|pid| (pid, format!("pos-central serve #{}", i + 1)))
            })
            .collect(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(pos_loadgen::run(&plan, &target))?;
    if std::env::var_os("LOADGEN_JSON").is_some() {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{summary}");
    }
    let bare_url = match (&server, std::env::var("LOADGEN_BARE_POSTGRES")) {
        (_, Ok(url)) => Some(url),
        (Some(server), Err(_)) => Some(server.create_database("bare")?),
        (None, Err(_)) => None,
    };
    if let Some(url) = bare_url {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
        for method in [Method::Insert, Method::Unnest, Method::Copy] {
            let b = bare::insert_rows(&mut client, &plan, method, "bare_entries")?;
            println!(
                "bare PostgreSQL ({method:?}): {} rows in {} ms, {} rows/s",
                b.rows, b.elapsed_ms, b.rows_per_s
            );
        }
    }
    if server.is_none() {
        let db = std::fs::metadata(central.dir().join("central.db")).map_or(0, |m| m.len());
        println!("central.db: {} MiB", db / 1_048_576);
    }
    anyhow::ensure!(
        summary.ok,
        "the load run did not end with every entry applied"
    );
    Ok(())
}
