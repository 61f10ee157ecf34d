//! Counters in Prometheus text format. Plain atomics: a relaxed increment per event.

use std::sync::atomic::{AtomicU64, Ordering};

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

#[derive(Default)]
pub struct Metrics {
    pub requests: Counter,
    pub logins_started: Counter,
    pub logins_completed: Counter,
    pub logouts: Counter,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, c) in [
            (
                "tokengate_requests_total",
                "Requests received on the public listener.",
                &self.requests,
            ),
            (
                "tokengate_logins_started_total",
                "Logins sent to the provider.",
                &self.logins_started,
            ),
            (
                "tokengate_logins_completed_total",
                "Logins that created a session.",
                &self.logins_completed,
            ),
            (
                "tokengate_logouts_total",
                "Sessions ended by the user.",
                &self.logouts,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                c.get()
            ));
        }
        out
    }
}
