//! Central's apply path through the `Storage` trait, on both backends
//! (SQLite in memory, PostgreSQL: [`crate::backend`]):
//! every per-entry and per-batch answer of sync spec §2, conflicts, holds,
//! card tokens, change cursors and bundle signing.

use ed25519_dalek::SigningKey;
use pos_central::CentralError;
use pos_central::rules;
use pos_central::snapshot::{CatalogSnapshot, CheckedSnapshot, MembersSnapshot};
use pos_central::sqlite::{HOLD_KEPT_SECS, HOLD_TTL_SECS};
use pos_central::storage::{LedgerFilter, NewBundle, Storage};

use crate::backend::{self, on_both_backends};
use pos_sync::protocol::{
    BatchOutcome, BundleFormat, EntryResult, HoldAnswer, HoldRelease, HoldRequest, ReceivedBatch,
    UploadAnswer, UploadBatch,
};
use pos_sync::signing::{sign_bundle, verify_bundle};
use pos_sync::testing::{self, Chain};
use pos_sync::{Digest32, EntryKind, LedgerEntry, wire};
use rand::SeedableRng;
use rand::rngs::StdRng;

const TERMINAL: &str = "store-1-reg-1";
const NOW: &str = "2026-11-28T12:00:00Z";

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

fn key() -> SigningKey {
    SigningKey::generate(&mut StdRng::seed_from_u64(11))
}

/// A central with one terminal and program "main" published.
fn central() -> Box<dyn Storage> {
    provisioned(backend::open())
}

/// `s` with one terminal and program "main" published.
fn provisioned(s: Box<dyn Storage>) -> Box<dyn Storage> {
    s.add_terminal(TERMINAL, [1; 32]).unwrap();
    let signed = sign_bundle(
        &key(),
        1,
        BundleFormat::Json,
        testing::bundle_json(1).into_bytes(),
    );
    s.publish_bundle(
        NewBundle {
            signed,
            programs: vec!["main".into()],
        },
        now(),
    )
    .unwrap();
    s
}

/// The register side: appends entries to a chain like the agent does.
fn register() -> Chain {
    Chain::new(TERMINAL).occurred_at("2026-11-28T11:05:00+01:00")
}

/// Goes through the real wire encoding, as the HTTP layer does.
fn received(entries: &[LedgerEntry]) -> ReceivedBatch {
    let batch = UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: testing::documents_for(entries),
    };
    wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap()
}

fn upload(s: &dyn Storage, entries: &[LedgerEntry]) -> UploadAnswer {
    s.apply_batch(&received(entries), now()).unwrap()
}

fn results(answer: &UploadAnswer) -> Vec<EntryResult> {
    match &answer.outcome {
        BatchOutcome::Entries(r) => r.clone(),
        other => panic!("expected per-entry results, got {other:?}"),
    }
}

fn balance(s: &dyn Storage, member: &str) -> (i64, i64) {
    balance_at(s, member, now())
}

fn balance_at(s: &dyn Storage, member: &str, at: jiff::Timestamp) -> (i64, i64) {
    let (_, programs) = s.member_balances(member, at).unwrap().unwrap();
    let main = programs.iter().find(|p| p.program == "main").unwrap();
    (main.balance, main.available)
}

fn conflict_kinds(s: &dyn Storage) -> Vec<String> {
    let mut kinds: Vec<String> = s
        .conflicts(100)
        .unwrap()
        .into_iter()
        .map(|c| c.kind)
        .collect();
    kinds.sort();
    kinds
}

on_both_backends! {
fn a_batch_is_applied_and_answers_balances_of_touched_members() {
    let s = central();
    let mut r = register();
    let entries = vec![r.earn("M-1", 100), r.earn("M-2", 40), r.earn("M-1", 5)];
    let answer = upload(&*s, &entries);
    assert_eq!(results(&answer), vec![EntryResult::Applied; 3]);
    let m1 = answer.balances.iter().find(|b| b.member == "M-1").unwrap();
    assert_eq!(m1.programs[0].balance, 105);
    assert_eq!(m1.programs[0].available, 105);
    assert_eq!(m1.programs[0].pending, 0);
    assert_eq!(answer.balances.len(), 2);
    let t = &s.terminals().unwrap()[0];
    assert_eq!((t.last_seq, t.last_hash), (3, entries[2].hash));
    assert!(t.last_contact.is_some());
    let ledger = s
        .ledger(&LedgerFilter {
            member: Some("M-1".into()),
            limit: 100,
            ..LedgerFilter::default()
        })
        .unwrap();
    assert_eq!(ledger.len(), 2);
    assert!(ledger.iter().all(|e| e.status == "applied"));
}
}

