//! Counters for Prometheus, kept as plain atomics: the proxy path must not take a lock to
//! count a request. Each thread counts into its own cache-line-aligned shard (worker threads
//! pick theirs with [`use_shard`]), so workers on different cores never write the same cache
//! line; `/metrics` adds the shards up.

use std::cell::Cell;
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

thread_local! {
    /// The shard this thread counts into; 0 (the main thread's) unless [`use_shard`] said.
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Makes the calling thread count into shard `index` (taken modulo the number of shards).
pub fn use_shard(index: usize) {
    SHARD.with(|shard| shard.set(index));
}

/// One thread's counters, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    /// Responses by status class: 1xx … 5xx.
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    refusals: [AtomicU64; 4],
    upgrades: AtomicU64,
    connections: AtomicU64,
}

/// Process-wide counters.
pub struct Metrics {
    /// Never empty (see [`Metrics::new`]).
    shards: Box<[Shard]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(1)
    }
}

impl Metrics {
    /// Counters with `shards` shards (at least one): one per thread that counts.
    pub fn new(shards: usize) -> Metrics {
        Metrics {
            shards: (0..shards.max(1)).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self) -> &Shard {
        let index = SHARD.with(Cell::get) % self.shards.len();
        &self.shards[index]
    }

    /// The sum of one counter over all shards.
    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| counter(s).load(Relaxed)).sum()
    }

    /// Counts a response and the time to its headers.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        let shard = self.shard();
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        shard.by_class[class].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&bound| secs <= bound) {
            shard.buckets[bucket].fetch_add(1, Relaxed);
        }
        shard.latency_count.fetch_add(1, Relaxed);
        shard.latency_micros.fetch_add(
            elapsed.as_micros().min(u128::from(u64::MAX)) as u64,
            Relaxed,
        );
    }

    /// Counts a request the gateway answered itself.
    pub fn refuse(&self, why: Refusal) {
        self.shard().refusals[why as usize].fetch_add(1, Relaxed);
    }

    /// Counts an Upgrade (WebSocket…) handed through.
    pub fn upgraded(&self) {
        self.shard().upgrades.fetch_add(1, Relaxed);
    }

    /// Counts an accepted client connection.
    pub fn connected(&self) {
        self.shard().connections.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition, with one request counter per registered cluster.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP kip_gateway_requests_total Proxied requests by response status class.\n",
        );
        out.push_str("# TYPE kip_gateway_requests_total counter\n");
        for i in 0..5 {
            let _ = writeln!(
                out,
                "kip_gateway_requests_total{{code=\"{}xx\"}} {}",
                i + 1,
                self.sum(|s| &s.by_class[i])
            );
        }
        out.push_str("# HELP kip_gateway_request_duration_seconds Time to response headers.\n");
        out.push_str("# TYPE kip_gateway_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.sum(|s| &s.buckets[i]);
            let _ = writeln!(
                out,
                "kip_gateway_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.sum(|s| &s.latency_count);
        let _ = writeln!(
            out,
            "kip_gateway_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             kip_gateway_request_duration_seconds_sum {}\n\
             kip_gateway_request_duration_seconds_count {count}",
            self.sum(|s| &s.latency_micros) as f64 / 1e6
        );
        out.push_str("# HELP kip_gateway_refused_total Requests the gateway answered itself.\n");
        out.push_str("# TYPE kip_gateway_refused_total counter\n");
        for (i, reason) in ["bad_host", "unknown_host", "bad_gateway", "timeout"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(
                out,
                "kip_gateway_refused_total{{reason=\"{reason}\"}} {}",
                self.sum(|s| &s.refusals[i])
            );
        }
        let _ = writeln!(
            out,
            "# TYPE kip_gateway_upgrades_total counter\nkip_gateway_upgrades_total {}\n\
             # TYPE kip_gateway_connections_total counter\nkip_gateway_connections_total {}",
            self.sum(|s| &s.upgrades),
            self.sum(|s| &s.connections)
        );
        let snapshot = registry.snapshot();
        let _ = writeln!(
            out,
            "# TYPE kip_gateway_clusters gauge\nkip_gateway_clusters {}",
            snapshot.len()
        );
        // Entries the address policy refused at load: registered, but getting no traffic
        // until someone moves or deletes them, so worth an alert.
        let _ = writeln!(
            out,
            "# HELP kip_gateway_clusters_quarantined Clusters whose address is refused.\n\
             # TYPE kip_gateway_clusters_quarantined gauge\nkip_gateway_clusters_quarantined {}",
            snapshot.values().filter(|b| b.refused.is_some()).count()
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
