//! The gateway's figures: counters and latency histograms, which `admin::metrics` renders
//! in Prometheus text format.
//!
//! Plain atomics, updated with relaxed increments on the request path: no lock, no
//! allocation. Per-route figures live in a vector indexed by the route's position,
//! fixed at start, so recording one is an index and two increments.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram; buckets are stored per interval and summed when rendered.
#[derive(Default)]
pub struct Histogram {
    buckets: [Counter; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].inc();
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The histogram's lines, under metric `name` with `labels`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, le) in BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_owned()])
            .enumerate()
        {
            cumulative += self.buckets[i].get();
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// What one route (or the gateway's own endpoints) has answered.
pub struct RouteStats {
    /// The `route` label: the route's path prefix, `/bff`, or `unmatched`.
    label: String,
    /// Responses by status class, 1xx to 5xx.
    by_class: [Counter; 5],
    /// Time from the request's arrival to the response head.
    duration: Histogram,
    /// Time the upstream took to send its response head (proxied routes only).
    pub upstream: Histogram,
}

impl RouteStats {
    fn new(label: &str) -> RouteStats {
        RouteStats {
            label: escape(label),
            by_class: Default::default(),
            duration: Histogram::default(),
            upstream: Histogram::default(),
        }
    }

    pub fn record(&self, status: StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.duration.observe(took);
    }

    /// The route as the access log names it: its path, or `/bff`; `None` for no route.
    pub fn route(&self) -> Option<&str> {
        (self.label != "unmatched").then_some(self.label.as_str())
    }

    /// The `route` label, escaped for Prometheus text.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Responses by status class, 1xx to 5xx.
    pub fn by_class(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_class.iter().map(Counter::get)
    }

    pub fn duration(&self) -> &Histogram {
        &self.duration
    }
}

/// Device-bound sessions (DBSC): registrations offered and their outcome, and the
/// refreshes of bound cookies by outcome.
#[derive(Default)]
pub struct DeviceBindingCounts {
    pub offered: Counter,
    pub bound: Counter,
    pub refused: Counter,
    pub refreshed: Counter,
    pub challenged: Counter,
    pub stale: Counter,
    pub forged: Counter,
    pub ended: Counter,
}

#[derive(Default)]
pub struct LogoutCounts {
    pub user: Counter,
    pub backchannel: Counter,
    pub admin: Counter,
}

/// The gateway's figures: the [`Counters`] every configuration shares (a reload keeps
/// counting where the last one was) and the per-route figures of this configuration's
/// routes. Reads of a counter go through to the shared ones (`metrics.requests`).
pub struct Metrics {
    counters: Arc<Counters>,
    /// By route index, then `/bff`, then requests no route matched.
    routes: Vec<Arc<RouteStats>>,
}

/// What outlives a configuration.
pub struct Counters {
    pub requests: Counter,
    pub logins_started: Counter,
    pub logins_completed: Counter,
    pub logins_failed: Counter,
    pub logouts: LogoutCounts,
    /// Configuration reloads, by outcome.
    pub reloads: ReloadCounts,
    pub device_binding: DeviceBindingCounts,
    /// Connections open on the public listener.
    pub connections: Arc<OpenConnections>,
    /// The runtime of each worker, for the tasks alive in all of them.
    runtimes: std::sync::Mutex<Vec<tokio::runtime::Handle>>,
}

#[derive(Default)]
pub struct ReloadCounts {
    pub applied: Counter,
    pub refused: Counter,
}

impl std::ops::Deref for Metrics {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

impl Metrics {
    /// The metrics of a gateway with these routes and `workers` workers.
    pub fn new<'a>(route_prefixes: impl Iterator<Item = &'a str>, workers: usize) -> Metrics {
        let counters = Arc::new(Counters {
            requests: Counter::default(),
            logins_started: Counter::default(),
            logins_completed: Counter::default(),
            logins_failed: Counter::default(),
            logouts: LogoutCounts::default(),
            reloads: ReloadCounts::default(),
            device_binding: DeviceBindingCounts::default(),
            connections: Arc::new(OpenConnections::new(workers)),
            runtimes: std::sync::Mutex::default(),
        });
        Metrics::with_counters(counters, route_prefixes, &[])
    }

    /// The metrics of a reloaded configuration: the same counters, and each route's
    /// figures carried over when a route of the same path was there before.
    pub fn for_routes<'a>(&self, route_prefixes: impl Iterator<Item = &'a str>) -> Metrics {
        Metrics::with_counters(self.counters.clone(), route_prefixes, &self.routes)
    }

    fn with_counters<'a>(
        counters: Arc<Counters>,
        route_prefixes: impl Iterator<Item = &'a str>,
        before: &[Arc<RouteStats>],
    ) -> Metrics {
        let stats = |label: &str| {
            let escaped = escape(label);
            before
                .iter()
                .find(|r| r.label == escaped)
                .cloned()
                .unwrap_or_else(|| Arc::new(RouteStats::new(label)))
        };
        let mut routes: Vec<Arc<RouteStats>> = route_prefixes.map(stats).collect();
        routes.push(stats("/bff"));
        routes.push(stats("unmatched"));
        Metrics { counters, routes }
    }
}