on_both_backends! {
fn a_resent_batch_is_duplicate_and_counted_once() {
    let s = central();
    let mut r = register();
    let entries = vec![r.earn("M-1", 100), r.earn("M-1", 50)];
    upload(&*s, &entries);
    // The answer was lost: the register sends the same batch plus one more.
    let mut again = entries.clone();
    again.push(r.earn("M-1", 1));
    let answer = upload(&*s, &again);
    assert_eq!(
        results(&answer),
        vec![
            EntryResult::Duplicate,
            EntryResult::Duplicate,
            EntryResult::Applied
        ]
    );
    assert_eq!(balance(&*s, "M-1"), (151, 151));
    // Balances are still answered for the members of duplicates.
    assert_eq!(answer.balances[0].programs[0].balance, 151);
}
}

on_both_backends! {
fn an_entry_id_already_applied_under_another_seq_is_duplicate_and_consumes_the_seq() {
    let s = central();
    let mut r = register();
    let first = r.earn("M-1", 100);
    upload(&*s, std::slice::from_ref(&first));
    // Same entry id re-numbered to seq 2 (a register that re-chained it).
    let mut moved = first.clone();
    moved.seq = 2;
    moved.chain_after(first.hash);
    r.resume_after(2, moved.hash);
    let next = r.earn("M-1", 7);
    let answer = upload(&*s, &[moved, next]);
    assert_eq!(
        results(&answer),
        vec![EntryResult::Duplicate, EntryResult::Applied]
    );
    assert_eq!(balance(&*s, "M-1"), (107, 107));
    assert_eq!(s.terminals().unwrap()[0].last_seq, 3);
}
}

on_both_backends! {
fn a_batch_past_the_next_seq_is_a_gap() {
    let s = central();
    let mut r = register();
    let entries = [r.earn("M-1", 1), r.earn("M-1", 2), r.earn("M-1", 3)];
    upload(&*s, &entries[..1]);
    let answer = upload(&*s, &entries[2..]);
    assert_eq!(answer.outcome, BatchOutcome::Gap { expected: 2 });
    assert_eq!(balance(&*s, "M-1"), (1, 1));
    assert_eq!(s.terminals().unwrap()[0].last_seq, 1);
}
}

on_both_backends! {
fn a_held_seq_with_another_hash_is_seq_reused_and_nothing_is_applied() {
    let s = central();
    let mut r = register();
    let entries = vec![r.earn("M-1", 10), r.earn("M-1", 20)];
    upload(&*s, &entries);
    // The register was restored from a backup taken after seq 1.
    let mut restored = register();
    restored.resume_after(1, entries[0].hash);
    // Its new sales have ids of their own (the chain's default would
    // reuse S-2, a sale the lost entry already earned for).
    let sale = |id: &'static str, points: i64| {
        move |e: &mut LedgerEntry| {
            e.member = "M-9".into();
            e.points = points;
            e.sale_id = Some(id.into());
        }
    };
    let new_two = restored.entry_with(sale("S-2b", 500));
    let new_three = restored.entry_with(sale("S-3b", 1));
    let answer = upload(
        &*s,
        &[entries[0].clone(), new_two.clone(), new_three.clone()],
    );
    assert_eq!(
        answer.outcome,
        BatchOutcome::SeqReused {
            server_high: 2,
            server_high_hash: entries[1].hash,
        }
    );
    assert!(s.member_balances("M-9", now()).unwrap().is_none());
    assert_eq!(conflict_kinds(&*s), vec!["seq_reused"]);

    // The register re-numbers after server_high, re-chains onto its hash,
    // keeps the entry ids, and resends: applied.
    let mut renumbered = Vec::new();
    let mut prev = entries[1].hash;
    for (i, e) in [new_two, new_three].into_iter().enumerate() {
        let mut e = e.clone();
        e.seq = 3 + i as u64;
        e.chain_after(prev);
        prev = e.hash;
        renumbered.push(e);
    }
    let answer = upload(&*s, &renumbered);
    assert_eq!(results(&answer), vec![EntryResult::Applied; 2]);
    assert_eq!(balance(&*s, "M-9"), (501, 501));
}
}

