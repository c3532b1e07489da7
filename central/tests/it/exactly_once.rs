//! Property: however a register's uploads are cut, repeated, lost or sent
//! too far ahead, every entry is applied at central exactly once (sync spec
//! §2, "a crash at any moment ... leads to every entry applied exactly once").

use pos_central::storage::{LedgerFilter, NewBundle, Storage};
use pos_sync::protocol::{BatchOutcome, BundleFormat, EntryResult, UploadBatch};
use pos_sync::signing::sign_bundle;
use pos_sync::testing::{self, Chain};
use pos_sync::{EntryKind, LedgerEntry, wire};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand::SeedableRng;

use crate::backend::{self, Backend};

const TERMINAL: &str = "reg-1";

fn central() -> Box<dyn Storage> {
    let s = backend::open();
    s.add_terminal(TERMINAL, [1; 32]).unwrap();
    let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::StdRng::seed_from_u64(5));
    s.publish_bundle(
        NewBundle {
            signed: sign_bundle(
                &key,
                1,
                BundleFormat::Json,
                testing::bundle_json(1).into_bytes(),
            ),
            programs: vec!["main".into()],
        },
        jiff::Timestamp::now(),
    )
    .unwrap();
    s
}

fn chain(points: &[i64]) -> Vec<LedgerEntry> {
    let mut chain = Chain::new(TERMINAL);
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Registers produce earns and redeems, each its own sale
            // (the chain's `S-{seq}`), with the sale's document.
            chain.entry_with(|e| {
                e.kind = if *p < 0 {
                    EntryKind::Redeem
                } else {
                    EntryKind::Earn
                };
                e.member = format!("M-{}", i % 3);
                e.points = *p;
            })
        })
        .collect()
}

/// One attempt of the register's sync loop.
#[derive(Clone, Debug)]
struct Attempt {
    /// How far before the first unsynced entry the batch starts (a register
    /// that lost track re-sends some synced entries), or after it (a bug).
    start_shift: i64,
    len: usize,
    /// The answer never arrives: the register learns nothing.
    answer_lost: bool,
}

fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    prop::collection::vec(
        (-5i64..=2, 1usize..=8, any::<bool>()).prop_map(|(start_shift, len, answer_lost)| {
            Attempt {
                start_shift,
                len,
                answer_lost,
            }
        }),
        1..40,
    )
}

/// Sends one batch as `attempt` says and updates what the register believes.
fn run(
    s: &dyn Storage,
    entries: &[LedgerEntry],
    attempt: &Attempt,
    synced_up_to: &mut u64,
) -> Result<(), TestCaseError> {
    let n = entries.len() as u64;
    let first = (*synced_up_to as i64 + 1 + attempt.start_shift).clamp(1, n as i64) as u64;
    let last = (first + attempt.len as u64 - 1).min(n);
    let batch = UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: first,
        entries: entries[(first - 1) as usize..last as usize].to_vec(),
        documents: testing::documents_for(&entries[(first - 1) as usize..last as usize]),
    };
    let received = wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap();
    let answer = s.apply_batch(&received, jiff::Timestamp::now()).unwrap();
    if attempt.answer_lost {
        return Ok(());
    }
    match answer.outcome {
        BatchOutcome::Entries(results) => {
            prop_assert_eq!(results.len() as u64, last - first + 1);
            let rejected = results
                .iter()
                .filter(|r| matches!(r, EntryResult::Rejected { .. }))
                .count();
            prop_assert_eq!(rejected, 0);
            *synced_up_to = (*synced_up_to).max(last);
        }
        BatchOutcome::Gap { expected } => {
            prop_assert!(first > expected);
            prop_assert_eq!(expected, s.terminals().unwrap()[0].last_seq + 1);
            // The register resends from `expected`.
            *synced_up_to = expected - 1;
        }
        BatchOutcome::SeqReused { .. } => {
            prop_assert!(false, "an unchanged chain cannot be seq_reused")
        }
    }
    Ok(())
}

/// The property on the current backend.
fn exactly_once(points: &[i64], script: &[Attempt]) -> Result<(), TestCaseError> {
    let s = central();
    let entries = chain(points);
    let n = entries.len() as u64;
    let mut synced_up_to = 0u64; // what the register believes

    for attempt in script {
        run(&*s, &entries, attempt, &mut synced_up_to)?;
    }
    // Then the network heals: the register sends until all is synced.
    while synced_up_to < n {
        let healed = Attempt {
            start_shift: 0,
            len: 8,
            answer_lost: false,
        };
        run(&*s, &entries, &healed, &mut synced_up_to)?;
    }

    let stored = s
        .ledger(&LedgerFilter {
            limit: 10_000,
            ..LedgerFilter::default()
        })
        .unwrap();
    prop_assert_eq!(stored.len() as u64, n);
    prop_assert!(
        stored
            .iter()
            .all(|e| e.status == "applied" || e.status == "overdraft")
    );
    for m in 0..3 {
        let member = format!("M-{m}");
        let expected: i64 = entries
            .iter()
            .filter(|e| e.member == member)
            .map(|e| e.points)
            .sum();
        let got = s
            .member_balances(&member, jiff::Timestamp::now())
            .unwrap()
            .map(|(_, p)| p[0].balance)
            .unwrap_or(0);
        prop_assert_eq!(got, expected, "member {}", member);
    }
    prop_assert_eq!(s.terminals().unwrap()[0].last_seq, n);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_entry_is_applied_exactly_once(
        points in prop::collection::vec(-50i64..=100, 1..30),
        script in attempts(),
    ) {
        exactly_once(&points, &script)?;
    }

    #[test]
    fn every_entry_is_applied_exactly_once_on_postgres(
        points in prop::collection::vec(-50i64..=100, 1..30),
        script in attempts(),
    ) {
        if backend::use_backend(Backend::Postgres("exactly_once")) {
            exactly_once(&points, &script)?;
        }
    }
}
