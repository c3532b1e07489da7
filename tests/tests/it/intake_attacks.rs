//! Issue 9's forged uploads against the real `pos-central` binary, each
//! with a terminal's own token (`docs/sync-v2.md` §3–§5, §7): nothing is
//! wrongly credited, other terminals sync on, and the cause is a conflict
//! or a refusal that names it.

use std::path::Path;

use pos_sync::protocol::{BatchOutcome, EntryResult, HoldAnswer, HoldRequest, UploadBatch};
use pos_sync::testing::{self, Chain};
use pos_sync::{ClientConfig, EntryKind, LedgerEntry, SyncClient, Token};
use pos_testkit::central_proc::Central;

const A: &str = "store-1-reg-1";
const B: &str = "store-1-reg-2";

struct Setup {
    central: Central,
    a: SyncClient,
    b: SyncClient,
    _files: tempfile::TempDir,
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A TLS central with rules version 1 (`testing::BUNDLE_JSON`, so
/// `documents_for` gives every entry's points), members M-1 and M-2 with 1,500
/// points each, and terminals A and B.
fn setup() -> Setup {
    let central = Central::start().unwrap();
    let files = tempfile::tempdir().unwrap();
    central
        .publish_rules(write(files.path(), "rules.json", &testing::bundle_json(1)))
        .unwrap();
    let members = r#"{"members": [
        {"id": "M-1", "programs": {"main": {"available": 1500}}},
        {"id": "M-2", "programs": {"main": {"available": 1500}}}]}"#;
    central
        .import_members(write(files.path(), "members.json", members))
        .unwrap();
    let client = |id: &str| {
        let token = central.add_terminal(id).unwrap();
        let mut config = ClientConfig::new(&central.url, Token::new(&token).unwrap());
        config.ca_file = Some(central.ca_path());
        SyncClient::new(&config).unwrap()
    };
    let (a, b) = (client(A), client(B));
    Setup {
        central,
        a,
        b,
        _files: files,
    }
}

fn batch(terminal: &str, entries: &[LedgerEntry]) -> UploadBatch {
    UploadBatch {
        terminal_id: terminal.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        // What an honest register sends with these entries: the forgeries
        // here are in the entries' own fields, not in their documents.
        documents: testing::documents_for(entries),
    }
}

async fn upload(client: &SyncClient, terminal: &str, entries: &[LedgerEntry]) -> Vec<EntryResult> {
    match client
        .upload(&batch(terminal, entries))
        .await
        .unwrap()
        .outcome
    {
        BatchOutcome::Entries(results) => results,
        other => panic!("expected per-entry results, got {other:?}"),
    }
}

fn rejected_reason(results: &[EntryResult]) -> String {
    match results {
        [EntryResult::Rejected { reason }] => reason.clone(),
        other => panic!("expected one rejection, got {other:?}"),
    }
}

fn balance(central: &Central, member: &str) -> i64 {
    central.balance(member, "main").unwrap()["balance"]
        .as_i64()
        .unwrap()
}

