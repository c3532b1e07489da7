//! One terminal floods central with a reused seq (its database restored
//! from an older backup, re-uploading seqs central holds, each time with
//! other hashes), on the real binary: every flood upload still gets the
//! exact `seq_reused` answer, the conflict rows it leaves stay bounded by
//! the per-terminal budget (`pos_central::server::refusals`), and another
//! terminal's uploads keep being answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pos_sync::protocol::{BatchOutcome, EntryResult, UploadBatch};
use pos_sync::testing::{Chain, bundle_json, documents_for};
use pos_sync::{ClientConfig, Digest32, LedgerEntry, SyncClient, Token};
use pos_testkit::central_proc::Central;

/// Central's `server::refusals::REFUSALS_RECORDED_PER_WINDOW`: refusals
/// of one terminal recorded per minute.
const REFUSALS_RECORDED_PER_WINDOW: u32 = 10;
const FLOODER: &str = "store-1-reg-1";
const HONEST: &str = "store-1-reg-2";
/// Concurrent flooding connections of the one terminal.
const FLOODERS: usize = 4;
const FLOOD_FOR: Duration = Duration::from_secs(5);
/// Generous: a debug central on a shared 2-core machine.
const HONEST_ANSWERED_WITHIN: Duration = Duration::from_secs(5);

fn client(central: &Central, token: &str) -> SyncClient {
    let mut config = ClientConfig::new(central.url.clone(), Token::new(token).unwrap());
    config.request_timeout_ms = 30_000;
    SyncClient::new(&config).unwrap()
}

fn batch(terminal: &str, entries: Vec<LedgerEntry>) -> UploadBatch {
    UploadBatch {
        terminal_id: terminal.into(),
        first_seq: entries[0].seq,
        documents: documents_for(&entries),
        entries,
    }
}

/// Seqs 1..=3 of `FLOODER` as a restored register rebuilt them: another
/// member each round, so every batch carries hashes central has not seen
/// (and every recorded conflict has its own detail: no row collapses).
fn reused(round: u64) -> UploadBatch {
    let mut chain = Chain::new(FLOODER);
    let entries = (0..3)
        .map(|_| chain.earn(&format!("R-{round}"), 1))
        .collect();
    batch(FLOODER, entries)
}

/// Floods until `stop`, checking every answer; how many were sent.
async fn flood(
    client: SyncClient,
    head: (u64, Digest32),
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> u64 {
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let round = next.fetch_add(1, Ordering::Relaxed);
        let answer = client.upload(&reused(round)).await.unwrap();
        assert_eq!(
            answer.outcome,
            BatchOutcome::SeqReused {
                server_high: head.0,
                server_high_hash: head.1,
            },
            "flood upload {round}"
        );
        sent += 1;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_resending_a_reused_seq_leaves_bounded_conflicts_and_others_are_answered() {
    let central = Central::start_insecure().unwrap();
    let rules = central.dir().join("rules-v1.json");
    std::fs::write(&rules, bundle_json(1)).unwrap();
    central.publish_rules(&rules).unwrap();
    let flooder_token = central.add_terminal(FLOODER).unwrap();
    let flooder = client(&central, &flooder_token);
    let honest = client(&central, &central.add_terminal(HONEST).unwrap());

    // The flooder's real history: seqs 1..=3.
    let mut chain = Chain::new(FLOODER);
    let entries: Vec<_> = (0..3).map(|_| chain.earn("M-1", 1)).collect();
    let head = (3, entries[2].hash);
    let answer = flooder.upload(&batch(FLOODER, entries)).await.unwrap();
    assert_eq!(
        answer.outcome,
        BatchOutcome::Entries(vec![EntryResult::Applied; 3])
    );

    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let floods: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let c = client(&central, &flooder_token);
            tokio::spawn(flood(c, head, next.clone(), stop.clone()))
        })
        .collect();

    let mut honest_chain = Chain::new(HONEST);
    let mut slowest = Duration::ZERO;
    let mut uploads = 0;
    let started = Instant::now();
    while started.elapsed() < FLOOD_FOR {
        let entry = honest_chain.earn("M-2", 1);
        let sent = Instant::now();
        let answer = honest.upload(&batch(HONEST, vec![entry])).await.unwrap();
        let took = sent.elapsed();
        assert_eq!(
            answer.outcome,
            BatchOutcome::Entries(vec![EntryResult::Applied])
        );
        assert!(
            took < HONEST_ANSWERED_WITHIN,
            "honest upload {uploads} took {took:?} during the flood"
        );
        slowest = slowest.max(took);
        uploads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut flooded = 0;
    for f in floods {
        flooded += f.await.unwrap();
    }

    let conflicts = central
        .admin_get(&format!(
            "/v1/admin/conflicts?terminal={FLOODER}&kind=seq_reused&limit=10000"
        ))
        .unwrap();
    let rows = conflicts["conflicts"].as_array().unwrap().len() as u64;
    eprintln!(
        "reused-seq flood ({FLOODERS} connections, {} ms): {flooded} flood uploads, \
         {rows} conflict rows; {uploads} honest uploads, slowest {} ms",
        FLOOD_FOR.as_millis(),
        slowest.as_millis()
    );
    assert!(
        flooded > 4 * u64::from(REFUSALS_RECORDED_PER_WINDOW),
        "the flood was too small to show anything: {flooded}"
    );
    // The first refusals are recorded for the operator; the budget is per
    // minute, and the test may straddle two windows.
    assert!(rows >= 1, "the reused seq was never recorded");
    assert!(
        rows <= 2 * u64::from(REFUSALS_RECORDED_PER_WINDOW),
        "{rows} conflict rows from one terminal's flood of {flooded}"
    );

    // The restored register re-chains after server_high, as the answer
    // says, and is applied: nothing about exactly-once changed.
    let mut rechained = Chain::new(FLOODER);
    rechained.resume_after(head.0, head.1);
    let entry = rechained.earn("M-1", 1);
    let answer = flooder.upload(&batch(FLOODER, vec![entry])).await.unwrap();
    assert_eq!(
        answer.outcome,
        BatchOutcome::Entries(vec![EntryResult::Applied])
    );
}
