//! Counters for Prometheus, kept as plain atomics: the proxy path must not take a lock to
//! count a request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::registry::Registry;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Why the gateway answered a request itself instead of a cluster.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    BadHost,
    UnknownHost,
    BadGateway,
    Timeout,
}

/// Process-wide counters.
#[derive(Default)]
pub struct Metrics {
    /// Responses by status class: 1xx … 5xx.
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    refusals: [AtomicU64; 4],
    upgrades: AtomicU64,
    connections: AtomicU64,
}

impl Metrics {
    /// Counts a response and the time to its headers.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&bound| secs <= bound) {
            self.buckets[bucket].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(
            elapsed.as_micros().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    /// Counts a request the gateway answered itself.
    pub fn refuse(&self, why: Refusal) {
        self.refusals[why as usize].fetch_add(1, Relaxed);
    }

    /// Counts an Upgrade (WebSocket…) handed through.
    pub fn upgraded(&self) {
        self.upgrades.fetch_add(1, Relaxed);
    }

    /// Counts an accepted client connection.
    pub fn connected(&self) {
        self.connections.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition, with one request counter per registered cluster.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP kip_gateway_requests_total Proxied requests by response status class.\n",
        );
        out.push_str("# TYPE kip_gateway_requests_total counter\n");
        for (i, counter) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "kip_gateway_requests_total{{code=\"{}xx\"}} {}",
                i + 1,
                counter.load(Relaxed)
            );
        }
        out.push_str("# HELP kip_gateway_request_duration_seconds Time to response headers.\n");
        out.push_str("# TYPE kip_gateway_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, counter) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += counter.load(Relaxed);
            let _ = writeln!(
                out,
                "kip_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "kip_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             kip_gateway_request_duration_seconds_sum {}\n\
             kip_gateway_request_duration_seconds_count {count}",
            self.latency_micros.load(Relaxed) as f64 / 1e6
        );
        out.push_str("# HELP kip_gateway_refused_total Requests the gateway answered itself.\n");
        out.push_str("# TYPE kip_gateway_refused_total counter\n");
        for (reason, counter) in ["bad_host", "unknown_host", "bad_gateway", "timeout"]
            .iter()
            .zip(&self.refusals)
        {
            let _ = writeln!(
                out,
                "kip_gateway_refused_total{{reason=\"{reason}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# TYPE kip_gateway_upgrades_total counter\nkip_gateway_upgrades_total {}\n\
             # TYPE kip_gateway_connections_total counter\nkip_gateway_connections_total {}",
            self.upgrades.load(Relaxed),
            self.connections.load(Relaxed)
        );
        let snapshot = registry.snapshot();
        let _ = writeln!(
            out,
            "# TYPE kip_gateway_clusters gauge\nkip_gateway_clusters {}",
            snapshot.len()
        );
        out.push_str(
            "# HELP kip_gateway_cluster_requests_total Requests routed to each cluster.\n",
        );
        out.push_str("# TYPE kip_gateway_cluster_requests_total counter\n");
        let mut clusters: Vec<_> = snapshot.values().collect();
        clusters.sort_by(|a, b| a.id.cmp(&b.id));
        for backend in clusters {
            let _ = writeln!(
                out,
                "kip_gateway_cluster_requests_total{{cluster=\"{}\"}} {}",
                backend.id,
                backend.requests.load(Relaxed)
            );
        }
        out
    }
}
