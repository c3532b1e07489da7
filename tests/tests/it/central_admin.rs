//! Issue 9's administration of the real `pos-central` binary: terminal
//! tokens listed, revoked and rotated with a grace period; repeated
//! conflicts collapsed and filtered; manual adjustments with a reason and
//! an author, through the command line and the admin API.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use pos_sync::protocol::UploadBatch;
use pos_sync::testing::Chain;
use pos_sync::{ClientConfig, LedgerEntry, SyncClient, SyncError, Token};
use pos_testkit::central_proc::Central;
use serde_json::Value;

const TERMINAL: &str = "store-9-reg-1";
const RULES: &str = r#"{"version": 1, "programs": [{"id": "main", "currency": "EUR",
  "base_rate": "1", "redeem": {"points_per_unit": 100, "min_points": 100, "step": 100,
  "max_share": "0.5", "offline_allowance": 2000}}]}"#;
const MEMBERS: &str = r#"{"members": [{"id": "M-1", "cards": ["9990000010013"],
  "programs": {"main": {"available": 1000, "pending": 0}}}]}"#;

struct World {
    central: Central,
    token: String,
    files: tempfile::TempDir,
}

fn world() -> World {
    let central = Central::start().unwrap();
    let token = central.add_terminal(TERMINAL).unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| -> PathBuf {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    central.publish_rules(file("rules.json", RULES)).unwrap();
    central
        .import_members(file("members.json", MEMBERS))
        .unwrap();
    World {
        central,
        token,
        files,
    }
}

impl World {
    fn client(&self, token: &str) -> SyncClient {
        let mut config = ClientConfig::new(&self.central.url, Token::new(token).unwrap());
        config.ca_file = Some(self.central.ca_path());
        SyncClient::new(&config).unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.central.cli(args).unwrap()
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "pos-central {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A refused command: exit 2 (bad input), its stderr.
    fn cli_refused(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "pos-central {args:?}: {stderr}");
        stderr
    }

    /// The line of `terminal list` for `id`.
    fn listed(&self, id: &str) -> String {
        let list = self.cli_ok(&["terminal", "list"]);
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not in {list}"))
            .to_string()
    }

    fn conflicts(&self, query: &str) -> Vec<Value> {
        let answer = self
            .central
            .admin_get(&format!("/v1/admin/conflicts{query}"))
            .unwrap();
        answer["conflicts"].as_array().unwrap().clone()
    }

    fn adjustments(&self) -> Vec<Value> {
        let ledger = self
            .central
            .admin_get("/v1/admin/ledger?terminal=@central")
            .unwrap();
        ledger["entries"].as_array().unwrap().clone()
    }
}

/// `adjust` with its five fields (points as `--points=N`, so a debit's
/// minus is not an option).
fn adjust_args(
    member: &str,
    program: &str,
    points: &str,
    reason: &str,
    author: &str,
) -> Vec<String> {
    let points = format!("--points={points}");
    [
        "adjust",
        "--member",
        member,
        "--program",
        program,
        &points,
        "--reason",
        reason,
        "--author",
        author,
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn batch(entries: &[LedgerEntry]) -> UploadBatch {
    UploadBatch {
        terminal_id: TERMINAL.into(),
        first_seq: entries[0].seq,
        entries: entries.to_vec(),
        documents: vec![],
    }
}

fn assert_401(result: Result<impl std::fmt::Debug, SyncError>, says: &str) {
    match result {
        Err(SyncError::Status {
            status: 401,
            message,
            ..
        }) => assert!(message.contains(says), "{message}"),
        other => panic!("expected 401 saying {says:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revoked_token_gets_401_on_its_next_upload() {
    let w = world();
    let client = w.client(&w.token);
    let mut chain = Chain::new(TERMINAL);
    client
        .upload(&batch(&[chain.earn("M-1", 10)]))
        .await
        .unwrap();
    let line = w.listed(TERMINAL);
    assert!(line.contains(" active "), "{line}");
    assert!(
        !line.contains("never"),
        "the upload is the last use: {line}"
    );

    let out = w.cli_ok(&["terminal", "revoke", TERMINAL]);
    assert!(out.contains("revoked"), "{out}");
    assert_401(
        client.upload(&batch(&[chain.earn("M-1", 10)])).await,
        "revoked",
    );
    assert_401(client.member_changes(0, 10).await, "revoked");
    assert!(w.listed(TERMINAL).contains(" revoked "));
    // Revoking again says so; a revoked terminal gets no new token.
    assert!(
        w.cli_ok(&["terminal", "revoke", TERMINAL])
            .contains("already")
    );
    let err = w.cli_refused(&["terminal", "rotate", TERMINAL]);
    assert!(err.contains("revoked"), "{err}");
    let err = w.cli_refused(&["terminal", "revoke", "no-such-reg"]);
    assert!(err.contains("no terminal"), "{err}");
}

#[tokio::test]
async fn a_rotated_token_works_within_its_grace_period_and_fails_after() {
    let w = world();
    let old = w.client(&w.token);
    old.member_changes(0, 10).await.unwrap();

    let grace = Duration::from_secs(2);
    let rotated_at = Instant::now();
    let out = w.cli_ok(&["terminal", "rotate", TERMINAL, "--grace-secs", "2"]);
    let new = w.client(out.trim());
    assert_ne!(out.trim(), w.token);
    let mut chain = Chain::new(TERMINAL);
    new.upload(&batch(&[chain.earn("M-1", 5)])).await.unwrap();
    // Within grace (checked before the period can have ended).
    old.upload(&batch(&[chain.earn("M-1", 5)])).await.unwrap();
    assert!(
        rotated_at.elapsed() < grace,
        "the machine is too slow for this test"
    );
    let line = w.listed(TERMINAL);
    assert!(
        line.contains(" rotating ") && line.contains("valid until"),
        "{line}"
    );

    std::thread::sleep((grace + Duration::from_millis(300)).saturating_sub(rotated_at.elapsed()));
    assert_401(old.member_changes(0, 10).await, "replaced by a rotation");
    new.upload(&batch(&[chain.earn("M-1", 5)])).await.unwrap();
    assert!(w.listed(TERMINAL).contains(" active "));

    let err = w.cli_refused(&["terminal", "rotate", TERMINAL, "--grace-secs", "99999999"]);
    assert!(err.contains("grace period"), "{err}");
}

#[tokio::test]
async fn fifty_identical_conflicts_are_one_row_and_the_listing_filters() {
    let w = world();
    let client = w.client(&w.token);
    let mut chain = Chain::new(TERMINAL);
    let entries: Vec<LedgerEntry> = (0..50)
        .map(|_| {
            chain.entry_with(|e| {
                e.member = "M-1".into();
                e.program = "no-such-program".into();
                e.points = 7;
            })
        })
        .collect();
    let before_upload = jiff::Timestamp::now();
    client.upload(&batch(&entries)).await.unwrap();

    let rows = w.conflicts("?kind=rejected");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["count"], 50);
    assert_eq!(row["terminal_id"], TERMINAL);
    assert_eq!(row["seq"], 50, "the latest repeat's seq");
    assert_eq!(row["first_at"], row["at"]);
    let first: jiff::Timestamp = row["first_at"].as_str().unwrap().parse().unwrap();
    let last: jiff::Timestamp = row["last_at"].as_str().unwrap().parse().unwrap();
    assert!(before_upload <= first && first <= last, "{row}");

    // Filters: each excludes it on its own.
    let other = w.central.add_terminal("store-9-reg-2").unwrap();
    drop(other);
    assert!(w.conflicts("?terminal=store-9-reg-2").is_empty());
    assert_eq!(w.conflicts(&format!("?terminal={TERMINAL}")).len(), 1);
    assert!(w.conflicts("?kind=overdraft").is_empty());
    let later = last
        .checked_add(jiff::SignedDuration::from_secs(60))
        .unwrap();
    let earlier = first
        .checked_sub(jiff::SignedDuration::from_secs(60))
        .unwrap();
    assert!(w.conflicts(&format!("?since={later}")).is_empty());
    assert!(w.conflicts(&format!("?until={earlier}")).is_empty());
    let window = format!("?since={earlier}&until={later}&limit=1");
    let answer = w
        .central
        .admin_get(&format!("/v1/admin/conflicts{window}"))
        .unwrap();
    assert_eq!(answer["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(answer["next_before"], row["id"]);
    let next = format!("?before={}", row["id"]);
    assert!(w.conflicts(&next).is_empty());

    for (query, names) in [
        ("?kind=bogus", "kind"),
        ("?since=yesterday", "since"),
        ("?until=2026-13-01T00:00:00Z", "until"),
        ("?limit=0", "limit"),
        ("?limit=10001", "limit"),
        ("?before=-3", "before"),
    ] {
        let err = w.cli_refused(&["admin-get", &format!("/v1/admin/conflicts{query}")]);
        assert!(err.contains("400") && err.contains(names), "{query}: {err}");
    }
}

#[tokio::test]
async fn an_adjustment_with_reason_and_author_moves_the_balance_everywhere() {
    let w = world();
    let args = adjust_args("M-1", "main", "250", "goodwill: till jammed", "ana");
    let out = w.cli_ok(&strs(&args));
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["programs"]["main"]["balance"], 1250, "{answer}");
    assert_eq!(answer["entry"]["kind"], "adjust");
    // By card, and a debit.
    w.cli_ok(&strs(&adjust_args(
        "9990000010013",
        "main",
        "-300",
        "double credit of sale S-1",
        "bo",
    )));
    assert_eq!(w.central.balance("M-1", "main").unwrap()["balance"], 950);

    let ledger = w.adjustments();
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert_eq!(ledger[0]["terminal_id"], "@central");
    assert_eq!(ledger[0]["credited_member"], "M-1");
    assert_eq!(ledger[1]["points"], -300);
    assert_eq!(
        ledger[1]["prev_hash"], ledger[0]["hash"],
        "central's own chain"
    );
    let detail: Value = serde_json::from_str(ledger[1]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["reason"], "double credit of sale S-1");
    assert_eq!(detail["author"], "bo");
    let member = w.central.admin_get("/v1/admin/ledger?member=M-1").unwrap();
    assert_eq!(member["entries"].as_array().unwrap().len(), 2);

    // The registers' members download carries it.
    let changes = w.client(&w.token).member_changes(0, 100).await.unwrap();
    let m1 = changes.changes.iter().find(|c| c.id == "M-1").unwrap();
    assert_eq!(m1.programs["main"].available, 950);
    // Not a terminal of the list.
    assert!(!w.cli_ok(&["terminal", "list"]).contains("@central"));
}

#[tokio::test]
async fn bad_adjustments_are_refused_with_the_cause_and_change_nothing() {
    let w = world();
    let adjust = |member: &str, program: &str, points: &str, reason: &str, author: &str| {
        w.cli_refused(&strs(&adjust_args(member, program, points, reason, author)))
    };
    for (err, names) in [
        (adjust("M-1", "main", "10", " ", "ana"), "reason"),
        (adjust("M-1", "main", "10", "why", ""), "author"),
        (adjust("M-1", "main", "0", "why", "ana"), "points"),
        (adjust("M-1", "main", "1000000001", "why", "ana"), "points"),
        (
            adjust("M-1", "main", "10", &"r".repeat(501), "ana"),
            "reason",
        ),
        (adjust("M-404", "main", "10", "why", "ana"), "member"),
        (adjust("M-1", "fuel", "10", "why", "ana"), "program"),
        (
            adjust("M-1", "main", "10", "card 4111111111111111", "ana"),
            "reason",
        ),
    ] {
        assert!(err.contains(names), "{names}: {err}");
        assert!(!err.contains("4111111111111111"), "{err}");
    }
    // A terminal token is not the admin's.
    let token_file = w.files.path().join("terminal.token");
    std::fs::write(&token_file, &w.token).unwrap();
    let mut args = adjust_args("M-1", "main", "10", "why", "ana");
    args.extend(["--token-file".to_string(), token_file.display().to_string()]);
    let out = w.cli(&strs(&args));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    assert_eq!(w.central.balance("M-1", "main").unwrap()["balance"], 1000);
    assert!(w.adjustments().is_empty());
}
