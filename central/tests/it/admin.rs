//! Issue 9's administration through the `Storage` trait, on both
//! backends ([`crate::backend`]): token revocation and rotation, last use, collapsed conflicts
//! and their filters, and adjustments at the balance bound.

use ed25519_dalek::SigningKey;
use pos_central::CentralError;
use pos_central::apply::BALANCE_ABS_MAX;
use pos_central::apply::adjust::AdjustmentRequest;
use pos_central::snapshot::{CheckedSnapshot, MembersSnapshot};
use pos_central::storage::{ConflictFilter, LedgerFilter, NewBundle, Storage};
use pos_central::tokens::TokenState;
use pos_sync::protocol::{BundleFormat, UploadBatch};
use pos_sync::signing::sign_bundle;
use pos_sync::testing::Chain;
use pos_sync::{LedgerEntry, wire};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::backend::{self, on_both_backends};

const TERMINAL: &str = "store-1-reg-1";

fn at(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

fn central() -> Box<dyn Storage> {
    let s = backend::open();
    s.add_terminal(TERMINAL, [1; 32]).unwrap();
    let key = SigningKey::generate(&mut StdRng::seed_from_u64(11));
    let signed = sign_bundle(
        &key,
        1,
        BundleFormat::Json,
        pos_sync::testing::bundle_json(1).into_bytes(),
    );
    let programs = vec!["main".into()];
    s.publish_bundle(NewBundle { signed, programs }, at("2026-12-01T00:00:00Z"))
        .unwrap();
    s
}

fn refused(result: Result<String, CentralError>, says: &str) {
    match result {
        Err(CentralError::Unauthorized(m)) => assert!(m.contains(says), "{m}"),
        other => panic!("expected 401 saying {says:?}, got {other:?}"),
    }
}

on_both_backends! {
fn rotation_keeps_the_old_token_for_its_grace_and_revocation_ends_both() {
    let s = central();
    let t0 = at("2026-12-03T10:00:00Z");
    assert_eq!(s.authenticate([1; 32], t0).unwrap(), TERMINAL);
    refused(s.authenticate([9; 32], t0), "unknown terminal token");

    s.rotate_terminal(TERMINAL, [2; 32], 60_000, t0).unwrap();
    let t1 = at("2026-12-03T10:00:59.999Z");
    assert_eq!(s.authenticate([1; 32], t1).unwrap(), TERMINAL);
    assert_eq!(s.authenticate([2; 32], t1).unwrap(), TERMINAL);
    refused(
        s.authenticate([1; 32], at("2026-12-03T10:01:00Z")),
        "grace period ended at 2026-12-03T10:01:00Z",
    );
    // A second rotation drops the token the first one replaced.
    s.rotate_terminal(TERMINAL, [3; 32], 60_000, t1).unwrap();
    refused(s.authenticate([1; 32], t1), "unknown");
    assert_eq!(s.authenticate([2; 32], t1).unwrap(), TERMINAL);

    assert!(s.revoke_terminal(TERMINAL, t1).unwrap());
    assert!(!s.revoke_terminal(TERMINAL, t1).unwrap());
    for hash in [[2; 32], [3; 32]] {
        refused(
            s.authenticate(hash, t1),
            "was revoked at 2026-12-03T10:00:59.999Z",
        );
    }
    assert!(matches!(
        s.rotate_terminal(TERMINAL, [4; 32], 0, t1),
        Err(CentralError::Conflict(_))
    ));
    assert!(matches!(
        s.revoke_terminal("@central", t1),
        Err(CentralError::NotFound(_))
    ));
    let listed = s.terminals().unwrap();
    assert_eq!(listed.len(), 1, "central's pseudo-terminal is not listed");
    assert_eq!(listed[0].state, TokenState::Revoked);
}
}

on_both_backends! {
fn last_use_is_recorded_at_most_once_a_minute() {
    let s = central();
    let last_used = |s: &dyn Storage| s.terminals().unwrap()[0].last_used_at.clone();
    assert_eq!(last_used(&*s), None);
    s.authenticate([1; 32], at("2026-12-03T10:00:00Z")).unwrap();
    s.authenticate([1; 32], at("2026-12-03T10:00:59Z")).unwrap();
    assert_eq!(last_used(&*s).as_deref(), Some("2026-12-03T10:00:00Z"));
    s.authenticate([1; 32], at("2026-12-03T10:01:00Z")).unwrap();
    assert_eq!(last_used(&*s).as_deref(), Some("2026-12-03T10:01:00Z"));
}
}

fn upload(s: &dyn Storage, entries: &[LedgerEntry], when: &str) {
    let batch = UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: vec![],
    };
    let received = wire::decode_upload(&wire::encode_upload(&batch).unwrap()).unwrap();
    s.apply_batch(&received, at(when)).unwrap();
}

