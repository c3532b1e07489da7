//! Capped exponential backoff between reopen attempts of a device.
//!
//! Hand-written rather than `backon`: the device loop owns its retry state across
//! reads, opens and shutdown checks, which does not fit a retried-future API, and the
//! whole policy is a doubling with a cap. No jitter: one register, one device, nobody
//! to stampede.

use std::time::Duration;

/// First wait after a device goes away: short, so a replugged scanner is back at once.
pub const REOPEN_DELAY_MIN_MS: u64 = 100;
/// Longest wait between attempts: a missing device costs one open attempt per 5 s.
pub const REOPEN_DELAY_MAX_MS: u64 = 5_000;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next_ms: u64,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            next_ms: REOPEN_DELAY_MIN_MS,
        }
    }

    /// The wait before the next attempt; doubles up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = Duration::from_millis(self.next_ms);
        self.next_ms = (self.next_ms * 2).min(REOPEN_DELAY_MAX_MS);
        delay
    }

    /// After a connection that held.
    pub(crate) fn reset(&mut self) {
        self.next_ms = REOPEN_DELAY_MIN_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(REOPEN_DELAY_MIN_MS));
    }
}
