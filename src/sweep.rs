//! Deadlines kept by a periodic sweep instead of a timer per request: the request writes
//! its deadline (or start) where the sweep looks, in milliseconds of a [`Millis`] clock,
//! and the sweep ([`every`]) acts on the overdue ones. Used for the request-head timeout,
//! which every request would otherwise arm and disarm.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Milliseconds since an epoch, plus one, so that 0 can stand for "none".
pub struct Millis {
    epoch: Instant,
}

impl Default for Millis {
    /// A clock whose epoch is now.
    fn default() -> Millis {
        Millis {
            epoch: Instant::now(),
        }
    }
}

impl Millis {
    pub fn at(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(since).unwrap_or(u64::MAX - 1) + 1
    }
}

/// How often to sweep for a timeout: an eighth of it, between a hundred times and once a
/// second (the timeout is then kept to within that much).
pub fn period_for(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// What a sweep looks at: one weak handle per item (a connection), added once, forgotten
/// by the first sweep that finds the item gone — or by an `add` that finds the list
/// doubled since it was last pruned, so that a registry no sweep visits for a long time
/// (the listener's drain, swept only when the gateway stops) stays bounded too.
pub struct Watched<T>(Mutex<Registry<T>>);

struct Registry<T> {
    items: Vec<Weak<T>>,
    /// The length at which `add` next drops the gone items first.
    prune_at: usize,
}

impl<T> Default for Watched<T> {
    fn default() -> Self {
        Watched(Mutex::new(Registry {
            items: Vec::new(),
            prune_at: 64,
        }))
    }
}

impl<T> Watched<T> {
    pub fn add(&self, item: &Arc<T>) {
        let mut registry = self.lock();
        if registry.items.len() >= registry.prune_at {
            registry.items.retain(|item| item.strong_count() > 0);
            registry.prune_at = (registry.items.len() * 2).max(64);
        }
        registry.items.push(Arc::downgrade(item));
    }

    /// Calls `f` on every item still alive, and forgets the others.
    pub fn sweep(&self, mut f: impl FnMut(&T)) {
        self.lock().items.retain(|item| match item.upgrade() {
            Some(item) => {
                f(&item);
                true
            }
            None => false,
        });
    }

    /// How many items are watched (the gone ones until the next sweep included).
    pub fn count(&self) -> usize {
        self.lock().items.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `work` on `target` every `period` until `target` is gone.
pub async fn every<T>(period: Duration, target: Weak<T>, work: impl Fn(&T)) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match target.upgrade() {
            Some(t) => work(&t),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use std::sync::Arc;

    use super::{period_for, Millis, Watched};

    #[test]
    fn a_registry_no_sweep_visits_stays_bounded() {
        let watched = Watched::default();
        let kept: Vec<Arc<usize>> = (0..10).map(Arc::new).collect();
        for item in &kept {
            watched.add(item);
        }
        // A hundred thousand items come and go, and no sweep runs.
        for i in 0..100_000 {
            watched.add(&Arc::new(i));
        }
        assert!(watched.count() <= 128, "{} handles kept", watched.count());
        let mut alive = 0;
        watched.sweep(|_| alive += 1);
        assert_eq!(alive, 10, "the living items are all still there");
        assert_eq!(watched.count(), 10);
    }

    #[test]
    fn millis_are_never_zero_and_a_sweep_period_is_bounded() {
        let clock = Millis::default();
        let now = Instant::now();
        assert!(clock.at(now) >= 1);
        assert_eq!(
            clock.at(now + Duration::from_secs(2)) - clock.at(now),
            2_000
        );
        assert_eq!(period_for(Duration::from_secs(30)), Duration::from_secs(1));
        assert_eq!(
            period_for(Duration::from_millis(500)),
            Duration::from_micros(62_500)
        );
        assert_eq!(
            period_for(Duration::from_millis(40)),
            Duration::from_millis(10)
        );
    }
}
