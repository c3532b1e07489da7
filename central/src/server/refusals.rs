//! A budget per terminal for what refused uploads write (issue 10).
//!
//! A refused batch (`gap`, `seq_reused`) consumes nothing, so a register
//! whose database was restored from an old backup, or a hostile one, can
//! send it again at once, forever: each one used to be a write transaction
//! (the contact time, and for `seq_reused` a conflict row whose detail names
//! the seq and hashes, so that varying them made a new row each time),
//! committed with a sync to disk while every other terminal's upload waited
//! for the same writer. One terminal wrote 3,725 conflict rows in 4 s that
//! way and quadrupled the others' p99.
//!
//! Now each terminal may have [`REFUSALS_RECORDED_PER_WINDOW`] refusals
//! recorded per [`WINDOW_S`]; past that its refusals are still answered
//! exactly (the chain head is read in the same transaction as ever, so a
//! register re-chains onto the right `server_high`), but with
//! [`Refusals::Quiet`]: the transaction only reads, and the repeat is
//! counted here and logged when the window closes. The budget lives above
//! the storage trait, so every backend gets it. Applied batches are never
//! limited: their conflicts (overdrafts, corrections) consume seqs, so a
//! terminal cannot repeat them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::apply::Refusals;

/// Refusals of one terminal recorded (contact time, conflict row) per
/// window; the first ones show the operator what is happening, the rest
/// would only repeat it.
pub const REFUSALS_RECORDED_PER_WINDOW: u32 = 10;
/// The window of [`REFUSALS_RECORDED_PER_WINDOW`], in seconds.
pub const WINDOW_S: u64 = 60;
/// Most terminals tracked at once; past it windows already closed are
/// dropped, and if every one is still open a refusal is simply recorded
/// (the map stays bounded, the answer stays right).
pub const TERMINALS_TRACKED_MAX: usize = 65_536;

/// One terminal's current window.
#[derive(Debug)]
struct Window {
    start: Instant,
    recorded: u32,
    quiet: u64,
}

/// The budgets of every terminal, shared by the upload handlers.
#[derive(Debug, Default)]
pub struct RefusalBudget {
    windows: Mutex<HashMap<String, Window>>,
}

/// What [`RefusalBudget::take`] granted an upload.
#[derive(Debug)]
pub struct Grant {
    pub refusals: Refusals,
}

impl RefusalBudget {
    /// Reserves a recorded refusal for `terminal` if its window has one
    /// left (so that concurrent uploads cannot overshoot), else `Quiet`.
    /// Call [`RefusalBudget::settle`] with the answer.
    pub fn take(&self, terminal: &str, now: Instant) -> Grant {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let window_len = Duration::from_secs(WINDOW_S);
        if !windows.contains_key(terminal) && windows.len() >= TERMINALS_TRACKED_MAX {
            windows.retain(|_, w| now.duration_since(w.start) < window_len);
            if windows.len() >= TERMINALS_TRACKED_MAX {
                return Grant {
                    refusals: Refusals::Record,
                };
            }
        }
        let window = windows.entry(terminal.to_string()).or_insert(Window {
            start: now,
            recorded: 0,
            quiet: 0,
        });
        if now.duration_since(window.start) >= window_len {
            close(terminal, window);
            *window = Window {
                start: now,
                recorded: 0,
                quiet: 0,
            };
        }
        if window.recorded < REFUSALS_RECORDED_PER_WINDOW {
            window.recorded += 1;
            Grant {
                refusals: Refusals::Record,
            }
        } else {
            Grant {
                refusals: Refusals::Quiet,
            }
        }
    }

    /// Settles a grant once the upload is answered: a batch that was not
    /// refused (or failed) gives its reservation back; a quiet refusal is
    /// counted.
    pub fn settle(&self, terminal: &str, grant: Grant, refused: bool) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let Some(window) = windows.get_mut(terminal) else {
            return;
        };
        match (grant.refusals, refused) {
            (Refusals::Record, false) => window.recorded = window.recorded.saturating_sub(1),
            (Refusals::Quiet, true) => {
                if window.quiet == 0 {
                    tracing::warn!(
                        message = "Terminal over its budget of recorded refusals: further ones are answered without being recorded until the window closes.",
                        terminal = %terminal,
                        recorded = window.recorded,
                        window_s = WINDOW_S
                    );
                }
                window.quiet = window.quiet.saturating_add(1);
            }
            _ => {}
        }
    }
}

/// Logs what a closing window left unrecorded.
fn close(terminal: &str, window: &Window) {
    if window.quiet > 0 {
        tracing::warn!(
            message = "Refusals answered without being recorded.",
            terminal = %terminal,
            recorded = window.recorded,
            unrecorded = window.quiet,
            window_s = WINDOW_S
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_its_budget_then_quiet_until_the_window_closes() {
        let budget = RefusalBudget::default();
        let t0 = Instant::now();
        for _ in 0..REFUSALS_RECORDED_PER_WINDOW {
            let grant = budget.take("t1", t0);
            assert_eq!(grant.refusals, Refusals::Record);
            budget.settle("t1", grant, true);
        }
        let grant = budget.take("t1", t0);
        assert_eq!(grant.refusals, Refusals::Quiet);
        budget.settle("t1", grant, true);
        // Another terminal has its own budget.
        assert_eq!(budget.take("t2", t0).refusals, Refusals::Record);
        let later = t0 + Duration::from_secs(WINDOW_S);
        assert_eq!(budget.take("t1", later).refusals, Refusals::Record);
    }

    #[test]
    fn uploads_that_are_not_refused_give_their_reservation_back() {
        let budget = RefusalBudget::default();
        let t0 = Instant::now();
        for _ in 0..3 * REFUSALS_RECORDED_PER_WINDOW {
            let grant = budget.take("t1", t0);
            assert_eq!(grant.refusals, Refusals::Record);
            budget.settle("t1", grant, false);
        }
    }
}
