//! The run's figures: entries per second, batch latency percentiles, the
//! time to drain everything, what every entry became, whether central's
//! chain heads are the registers' own, and where the CPU went. Times are
//! integers (ms, µs): no float near a count.

use std::collections::HashMap;
use std::fmt;

use crate::admin::Head;
use crate::drive::{Drained, Tally};
use crate::plan::Plan;

/// Mismatched chain heads listed by name; the rest are counted.
pub const MISMATCHES_LISTED_MAX: usize = 10;

/// Batch latency, in µs.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// CPU time of a process over the drain, in ms (user + system), and the
/// bytes it read and wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Cpu {
    pub pid: u32,
    pub what: String,
    pub cpu_ms: u64,
    pub io: Option<crate::proc::Io>,
}

/// Central's chain heads against the registers' own.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Heads {
    /// Terminals whose head is the register's last entry (seq and hash).
    pub matching: u64,
    /// The others, `id: central seq S, register seq R` (first few).
    pub mismatched: Vec<String>,
    pub mismatched_count: u64,
}

/// Everything a run reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub plan: Plan,
    pub instances: Vec<String>,
    pub entries_expected: u64,
    /// Registering the terminals (all of them).
    pub enroll_ms: u64,
    /// Importing the members.
    pub members_ms: u64,
    /// From the first register's start to the last answer.
    pub drain_ms: u64,
    /// Entries central applied (applied, corrected, overdraft) per second
    /// of the drain.
    pub entries_per_s: u64,
    pub latency: Latency,
    pub tally: Tally,
    /// Time the registers spent generating their batches (summed; the
    /// generator's own CPU is in `cpu`).
    pub generating_ms: u64,
    pub heads: Heads,
    /// Conflicts central recorded (read back up to a bound): none expected.
    pub conflicts: u64,
    pub cpu: Vec<Cpu>,
    /// The generator's peak resident memory, KiB.
    pub generator_peak_rss_kib: u64,
    /// Every entry applied as sent, none rejected, corrected or
    /// duplicated, no register failed, every head central's.
    pub ok: bool,
}

/// The value at percentile `p` (nearest rank) of `sorted`.
pub fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as u64).div_ceil(100).max(1);
    sorted[(rank as usize - 1).min(sorted.len() - 1)]
}

fn latency(tally: &mut Tally) -> Latency {
    tally.latencies_us.sort_unstable();
    let l = &tally.latencies_us;
    Latency {
        p50_us: percentile(l, 50),
        p99_us: percentile(l, 99),
        max_us: l.last().copied().unwrap_or(0),
    }
}

/// Compares central's heads with the registers' (terminal, seq, hash).
pub fn compare_heads(registers: &[(String, u64, pos_sync::Digest32)], central: &[Head]) -> Heads {
    let by_id: HashMap<&str, &Head> = central
        .iter()
        .map(|h| (h.terminal_id.as_str(), h))
        .collect();
    let mut heads = Heads::default();
    for (id, seq, hash) in registers {
        match by_id.get(id.as_str()) {
            Some(h) if h.last_seq == *seq && h.last_hash == *hash => heads.matching += 1,
            found => {
                heads.mismatched_count += 1;
                if heads.mismatched.len() < MISMATCHES_LISTED_MAX {
                    let central = found.map_or("unknown to central".to_string(), |h| {
                        format!("central seq {}", h.last_seq)
                    });
                    heads
                        .mismatched
                        .push(format!("{id}: {central}, register seq {seq}"));
                }
            }
        }
    }
    heads
}

/// What the run measured and found, besides the drain itself.
pub struct Findings {
    pub enroll_ms: u64,
    pub members_ms: u64,
    pub central_heads: Vec<Head>,
    pub conflicts: u64,
    pub cpu: Vec<Cpu>,
}

impl Summary {
    pub fn new(plan: &Plan, instances: &[String], drained: Drained, found: Findings) -> Summary {
        let Drained {
            mut tally,
            heads,
            elapsed,
        } = drained;
        let drain_ms = elapsed.as_millis().max(1) as u64;
        let counted = tally.applied + tally.corrected + tally.overdraft;
        let heads = compare_heads(&heads, &found.central_heads);
        let expected = plan.entries();
        let ok = tally.applied == expected
            && tally.rejected + tally.corrected + tally.duplicate + tally.overdraft == 0
            && tally.failed_registers == 0
            && heads.matching == plan.registers as u64;
        Summary {
            plan: plan.clone(),
            instances: instances.to_vec(),
            entries_expected: expected,
            enroll_ms: found.enroll_ms,
            members_ms: found.members_ms,
            drain_ms,
            entries_per_s: counted.saturating_mul(1_000) / drain_ms,
            latency: latency(&mut tally),
            generating_ms: tally.generating.as_millis() as u64,
            tally,
            heads,
            conflicts: found.conflicts,
            cpu: found.cpu,
            generator_peak_rss_kib: crate::proc::peak_rss_kib(),
            ok,
        }
    }
}

