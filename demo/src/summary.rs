//! The end of the day: what each register and central hold, and the
//! checks the demo's exit code depends on. Every check is computed from
//! the registers' ledgers (over their API), their health, their database
//! files (the `pos-agent db verify` function) and central's storage; none
//! is a constant.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::DemoError;
use crate::at_central::{
    central_available, central_balance, central_ledger, overdrafts_at_central,
};
use crate::data::{MEMBERS_JSON, OVERDRAWN_MEMBER, PROGRAM};
use crate::narrator::Narrator;
use crate::script::Overdraw;
use crate::world::{Register, World};
use pos_agent::model::{EntryStatus, LedgerRow, MemberBalances};

/// Entries per `GET /v1/ledger` page (the API's maximum).
const LEDGER_PAGE_ENTRIES: u32 = 1_000;
/// Most entries the summary reads from one register: a demo day has a
/// few dozen; more means something ran away.
const LEDGER_ENTRIES_MAX: usize = 100_000;

/// One computed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found, for the reader (figures, or what differed).
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, ok: bool, detail: String) -> Check {
        Check {
            name: name.to_string(),
            ok,
            detail,
        }
    }
}

/// The summary's checks; the demo succeeds only if every one held.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub checks: Vec<Check>,
}

impl Outcome {
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    pub fn all_held(&self) -> bool {
        !self.checks.is_empty() && self.failed().is_empty()
    }

    /// The checks, one a line, and the verdict.
    pub fn tell(&self, n: &Narrator) {
        n.plain("");
        n.plain("Checks:");
        for c in &self.checks {
            let mark = if c.ok { "ok    " } else { "FAILED" };
            n.plain(&format!("  [{mark}] {}: {}", c.name, c.detail));
        }
        let failed = self.failed();
        if failed.is_empty() && !self.checks.is_empty() {
            n.plain(&format!("All {} checks held.", self.checks.len()));
        } else {
            let names: Vec<&str> = failed.iter().map(|c| c.name.as_str()).collect();
            n.plain(&format!("FAILED: {}", names.join(", ")));
        }
    }
}

/// `GET /v1/ledger` answer.
#[derive(Deserialize)]
struct LedgerPage {
    entries: Vec<LedgerRow>,
    next_from_seq: Option<u64>,
}

/// A register's whole ledger, every page, as the POS can read it.
async fn register_ledger(register: &Register) -> Result<Vec<LedgerRow>, DemoError> {
    let mut rows = Vec::new();
    let mut from = 1u64;
    loop {
        let page: LedgerPage = register
            .ok(
                "GET",
                &format!("/v1/ledger?from_seq={from}&limit={LEDGER_PAGE_ENTRIES}"),
                None,
            )
            .await?;
        rows.extend(page.entries);
        if rows.len() > LEDGER_ENTRIES_MAX {
            return Err(DemoError::Script(format!(
                "{} holds more than {LEDGER_ENTRIES_MAX} entries",
                register.name
            )));
        }
        match page.next_from_seq {
            Some(next) if next > from => from = next,
            _ => return Ok(rows),
        }
    }
}

/// An entry as both sides name it: terminal, seq, id and chain hash.
type EntryKey = (String, u64, String, String);

fn entry_key(
    terminal: &str,
    seq: u64,
    id: impl std::fmt::Display,
    hash: &pos_sync::Digest32,
) -> EntryKey {
    (terminal.to_string(), seq, id.to_string(), hash.to_hex())
}

/// A register's ledger chain: its entry count when `db verify` passes,
/// what broke otherwise.
type Chain = Result<u64, String>;

/// What the registers hold at the end of the day.
#[derive(Default)]
struct AtRegisters {
    keys: BTreeSet<EntryKey>,
    entries: usize,
    /// Every entry synced and every outbox empty.
    all_synced: bool,
    dead_letters: u64,
    /// Per register (its short name).
    chains: Vec<(String, Chain)>,
    /// The sum of the overdrawn member's points in the followed program.
    member_points: i64,
}

/// What central holds of the registers' entries.
struct AtCentral {
    keys: BTreeSet<EntryKey>,
    entries: usize,
    distinct_ids: usize,
    /// Entry ids stored more than once.
    twice: Vec<String>,
}

