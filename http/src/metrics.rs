//! The Prometheus text exposition (format 0.0.4) both daemons render by
//! hand: family headers, latency histograms in whole microseconds printed
//! as exact decimal seconds (no floats anywhere), label escaping, and a
//! bound on label sets.
//!
//! Hand-written rather than `prometheus-client` because each registry must
//! belong to its daemon instance (several run in one test process, so no
//! global registry) and the crates available model histograms with `f64`
//! while this project keeps float arithmetic out entirely.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Upper bounds of the latency histogram buckets, in microseconds. Sale
/// commits are fsync-bound (about 0.4 ms to a few ms here), a central
/// batch of 1,000 entries tens of ms; anything past 10 s has hit a
/// request timeout anyway.
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// Most distinct label sets per family. Labels are bounded by the code,
/// but a bug (or a future free-text label) must not grow memory without
/// end: label sets past this are counted under `other`.
pub const LABEL_SETS_MAX: usize = 512;

/// A latency histogram over [`LATENCY_BUCKETS_US`].
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Non-cumulative count per bucket.
    buckets: [u64; LATENCY_BUCKETS_US.len()],
    count: u64,
    sum_us: u64,
}

impl Histogram {
    pub fn observe_us(&mut self, us: u64) {
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `_bucket`, `_sum` and `_count` samples of `name`, with `labels`
    /// (already `key="value"` text, escaped; empty for none) on each.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (bound, n) in LATENCY_BUCKETS_US.iter().zip(self.buckets.iter()) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |labels: &str| {
            if labels.is_empty() {
                String::new()
            } else {
                format!("{{{labels}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), seconds(self.sum_us));
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

/// `key` itself while the map has room for it, else `other`.
pub fn bounded_key<K: Ord + Clone, V>(map: &BTreeMap<K, V>, key: K, other: K) -> K {
    if map.contains_key(&key) || map.len() < LABEL_SETS_MAX {
        key
    } else {
        other
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Microseconds as exact decimal seconds (`1500` → `0.0015`), without floats.
pub fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Label value escaping of the text format: backslash, quote, newline.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(250), "0.00025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_histogram_without_labels_renders_bare_names() {
        let mut h = Histogram::default();
        h.observe_us(300);
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "");
        assert!(out.contains("x_seconds_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_sum 0.0003\n"), "{out}");
        assert!(out.contains("x_seconds_count 1\n"), "{out}");
    }
}