on_both_backends! {
fn a_redemption_over_the_balance_is_an_overdraft_applied_anyway() {
    let s = central();
    let mut r = register();
    let entries = vec![r.earn("M-1", 300), r.entry(EntryKind::Redeem, "M-1", -500)];
    let answer = upload(&*s, &entries);
    assert_eq!(
        results(&answer),
        vec![
            EntryResult::Applied,
            EntryResult::Overdraft { shortfall: 200 }
        ]
    );
    assert_eq!(balance(&*s, "M-1"), (-200, -200));
    let conflicts = s.conflicts(10).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].kind, "overdraft");
    assert_eq!(conflicts[0].shortfall, Some(200));
    assert_eq!(conflicts[0].member.as_deref(), Some("M-1"));
    // A second debit while already negative: the whole debit is short.
    let answer = upload(&*s, &[r.entry(EntryKind::Redeem, "M-1", -100)]);
    assert_eq!(
        results(&answer),
        vec![EntryResult::Overdraft { shortfall: 100 }]
    );
}
}

on_both_backends! {
fn rejected_entries_consume_their_seq_and_later_entries_still_apply() {
    let s = central();
    let mut r = register();
    let ok1 = r.earn("M-1", 10);
    let unknown = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 1_000;
        e.program = "ghost".into();
    });
    let mut altered = r.earn("M-1", 20);
    altered.points = 2_000_000; // changed after hashing
    let ok4 = r.earn("M-1", 30);
    let mut broken = r.earn("M-1", 40);
    broken.chain_after(Digest32([9; 32])); // a chain that does not link
    r.resume_after(broken.seq, broken.hash);
    let ok6 = r.earn("M-1", 50);
    let answer = upload(&*s, &[ok1, unknown, altered, ok4, broken, ok6]);
    let got = results(&answer);
    assert_eq!(got[0], EntryResult::Applied);
    assert!(
        matches!(&got[1], EntryResult::Rejected { reason } if reason.contains("is not in rules version 1")),
        "{got:?}"
    );
    assert!(
        matches!(&got[2], EntryResult::Rejected { reason } if reason.contains("hash mismatch: entry altered")),
        "{got:?}"
    );
    assert_eq!(got[3], EntryResult::Applied);
    assert!(
        matches!(&got[4], EntryResult::Rejected { reason } if reason.contains("broken chain")),
        "{got:?}"
    );
    assert_eq!(got[5], EntryResult::Applied);
    // Rejected entries change no balance.
    assert_eq!(balance(&*s, "M-1"), (90, 90));
    assert_eq!(s.terminals().unwrap()[0].last_seq, 6);
    assert_eq!(conflict_kinds(&*s), vec!["rejected", "rejected", "rejected"]);
    let stored = s
        .ledger(&LedgerFilter {
            limit: 10,
            ..LedgerFilter::default()
        })
        .unwrap();
    assert_eq!(stored.iter().filter(|e| e.status == "rejected").count(), 3);
}
}

on_both_backends! {
fn a_malformed_entry_is_rejected_alone() {
    let s = central();
    let mut r = register();
    let ok = r.earn("M-1", 10);
    let bad = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 10;
        e.occurred_at = "last tuesday".into();
    });
    let after = r.earn("M-1", 5);
    let got = results(&upload(&*s, &[ok, bad, after]));
    assert!(matches!(&got[1], EntryResult::Rejected { reason } if reason.contains("occurred_at")));
    assert_eq!(got[2], EntryResult::Applied);
    assert_eq!(balance(&*s, "M-1"), (15, 15));
}
}

on_both_backends! {
/// A NUL, which PostgreSQL's text columns cannot hold, makes its entry
/// malformed: the batch around it still applies on either backend.
fn a_nul_in_an_entrys_text_rejects_that_entry_only() {
    let s = central();
    let mut r = register();
    let ok = r.earn("M-1", 10);
    let bad = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 10;
        e.detail = "a\0b".into();
    });
    let after = r.earn("M-1", 5);
    let got = results(&upload(&*s, &[ok, bad, after]));
    assert!(matches!(&got[1], EntryResult::Rejected { reason } if reason.contains("NUL")));
    assert_eq!(got[2], EntryResult::Applied);
    assert_eq!(balance(&*s, "M-1"), (15, 15));
}
}

on_both_backends! {
fn clock_skew_over_a_day_is_recorded_but_applied() {
    let s = central();
    let mut r = register();
    let skewed = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 10;
        e.occurred_at = "2026-11-26T11:59:00Z".into(); // 48 h before receipt
    });
    let fine = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 10;
        e.occurred_at = "2026-11-27T12:00:01Z".into(); // just under 24 h
    });
    let got = results(&upload(&*s, &[skewed, fine]));
    assert_eq!(got, vec![EntryResult::Applied; 2]);
    assert_eq!(conflict_kinds(&*s), vec!["clock_skew"]);
    assert_eq!(balance(&*s, "M-1"), (20, 20));
}
}