on_both_backends! {
fn repeats_collapse_across_batches_and_filters_select_by_time() {
    let s = central();
    let mut chain = Chain::new(TERMINAL).occurred_at("2026-12-03T10:00:00Z");
    let mut unknown = |program: &str| {
        chain.entry_with(|e| {
            e.member = "M-1".into();
            e.program = program.into();
            e.points = 1;
        })
    };
    let first: Vec<_> = (0..3).map(|_| unknown("gone")).collect();
    let second = vec![unknown("gone"), unknown("other")];
    upload(&*s, &first, "2026-12-03T10:00:00.5Z");
    upload(&*s, &second, "2026-12-03T10:00:01Z");

    let all = s.conflicts(100).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let gone = all
        .iter()
        .find(|c| c.program.as_deref() == Some("gone"))
        .unwrap();
    assert_eq!((gone.count, gone.seq), (4, Some(4)));
    assert_eq!(gone.first_at, "2026-12-03T10:00:00.5Z");
    assert_eq!(gone.last_at, "2026-12-03T10:00:01Z");

    let page = |since: Option<&str>, until: Option<&str>| {
        let filter = ConflictFilter {
            since: since.map(at),
            until: until.map(at),
            limit: 100,
            ..ConflictFilter::default()
        };
        s.conflict_page(&filter).unwrap().len()
    };
    // Fractional seconds compare as times, not as text.
    assert_eq!(page(Some("2026-12-03T10:00:00.9Z"), None), 2);
    assert_eq!(page(Some("2026-12-03T10:00:01.1Z"), None), 0);
    assert_eq!(page(None, Some("2026-12-03T10:00:00.7Z")), 1);
    assert_eq!(page(None, Some("2026-12-03T10:00:00Z")), 0);
}
}

fn adjustment(points: i64) -> AdjustmentRequest {
    AdjustmentRequest {
        member: "M-1".into(),
        program: "main".into(),
        points,
        reason: "goodwill".into(),
        author: "ana".into(),
    }
}

on_both_backends! {
fn an_adjustment_past_the_balance_bound_writes_nothing() {
    let s = central();
    let near = BALANCE_ABS_MAX - 10;
    let members = format!(
        r#"{{"members": [{{"id": "M-1", "programs": {{"main": {{"available": {near}, "pending": 0}}}}}}]}}"#
    );
    s.import_members(&MembersSnapshot::parse(&members).unwrap())
        .unwrap();
    let now = at("2026-12-03T10:00:00Z");
    let e = s.adjust(&adjustment(11).check().unwrap(), now).unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e}");
    let e = s.adjust(&adjustment(5).check().unwrap(), now).unwrap();
    assert_eq!((e.seq, e.kind.as_deref()), (1, Some("adjust")));
    let (_, programs) = s.member_balances("M-1", now).unwrap().unwrap();
    assert_eq!(programs[0].balance, near + 5);
    let ledger = s
        .ledger(&LedgerFilter {
            member: Some("M-1".into()),
            limit: 10,
            ..LedgerFilter::default()
        })
        .unwrap();
    assert_eq!(ledger.len(), 1);
    let mut unknown = adjustment(5);
    unknown.member = "M-2".into();
    let e = s.adjust(&unknown.check().unwrap(), now).unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e}");
}
}
