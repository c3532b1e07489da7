//! What a load run does: how many registers, how many queued entries each,
//! how they are cut into batches, how many registers sync at once, and
//! the entries themselves (generated batch by batch, never all at once).

use pos_sync::protocol::{BATCH_ENTRIES_MAX, UploadBatch};
use pos_sync::testing::{Chain, queued_earn, upload_batch};

use crate::error::LoadError;

/// Registers of the headline scenario (a regional outage ending).
pub const REGISTERS_DEFAULT: usize = 1_000;
/// Entries each register queued during the outage.
pub const ENTRIES_DEFAULT: u64 = 1_000;
/// Registers syncing at once. Every simulated register connects from
/// loopback, one client address, and central admits
/// `CONNECTIONS_PER_ADDRESS_MAX` (64) connections per address: staying
/// below it measures intake, not shedding.
pub const CONCURRENCY_DEFAULT: usize = 48;
/// Most registers syncing at once: central's whole connection bound.
pub const CONCURRENCY_MAX: usize = 512;
/// Members the entries spread over.
pub const MEMBERS_DEFAULT: u64 = 20_000;
/// Most members imported (central's snapshot bound).
pub const MEMBERS_MAX: u64 = 1_000_000;
/// Most registers one run simulates.
pub const REGISTERS_MAX: usize = 100_000;
/// Most entries one register queues (a register's own bound on its
/// outbox is far below).
pub const ENTRIES_MAX: u64 = 10_000_000;
/// How long before the run the queued sales were made: within the outage,
/// and recent enough that central sees no clock skew.
pub const OUTAGE_MINUTES: i64 = 90;

/// Where each register sends its batches when there are several central
/// instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Register `i` talks to instance `i mod k` only (a load balancer with
    /// sticky connections).
    Register,
    /// Each batch goes to the next instance in turn, whatever the register
    /// (a load balancer spreading requests): one register's consecutive
    /// batches reach different instances.
    Batch,
}

/// The load run's shape.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub registers: usize,
    pub entries_per_register: u64,
    /// Entries per upload batch (the agent's: 1,000).
    pub batch_entries: usize,
    pub concurrency: usize,
    pub members: u64,
    /// Terminal ids are `{prefix}{i}`, i from 1.
    pub terminal_prefix: String,
    /// The rules version the entries are quoted with.
    pub rules_version: u64,
    pub spread: Spread,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            registers: REGISTERS_DEFAULT,
            entries_per_register: ENTRIES_DEFAULT,
            batch_entries: BATCH_ENTRIES_MAX,
            concurrency: CONCURRENCY_DEFAULT,
            members: MEMBERS_DEFAULT,
            terminal_prefix: "load-reg-".into(),
            rules_version: 1,
            spread: Spread::Register,
        }
    }
}

impl Plan {
    /// Refuses a plan outside the bounds.
    pub fn check(&self) -> Result<(), LoadError> {
        let bad = |what: String| Err(LoadError::Plan(what));
        if self.registers == 0 || self.registers > REGISTERS_MAX {
            return bad(format!("registers must be 1..={REGISTERS_MAX}"));
        }
        if self.entries_per_register == 0 || self.entries_per_register > ENTRIES_MAX {
            return bad(format!("entries per register must be 1..={ENTRIES_MAX}"));
        }
        if self.batch_entries == 0 || self.batch_entries > BATCH_ENTRIES_MAX {
            return bad(format!("batch size must be 1..={BATCH_ENTRIES_MAX}"));
        }
        if self.concurrency == 0 || self.concurrency > CONCURRENCY_MAX {
            return bad(format!("concurrency must be 1..={CONCURRENCY_MAX}"));
        }
        if self.members == 0 || self.members > MEMBERS_MAX {
            return bad(format!("members must be 1..={MEMBERS_MAX}"));
        }
        Ok(())
    }

    /// Every entry of the run.
    pub fn entries(&self) -> u64 {
        self.registers as u64 * self.entries_per_register
    }

    /// Register `index`'s terminal id (index from 0).
    pub fn terminal_id(&self, index: usize) -> String {
        format!("{}{}", self.terminal_prefix, index + 1)
    }
}

/// Member `i`'s id: what the entries name and the import creates.
pub fn member(i: u64) -> String {
    format!("LM-{i}")
}

/// One register's outbox: its chain, cut into batches on demand so that
/// only the batches in flight are held in memory.
pub struct Outbox {
    chain: Chain,
    index: u64,
    left: u64,
    batch_entries: usize,
    members: u64,
}

impl Outbox {
    /// The queue of register `index` of `plan`, its sales made `occurred_at`.
    pub fn new(plan: &Plan, index: usize, occurred_at: &str) -> Outbox {
        Outbox {
            chain: Chain::new(&plan.terminal_id(index)).occurred_at(occurred_at),
            index: index as u64,
            left: plan.entries_per_register,
            batch_entries: plan.batch_entries,
            members: plan.members,
        }
    }

    /// The next batch, `None` when the outbox is empty. Members are spread
    /// over the registers so that every register's customers differ and
    /// every member shops at many registers (central's daily sums and
    /// balances are shared across terminals).
    pub fn next_batch(&mut self) -> Option<UploadBatch> {
        let count = self.left.min(self.batch_entries as u64);
        if count == 0 {
            return None;
        }
        self.left -= count;
        let entries = (0..count)
            .map(|_| {
                let seq = self.chain.seq() + 1;
                let m = (seq.wrapping_mul(7_919) + self.index.wrapping_mul(104_729)) % self.members;
                queued_earn(&mut self.chain, &member(m))
            })
            .collect();
        Some(upload_batch(entries))
    }

    /// The seq and hash of the last entry generated: what central's head
    /// must be once every batch is applied.
    pub fn head(&self) -> (u64, pos_sync::Digest32) {
        (self.chain.seq(), self.chain.last())
    }
}

/// When the queued sales were made: [`OUTAGE_MINUTES`] before now.
pub fn outage_time() -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(OUTAGE_MINUTES)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_is_one_chain_cut_into_batches_with_their_documents() {
        let plan = Plan {
            registers: 2,
            entries_per_register: 250,
            batch_entries: 100,
            members: 7,
            ..Plan::default()
        };
        let mut outbox = Outbox::new(&plan, 1, &outage_time());
        let batches: Vec<UploadBatch> = std::iter::from_fn(|| outbox.next_batch()).collect();
        let sizes: Vec<usize> = batches.iter().map(|b| b.entries.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let entries: Vec<_> = batches.iter().flat_map(|b| &b.entries).collect();
        for pair in entries.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash, "one chain across batches");
        }
        for b in &batches {
            assert_eq!(b.terminal_id, "load-reg-2");
            assert_eq!(b.first_seq, b.entries[0].seq);
            assert_eq!(b.documents.len(), b.entries.len(), "one sale per entry");
        }
        assert!(
            entries
                .iter()
                .all(|e| e.member.starts_with("LM-") && e.member[3..].parse::<u64>().unwrap() < 7)
        );
        let last = entries.last().unwrap();
        assert_eq!(outbox.head(), (250, last.hash));
    }
}
