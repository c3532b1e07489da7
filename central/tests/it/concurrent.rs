//! Several central instances on one PostgreSQL database (issue 11): two
//! `PgStorage` on one database stand for two `pos-central serve`
//! processes (the end-to-end test with real processes is in pos-tests'
//! `two_centrals`). Each test skips, visibly, where PostgreSQL is absent.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use ed25519_dalek::SigningKey;
use pos_central::PgStorage;
use pos_central::storage::{LedgerFilter, NewBundle, Storage};
use pos_sync::protocol::{
    BatchOutcome, BundleFormat, EntryResult, HoldAnswer, HoldRequest, ReceivedBatch, UploadBatch,
};
use pos_sync::signing::sign_bundle;
use pos_sync::testing::{self, Chain};
use pos_sync::{LedgerEntry, wire};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Two storages ("instances") on one fresh database with `terminals`
/// registered and program "main" published; None without PostgreSQL.
fn two_instances(
    test: &str,
    terminals: &[&str],
) -> Option<(Arc<PgStorage>, Arc<PgStorage>, String)> {
    let url = pos_testkit::postgres::fresh_database(test)?;
    let a = PgStorage::open(&url, 4).unwrap();
    let b = PgStorage::open(&url, 4).unwrap();
    for (i, t) in terminals.iter().enumerate() {
        a.add_terminal(t, [i as u8 + 1; 32]).unwrap();
    }
    let key = SigningKey::generate(&mut StdRng::seed_from_u64(11));
    let signed = sign_bundle(
        &key,
        1,
        BundleFormat::Json,
        testing::bundle_json(1).into_bytes(),
    );
    let programs = vec!["main".into()];
    b.publish_bundle(NewBundle { signed, programs }, jiff::Timestamp::now())
        .unwrap();
    Some((Arc::new(a), Arc::new(b), url))
}

fn received(terminal: &str, entries: &[LedgerEntry]) -> ReceivedBatch {
    let batch = UploadBatch {
        terminal_id: terminal.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: testing::documents_for(entries),
    };
    wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap()
}

fn balance(s: &dyn Storage, member: &str) -> (i64, i64) {
    let (_, programs) = s
        .member_balances(member, jiff::Timestamp::now())
        .unwrap()
        .unwrap();
    let main = programs.iter().find(|p| p.program == "main").unwrap();
    (main.balance, main.available)
}

/// Every entry of `entries` stored once as applied, in chain order, and
/// each member's balance the sum of its entries.
fn assert_exactly_once(s: &dyn Storage, terminal: &str, entries: &[LedgerEntry]) {
    let stored = s
        .ledger(&LedgerFilter {
            terminal: Some(terminal.into()),
            limit: 10_000,
            ..LedgerFilter::default()
        })
        .unwrap();
    assert_eq!(stored.len(), entries.len(), "one row per consumed seq");
    for (row, entry) in stored.iter().zip(entries) {
        assert_eq!(
            (row.seq, row.entry_id, row.hash),
            (entry.seq, entry.entry_id, entry.hash)
        );
        assert_eq!(row.status, "applied", "seq {}", row.seq);
    }
    let head = s
        .terminals()
        .unwrap()
        .into_iter()
        .find(|t| t.terminal_id == terminal)
        .unwrap();
    let last = entries.last().unwrap();
    assert_eq!(
        (head.last_seq, head.last_hash),
        (last.seq, last.hash),
        "the chain head"
    );
    let members: BTreeSet<&str> = entries.iter().map(|e| e.member.as_str()).collect();
    for member in members {
        let sum: i64 = entries
            .iter()
            .filter(|e| e.member == member)
            .map(|e| e.points)
            .sum();
        assert_eq!(balance(s, member).0, sum, "balance of {member}");
    }
}