/// The details of the conflicts recorded of `kind`.
fn conflicts(central: &Central, kind: &str) -> Vec<String> {
    let answer = central.admin_get("/v1/admin/conflicts").unwrap();
    answer["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| c["detail"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_earn_naming_unpublished_rules_credits_nothing() {
    let s = setup();
    let mut r = Chain::new(A);
    let forged = r.entry_with(|e| {
        e.member = "M-1".into();
        e.points = 1_000_000_000_000;
        e.rules_version = 999;
        e.sale_id = Some("NO-SUCH-SALE".into());
        e.detail = "not a quote".into();
    });
    let reason = rejected_reason(&upload(&s.a, A, &[forged]).await);
    assert_eq!(reason, "rules version 999 was never published");
    assert_eq!(balance(&s.central, "M-1"), 1_500);
    assert!(conflicts(&s.central, "rejected").contains(&reason));
    // The seq is consumed: the chain goes on.
    let terminals = s.central.admin_get("/v1/admin/terminals").unwrap();
    assert_eq!(terminals["terminals"][0]["last_seq"], 1);
}

#[tokio::test]
async fn an_adjustment_from_a_register_is_refused() {
    let s = setup();
    let mut r = Chain::new(A);
    let forged = r.entry_with(|e| {
        e.kind = EntryKind::Adjust;
        e.member = "M-2".into();
        e.points = -1_000_000_000_000;
        e.sale_id = None;
    });
    let reason = rejected_reason(&upload(&s.a, A, &[forged]).await);
    assert!(
        reason.starts_with("kind adjust is not accepted from registers"),
        "{reason}"
    );
    assert_eq!(balance(&s.central, "M-2"), 1_500);
    assert!(conflicts(&s.central, "rejected").contains(&reason));
    assert!(conflicts(&s.central, "overdraft").is_empty());
}

#[tokio::test]
async fn an_earn_near_i64_max_breaks_no_other_terminal_nor_any_download() {
    let s = setup();
    let mut r = Chain::new(A);
    let reason = rejected_reason(&upload(&s.a, A, &[r.earn("M-1", i64::MAX - 40)]).await);
    assert!(reason.contains("at most 1000000000"), "{reason}");
    assert!(conflicts(&s.central, "rejected").contains(&reason));
    assert_eq!(balance(&s.central, "M-1"), 1_500);
    // B's batch touching the member is applied, and answers its balance.
    let mut other = Chain::new(B);
    let answer =
        s.b.upload(&batch(B, &[other.entry(EntryKind::Redeem, "M-1", -100)]))
            .await
            .unwrap();
    assert_eq!(
        answer.outcome,
        BatchOutcome::Entries(vec![EntryResult::Applied])
    );
    let m1 = answer.balances.iter().find(|b| b.member == "M-1").unwrap();
    assert_eq!(m1.programs[0].balance, 1_400);
    // Every terminal downloads the members, at every cursor.
    for client in [&s.a, &s.b] {
        let page = client.member_changes(0, 1_000).await.unwrap();
        let m1 = page.changes.iter().find(|c| c.id == "M-1").unwrap();
        assert_eq!(m1.programs["main"].available, 1_400);
        for cursor in 1..=page.next_cursor {
            client.member_changes(cursor, 1).await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_terminal_replaying_anothers_entry_id_does_not_make_it_a_duplicate() {
    let s = setup();
    let mut b = Chain::new(B);
    let real = b.earn("M-1", 1_000);
    let mut a = Chain::new(A);
    let replay = a.entry_with(|e| {
        e.entry_id = real.entry_id;
        e.member = "M-2".into();
        e.points = 1;
    });
    upload(&s.a, A, &[replay]).await;
    assert_eq!(upload(&s.b, B, &[real]).await, vec![EntryResult::Applied]);
    assert_eq!(balance(&s.central, "M-1"), 2_500);
}

#[tokio::test]
async fn a_terminal_with_64_open_holds_is_refused_the_65th() {
    let s = setup();
    let names: Vec<String> = (0..17).map(|i| format!("C-{i}")).collect();
    let mut r = Chain::new(A);
    let earns: Vec<_> = names.iter().map(|m| r.earn(m, 1_000)).collect();
    upload(&s.a, A, &earns).await;
    let hold = |member: &str, sale: String| HoldRequest {
        terminal_id: A.into(),
        member: member.into(),
        program: "main".into(),
        basket: testing::hold_basket(&sale, member, 10),
        sale_id: sale,
        points: 10,
    };
    for (i, member) in names[..16].iter().enumerate() {
        for sale in 0..4 {
            let answer = s.a.place_hold(&hold(member, format!("H-{i}-{sale}"))).await;
            assert!(
                matches!(answer, Ok(HoldAnswer::Granted { .. })),
                "{answer:?}"
            );
        }
    }
    let answer = s.a.place_hold(&hold(&names[16], "H-last".into())).await;
    let Ok(HoldAnswer::Refused { reason }) = answer else {
        panic!("expected refused, got {answer:?}");
    };
    assert!(reason.contains("HOLDS_OPEN_PER_TERMINAL_MAX"), "{reason}");
    let held = s.central.balance(&names[16], "main").unwrap();
    assert_eq!(held["available"], 1_000);
}

/// "Any terminal token can place a hold on any member's whole balance":
/// the hold must be for what the sale's basket lets it redeem.
#[tokio::test]
async fn a_hold_of_a_whole_balance_on_a_small_basket_is_refused() {
    let s = setup();
    let request = HoldRequest {
        terminal_id: A.into(),
        member: "M-1".into(),
        program: "main".into(),
        sale_id: "S-STEAL".into(),
        points: 1_500,
        basket: testing::hold_basket("S-STEAL", "M-1", 10),
    };
    let answer = s.a.place_hold(&request).await;
    let Ok(HoldAnswer::Refused { reason }) = answer else {
        panic!("expected a refusal, got {answer:?}");
    };
    assert_eq!(
        reason,
        "rules version 1 refuse 1500 points on this basket of 10: exceeds_max_share"
    );
    let balance = s.central.balance("M-1", "main").unwrap();
    assert_eq!(balance["available"], 1_500, "{balance}");
    // The basket of another sale justifies nothing either.
    let borrowed = HoldRequest {
        basket: testing::hold_basket("S-BIG", "M-1", 10_000),
        ..request
    };
    let answer = s.a.place_hold(&borrowed).await;
    assert!(
        matches!(&answer, Ok(HoldAnswer::Refused { reason }) if reason.contains("the basket is of sale")),
        "{answer:?}"
    );
}
