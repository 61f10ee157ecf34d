//! The `memory` store: one process, nothing survives a restart. For tests and for trying
//! the gateway out; production runs `embedded` (one node) or `redis` (many).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::sync::Cache;

use super::local::{LocalLeases, LocalOnce, OwnLeases};
use super::record::{IndexKey, StoreKey};
use super::store::{Change, Expect, Indexes, SessionStore, StoreError, Stored, Written};
use super::unix_now;

#[derive(Clone)]
struct Entry {
    stored: Stored,
    indexes: Indexes,
}

/// moka drops each entry at its own `expires_at`.
struct ExpireAt;

impl moka::Expiry<StoreKey, Entry> for ExpireAt {
    fn expire_after_create(&self, _: &StoreKey, e: &Entry, _: Instant) -> Option<Duration> {
        Some(Duration::from_secs(
            e.stored.expires_at.saturating_sub(unix_now()),
        ))
    }
    fn expire_after_update(
        &self,
        _: &StoreKey,
        e: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Duration::from_secs(
            e.stored.expires_at.saturating_sub(unix_now()),
        ))
    }
}

pub struct MemoryStore {
    entries: Cache<StoreKey, Entry>,
    /// Index → keys. A std `Mutex`: held only for a set insert or removal, never across an
    /// await. Members whose entry expired are pruned when the index is read.
    index: Mutex<HashMap<IndexKey, HashSet<StoreKey>>>,
    leases: LocalLeases,
    once: LocalOnce,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            entries: Cache::builder().expire_after(ExpireAt).build(),
            index: Mutex::new(HashMap::new()),
            leases: LocalLeases::default(),
            once: LocalOnce::default(),
        }
    }
}

impl MemoryStore {
    fn with_index(&self, f: impl FnOnce(&mut HashMap<IndexKey, HashSet<StoreKey>>)) {
        // A poisoned lock means a panic elsewhere mid-update of a HashSet, which leaves the
        // map itself consistent: keep serving.
        let mut guard = self.index.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    fn unlist(&self, key: &StoreKey, indexes: &Indexes) {
        self.with_index(|map| {
            for ik in std::iter::once(&indexes.sub).chain(indexes.sid.as_ref()) {
                if let Some(set) = map.get_mut(ik) {
                    set.remove(key);
                    if set.is_empty() {
                        map.remove(ik);
                    }
                }
            }
        });
    }
}

impl OwnLeases for MemoryStore {
    fn leases(&self) -> &LocalLeases {
        &self.leases
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Stored>, StoreError> {
        let now = unix_now();
        Ok(self
            .entries
            .get(key)
            .filter(|e| e.stored.expires_at > now)
            .map(|e| e.stored))
    }

    async fn put(
        &self,
        key: &StoreKey,
        value: Vec<u8>,
        expires_at: u64,
        indexes: &Indexes,
        expect: Expect,
    ) -> Result<Written, StoreError> {
        let now = unix_now();
        let mut written = Written::Conflict;
        let mut replaced: Option<Indexes> = None;
        // `and_compute_with` runs the closure atomically for this key: the version check
        // and the write cannot interleave with another writer's.
        self.entries.entry(*key).and_compute_with(|current| {
            let live = current
                .map(|e| e.into_value())
                .filter(|e| e.stored.expires_at > now);
            let version = match (expect, &live) {
                (Expect::Absent, None) => 1,
                (Expect::Version(v), Some(e)) if e.stored.version == v => v + 1,
                _ => return Op::Nop,
            };
            replaced = live.map(|e| e.indexes);
            written = Written::Ok(version);
            Op::Put(Entry {
                stored: Stored {
                    value,
                    version,
                    expires_at,
                },
                indexes: indexes.clone(),
            })
        });
        if let Written::Ok(_) = written {
            if let Some(old) = replaced {
                self.unlist(key, &old);
            }
            self.with_index(|map| {
                for ik in std::iter::once(&indexes.sub).chain(indexes.sid.as_ref()) {
                    map.entry(*ik).or_default().insert(*key);
                }
            });
        }
        Ok(written)
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        match self.entries.remove(key) {
            Some(e) => {
                self.unlist(key, &e.indexes);
                Ok(e.stored.expires_at > unix_now())
            }
            None => Ok(false),
        }
    }

    async fn find(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let now = unix_now();
        let mut live = Vec::new();
        self.with_index(|map| {
            if let Some(set) = map.get_mut(index) {
                set.retain(|k| {
                    self.entries
                        .get(k)
                        .is_some_and(|e| e.stored.expires_at > now)
                });
                live.extend(set.iter().copied());
                if set.is_empty() {
                    map.remove(index);
                }
            }
        });
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn remember_once(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, StoreError> {
        Ok(self.once.remember(key, ttl))
    }

    /// One process: no other instance can change what it holds.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