pub async fn compute(
    world: &World,
    n: &Narrator,
    overdraw: &Overdraw,
) -> Result<Outcome, DemoError> {
    n.act("5. Summary");
    let registers = at_registers(world, n).await?;
    let central = at_central(world, n)?;
    let mut outcome = Outcome::default();
    for check in ledger_checks(&registers, &central) {
        outcome.push(check);
    }
    for check in overdraft_checks(world, overdraw, registers.member_points)? {
        outcome.push(check);
    }
    outcome.push(balance_shown_check(world).await?);
    Ok(outcome)
}

/// Reads every register's ledger, health and database file; tells one
/// line per register.
async fn at_registers(world: &World, n: &Narrator) -> Result<AtRegisters, DemoError> {
    let mut seen = AtRegisters {
        all_synced: true,
        ..AtRegisters::default()
    };
    for register in &world.registers {
        let rows = register_ledger(register).await?;
        let health = register.daemon.health().await;
        let synced = rows
            .iter()
            .filter(|r| r.status == EntryStatus::Synced)
            .count();
        let dead = rows
            .iter()
            .filter(|r| r.status == EntryStatus::Dead)
            .count();
        seen.all_synced &= synced == rows.len() && health.outbox_depth == 0;
        seen.dead_letters += health.dead_letters;
        let chain = verified_chain(register).await?;
        n.plain(&format!(
            "  {:<6} {:>3} entries, {:>3} synced, {:>2} unsynced, {:>2} dead letters; chain {}",
            register.name,
            rows.len(),
            synced,
            health.outbox_depth,
            dead,
            match &chain {
                Ok(entries) => format!("verified ({entries} entries)"),
                Err(e) => format!("BROKEN: {e}"),
            }
        ));
        seen.chains.push((register.name.clone(), chain));
        seen.entries += rows.len();
        for row in &rows {
            let e = &row.entry;
            seen.keys
                .insert(entry_key(&e.terminal_id, e.seq, e.entry_id, &e.hash));
            if e.member == OVERDRAWN_MEMBER && e.program == PROGRAM {
                seen.member_points += e.points;
            }
        }
    }
    Ok(seen)
}

/// `pos-agent db verify` on the register's database file.
async fn verified_chain(register: &Register) -> Result<Chain, DemoError> {
    let db = register.db.clone();
    let report = tokio::task::spawn_blocking(move || pos_agent::store::verify_file(&db))
        .await
        .map_err(|e| DemoError::Script(format!("verify task: {e}")))?;
    Ok(match report {
        Ok(r) if r.is_ok() => Ok(r.entries),
        Ok(r) => Err(r
            .chain_break
            .unwrap_or_else(|| r.integrity_messages.join("; "))),
        Err(e) => Err(e.to_string()),
    })
}

/// Reads central's ledger of every register; tells one line.
fn at_central(world: &World, n: &Narrator) -> Result<AtCentral, DemoError> {
    let mut entries = Vec::new();
    for register in &world.registers {
        entries.extend(central_ledger(world, &register.id)?);
    }
    let keys: BTreeSet<EntryKey> = entries
        .iter()
        .map(|e| entry_key(&e.terminal_id, e.seq, e.entry_id, &e.hash))
        .collect();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        *per_id.entry(e.entry_id.to_string()).or_default() += 1;
    }
    let twice: Vec<String> = per_id
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(id, _)| id.clone())
        .collect();
    n.plain(&format!(
        "  central {:>3} entries from {} registers",
        entries.len(),
        world.registers.len()
    ));
    Ok(AtCentral {
        keys,
        entries: entries.len(),
        distinct_ids: per_id.len(),
        twice,
    })
}

/// Every entry synced once, central's ledger equal to the registers', the
/// chains verified.
fn ledger_checks(registers: &AtRegisters, central: &AtCentral) -> Vec<Check> {
    let register_entries = registers.entries;
    let missing = registers.keys.difference(&central.keys).count();
    let extra = central.keys.difference(&registers.keys).count();
    let mut checks = vec![
        Check::new(
            "every entry synced",
            registers.all_synced,
            format!("{register_entries} entries on the registers"),
        ),
        Check::new(
            "no dead letters",
            registers.dead_letters == 0,
            format!("{} dead letters", registers.dead_letters),
        ),
        Check::new(
            "central's ledger equals the registers'",
            central.entries == register_entries && missing == 0 && extra == 0,
            format!(
                "central {} entries, registers {register_entries}; compared by (terminal, seq, entry id, hash): {missing} missing at central, {extra} unknown to the registers",
                central.entries
            ),
        ),
        Check::new(
            "no entry twice at central",
            central.twice.is_empty(),
            if central.twice.is_empty() {
                format!("{} distinct entry ids", central.distinct_ids)
            } else {
                format!("stored more than once: {:?}", central.twice)
            },
        ),
    ];
    for (name, chain) in &registers.chains {
        checks.push(Check::new(
            &format!("{name}'s ledger chain verifies"),
            chain.is_ok(),
            match chain {
                Ok(entries) => format!("integrity ok, {entries} entries chained"),
                Err(e) => e.clone(),
            },
        ));
    }
    checks
}

