//! Leases and "remember once" for stores that one process owns (`memory`, `embedded`):
//! that process is the only contender, so a map behind a mutex is the whole protocol.
//!
//! Both maps hold deadlines (`Instant`, immune to wall-clock jumps). Entries past their
//! deadline count as absent; they are pruned whenever a map doubles past its last pruned
//! size, so the maps stay bounded by what is live without a sweeper task.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::record::StoreKey;
use super::store::{Leases, StoreError};

type Entries<K, V> = HashMap<K, (V, Instant)>;

/// Deadlines by key, pruned as they grow.
struct Deadlines<K, V> {
    /// The entries and the size at which they are next pruned. A std `Mutex`: held for
    /// one map operation, never across an await.
    map: Mutex<(Entries<K, V>, usize)>,
}

impl<K: Eq + Hash, V> Default for Deadlines<K, V> {
    fn default() -> Self {
        Deadlines {
            map: Mutex::new((HashMap::new(), 64)),
        }
    }
}

impl<K: Eq + Hash, V> Deadlines<K, V> {
    fn with<T>(&self, f: impl FnOnce(&mut Entries<K, V>, Instant) -> T) -> T {
        // A poisoned lock means a panic elsewhere between two map operations, which leaves
        // the map itself consistent: keep serving.
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (map, prune_at) = &mut *guard;
        let now = Instant::now();
        if map.len() >= *prune_at {
            map.retain(|_, (_, until)| *until > now);
            *prune_at = (map.len() * 2).max(64);
        }
        f(map, now)
    }
}

/// One lease per key, held by a named holder until its deadline.
#[derive(Default)]
pub struct LocalLeases(Deadlines<StoreKey, String>);

/// A store whose leases live in this process.
pub trait OwnLeases: Send + Sync + 'static {
    fn leases(&self) -> &LocalLeases;
}

#[async_trait]
impl<T: OwnLeases> Leases for T {
    async fn lease_acquire(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.leases().acquire(key, holder, ttl))
    }

    async fn lease_renew(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.leases().renew(key, holder, ttl))
    }

    async fn lease_release(&self, key: &StoreKey, holder: &str) -> Result<bool, StoreError> {
        Ok(self.leases().release(key, holder))
    }
}

impl LocalLeases {
    pub fn acquire(&self, key: &StoreKey, holder: &str, ttl: Duration) -> bool {
        self.0.with(|map, now| match map.get(key) {
            Some((h, until)) if *until > now && h != holder => false,
            _ => {
                map.insert(*key, (holder.to_owned(), now + ttl));
                true
            }
        })
    }

    pub fn renew(&self, key: &StoreKey, holder: &str, ttl: Duration) -> bool {
        self.0.with(|map, now| match map.get_mut(key) {
            Some((h, until)) if *until > now && h == holder => {
                *until = now + ttl;
                true
            }
            _ => false,
        })
    }

    pub fn release(&self, key: &StoreKey, holder: &str) -> bool {
        self.0.with(|map, now| match map.get(key) {
            Some((h, until)) if h == holder => {
                let live = *until > now;
                map.remove(key);
                live
            }
            _ => false,
        })
    }
}

/// Keys seen within their time to live.
#[derive(Default)]
pub struct LocalOnce(Deadlines<[u8; 32], ()>);

impl LocalOnce {
    pub fn remember(&self, key: &[u8; 32], ttl: Duration) -> bool {
        self.0.with(|map, now| match map.get(key) {
            Some((_, until)) if *until > now => false,
            _ => {
                map.insert(*key, ((), now + ttl));
                true
            }
        })
    }
}