impl Counters {
    /// Counts `runtime`'s tasks in `tokengate_tasks_alive` (each worker's, as it starts).
    pub fn add_runtime(&self, runtime: tokio::runtime::Handle) {
        self.runtimes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(runtime);
    }

    /// Tasks alive in the workers' runtimes (in the current one when none was added).
    pub fn tasks_alive(&self) -> usize {
        let runtimes = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if runtimes.is_empty() {
            return tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
        }
        runtimes.iter().map(|r| r.metrics().num_alive_tasks()).sum()
    }
}

impl Metrics {
    /// The figures of route `index`.
    pub fn route(&self, index: usize) -> &RouteStats {
        &self.routes[index.min(self.routes.len() - 2)]
    }

    pub fn bff(&self) -> &RouteStats {
        &self.routes[self.routes.len() - 2]
    }

    pub fn unmatched(&self) -> &RouteStats {
        &self.routes[self.routes.len() - 1]
    }

    /// Every route's figures: by route index, then `/bff`, then no route.
    pub fn routes(&self) -> &[Arc<RouteStats>] {
        &self.routes
    }
}

/// A label value in Prometheus text: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Connections currently open on a listener, for `/metrics` and for tests that prove a
/// fault leaves none behind; those refused for `server.max_connections`; and those each
/// worker accepted (how evenly the kernel spreads them).
pub struct OpenConnections {
    open: AtomicI64,
    refused: AtomicU64,
    accepted: Box<[AtomicU64]>,
}

impl Default for OpenConnections {
    fn default() -> Self {
        OpenConnections::new(1)
    }
}

impl OpenConnections {
    /// The counts of a listener served by `workers` workers.
    pub fn new(workers: usize) -> OpenConnections {
        OpenConnections {
            open: AtomicI64::new(0),
            refused: AtomicU64::new(0),
            accepted: (0..workers.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn get(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed as they were accepted, the listener being full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections accepted so far, by worker.
    pub fn accepted(&self) -> impl Iterator<Item = u64> + '_ {
        self.accepted.iter().map(|n| n.load(Ordering::Relaxed))
    }

    /// A connection accepted by `worker` is open.
    pub fn opened(&self, worker: usize) {
        self.open.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = self.accepted.get(worker) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An open connection has closed.
    pub fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was closed as it was accepted, the listener being full.
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "route=\"/a\"");
        assert!(
            out.contains("x_bucket{route=\"/a\",le=\"0.0005\"} 1\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{route=\"/a\",le=\"0.005\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("x_bucket{route=\"/a\",le=\"+Inf\"} 3\n"),
            "{out}"
        );
        assert!(out.contains("x_count{route=\"/a\"} 3\n"), "{out}");
    }
}
