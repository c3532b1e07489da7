//! When to try again after a failed sync (sync spec §2).
//!
//! Exponential backoff with *full jitter* (the wait is drawn uniformly from
//! `[0, min(cap, base × 2^failures)]`), from 1 s up to 5 min, with no limit on
//! attempts, honouring `Retry-After`. Auth failures and bug reports (other
//! 4xx, undecodable answers, refused bundles) are retried *slowly*: a wait
//! drawn from `[cap/2, cap]`, so a misconfigured register neither hammers
//! central nor gives up.
//!
//! Why a small pure struct rather than `backon`: the sync worker is a
//! long-lived loop, not "retry this one future"; each failure's class
//! (transient / auth / bug) and its `Retry-After` decide the next wait, and
//! a success resets it. `backon`'s builders retry a closure with a fixed
//! policy (3 attempts and no jitter by default, additive rather than full
//! jitter). A pure function of (failures, error, RNG) is also testable
//! deterministically with a seeded RNG, without sleeping.

use std::time::Duration;

use rand::Rng;

use crate::error::SyncError;

/// First backoff window: 1 s (sync spec §2).
pub const RETRY_BASE_MS: u64 = 1_000;
/// Largest backoff window, and the longest any wait may be: 5 min.
pub const RETRY_CAP_MS: u64 = 300_000;
/// The exponent stops growing here; 2^20 s is far past the cap anyway, and
/// it keeps the shift from overflowing after days of failures.
const EXPONENT_MAX: u32 = 20;

/// The bounds of the backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_ms: RETRY_BASE_MS,
            cap_ms: RETRY_CAP_MS,
        }
    }
}

impl RetryPolicy {
    /// The upper end of the jitter window after `failures` consecutive
    /// failures (0 for the first retry): `min(cap, base × 2^failures)`.
    pub fn window_ms(&self, failures: u32) -> u64 {
        let factor = 1u64 << failures.min(EXPONENT_MAX);
        self.base_ms.saturating_mul(factor).min(self.cap_ms)
    }
}

/// How the worker should treat a failure, derived from the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Network error, timeout, 408, 429, 5xx: exponential backoff.
    Transient,
    /// 401/403: report in health, retry slowly.
    Auth,
    /// Anything else (other 4xx, protocol or bundle errors): log the body as
    /// a bug report, retry slowly.
    Bug,
}

impl FailureClass {
    pub fn of(error: &SyncError) -> FailureClass {
        if error.is_retryable() {
            FailureClass::Transient
        } else if error.is_auth() {
            FailureClass::Auth
        } else {
            FailureClass::Bug
        }
    }
}

/// The state of one retry loop: how many failures in a row so far.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
        }
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts again from the 1 s window.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, error: &SyncError, rng: &mut R) -> Duration {
        let class = FailureClass::of(error);
        let drawn_ms = match class {
            FailureClass::Transient => {
                let window = self.policy.window_ms(self.failures);
                rng.gen_range(0..=window)
            }
            FailureClass::Auth | FailureClass::Bug => {
                let cap = self.policy.cap_ms;
                rng.gen_range(cap / 2..=cap)
            }
        };
        self.failures = self.failures.saturating_add(1);
        // Retry-After is a floor, but never beyond the cap: a server asking
        // for an hour must not park a register's sync for an hour.
        let floor_ms = error
            .retry_after()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            .min(self.policy.cap_ms);
        Duration::from_millis(drawn_ms.max(floor_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn transient() -> SyncError {
        SyncError::Network("connection refused".into())
    }

    fn status(status: u16, retry_after: Option<u64>) -> SyncError {
        SyncError::Status {
            status,
            code: "x".into(),
            message: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn window_doubles_from_one_second_up_to_five_minutes() {
        let p = RetryPolicy::default();
        assert_eq!(p.window_ms(0), 1_000);
        assert_eq!(p.window_ms(1), 2_000);
        assert_eq!(p.window_ms(8), 256_000);
        assert_eq!(p.window_ms(9), 300_000);
        assert_eq!(p.window_ms(u32::MAX), 300_000);
    }

    #[test]
    fn transient_delays_stay_inside_the_growing_window_and_never_stop() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(RetryPolicy::default());
        for attempt in 0..10_000u32 {
            let window = RetryPolicy::default().window_ms(attempt);
            let d = b.next_delay(&transient(), &mut rng);
            assert!(
                d <= Duration::from_millis(window),
                "attempt {attempt}: {d:?}"
            );
        }
        assert_eq!(b.failures(), 10_000);
    }

    #[test]
    fn jitter_is_full_it_spreads_over_the_whole_window() {
        // With full jitter, draws after many failures land both in the lower
        // and the upper half of [0, cap]; a fixed or additive-jitter backoff
        // would stay near the cap.
        let mut rng = StdRng::seed_from_u64(42);
        let mut low = 0;
        let mut high = 0;
        for _ in 0..200 {
            let mut b = Backoff::new(RetryPolicy::default());
            for _ in 0..12 {
                b.next_delay(&transient(), &mut rng);
            }
            let d = b.next_delay(&transient(), &mut rng).as_millis();
            if d < 150_000 {
                low += 1;
            } else {
                high += 1;
            }
        }
        assert!(low > 50 && high > 50, "low {low} high {high}");
    }

    #[test]
    fn same_seed_same_delays() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut b = Backoff::new(RetryPolicy::default());
            (0..20)
                .map(|_| b.next_delay(&transient(), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn success_resets_to_the_first_window() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::new(RetryPolicy::default());
        for _ in 0..15 {
            b.next_delay(&transient(), &mut rng);
        }
        b.reset();
        let d = b.next_delay(&transient(), &mut rng);
        assert!(d <= Duration::from_millis(RETRY_BASE_MS));
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_five_minutes() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = Backoff::new(RetryPolicy::default());
        let d = b.next_delay(&status(503, Some(30)), &mut rng);
        assert!(d >= Duration::from_secs(30));
        assert!(d <= Duration::from_secs(30)); // first window is 1 s, so exactly the floor
        let d = b.next_delay(&status(429, Some(86_400)), &mut rng);
        assert_eq!(d, Duration::from_millis(RETRY_CAP_MS));
    }

    #[test]
    fn auth_failures_and_bug_reports_are_retried_slowly() {
        let mut rng = StdRng::seed_from_u64(5);
        for err in [status(401, None), status(403, None), status(400, None)] {
            let mut b = Backoff::new(RetryPolicy::default());
            for _ in 0..50 {
                let d = b.next_delay(&err, &mut rng);
                assert!(d >= Duration::from_millis(RETRY_CAP_MS / 2), "{err}: {d:?}");
                assert!(d <= Duration::from_millis(RETRY_CAP_MS));
            }
        }
        assert_eq!(FailureClass::of(&status(401, None)), FailureClass::Auth);
        assert_eq!(FailureClass::of(&status(404, None)), FailureClass::Bug);
        assert_eq!(
            FailureClass::of(&status(500, None)),
            FailureClass::Transient
        );
    }
}
