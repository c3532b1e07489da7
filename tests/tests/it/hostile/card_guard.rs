//! The payment-card guard (issue 10) through the real binaries: a card
//! number grouped with dots or underscores, or behind a leading zero, is no
//! member card at the register's API nor at central's member import. It is
//! refused with the field named, never echoed, and nothing is stored.

use pos_testkit::agent_proc::AgentDir;
use pos_testkit::central_proc::Central;
use serde_json::{Value, json};

const RULES: &str = include_str!("../../../../examples/rules.json");
const MEMBERS: &str = include_str!("../../../../examples/members.json");

/// The well-known Visa test number, and the ways issue 10 slipped it past.
const PAN: &str = "4111111111111111";
const DISGUISED: [&str; 4] = [
    "4111.1111.1111.1111",
    "4111_1111_1111_1111",
    "04111111111111111",
    "4111/1111/1111/1111",
];

fn sale(sale_id: &str, member: Value) -> Value {
    json!({"sale_id": sale_id, "time": "2026-11-28T11:05:00+01:00", "member": member,
           "lines": [{"sku": "4006381333931", "qty": "1", "unit_price": "59.99"}]})
}

/// None of the four digit groups of the number, in any of its forms.
fn assert_no_card(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for needle in [PAN, "1111.1111", "1111_1111", "1111/1111"] {
        assert!(!text.contains(needle), "{what} holds {needle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disguised_card_number_is_no_member_card_at_the_agent() {
    let dir = AgentDir::new().expect("agent dir");
    let rules = dir.write_file("rules.json", RULES).expect("rules");
    let members = dir.write_file("members.json", MEMBERS).expect("members");
    dir.import(&rules, Some(&members), None).expect("import");
    let mut agent = dir.start().await.expect("agent starts");
    let mut answers = Vec::new();
    for (i, card) in DISGUISED.iter().enumerate() {
        for (path, body) in [
            ("/v1/sales", sale(&format!("S-{i}"), json!({"card": card}))),
            ("/v1/quote", sale(&format!("S-{i}"), json!({"card": card}))),
            ("/v1/sales", sale(&format!("S-{i}"), json!({"id": card}))),
            ("/v1/sales", sale(card, json!({"card": "9990000010013"}))),
            ("/v1/session/member", json!({"member": {"card": card}})),
        ] {
            let (status, answer) = agent.post(path, &body).await.expect("answer");
            assert_eq!(status, 422, "{path} {body}: {answer}");
            assert_eq!(answer["error"]["code"], "payment_card", "{answer}");
            answers.push(answer.to_string());
        }
    }
    assert_no_card("the answers", answers.join("\n").as_bytes());
    let (_, ledger) = agent.get("/v1/ledger").await.expect("ledger");
    assert_eq!(ledger["entries"], json!([]), "a refused sale was stored");
    // An honest member card still earns: the guard is no blanket refusal.
    let (status, answer) = agent
        .post("/v1/sales", &sale("S-ok", json!({"card": "9990000010013"})))
        .await
        .expect("answer");
    assert_eq!(status, 200, "{answer}");
    let status = agent.terminate().expect("terminate");
    assert!(status.success(), "{status}");
    let wal = std::path::PathBuf::from(format!("{}-wal", dir.db.display()));
    for file in [&dir.db, &wal] {
        if file.exists() {
            assert_no_card(&file.display().to_string(), &std::fs::read(file).unwrap());
        }
    }
}

#[test]
fn central_refuses_a_card_number_as_member_card_or_tier() {
    let central = Central::start().expect("central");
    let files = tempfile::tempdir().expect("tempdir");
    for (i, (name, text, place)) in [
        (
            "card.json",
            r#"{"members": [{"id": "M-1", "cards": ["4111.1111.1111.1111"]}]}"#,
            "members[0].cards[0]",
        ),
        (
            "tier.json",
            r#"{"members": [{"id": "M-1", "cards": ["9990000010013"],
                "programs": {"main": {"tier": "4111_1111_1111_1111", "available": 5, "pending": 0}}}]}"#,
            "members[0].programs.main.tier",
        ),
        (
            "card.csv",
            "id,cards,program,tier,available\nM-1,04111111111111111,main,gold,5\n",
            "line 2, cards[0]",
        ),
        (
            "tier.csv",
            "id,cards,program,tier,available\nM-1,9990000010013,main,4111/1111/1111/1111,5\n",
            "line 2, tier",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let path = files.path().join(format!("{i}-{name}"));
        std::fs::write(&path, text).unwrap();
        let out = central
            .cli(&["import-members", path.to_str().unwrap()])
            .expect("pos-central runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{name} was imported: {said}");
        assert!(said.contains(place) && said.contains("payment card"), "{name}: {said}");
        assert_no_card(name, said.as_bytes());
    }
    // Nothing was imported: the member is unknown.
    let out = central
        .cli(&["admin-get", "/v1/admin/members/M-1"])
        .expect("pos-central runs");
    assert!(!out.status.success(), "a refused import stored M-1");
    assert_no_card("central's files", &dir_bytes(central.dir()));
}

/// Every file of a directory, concatenated.
fn dir_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_file() {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    all
}
