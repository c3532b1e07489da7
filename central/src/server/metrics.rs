//! Central's Prometheus metrics (`GET /v1/admin/metrics` on the admin listener,
//! behind the admin token): requests and their latency per API and route,
//! upload batches' apply time, entry results, conflict answers by kind,
//! and, read from the storage at scrape time, the fleet's silent
//! registers, reported backlog and rules lag. No per-member or
//! per-terminal labels: a chain has thousands of each.
//!
//! Counters are this instance's (several instances are summed by
//! Prometheus); the fleet gauges are the shared storage's, the same from
//! every instance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use pos_http::metrics::{Histogram, bounded_key, escape, family};
use pos_sync::protocol::{BatchOutcome, EntryResult, UploadAnswer};

use super::AppState;
use crate::fleet;
use crate::storage::TerminalInfo;

/// A register with no upload for this long counts as silent in
/// `pos_central_terminals_silent` (the admin filter takes any figure).
pub const SILENT_MINS: u64 = 15;

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(&'static str, String, u16), u64>,
    latency: BTreeMap<(&'static str, String), Histogram>,
    batch: Histogram,
    batches: BTreeMap<&'static str, u64>,
    entries: BTreeMap<&'static str, u64>,
    conflicts: BTreeMap<&'static str, u64>,
}

/// The counters of one central instance.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Only a bug here can poison it; the counters stay usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn observe_request(&self, api: &'static str, route: &str, status: u16, us: u64) {
        let mut inner = self.lock();
        let key = bounded_key(
            &inner.requests,
            (api, route.to_string(), status),
            (api, "other".to_string(), 0),
        );
        *inner.requests.entry(key).or_default() += 1;
        let key = bounded_key(
            &inner.latency,
            (api, route.to_string()),
            (api, "other".to_string()),
        );
        inner.latency.entry(key).or_default().observe_us(us);
    }

    /// One applied upload: its apply time and what it answered.
    pub fn observe_batch(&self, answer: &UploadAnswer, elapsed: std::time::Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut inner = self.lock();
        inner.batch.observe_us(us);
        let outcome = match &answer.outcome {
            BatchOutcome::Entries(results) => {
                for result in results {
                    let (name, conflict) = match result {
                        EntryResult::Applied => ("applied", None),
                        EntryResult::Duplicate => ("duplicate", None),
                        EntryResult::Overdraft { .. } => ("overdraft", Some("overdraft")),
                        EntryResult::Rejected { .. } => ("rejected", Some("rejected")),
                        EntryResult::Corrected { .. } => ("corrected", Some("context_corrected")),
                    };
                    *inner.entries.entry(name).or_default() += 1;
                    if let Some(kind) = conflict {
                        *inner.conflicts.entry(kind).or_default() += 1;
                    }
                }
                "entries"
            }
            BatchOutcome::Gap { .. } => "gap",
            BatchOutcome::SeqReused { .. } => {
                *inner.conflicts.entry("seq_reused").or_default() += 1;
                "seq_reused"
            }
        };
        *inner.batches.entry(outcome).or_default() += 1;
    }

    /// Everything in the text format; `fleet` is the storage's terminal
    /// list and central's newest rules version, read for this scrape.
    pub fn render(&self, fleet: &[TerminalInfo], newest_rules: Option<u64>) -> String {
        let mut out = String::new();
        render_fleet(&mut out, fleet, newest_rules);
        let inner = self.lock();
        family(
            &mut out,
            "pos_central_http_requests_total",
            "counter",
            "Requests answered, by API (sync, admin), route and status.",
        );
        for ((api, route, status), n) in &inner.requests {
            let _ = writeln!(
                out,
                "pos_central_http_requests_total{{api=\"{api}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        family(
            &mut out,
            "pos_central_http_request_duration_seconds",
            "histogram",
            "Request latency until the answer's headers, by API and route.",
        );
        for ((api, route), h) in &inner.latency {
            let labels = format!("api=\"{api}\",route=\"{}\"", escape(route));
            h.render(
                &mut out,
                "pos_central_http_request_duration_seconds",
                &labels,
            );
        }
        family(
            &mut out,
            "pos_central_batch_apply_seconds",
            "histogram",
            "Time to verify and apply one upload batch in storage.",
        );
        inner
            .batch
            .render(&mut out, "pos_central_batch_apply_seconds", "");
        let labelled: [(&str, &str, &str, &BTreeMap<&'static str, u64>); 3] = [
            (
                "pos_central_batches_total",
                "outcome",
                "Upload batches, by outcome (entries, gap, seq_reused).",
                &inner.batches,
            ),
            (
                "pos_central_entries_total",
                "result",
                "Uploaded entries, by result (applied, duplicate, overdraft, rejected, corrected).",
                &inner.entries,
            ),
            (
                "pos_central_conflicts_total",
                "kind",
                "Conflicts answered, by kind (overdraft, rejected, context_corrected, seq_reused).",
                &inner.conflicts,
            ),
        ];
        for (name, label, help, map) in labelled {
            family(&mut out, name, "counter", help);
            for (value, n) in map {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
            }
        }
        out
    }
}

fn render_fleet(out: &mut String, terminals: &[TerminalInfo], newest_rules: Option<u64>) {
    let now = jiff::Timestamp::now();
    let silent = terminals
        .iter()
        .filter(|t| fleet::is_silent(t, now, SILENT_MINS))
        .count();
    let behind = terminals
        .iter()
        .filter(|t| fleet::rules_behind(t, newest_rules))
        .count();
    let backlog: u64 = terminals
        .iter()
        .filter_map(|t| t.report.as_ref())
        .map(|r| r.outbox_depth)
        .fold(0, u64::saturating_add);
    let gauges: [(&str, &str, u64); 4] = [
        (
            "pos_central_terminals",
            "Registered terminals.",
            terminals.len() as u64,
        ),
        (
            "pos_central_terminals_silent",
            "Terminals without an upload for more than 15 minutes (or ever).",
            silent as u64,
        ),
        (
            "pos_central_terminals_rules_behind",
            "Terminals reporting rules older than central's newest (or none).",
            behind as u64,
        ),
        (
            "pos_central_backlog_entries",
            "Entries the terminals report as not yet acknowledged, summed.",
            backlog,
        ),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

/// Counts every request of one API by its matched route (never the raw
/// path: it may hold a card token or an attacker's text).
pub(super) async fn count_requests(
    State((state, api)): State<(Arc<AppState>, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    state
        .metrics
        .observe_request(api, &route, response.status().as_u16(), us);
    response
}
