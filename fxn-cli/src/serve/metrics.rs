//! The server's counters and their rendering in the Prometheus text exposition format
//! (version 0.0.4), served at `GET /metrics`.
//!
//! A few dozen atomics and two small maps behind mutexes: recording costs a few
//! nanoseconds (a map lookup under an uncontended lock for requests by status), and
//! rendering walks everything once. Label values come from fixed sets (routes, reasons)
//! or from the server itself (status codes, backend names), never from client input,
//! so the number of series is bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Why a request or a connection was refused or cut off (`fxn_refusals_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every processing slot was taken (503).
    Busy,
    /// The body was over `--max-body-bytes` (413).
    BodyTooLarge,
    /// The body did not arrive within `--body-timeout-secs` (408).
    BodyDeadline,
    /// The body arrived slower than `--min-body-rate` (408).
    BodyTooSlow,
    /// Buffering the body would pass `--body-budget-bytes` (503).
    BodyBudget,
    /// The processing took longer than `--timeout-secs` (503).
    Timeout,
    /// `--max-connections` connections were open (503 and close).
    Connections,
    /// The client's address had `--max-connections-per-ip` open (503 and close).
    PerAddress,
    /// The request head did not arrive within `--header-timeout-secs` (closed).
    HeaderTimeout,
}

impl Refusal {
    /// Every reason, in the order they are rendered.
    pub const ALL: [Self; 9] = [
        Self::Busy,
        Self::BodyTooLarge,
        Self::BodyDeadline,
        Self::BodyTooSlow,
        Self::BodyBudget,
        Self::Timeout,
        Self::Connections,
        Self::PerAddress,
        Self::HeaderTimeout,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Busy => "busy",
            Self::BodyTooLarge => "body_too_large",
            Self::BodyDeadline => "body_deadline",
            Self::BodyTooSlow => "body_too_slow",
            Self::BodyBudget => "body_budget",
            Self::Timeout => "timeout",
            Self::Connections => "connections",
            Self::PerAddress => "per_address",
            Self::HeaderTimeout => "header_timeout",
        }
    }

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&r| r == self)
            .unwrap_or_default()
    }
}

/// Upper bounds, in seconds, of the challenge latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The values that are read from the server's state when rendered, not counted.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Processing slots (`--max-concurrent`).
    pub slots: usize,
    /// Slots taken now.
    pub slots_in_use: usize,
    /// Bytes of bodies the budget allows buffered at once.
    pub body_budget: u64,
    /// Bytes reserved for bodies now.
    pub body_buffered: u64,
    /// `--max-connections`.
    pub max_connections: usize,
}

/// Every counter of one server. Shared by reference (`Arc`); all methods take `&self`.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    challenges: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_ns: AtomicU64,
    body_bytes: AtomicU64,
    refusals: [AtomicU64; Refusal::ALL.len()],
    connections_total: AtomicU64,
    connections_open: AtomicI64,
    idle_closed: AtomicU64,
}

