//! CPU time, I/O and memory of processes, from `/proc` (Linux): where the
//! drain's CPU and bytes went (central's `serve` processes, a database
//! server, the generator itself).

/// User + system CPU time of process `pid` (all its threads), in ms;
/// `None` when it cannot be read (no such process, not Linux).
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields count from the
    // last ')'. utime and stime are fields 14 and 15 of the whole line.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)?;
    Some((utime + stime) * 1_000 / ticks)
}

/// This process's peak resident memory (`VmHWM`), KiB; 0 when unknown.
pub fn peak_rss_kib() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bytes a process moved through read/write system calls and bytes it
/// had written to storage (`/proc/PID/io`: `rchar`, `wchar`,
/// `write_bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Io {
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub storage_written_bytes: u64,
}

/// [`Io`] of process `pid` so far; `None` when unreadable.
pub fn io(pid: u32) -> Option<Io> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(Io {
        read_bytes: field("rchar:")?,
        written_bytes: field("wchar:")?,
        storage_written_bytes: field("write_bytes:")?,
    })
}

/// A process's CPU time and I/O at one moment.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub cpu_ms: u64,
    pub io: Option<Io>,
}

/// [`Usage`] of `pid` now; `None` without its CPU time.
pub fn usage(pid: u32) -> Option<Usage> {
    Some(Usage {
        cpu_ms: cpu_ms(pid)?,
        io: io(pid),
    })
}

impl Usage {
    /// What was used from `before` to `self`.
    pub fn since(&self, before: &Usage) -> Usage {
        let io = match (self.io, before.io) {
            (Some(a), Some(b)) => Some(Io {
                read_bytes: a.read_bytes.saturating_sub(b.read_bytes),
                written_bytes: a.written_bytes.saturating_sub(b.written_bytes),
                storage_written_bytes: a
                    .storage_written_bytes
                    .saturating_sub(b.storage_written_bytes),
            }),
            _ => None,
        };
        Usage {
            cpu_ms: self.cpu_ms.saturating_sub(before.cpu_ms),
            io,
        }
    }
}