/// `1234` ms as `1.234 s`.
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03} s", self.0 / 1_000, self.0 % 1_000)
    }
}

/// `1234` µs as `1.2 ms`.
struct Millis(u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} ms", self.0 / 1_000, self.0 % 1_000 / 100)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.plan;
        let t = &self.tally;
        writeln!(
            f,
            "{} registers x {} entries = {} entries, batches of {}, {} registers at once, {} instance(s), {} members",
            p.registers,
            p.entries_per_register,
            self.entries_expected,
            p.batch_entries,
            p.concurrency,
            self.instances.len(),
            p.members
        )?;
        writeln!(
            f,
            "setup: terminals registered in {}, members imported in {}",
            Secs(self.enroll_ms),
            Secs(self.members_ms)
        )?;
        writeln!(
            f,
            "drained in {}: {} entries/s; batch latency p50 {}, p99 {}, max {} ({} batches)",
            Secs(self.drain_ms),
            self.entries_per_s,
            Millis(self.latency.p50_us),
            Millis(self.latency.p99_us),
            Millis(self.latency.max_us),
            t.batches
        )?;
        writeln!(
            f,
            "entries: {} applied, {} corrected, {} overdraft, {} duplicate, {} rejected; {} retries, {} registers failed",
            t.applied,
            t.corrected,
            t.overdraft,
            t.duplicate,
            t.rejected,
            t.retries,
            t.failed_registers
        )?;
        writeln!(
            f,
            "central's heads: {} of {} at the register's last entry; {} conflicts recorded",
            self.heads.matching, p.registers, self.conflicts
        )?;
        for m in &self.heads.mismatched {
            writeln!(f, "  head differs: {m}")?;
        }
        for e in &t.errors {
            writeln!(f, "  error: {e}")?;
        }
        writeln!(
            f,
            "batches generated in {}; generator peak RSS {} MiB; during the drain:",
            Secs(self.generating_ms),
            self.generator_peak_rss_kib / 1_024
        )?;
        let entries = self.entries_expected.max(1);
        for c in &self.cpu {
            write!(f, "  {} (pid {}): cpu {}", c.what, c.pid, Secs(c.cpu_ms))?;
            if let Some(io) = c.io {
                write!(
                    f,
                    ", read {} MiB, wrote {} MiB ({} MiB to storage; {} B per entry)",
                    io.read_bytes / 1_048_576,
                    io.written_bytes / 1_048_576,
                    io.storage_written_bytes / 1_048_576,
                    io.storage_written_bytes / entries
                )?;
            }
            writeln!(f)?;
        }
        write!(f, "{}", if self.ok { "OK" } else { "NOT OK" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l: Vec<u64> = (1..=100).collect();
        assert_eq!((percentile(&l, 50), percentile(&l, 99)), (50, 99));
        assert_eq!((percentile(&[7], 50), percentile(&[7], 99)), (7, 7));
        assert_eq!(percentile(&[], 99), 0);
    }

    #[test]
    fn a_head_short_of_the_register_is_named() {
        let registers = vec![
            ("a".to_string(), 3, pos_sync::Digest32([1; 32])),
            ("b".to_string(), 3, pos_sync::Digest32([2; 32])),
            ("c".to_string(), 3, pos_sync::Digest32([3; 32])),
        ];
        let head = |id: &str, seq, byte| Head {
            terminal_id: id.into(),
            last_seq: seq,
            last_hash: pos_sync::Digest32([byte; 32]),
        };
        let heads = compare_heads(&registers, &[head("a", 3, 1), head("b", 2, 2)]);
        assert_eq!((heads.matching, heads.mismatched_count), (1, 2));
        assert_eq!(
            heads.mismatched,
            [
                "b: central seq 2, register seq 3",
                "c: unknown to central, register seq 3"
            ]
        );
    }
}