/// The `route` label of a path: one of the routes served, or `other`, so that clients
/// cannot create series.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/challenge" => "/challenge",
        "/health" => "/health",
        "/metrics" => "/metrics",
        _ => "other",
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, status)).or_default() += 1;
    }

    /// Counts one challenge answered 200 by `backend` (e.g. `cpu`, `metal`).
    pub fn challenge(&self, backend: &str) {
        let mut challenges = self.challenges.lock().unwrap_or_else(|e| e.into_inner());
        match challenges.get_mut(backend) {
            Some(count) => *count += 1,
            None => {
                challenges.insert(backend.to_owned(), 1);
            }
        }
    }

    /// Records the latency of one `POST /challenge`, whatever its answer.
    pub fn latency(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts body bytes read from clients (accepted or not).
    pub fn body_bytes(&self, bytes: usize) {
        self.body_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts one refusal.
    pub fn refusal(&self, reason: Refusal) {
        self.refusals[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many refusals of `reason` there were.
    pub fn refusals(&self, reason: Refusal) -> u64 {
        self.refusals[reason.index()].load(Ordering::Relaxed)
    }

    /// A connection was accepted and is being served.
    pub fn connection_opened(&self) {
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// A served connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections being served now.
    pub fn connections_open(&self) -> i64 {
        self.connections_open.load(Ordering::Relaxed)
    }

    /// A keep-alive connection was closed for sitting idle.
    pub fn idle_closed(&self) {
        self.idle_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text: `# HELP` and `# TYPE` lines, then the samples.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "fxn_http_requests_total",
            "counter",
            "Requests answered by the router, by route and status code.",
        );
        {
            let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((route, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "fxn_http_requests_total{{route=\"{route}\",code=\"{status}\"}} {count}"
                );
            }
        }
        family(
            &mut out,
            "fxn_challenges_total",
            "counter",
            "Challenges answered 200, by the backend that computed the product.",
        );
        {
            let challenges = self.challenges.lock().unwrap_or_else(|e| e.into_inner());
            for (backend, count) in challenges.iter() {
                let _ = writeln!(
                    out,
                    "fxn_challenges_total{{backend=\"{}\"}} {count}",
                    escape(backend)
                );
            }
        }
        family(
            &mut out,
            "fxn_challenge_duration_seconds",
            "histogram",
            "Time from a POST /challenge's head to its answer (reading the body included), any status.",
        );
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fxn_challenge_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "fxn_challenge_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "fxn_challenge_duration_seconds_sum {sum}");
        let _ = writeln!(out, "fxn_challenge_duration_seconds_count {count}");
        sample(
            &mut out,
            "fxn_body_bytes_read_total",
            "counter",
            "Request body bytes read from clients, accepted or refused.",
            self.body_bytes.load(Ordering::Relaxed),
        );
        sample(
            &mut out,
            "fxn_body_bytes_buffered",
            "gauge",
            "Bytes reserved now for request bodies being read or processed.",
            gauges.body_buffered,
        );
        sample(
            &mut out,
            "fxn_body_budget_bytes",
            "gauge",
            "The most bytes of request bodies buffered at once (--body-budget-bytes).",
            gauges.body_budget,
        );
        sample(
            &mut out,
            "fxn_challenge_slots_in_use",
            "gauge",
            "Processing slots taken now.",
            gauges.slots_in_use,
        );
        sample(
            &mut out,
            "fxn_challenge_slots",
            "gauge",
            "Processing slots (--max-concurrent).",
            gauges.slots,
        );
        family(
            &mut out,
            "fxn_refusals_total",
            "counter",
            "Requests and connections refused or cut off, by reason.",
        );
        for reason in Refusal::ALL {
            let _ = writeln!(
                out,
                "fxn_refusals_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.refusals(reason)
            );
        }
        sample(
            &mut out,
            "fxn_connections_open",
            "gauge",
            "Connections being served now.",
            self.connections_open().max(0),
        );
        sample(
            &mut out,
            "fxn_connections_max",
            "gauge",
            "The most connections served at once (--max-connections).",
            gauges.max_connections,
        );
        sample(
            &mut out,
            "fxn_connections_total",
            "counter",
            "Connections accepted and served (refused ones are not counted here).",
            self.connections_total.load(Ordering::Relaxed),
        );
        sample(
            &mut out,
            "fxn_connections_idle_closed_total",
            "counter",
            "Keep-alive connections closed after --idle-timeout-secs without a request.",
            self.idle_closed.load(Ordering::Relaxed),
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            slots: 2,
            slots_in_use: 1,
            body_budget: 1000,
            body_buffered: 10,
            max_connections: 8,
        }
    }

    /// The value of the sample whose line starts with `series ` in `text`.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn counts_render_as_prometheus_samples() {
        let m = Metrics::default();
        m.request("/challenge", 200);
        m.request("/challenge", 200);
        m.request("/challenge", 503);
        m.challenge("cpu");
        m.refusal(Refusal::Busy);
        m.body_bytes(123);
        m.latency(Duration::from_millis(3));
        m.latency(Duration::from_secs(2));
        let text = m.render(&gauges());
        let v = |s| value(&text, s);
        assert_eq!(
            v(r#"fxn_http_requests_total{route="/challenge",code="200"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"fxn_http_requests_total{route="/challenge",code="503"}"#),
            Some(1.0)
        );
        assert_eq!(v(r#"fxn_challenges_total{backend="cpu"}"#), Some(1.0));
        assert_eq!(v(r#"fxn_refusals_total{reason="busy"}"#), Some(1.0));
        assert_eq!(v(r#"fxn_refusals_total{reason="body_budget"}"#), Some(0.0));
        assert_eq!(v("fxn_body_bytes_read_total"), Some(123.0));
        assert_eq!(v("fxn_challenge_slots_in_use"), Some(1.0));
        // Buckets are cumulative: 3 ms is in every bucket from 5 ms on, 2 s from 2.5 s.
        assert_eq!(
            v(r#"fxn_challenge_duration_seconds_bucket{le="0.0025"}"#),
            Some(0.0)
        );
        assert_eq!(
            v(r#"fxn_challenge_duration_seconds_bucket{le="0.005"}"#),
            Some(1.0)
        );
        assert_eq!(
            v(r#"fxn_challenge_duration_seconds_bucket{le="2.5"}"#),
            Some(2.0)
        );
        assert_eq!(
            v(r#"fxn_challenge_duration_seconds_bucket{le="+Inf"}"#),
            Some(2.0)
        );
        let sum = v("fxn_challenge_duration_seconds_sum").expect("a sum");
        assert!((sum - 2.003).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn every_sample_belongs_to_a_declared_family() {
        let m = Metrics::default();
        m.request("other", 404);
        m.challenge("we\"ird\\");
        let text = m.render(&gauges());
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap_or_default().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|b| declared.iter().any(|d| d == b))
                    .unwrap_or(name);
                assert!(declared.iter().any(|d| d == base), "undeclared `{line}`");
            }
        }
        assert!(text.contains(r#"backend="we\"ird\\""#), "{text}");
    }

    #[test]
    fn client_paths_map_to_a_fixed_set_of_routes() {
        assert_eq!(route_label("/challenge"), "/challenge");
        assert_eq!(route_label("/metrics"), "/metrics");
        assert_eq!(route_label("/anything/else?x=1"), "other");
    }
}