on_both_backends! {
fn card_tokens_known_at_central_credit_the_cards_member() {
    let s = central();
    let snapshot = MembersSnapshot::parse(
        r#"{"members": [{"id": "M-1001", "cards": ["9990000010013"],
            "programs": {"main": {"tier": "gold", "available": 1500}}}]}"#,
    )
    .unwrap();
    s.import_members(&snapshot).unwrap();
    let mut r = register();
    let answer = upload(&*s, &[r.earn("9990000010013", 25)]);
    assert_eq!(answer.balances[0].member, "M-1001");
    assert_eq!(balance(&*s, "M-1001"), (1525, 1525));
    assert_eq!(balance(&*s, "9990000010013"), (1525, 1525));
    let stored = &s
        .ledger(&LedgerFilter {
            limit: 10,
            ..LedgerFilter::default()
        })
        .unwrap()[0];
    assert_eq!(stored.member.as_deref(), Some("9990000010013"));
    assert_eq!(stored.credited_member.as_deref(), Some("M-1001"));
}
}

on_both_backends! {
fn holds_reduce_available_and_the_redeem_entry_settles_them() {
    let s = central();
    let mut r = register();
    upload(&*s, &[r.earn("M-1", 1_000)]);
    let hold = |points, sale: &str| HoldRequest {
        terminal_id: TERMINAL.into(),
        member: "M-1".into(),
        program: "main".into(),
        sale_id: sale.into(),
        points,
        basket: testing::hold_basket(sale, "M-1", 10_000),
    };
    assert_eq!(
        s.place_hold(&hold(600, "S-2"), now()).unwrap(),
        HoldAnswer::Granted { available: 400 }
    );
    // A retry of the same sale replaces its hold rather than stacking.
    assert_eq!(
        s.place_hold(&hold(600, "S-2"), now()).unwrap(),
        HoldAnswer::Granted { available: 400 }
    );
    assert_eq!(
        s.place_hold(&hold(500, "S-9"), now()).unwrap(),
        HoldAnswer::Insufficient { available: 400 }
    );
    assert_eq!(balance(&*s, "M-1"), (1_000, 400));
    // The redeem entry of sale S-2 (Register::entry names it S-2) settles it:
    // no overdraft, and available is no longer reduced twice.
    let redeem = r.entry(EntryKind::Redeem, "M-1", -600);
    assert_eq!(redeem.sale_id.as_deref(), Some("S-2"));
    let answer = upload(&*s, &[redeem]);
    assert_eq!(results(&answer), vec![EntryResult::Applied]);
    assert_eq!(balance(&*s, "M-1"), (400, 400));
    // A late retry of the settled sale's hold reserves nothing again.
    assert_eq!(
        s.place_hold(&hold(600, "S-2"), now()).unwrap(),
        HoldAnswer::Granted { available: 400 }
    );
    assert_eq!(balance(&*s, "M-1"), (400, 400));

    // A released hold gives the points back.
    s.place_hold(&hold(300, "S-7"), now()).unwrap();
    assert_eq!(balance(&*s, "M-1"), (400, 100));
    let release = HoldRelease {
        terminal_id: TERMINAL.into(),
        sale_id: "S-7".into(),
        program: "main".into(),
    };
    assert!(s.release_hold(&release).unwrap());
    assert!(!s.release_hold(&release).unwrap());
    assert_eq!(balance(&*s, "M-1"), (400, 400));
}
}

