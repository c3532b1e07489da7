//! Two real `pos-central serve` processes on one PostgreSQL database
//! (issue 11): a register syncing through either, alternately and both at
//! once, has every entry applied once, one chain, and the same balances
//! from both. Skips, visibly, where PostgreSQL is absent (CI installs it
//! and sets `POS_REQUIRE_POSTGRES=1`).

use std::path::Path;

use pos_sync::protocol::{BatchOutcome, EntryResult, UploadAnswer, UploadBatch};
use pos_sync::testing::Chain;
use pos_sync::{ClientConfig, EntryKind, LedgerEntry, SyncClient, Token};
use pos_testkit::central_proc::Central;

const TERMINAL: &str = "store-7-reg-1";

const RULES_V1: &str = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "0.5", "offline_allowance": 2000}}]}"#;

fn client(central: &Central, token: &str) -> SyncClient {
    let mut config = ClientConfig::new(&central.url, Token::new(token).unwrap());
    config.ca_file = Some(central.ca_path());
    SyncClient::new(&config).unwrap()
}

fn batch(entries: &[LedgerEntry]) -> UploadBatch {
    UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: pos_sync::testing::documents_for(entries),
    }
}

fn applied(answer: &UploadAnswer) -> usize {
    match &answer.outcome {
        BatchOutcome::Entries(r) => r.iter().filter(|r| **r == EntryResult::Applied).count(),
        other => panic!("expected per-entry results, got {other:?}"),
    }
}

fn rules_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("rules.json");
    std::fs::write(&path, RULES_V1).unwrap();
    path
}

#[tokio::test]
async fn a_register_syncing_through_two_instances_has_every_entry_applied_once() {
    let Some(url) = pos_testkit::postgres::fresh_database("two_centrals") else {
        return;
    };
    let a = Central::start_on_database(&url).unwrap();
    let b = a.another_instance().unwrap();
    // Registered through one instance, the rules published through the other.
    let token = a.add_terminal(TERMINAL).unwrap();
    let files = tempfile::tempdir().unwrap();
    assert_eq!(
        b.publish_rules(rules_file(files.path())).unwrap()["version"],
        1
    );
    let (via_a, via_b) = (client(&a, &token), client(&b, &token));

    let mut chain = Chain::new(TERMINAL);
    let entries: Vec<LedgerEntry> = (0..60)
        .map(|i| chain.entry(EntryKind::Earn, &format!("M-{}", i % 3), 10 + i))
        .collect();
    let mut count = 0;
    for (i, part) in entries.chunks(10).enumerate() {
        let part = batch(part);
        if i % 3 == 2 {
            // The same batch to both at once: one applies it, the other
            // answers duplicate (or applies it, the first then duplicate).
            let (x, y) = tokio::join!(via_a.upload(&part), via_b.upload(&part));
            count += applied(&x.unwrap()) + applied(&y.unwrap());
        } else {
            let through = if i % 2 == 0 { &via_a } else { &via_b };
            count += applied(&through.upload(&part).await.unwrap());
        }
    }
    assert_eq!(count, entries.len(), "every entry answered applied once");

    for central in [&a, &b] {
        let ledger = central
            .admin_get(&format!("/v1/admin/ledger?terminal={TERMINAL}&limit=1000"))
            .unwrap();
        let stored = ledger["entries"].as_array().unwrap();
        assert_eq!(stored.len(), entries.len());
        for (row, entry) in stored.iter().zip(&entries) {
            assert_eq!(row["seq"], entry.seq);
            assert_eq!(row["hash"], entry.hash.to_hex());
            assert_eq!(row["status"], "applied");
        }
        let terminals = central.admin_get("/v1/admin/terminals").unwrap();
        assert_eq!(terminals["terminals"][0]["last_seq"], 60);
        for m in 0..3 {
            let member = format!("M-{m}");
            let sum: i64 = entries
                .iter()
                .filter(|e| e.member == member)
                .map(|e| e.points)
                .sum();
            assert_eq!(central.balance(&member, "main").unwrap()["balance"], sum);
        }
    }
}
