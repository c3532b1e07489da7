//! A big member import while a terminal uploads, on the real binary: the
//! import is stored in chunks (`pos_central::server::import`), so the
//! terminal's uploads keep being answered within the issue's bound
//! throughout, and the import still lands whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pos_sync::protocol::{BatchOutcome, EntryResult, UploadBatch};
use pos_sync::testing::{Chain, bundle_json, documents_for};
use pos_sync::{ClientConfig, SyncClient, Token};
use pos_testkit::central_proc::Central;

const TERMINAL: &str = "store-1-reg-1";
/// Members imported: enough that one transaction of them all held the
/// storage for seconds in a debug build. `POS_IMPORT_STALL_MEMBERS=150000`
/// runs the issue's 150k import (for the figures; too slow for the suite).
const MEMBERS_DEFAULT: usize = 30_000;
/// The issue's 100 ms, with slack for a debug central on a shared 2-core
/// machine; one transaction of the whole import took seconds.
const UPLOAD_ANSWERED_WITHIN: Duration = Duration::from_secs(1);

/// A members snapshot of `n` members, one card and one program each.
fn snapshot(n: usize) -> String {
    let members: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id": "M-{i}", "cards": ["C-{i}"], "programs": {{"main": {{"available": {i}, "pending": 0}}}}}}"#
            )
        })
        .collect();
    format!(r#"{{"members": [{}]}}"#, members.join(",\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminals_uploads_are_answered_throughout_a_big_import() {
    let members: usize = std::env::var("POS_IMPORT_STALL_MEMBERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MEMBERS_DEFAULT);
    let central = Arc::new(Central::start_insecure().unwrap());
    let rules = central.dir().join("rules-v1.json");
    std::fs::write(&rules, bundle_json(1)).unwrap();
    central.publish_rules(&rules).unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let mut config = ClientConfig::new(central.url.clone(), Token::new(&token).unwrap());
    config.request_timeout_ms = 30_000;
    let client = SyncClient::new(&config).unwrap();
    let file = central.dir().join("members.json");
    std::fs::write(&file, snapshot(members)).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let import = {
        let (central, done) = (central.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let answer = central.import_members(&file);
            done.store(true, Ordering::Relaxed);
            (answer, started.elapsed())
        })
    };
    let mut chain = Chain::new(TERMINAL);
    let (mut slowest, mut uploads) = (Duration::ZERO, 0);
    while !done.load(Ordering::Relaxed) {
        let entry = chain.earn("M-1", 1);
        let batch = UploadBatch {
            terminal_id: TERMINAL.into(),
            first_seq: entry.seq,
            documents: documents_for(std::slice::from_ref(&entry)),
            entries: vec![entry],
        };
        let sent = Instant::now();
        let answer = client.upload(&batch).await.unwrap();
        let took = sent.elapsed();
        assert_eq!(
            answer.outcome,
            BatchOutcome::Entries(vec![EntryResult::Applied])
        );
        assert!(
            took < UPLOAD_ANSWERED_WITHIN,
            "upload {uploads} took {took:?} during the import"
        );
        slowest = slowest.max(took);
        uploads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (answer, import_took) = import.await.unwrap();
    let answer = answer.unwrap();
    eprintln!(
        "{members}-member import: {} ms; {uploads} uploads meanwhile, slowest {} ms",
        import_took.as_millis(),
        slowest.as_millis()
    );
    assert_eq!(answer["imported"], members as u64);
    // Chunks add up to the whole snapshot: the last member is in, with its
    // card and its balance.
    let last = members - 1;
    let found = central
        .admin_get(&format!("/v1/admin/members/C-{last}"))
        .unwrap();
    assert_eq!(found["member"], format!("M-{last}"));
    assert_eq!(found["programs"]["main"]["balance"], last as u64);
    assert!(uploads > 10, "too few uploads to show anything: {uploads}");
}