/// The acceptance test of issue 11: one terminal's batches sent to two
/// instances at the same moment, many times over.
#[test]
fn one_terminals_batches_sent_to_two_instances_at_once_apply_every_entry_once() {
    let Some((a, b, _)) = two_instances("same_terminal", &["reg-1"]) else {
        return;
    };
    let mut chain = Chain::new("reg-1");
    let entries: Vec<LedgerEntry> = (0..400)
        .map(|i| chain.earn(&format!("M-{}", i % 7), 1 + i % 13))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let send = |s: Arc<PgStorage>, barrier: Arc<Barrier>, entries: Vec<LedgerEntry>| {
        std::thread::spawn(move || {
            let mut applied = 0;
            for batch in entries.chunks(20) {
                barrier.wait();
                let answer = s.apply_batch(&received("reg-1", batch), jiff::Timestamp::now());
                if let BatchOutcome::Entries(results) = answer.unwrap().outcome {
                    applied += results
                        .iter()
                        .filter(|r| **r == EntryResult::Applied)
                        .count();
                }
            }
            applied
        })
    };
    let ta = send(a.clone(), barrier.clone(), entries.clone());
    let tb = send(b.clone(), barrier, entries.clone());
    let applied = ta.join().unwrap() + tb.join().unwrap();
    assert_eq!(
        applied,
        entries.len(),
        "each entry answered applied once, duplicate once"
    );
    assert_exactly_once(&*a, "reg-1", &entries);
    assert_exactly_once(&*b, "reg-1", &entries);
}

/// Two registers crediting the same members through two instances: no
/// balance loses an update.
#[test]
fn two_terminals_on_two_instances_crediting_the_same_members_lose_no_points() {
    let Some((a, b, _)) = two_instances("same_members", &["reg-1", "reg-2"]) else {
        return;
    };
    let members = ["M-1", "M-2", "M-3", "M-4"];
    let make = |terminal: &str, reversed: bool| {
        let mut chain = Chain::new(terminal);
        (0..300)
            .map(|i| {
                let m = if reversed { 3 - i % 4 } else { i % 4 };
                chain.earn(members[m], 1 + (i % 5) as i64)
            })
            .collect::<Vec<_>>()
    };
    let (e1, e2) = (make("reg-1", false), make("reg-2", true));
    let run = |s: Arc<PgStorage>, terminal: &'static str, entries: Vec<LedgerEntry>| {
        std::thread::spawn(move || {
            for batch in entries.chunks(10) {
                s.apply_batch(&received(terminal, batch), jiff::Timestamp::now())
                    .unwrap();
            }
        })
    };
    let t1 = run(a.clone(), "reg-1", e1.clone());
    let t2 = run(b.clone(), "reg-2", e2.clone());
    t1.join().unwrap();
    t2.join().unwrap();
    for member in members {
        let sum: i64 = e1
            .iter()
            .chain(&e2)
            .filter(|e| e.member == member)
            .map(|e| e.points)
            .sum();
        assert_eq!(balance(&*a, member).0, sum, "{member}");
    }
}