on_both_backends! {
fn hold_rows_are_purged_a_week_after_they_expire_and_no_balance_moves() {
    let (s, raw) = backend::open_with_raw();
    let s = provisioned(s);
    upload(&*s, &[register().earn("M-1", 1_000)]);
    let hold = |points, sale: &str, at: jiff::Timestamp| {
        let request = HoldRequest {
            terminal_id: TERMINAL.into(),
            member: "M-1".into(),
            program: "main".into(),
            sale_id: sale.into(),
            points,
            basket: testing::hold_basket(sale, "M-1", 10_000),
        };
        assert!(matches!(
            s.place_hold(&request, at).unwrap(),
            HoldAnswer::Granted { .. }
        ));
    };
    let rows = || raw.strings("SELECT sale_id FROM holds ORDER BY sale_id");
    let later = |secs: i64| {
        now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    let expired_long_ago = HOLD_TTL_SECS + HOLD_KEPT_SECS;

    hold(300, "S-2", now()); // lapses unsettled
    hold(200, "S-3", now());
    assert!(
        s.release_hold(&HoldRelease {
            terminal_id: TERMINAL.into(),
            sale_id: "S-3".into(),
            program: "main".into(),
        })
        .unwrap()
    );
    assert_eq!(balance(&*s, "M-1"), (1_000, 700));

    // Just short of a week after they expired: both rows are kept.
    hold(100, "S-4", later(expired_long_ago - 1));
    assert_eq!(rows(), ["S-2", "S-3", "S-4"]);
    // Past it: the next placement deletes them; the open holds stay.
    hold(100, "S-5", later(expired_long_ago + 1));
    assert_eq!(rows(), ["S-4", "S-5"]);
    assert_eq!(
        balance_at(&*s, "M-1", later(expired_long_ago + 1)),
        (1_000, 800)
    );
}
}

on_both_backends! {
fn holds_for_blocked_members_and_unknown_programs_are_refused() {
    let s = central();
    s.import_members(
        &MembersSnapshot::parse(r#"{"members": [{"id": "M-B", "blocked": true}]}"#).unwrap(),
    )
    .unwrap();
    let mut request = HoldRequest {
        terminal_id: TERMINAL.into(),
        member: "M-B".into(),
        program: "main".into(),
        sale_id: "S-1".into(),
        points: 100,
        basket: testing::hold_basket("S-1", "M-B", 10_000),
    };
    assert_eq!(s.place_hold(&request, now()).unwrap(), HoldAnswer::Blocked);
    request.program = "ghost".into();
    assert!(matches!(
        s.place_hold(&request, now()),
        Err(CentralError::Invalid(_))
    ));
}
}

on_both_backends! {
fn member_and_catalog_changes_page_by_cursor() {
    let s = central();
    let members: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"id": "M-{i}", "cards": ["C-{i}"], "birthday": "1990-11-0{}"}}"#,
                i + 1
            )
        })
        .collect();
    s.import_members(
        &MembersSnapshot::parse(&format!(r#"{{"members": [{}]}}"#, members.join(","))).unwrap(),
    )
    .unwrap();
    let page = s.member_changes(0, 3).unwrap();
    assert_eq!(page.changes.len(), 3);
    assert!(page.more);
    let rest = s.member_changes(page.next_cursor, 3).unwrap();
    assert_eq!(rest.changes.len(), 2);
    assert!(!rest.more);
    let empty = s.member_changes(rest.next_cursor, 3).unwrap();
    assert!(empty.changes.is_empty());
    assert_eq!(empty.next_cursor, rest.next_cursor);

    // A ledger upload changes M-3's balance: it shows up after the cursor.
    let mut r = register();
    upload(&*s, &[r.earn("C-3", 70)]);
    let changed = s.member_changes(rest.next_cursor, 10).unwrap();
    assert_eq!(changed.changes.len(), 1);
    assert_eq!(changed.changes[0].id, "M-3");
    assert_eq!(changed.changes[0].cards, vec!["C-3".to_string()]);
    assert_eq!(changed.changes[0].programs["main"].available, 70);

    s.import_catalog(
        &CatalogSnapshot::parse(
            r#"{"products": [{"sku": "1", "name": "Shoe", "category": "shoes", "price": "59.99"},
                             {"sku": "2", "name": "Milk", "price": "1.09"}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    let catalog = s.catalog_changes(0, 10).unwrap();
    assert_eq!(catalog.changes.len(), 2);
    assert_eq!(catalog.changes[0].price.to_string(), "59.99");
    assert!(
        s.catalog_changes(catalog.next_cursor, 10)
            .unwrap()
            .changes
            .is_empty()
    );
}
}

on_both_backends! {
fn published_bundles_verify_with_the_public_key_and_tampered_ones_do_not() {
    let s = backend::open();
    let k = key();
    let text =
        br#"{"version": 3, "programs": [{"id": "main", "currency": "EUR", "base_rate": "1"}]}"#;
    let bundle = rules::prepare(text.to_vec(), BundleFormat::Json, &k).unwrap();
    assert_eq!(bundle.programs, vec!["main".to_string()]);
    s.publish_bundle(bundle, now()).unwrap();
    let served = s.newest_bundle(None).unwrap().unwrap();
    assert_eq!(served.bytes, text.to_vec());
    verify_bundle(&served, &k.verifying_key(), Some(2)).unwrap();
    let mut tampered = served.clone();
    let at = tampered.bytes.len() - 5;
    tampered.bytes[at] = b'2';
    assert!(verify_bundle(&tampered, &k.verifying_key(), None).is_err());
    assert!(s.newest_bundle(Some(3)).unwrap().is_none());

    // Versions only go up; invalid bundles are refused before signing.
    let same = rules::prepare(text.to_vec(), BundleFormat::Json, &k).unwrap();
    assert!(matches!(
        s.publish_bundle(same, now()),
        Err(CentralError::Conflict(_))
    ));
    let invalid =
        br#"{"version": 4, "programs": [{"id": "main", "currency": "EUR", "base_rate": "-1"}]}"#;
    assert!(matches!(
        rules::prepare(invalid.to_vec(), BundleFormat::Json, &k),
        Err(CentralError::Invalid(_))
    ));
}
}

on_both_backends! {
fn a_card_moved_by_a_later_snapshot_credits_its_new_member() {
    let s = central();
    let import = |json: &str| {
        s.import_members(&MembersSnapshot::parse(json).unwrap())
            .unwrap()
    };
    import(r#"{"members": [{"id": "A", "cards": ["C-1"]}]}"#);
    let cursor = s.member_changes(0, 10).unwrap().next_cursor;
    import(r#"{"members": [{"id": "B", "cards": ["C-1"]}]}"#);
    let changed = s.member_changes(cursor, 10).unwrap();
    let mut ids: Vec<&str> = changed.changes.iter().map(|c| c.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["A", "B"]);
    let a = changed.changes.iter().find(|c| c.id == "A").unwrap();
    assert!(a.cards.is_empty());
    let mut r = register();
    let answer = upload(&*s, &[r.earn("C-1", 5)]);
    assert_eq!(answer.balances[0].member, "B");
}
}

on_both_backends! {
fn points_earned_under_an_unknown_card_move_to_the_member_it_is_linked_to() {
    let s = central();
    let mut r = register();
    upload(&*s, &[r.earn("999-NEW", 40), r.earn("M-7", 5)]);
    assert_eq!(balance(&*s, "999-NEW"), (40, 40));
    let cursor = s.member_changes(0, 100).unwrap().next_cursor;

    s.import_members(
        &MembersSnapshot::parse(
            r#"{"members": [{"id": "M-7", "cards": ["999-NEW"], "programs": {"main": {"available": 100}}}]}"#,
        )
        .unwrap(),
    )
    .unwrap();
    // Opening 100 + 5 earned as M-7 + 40 earned under the card before the link.
    assert_eq!(balance(&*s, "M-7"), (145, 145));
    assert_eq!(balance(&*s, "999-NEW"), (145, 145));
    let changed = s.member_changes(cursor, 100).unwrap();
    let token_row = changed.changes.iter().find(|c| c.id == "999-NEW").unwrap();
    assert!(token_row.programs.is_empty(), "{token_row:?}");
    // Later entries under the card go straight to the member; the stored
    // entry keeps the name it was credited to.
    upload(&*s, &[r.earn("999-NEW", 1)]);
    assert_eq!(balance(&*s, "M-7"), (146, 146));
    let first = &s
        .ledger(&LedgerFilter {
            limit: 1,
            ..LedgerFilter::default()
        })
        .unwrap()[0];
    assert_eq!(first.credited_member.as_deref(), Some("999-NEW"));
}
}

/// A hold request of `TERMINAL` for `member`'s points in sale `sale`.
fn hold_request(member: &str, sale: &str, points: i64) -> HoldRequest {
    HoldRequest {
        terminal_id: TERMINAL.into(),
        member: member.into(),
        program: "main".into(),
        sale_id: sale.into(),
        points,
        basket: testing::hold_basket(sale, member, 10_000),
    }
}

on_both_backends! {
fn entry_ids_are_judged_per_terminal() {
    let s = central();
    s.add_terminal("store-1-reg-2", [2; 32]).unwrap();
    let mut b = Chain::new("store-1-reg-2").occurred_at("2026-11-28T11:05:00+01:00");
    let real = b.earn("M-1", 1_000);
    // Terminal A uploads an entry carrying B's entry id first…
    let mut a = register();
    let forged = a.entry_with(|e| {
        e.entry_id = real.entry_id;
        e.member = "M-2".into();
        e.points = 1;
    });
    assert_eq!(results(&upload(&*s, &[forged])), vec![EntryResult::Applied]);
    // …and B's real entry is still B's, counted once.
    let batch = UploadBatch {
        terminal_id: "store-1-reg-2".into(),
        first_seq: 1,
        documents: testing::documents_for(std::slice::from_ref(&real)),
        entries: vec![real],
    };
    let received = wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap();
    let answer = s.apply_batch(&received, now()).unwrap();
    assert_eq!(results(&answer), vec![EntryResult::Applied]);
    assert_eq!(balance(&*s, "M-1"), (1_000, 1_000));
    // Within one terminal an id counts once, under any seq.
    let mut again = a.entry_with(|e| {
        e.member = "M-2".into();
        e.points = 1;
    });
    let first_id = s.ledger(&LedgerFilter {
        terminal: Some(TERMINAL.into()),
        member: None,
        limit: 10,
    });
    again.entry_id = first_id.unwrap()[0].entry_id;
    again.chain_after(again.prev_hash);
    assert_eq!(results(&upload(&*s, &[again])), vec![EntryResult::Duplicate]);
}
}

on_both_backends! {
fn open_holds_are_limited_per_member_and_per_terminal() {
    let s = central();
    let mut r = register();
    let members: Vec<String> = (0..17).map(|i| format!("M-{i}")).collect();
    let earns: Vec<_> = members.iter().map(|m| r.earn(m, 1_000)).collect();
    upload(&*s, &earns);
    // Four holds on one member; the fifth is refused, naming the limit.
    for sale in 0..4 {
        let answer = s
            .place_hold(&hold_request("M-0", &format!("H-{sale}"), 10), now())
            .unwrap();
        assert!(matches!(answer, HoldAnswer::Granted { .. }), "{answer:?}");
    }
    let answer = s
        .place_hold(&hold_request("M-0", "H-4", 10), now())
        .unwrap();
    assert!(
        matches!(&answer, HoldAnswer::Refused { reason } if reason.contains("HOLDS_OPEN_PER_MEMBER_MAX")),
        "{answer:?}"
    );
    // Asking again for an open hold replaces it: not a fifth.
    let answer = s
        .place_hold(&hold_request("M-0", "H-3", 20), now())
        .unwrap();
    assert!(matches!(answer, HoldAnswer::Granted { .. }), "{answer:?}");
    // 64 on one terminal (4 each on 16 members); the 65th is refused.
    for (i, member) in members[1..=15].iter().enumerate() {
        for sale in 0..4 {
            let sale = format!("T-{i}-{sale}");
            let answer = s
                .place_hold(&hold_request(member, &sale, 10), now())
                .unwrap();
            assert!(matches!(answer, HoldAnswer::Granted { .. }), "{answer:?}");
        }
    }
    let answer = s
        .place_hold(&hold_request(&members[16], "T-last", 10), now())
        .unwrap();
    assert!(
        matches!(&answer, HoldAnswer::Refused { reason } if reason.contains("HOLDS_OPEN_PER_TERMINAL_MAX")),
        "{answer:?}"
    );
    assert_eq!(balance(&*s, &members[16]), (1_000, 1_000));
}
}

on_both_backends! {
fn a_sales_hold_asked_again_keeps_its_first_expiry() {
    let s = central();
    upload(&*s, &[register().earn("M-1", 1_000)]);
    let later = |secs: i64| {
        now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap()
    };
    s.place_hold(&hold_request("M-1", "S-9", 100), now())
        .unwrap();
    // An hour later the retry replaces the amount…
    let answer = s
        .place_hold(&hold_request("M-1", "S-9", 200), later(3_600))
        .unwrap();
    assert_eq!(answer, HoldAnswer::Granted { available: 800 });
    // …but the hold lapses when the first one would have.
    assert_eq!(balance_at(&*s, "M-1", later(HOLD_TTL_SECS)), (1_000, 1_000));
    let answer = s
        .place_hold(&hold_request("M-1", "S-9", 200), later(HOLD_TTL_SECS))
        .unwrap();
    assert!(
        matches!(&answer, HoldAnswer::Refused { reason } if reason.contains("never renewed")),
        "{answer:?}"
    );
}
}

on_both_backends! {
fn balances_are_bounded_and_downloads_survive_the_largest() {
    let s = central();
    s.add_terminal("store-1-reg-2", [2; 32]).unwrap();
    let mut r = register();
    let huge = r.earn("M-1", i64::MAX - 40);
    let got = results(&upload(&*s, &[huge]));
    assert!(
        matches!(&got[..], [EntryResult::Rejected { reason }] if reason.contains("at most 1000000000")),
        "{got:?}"
    );
    // An opening balance just below the bound, then one earn past it.
    let bound = pos_central::apply::BALANCE_ABS_MAX;
    s.import_members(&members_with_opening("M-1", bound - 10))
        .unwrap();
    let got = results(&upload(&*s, &[r.earn("M-1", 10), r.earn("M-1", 1)]));
    assert_eq!(got[0], EntryResult::Applied);
    let last = s
        .ledger(&LedgerFilter {
            terminal: Some(TERMINAL.into()),
            member: Some("M-1".into()),
            limit: 10_000,
        })
        .unwrap();
    let last = last.last().unwrap();
    assert_eq!(last.status, "rejected", "{got:?}");
    assert!(
        last.reason
            .as_deref()
            .unwrap()
            .starts_with("the balance would leave the allowed range"),
        "{last:?}"
    );
    assert_eq!(balance(&*s, "M-1"), (bound, bound));
    // Another terminal's batch touching the member, and the member feed,
    // work as before.
    let mut b = Chain::new("store-1-reg-2").occurred_at("2026-11-28T11:05:00+01:00");
    let redeem = b.entry(EntryKind::Redeem, "M-1", -5);
    let batch = UploadBatch {
        terminal_id: "store-1-reg-2".into(),
        first_seq: 1,
        documents: testing::documents_for(std::slice::from_ref(&redeem)),
        entries: vec![redeem],
    };
    let received = wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap();
    let answer = s.apply_batch(&received, now()).unwrap();
    assert_eq!(results(&answer), vec![EntryResult::Applied]);
    let page = s.member_changes(0, 1_000).unwrap();
    let m1 = page.changes.iter().find(|c| c.id == "M-1").unwrap();
    assert_eq!(m1.programs["main"].available, bound - 5);
    // SQL itself refuses a balance out of range.
    assert!(
        s.import_members(&members_with_opening("M-2", bound + 1))
            .is_err()
    );
}
}

fn members_with_opening(member: &str, available: i64) -> MembersSnapshot {
    MembersSnapshot::parse(&format!(
        r#"{{"members": [{{"id": "{member}", "programs": {{"main": {{"available": {available}}}}}}}]}}"#
    ))
    .unwrap()
}
on_both_backends! {
/// The member's first tier at central counts from the start of history: a
/// sale quoted a moment before the import (register clocks write to the
/// second, and an offline register's sale may predate it by days) keeps the
/// tier the cashier saw, with no correction. The demo's first sale is such
/// a sale, seconds after central's import.
fn a_sale_dated_before_the_members_first_import_keeps_its_tier() {
    let s = backend::open();
    s.add_terminal(TERMINAL, [1; 32]).unwrap();
    let bundle = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
        "base_rate": "1", "tiers": [{"id": "gold", "multiplier": "1.5"}]}]}"#;
    let signed = sign_bundle(&key(), 1, BundleFormat::Json, bundle.as_bytes().to_vec());
    s.publish_bundle(
        NewBundle {
            signed,
            programs: vec!["main".into()],
        },
        now(),
    )
    .unwrap();
    let snapshot = MembersSnapshot::parse(
        r#"{"members": [{"id": "M-1001", "cards": [],
            "programs": {"main": {"tier": "gold", "available": 0}}}]}"#,
    )
    .unwrap();
    // Imported now (wall clock); the sale below is dated days earlier.
    s.import_members(&snapshot).unwrap();

    let mut r = register();
    let entry = r.earn("M-1001", 150);
    let basket = serde_json::json!({
        "sale_id": entry.sale_id,
        "time": entry.occurred_at,
        "member": {"id": "M-1001", "programs": {"main": {"tier": "gold"}}},
        "lines": [{"line": 1, "sku": "TEST", "qty": "1", "unit_price": "100.00"}],
    });
    let document = pos_sync::protocol::SaleDocument {
        sale_id: entry.sale_id.clone().unwrap(),
        rules_version: entry.rules_version,
        basket: basket.to_string(),
        redeemed: Vec::new(),
    };
    let batch = UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: 1,
        entries: vec![entry],
        documents: vec![pos_sync::protocol::Document::Sale(document)],
    };
    let received = wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap();
    let answer = s.apply_batch(&received, now()).unwrap();
    assert_eq!(results(&answer), vec![EntryResult::Applied]);
    assert_eq!(balance(&*s, "M-1001"), (150, 150));
    assert_eq!(conflict_kinds(&*s), Vec::<String>::new());
}
}
