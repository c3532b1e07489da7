//! `pos-loadgen`: central under the load of a whole chain's registers.
//!
//! N simulated registers, each a real terminal of central with its own
//! token and its own hash chain, upload the entries they queued during an
//! outage, with the sale document of every entry, so central's verified
//! intake (`docs/sync-v2.md` §3) re-derives each entry's points as it would
//! for a real register. They talk to one or several `pos-central serve`
//! instances over HTTPS with the register's own client
//! ([`pos_sync::SyncClient`]), at most `concurrency` registers at once.
//! At the end the generator reads central's chain head of every terminal
//! back through the admin API and compares it with the register's last
//! entry.
//!
//! - [`plan`]: the run's shape and the entries, generated batch by batch.
//! - [`enroll`]: registering the terminals (`pos-central terminal add`).
//! - [`admin`]: rules, members and chain heads through the admin API.
//! - [`drive`]: the registers' drains and their tally.
//! - [`summary`]: the figures.
//! - [`bare`]: the floor: the same rows inserted straight into PostgreSQL.

pub mod admin;
pub mod bare;
pub mod drive;
pub mod enroll;
pub mod error;
pub mod plan;
pub mod proc;
pub mod summary;

use std::path::PathBuf;
use std::time::Instant;

pub use error::LoadError;
pub use plan::{Plan, Spread};
pub use summary::Summary;

use crate::admin::{Admin, AdminTarget};
use crate::enroll::Enroll;
use crate::summary::{Cpu, Findings};

/// The central(s) a run loads.
#[derive(Clone, Debug)]
pub struct Target {
    /// Base URLs of the sync listeners of every instance.
    pub sync_urls: Vec<String>,
    /// The CA the instances' certificates are issued by (central's
    /// `ca.pem`).
    pub ca_file: Option<PathBuf>,
    /// One instance's admin listener (they share one database).
    pub admin: AdminTarget,
    pub enroll: Enroll,
    /// Processes whose CPU time over the drain the summary reports, with a
    /// name (central's `serve` processes, a database server).
    pub watch: Vec<(u32, String)>,
}

/// Sets central up (rules, members, terminals), drains every register at
/// once, checks central's chain heads, and sums it all up.
pub async fn run(plan: &Plan, target: &Target) -> Result<Summary, LoadError> {
    plan.check()?;
    let admin = Admin::new(target.admin.clone(), target.ca_file.as_deref())?;
    admin.publish_rules(plan.rules_version).await?;
    let importing = Instant::now();
    admin.import_members(plan.members).await?;
    let members_ms = importing.elapsed().as_millis() as u64;
    let (tokens, enrolling) = enroll::enroll(plan, &target.enroll).await?;
    let mut watch: Vec<(u32, String)> = vec![(std::process::id(), "pos-loadgen".into())];
    watch.extend(target.watch.iter().cloned());
    let before: Vec<Option<proc::Usage>> = watch.iter().map(|(pid, _)| proc::usage(*pid)).collect();
    let drained = drive::drive(plan, &target.sync_urls, target.ca_file.as_ref(), &tokens).await?;
    let cpu = watch
        .iter()
        .zip(before)
        .filter_map(|((pid, what), before)| {
            let used = proc::usage(*pid)?.since(&before?);
            Some(Cpu {
                pid: *pid,
                what: what.clone(),
                cpu_ms: used.cpu_ms,
                io: used.io,
            })
        })
        .collect();
    let central_heads = admin.heads().await?;
    let conflicts = admin.conflicts().await?.len() as u64;
    Ok(Summary::new(
        plan,
        &target.sync_urls,
        drained,
        Findings {
            enroll_ms: enrolling.as_millis() as u64,
            members_ms,
            central_heads,
            conflicts,
            cpu,
        },
    ))
}
