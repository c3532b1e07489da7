//! Prometheus metrics of one agent instance, rendered in the text
//! exposition format (`GET /metrics`).
//!
//! Rendered with [`pos_http::metrics`] (shared with central; it says why
//! by hand): latency in whole microseconds, printed as exact decimal
//! seconds.
//!
//! Store figures (sales, points, unsynced entries) are read from the store
//! at scrape time rather than counted here, so they survive restarts and can
//! never disagree with the ledger.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pos_http::metrics::{Histogram, bounded_key, escape, family};
pub use pos_http::metrics::{LABEL_SETS_MAX, LATENCY_BUCKETS_US};

/// Figures read from the store for one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Sales committed.
    pub sales: u64,
    /// Points credited by sales (earn entries), summed.
    pub points_earned: i64,
    /// Points paid with (redeem entries), summed as a positive number.
    pub points_redeemed: i64,
    /// Ledger entries not yet accepted by central.
    pub unsynced_entries: u64,
    /// Entries central rejected for good.
    pub dead_letters: u64,
    /// Newest cached rules bundle version, if any.
    pub rules_version: Option<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    errors: BTreeMap<String, u64>,
}

/// The metrics registry of one agent.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock can only be a bug in this module;
        // the counters are still usable, so recover rather than poison the API.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one finished request. `route` is the matched route template
    /// (`/v1/sales/{sale_id}`), never the raw path, to keep cardinality low.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        let key = bounded_key(
            &inner.requests,
            (route.to_string(), method.to_string(), status),
            ("other".to_string(), "other".to_string(), 0),
        );
        *inner.requests.entry(key).or_default() += 1;
        let key = bounded_key(&inner.latency, route.to_string(), "other".to_string());
        inner.latency.entry(key).or_default().observe_us(us);
    }

    /// Counts one error answer by its API code.
    pub fn count_error(&self, code: &str) {
        let mut inner = self.lock();
        let key = bounded_key(&inner.errors, code.to_string(), "other".to_string());
        *inner.errors.entry(key).or_default() += 1;
    }

    /// How many error answers with `code` were given (for tests and health).
    pub fn errors_with_code(&self, code: &str) -> u64 {
        self.lock().errors.get(code).copied().unwrap_or(0)
    }

    /// The whole registry in Prometheus text format 0.0.4.
    pub fn render(&self, store: Option<&StoreFigures>) -> String {
        let mut out = String::new();
        if let Some(figures) = store {
            render_store(&mut out, figures);
        }
        let inner = self.lock();
        render_requests(&mut out, &inner.requests);
        render_latency(&mut out, &inner.latency);
        render_errors(&mut out, &inner.errors);
        out
    }
}