/// Holds placed on one member from two terminals through two instances at
/// once never reserve more than the member has.
#[test]
fn concurrent_holds_on_two_instances_never_reserve_more_than_the_balance() {
    let Some((a, b, _)) = two_instances("holds", &["reg-1", "reg-2"]) else {
        return;
    };
    let mut chain = Chain::new("reg-1");
    a.apply_batch(
        &received("reg-1", &[chain.earn("M-1", 1_000)]),
        jiff::Timestamp::now(),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let place = |s: Arc<PgStorage>, terminal: &'static str, barrier: Arc<Barrier>| {
        std::thread::spawn(move || {
            let mut granted = 0;
            for i in 0..2 {
                let sale = format!("{terminal}-S-{i}");
                let request = HoldRequest {
                    terminal_id: terminal.into(),
                    member: "M-1".into(),
                    program: "main".into(),
                    sale_id: sale.clone(),
                    points: 300,
                    basket: testing::hold_basket(&sale, "M-1", 10_000),
                };
                barrier.wait();
                match s.place_hold(&request, jiff::Timestamp::now()).unwrap() {
                    HoldAnswer::Granted { available } => {
                        assert!(available >= 0, "granted leaving {available}");
                        granted += 1;
                    }
                    HoldAnswer::Insufficient { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            granted
        })
    };
    let ta = place(a.clone(), "reg-1", barrier.clone());
    let tb = place(b.clone(), "reg-2", barrier);
    let granted: i64 = ta.join().unwrap() + tb.join().unwrap();
    assert_eq!(
        granted, 3,
        "1,000 points cover three holds of 300, not four"
    );
    assert_eq!(balance(&*a, "M-1"), (1_000, 100));
}

/// Member revisions become visible in increasing order: a register paging
/// the changes while two instances apply batches of many terminals never
/// moves its cursor past a revision that commits later.
#[test]
fn a_register_paging_member_changes_during_concurrent_batches_misses_no_member() {
    let terminals = ["reg-1", "reg-2", "reg-3", "reg-4"];
    let Some((a, b, _)) = two_instances("revs_in_order", &terminals) else {
        return;
    };
    let mut writers = Vec::new();
    for (i, terminal) in terminals.iter().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let terminal = terminal.to_string();
        writers.push(std::thread::spawn(move || {
            let mut chain = Chain::new(&terminal);
            // Every member is changed exactly once: a skipped revision
            // would never come back under a newer one.
            for k in 0..40 {
                let entries: Vec<LedgerEntry> = (0..5)
                    .map(|j| chain.earn(&format!("{terminal}-M-{k}-{j}"), 1))
                    .collect();
                s.apply_batch(&received(&terminal, &entries), jiff::Timestamp::now())
                    .unwrap();
            }
        }));
    }
    let reader = {
        let s = a.clone();
        std::thread::spawn(move || {
            let (mut cursor, mut seen) = (0, BTreeSet::new());
            let page = |cursor: &mut u64, seen: &mut BTreeSet<String>| {
                let changes = s.member_changes(*cursor, 7).unwrap();
                for c in changes.changes {
                    seen.insert(c.id);
                }
                *cursor = changes.next_cursor;
                changes.more
            };
            while seen.len() < 4 * 40 * 5 {
                page(&mut cursor, &mut seen);
                if writers_done() {
                    while page(&mut cursor, &mut seen) {}
                    break;
                }
            }
            seen.len()
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    WRITERS_DONE.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        reader.join().unwrap(),
        4 * 40 * 5,
        "every changed member seen once paged"
    );
}

static WRITERS_DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn writers_done() -> bool {
    WRITERS_DONE.load(std::sync::atomic::Ordering::SeqCst)
}

/// A batch that deadlocks with another transaction is rolled back and run
/// again, and applies once.
#[test]
fn a_batch_caught_in_a_deadlock_is_run_again_and_applies_once() {
    let Some((a, _b, url)) = two_instances("deadlock", &["reg-1"]) else {
        return;
    };
    let mut chain = Chain::new("reg-1");
    let entries = vec![chain.earn("M-D", 42)];
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut watch = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    // This session never detects the deadlock first: the batch's does.
    other.batch_execute("SET deadlock_timeout = '60s'").unwrap();
    let mut tx = other.transaction().unwrap();
    tx.execute(
        "INSERT INTO account_locks (name) VALUES ('M-D') ON CONFLICT DO NOTHING",
        &[],
    )
    .unwrap();
    tx.execute(
        "SELECT name FROM account_locks WHERE name = 'M-D' FOR UPDATE",
        &[],
    )
    .unwrap();
    let batch = {
        let (s, entries) = (a.clone(), entries.clone());
        std::thread::spawn(move || {
            s.apply_batch(&received("reg-1", &entries), jiff::Timestamp::now())
        })
    };
    // Once the batch holds the terminal and waits for the name…
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = watch
            .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the batch never waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // …this transaction asks for the terminal: a cycle.
    tx.execute(
        "SELECT id FROM terminals WHERE id = 'reg-1' FOR UPDATE",
        &[],
    )
    .unwrap();
    tx.rollback().unwrap();
    let answer = batch.join().unwrap().unwrap();
    assert_eq!(
        answer.outcome,
        BatchOutcome::Entries(vec![EntryResult::Applied])
    );
    assert!(a.retries() >= 1, "the deadlocked batch was run again");
    assert_exactly_once(&*a, "reg-1", &entries);
}