/// Central recorded the overdraft, and the member's balance there is
/// negative and equals the imported one plus the registers' entries.
fn overdraft_checks(
    world: &World,
    overdraw: &Overdraw,
    member_points: i64,
) -> Result<[Check; 2], DemoError> {
    let overdrafts = overdrafts_at_central(world)?;
    let shortfall: i64 = overdrafts.iter().filter_map(|c| c.shortfall).sum();
    let redeemed: i64 = overdraw.redeemed.iter().map(|(_, p)| p).sum();
    let recorded = Check::new(
        "central recorded the overdraft",
        !overdrafts.is_empty() && shortfall > 0,
        format!(
            "{} overdraft conflict(s) for {OVERDRAWN_MEMBER}, shortfall {shortfall} points; {redeemed} redeemed offline against {} at the cut",
            overdrafts.len(),
            overdraw.balance_at_cut
        ),
    );
    let balance = central_balance(world, OVERDRAWN_MEMBER)?;
    let imported = imported_balance(OVERDRAWN_MEMBER)?;
    let adds_up = Check::new(
        "the member's balance at central is negative and adds up",
        balance < 0 && balance == imported + member_points,
        format!(
            "{balance} at central = {imported} imported {:+} from the registers' entries",
            member_points
        ),
    );
    Ok([recorded, adds_up])
}

/// Every register shows central's available balance, nothing unsynced.
async fn balance_shown_check(world: &World) -> Result<Check, DemoError> {
    let available = central_available(world, OVERDRAWN_MEMBER)?;
    let mut shown = Vec::new();
    let mut agree = true;
    for register in &world.registers {
        let m: MemberBalances = register
            .ok("GET", &format!("/v1/members/{OVERDRAWN_MEMBER}"), None)
            .await?;
        let b = m.programs.get(PROGRAM).map(|b| (b.available, b.unsynced));
        agree &= b == Some((available, 0));
        shown.push(format!(
            "{} {}",
            register.name,
            b.map_or("none".to_string(), |(a, _)| a.to_string())
        ));
    }
    Ok(Check::new(
        "registers show central's balance",
        agree,
        format!("central {available}; {}", shown.join(", ")),
    ))
}

/// The member's `main` balance in the imported snapshot.
fn imported_balance(member: &str) -> Result<i64, DemoError> {
    let members: serde_json::Value = serde_json::from_str(MEMBERS_JSON)
        .map_err(|e| DemoError::Script(format!("examples/members.json: {e}")))?;
    members["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == member))
        .and_then(|m| m["programs"][PROGRAM]["available"].as_i64())
        .ok_or_else(|| {
            DemoError::Script(format!(
                "examples/members.json: no {PROGRAM} balance for {member}"
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn told(outcome: &Outcome) -> String {
        let sink = Captured::default();
        outcome.tell(&Narrator::new(Box::new(sink.clone())));
        let bytes = sink.0.lock().expect("sink lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn one_failed_check_fails_the_demo_and_is_named() {
        let mut outcome = Outcome::default();
        outcome.push(Check::new("no dead letters", true, "0 dead letters".into()));
        outcome.push(Check::new(
            "central recorded the overdraft",
            false,
            "0 overdraft conflict(s)".into(),
        ));
        assert!(!outcome.all_held());
        let text = told(&outcome);
        assert!(
            text.contains("[ok    ] no dead letters: 0 dead letters"),
            "{text}"
        );
        assert!(
            text.contains("[FAILED] central recorded the overdraft"),
            "{text}"
        );
        assert!(
            text.contains("FAILED: central recorded the overdraft\n"),
            "{text}"
        );
    }

    #[test]
    fn no_checks_is_not_success() {
        let outcome = Outcome::default();
        assert!(!outcome.all_held());
        assert!(told(&outcome).contains("FAILED"));
    }

    #[test]
    fn all_checks_held() {
        let mut outcome = Outcome::default();
        outcome.push(Check::new("a", true, String::new()));
        outcome.push(Check::new("b", true, String::new()));
        assert!(outcome.all_held());
        assert!(told(&outcome).contains("All 2 checks held."));
    }
}
