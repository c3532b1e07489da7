//! Duplicate-scan suppression: a scanner in presentation mode reads the same label
//! several times while it is held in front of the window.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// Remembers the last accepted frame of one device.
///
/// The window counts from the last *accepted* scan, so a label held in front of the
/// scanner gives one scan per window, and two identical items scanned one after the
/// other (which takes a cashier longer than the default 300 ms) both count.
/// Payment-card frames never reach this (they are dropped before), and the remembered
/// frame is zeroed when replaced. No `Debug`: it would print the remembered frame.
pub(crate) struct Dedup {
    window: Duration,
    last: Option<(Zeroizing<Vec<u8>>, Instant)>,
}

impl Dedup {
    pub(crate) fn new(window: Duration) -> Self {
        Dedup { window, last: None }
    }

    /// True when `frame` repeats the last accepted frame within the window; otherwise
    /// remembers it as the last accepted one.
    pub(crate) fn is_duplicate(&mut self, frame: &[u8], now: Instant) -> bool {
        if let Some((last, at)) = &self.last
            && last.as_slice() == frame
            && now.saturating_duration_since(*at) < self.window
        {
            return true;
        }
        self.last = Some((Zeroizing::new(frame.to_vec()), now));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_data_within_window_is_dropped() {
        let window = Duration::from_millis(300);
        let mut d = Dedup::new(window);
        let t0 = Instant::now();
        assert!(!d.is_duplicate(b"A", t0));
        assert!(d.is_duplicate(b"A", t0 + window / 2));
        assert!(
            !d.is_duplicate(b"A", t0 + window),
            "window counts from the accepted scan"
        );
        assert!(
            !d.is_duplicate(b"B", t0 + window),
            "other data always passes"
        );
        assert!(!d.is_duplicate(b"A", t0 + window), "A after B is new");
    }

    #[test]
    fn zero_window_never_drops() {
        let mut d = Dedup::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(!d.is_duplicate(b"A", t0));
        assert!(!d.is_duplicate(b"A", t0));
    }
}