/// The store's figures: one sample per family, no labels.
fn render_store(out: &mut String, s: &StoreFigures) {
    let rules_version = s.rules_version.unwrap_or(0);
    let families: [(&str, &str, &str, &dyn std::fmt::Display); 6] = [
        (
            "pos_agent_sales_total",
            "counter",
            "Sales committed in this register's store.",
            &s.sales,
        ),
        (
            "pos_agent_points_earned_total",
            "counter",
            "Points earned by committed sales (earn entries).",
            &s.points_earned,
        ),
        (
            "pos_agent_points_redeemed_total",
            "counter",
            "Points paid with on committed sales (redeem entries).",
            &s.points_redeemed,
        ),
        (
            "pos_agent_unsynced_entries",
            "gauge",
            "Ledger entries not yet accepted by central (outbox depth).",
            &s.unsynced_entries,
        ),
        (
            "pos_agent_dead_letters",
            "gauge",
            "Ledger entries central rejected for good.",
            &s.dead_letters,
        ),
        (
            "pos_agent_rules_version",
            "gauge",
            "Newest cached rules bundle version (0: none).",
            &rules_version,
        ),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
}

fn render_requests(out: &mut String, requests: &BTreeMap<(String, String, u16), u64>) {
    family(
        out,
        "pos_agent_http_requests_total",
        "counter",
        "API requests answered, by route, method and status.",
    );
    for ((route, method, status), n) in requests {
        let _ = writeln!(
            out,
            "pos_agent_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            escape(route),
            escape(method)
        );
    }
}

fn render_latency(out: &mut String, latency: &BTreeMap<String, Histogram>) {
    family(
        out,
        "pos_agent_http_request_duration_seconds",
        "histogram",
        "API request latency until the answer's headers, by route.",
    );
    for (route, h) in latency {
        let labels = format!("route=\"{}\"", escape(route));
        h.render(out, "pos_agent_http_request_duration_seconds", &labels);
    }
}

fn render_errors(out: &mut String, errors: &BTreeMap<String, u64>) {
    family(
        out,
        "pos_agent_api_errors_total",
        "counter",
        "API error answers, by error code.",
    );
    for (code, n) in errors {
        let _ = writeln!(
            out,
            "pos_agent_api_errors_total{{code=\"{}\"}} {n}",
            escape(code)
        );
    }
}

/// Health as gauges: `pos_agent_health_ok` (1 or 0), one
/// `pos_agent_health_problem{problem=..}` per code of
/// [`crate::health::PROBLEMS`] (1 while it holds), and the ages behind the
/// time-based problems, so an alert can fire on the same judgement
/// `GET /v1/health` makes, or on its own threshold.
pub fn render_health(out: &mut String, health: &crate::health::Health) {
    family(
        out,
        "pos_agent_health_ok",
        "gauge",
        "1 when GET /v1/health says ok, 0 when degraded.",
    );
    let _ = writeln!(
        out,
        "pos_agent_health_ok {}",
        u8::from(health.status == "ok")
    );
    family(
        out,
        "pos_agent_health_problem",
        "gauge",
        "1 while this reason for degraded holds ([health] thresholds apply).",
    );
    for code in crate::health::PROBLEMS {
        let _ = writeln!(
            out,
            "pos_agent_health_problem{{problem=\"{code}\"}} {}",
            u8::from(health.has_problem(code))
        );
    }
    let ages = [
        (
            "pos_agent_storage_full_seconds_ago",
            "Seconds since a write last failed with storage_full (absent: none since start).",
            health.storage_full_secs_ago,
        ),
        (
            "pos_agent_sync_failing_seconds",
            "Seconds sync has failed without a success (absent: it succeeds, or is off).",
            health.sync_failing_secs,
        ),
        (
            "pos_agent_member_data_age_seconds",
            "Age of the member data by the register's clock (absent: none).",
            health.members_age_secs,
        ),
    ];
    for (name, help, value) in ages {
        if let Some(value) = value {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::new();
        m.observe_request("/v1/sales", "POST", 200, Duration::from_micros(300));
        m.observe_request("/v1/sales", "POST", 200, Duration::from_micros(3_000));
        m.observe_request("/v1/sales", "POST", 409, Duration::from_secs(60));
        let text = m.render(None);
        assert!(text.contains(
            "pos_agent_http_request_duration_seconds_bucket{route=\"/v1/sales\",le=\"0.00025\"} 0"
        ));
        assert!(text.contains(
            "pos_agent_http_request_duration_seconds_bucket{route=\"/v1/sales\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains(
            "pos_agent_http_request_duration_seconds_bucket{route=\"/v1/sales\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "pos_agent_http_request_duration_seconds_bucket{route=\"/v1/sales\",le=\"10\"} 2"
        ));
        assert!(text.contains(
            "pos_agent_http_request_duration_seconds_bucket{route=\"/v1/sales\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains(
                "pos_agent_http_request_duration_seconds_sum{route=\"/v1/sales\"} 60.0033"
            )
        );
        assert!(text.contains(
            "pos_agent_http_requests_total{route=\"/v1/sales\",method=\"POST\",status=\"409\"} 1"
        ));
    }

    #[test]
    fn label_sets_are_bounded() {
        let m = Metrics::new();
        for i in 0..(LABEL_SETS_MAX + 10) {
            m.count_error(&format!("code_{i}"));
        }
        assert_eq!(m.errors_with_code("other"), 10);
        assert_eq!(m.lock().errors.len(), LABEL_SETS_MAX + 1);
    }
}
