//! The load generator (`pos-loadgen`) against a real `pos-central serve`
//! on SQLite, small enough for every test run, so the benchmark's code
//! cannot rot: 20 registers × 200 entries in batches of 50, every
//! terminal registered through `pos-central terminal add`, the rules
//! published and the members imported through the admin API, every entry
//! re-derived from its sale document by central. Counts only, no timing.

use pos_loadgen::admin::AdminTarget;
use pos_loadgen::enroll::Enroll;
use pos_loadgen::{Plan, Spread, Target};
use pos_testkit::central_proc::{Central, central_bin};

fn target(central: &Central, urls: Vec<String>) -> Target {
    Target {
        sync_urls: urls,
        ca_file: Some(central.ca_path()),
        admin: AdminTarget {
            url: central.admin_url.clone(),
            token: std::fs::read_to_string(central.dir().join("admin.token"))
                .unwrap()
                .trim()
                .to_string(),
        },
        enroll: Enroll::pos_central(&central_bin(), central.dir()),
        watch: central
            .pid()
            .map(|p| (p, "central".into()))
            .into_iter()
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_register_drains_and_central_holds_every_chain() {
    let central = Central::start().unwrap();
    let plan = Plan {
        registers: 20,
        entries_per_register: 200,
        batch_entries: 50,
        concurrency: 8,
        members: 300,
        // Two base URLs of the one instance: each register's batches go
        // to both in turn, as to two instances behind a balancer.
        spread: Spread::Batch,
        ..Plan::default()
    };
    let urls = vec![central.url.clone(), central.url.clone()];
    let summary = pos_loadgen::run(&plan, &target(&central, urls))
        .await
        .unwrap();
    println!("{summary}");
    let t = &summary.tally;
    assert_eq!(
        (t.applied, t.corrected, t.overdraft, t.duplicate, t.rejected),
        (4_000, 0, 0, 0, 0),
        "{summary}"
    );
    assert_eq!((t.batches, t.failed_registers), (80, 0), "{summary}");
    assert_eq!(summary.heads.matching, 20, "{summary}");
    assert_eq!(summary.conflicts, 0, "{summary}");
    assert!(summary.ok, "{summary}");

    // Central's own ledger agrees: one terminal's entries, seq 1..=200.
    let ledger = central
        .admin_get("/v1/admin/ledger?terminal=load-reg-7&limit=1000")
        .unwrap();
    let seqs: Vec<u64> = ledger["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}
