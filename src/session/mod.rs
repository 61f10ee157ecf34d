//! Sessions: the server-side allow-list behind the cookie.
//!
//! [`Sessions`] is the one door to session state. It seals records before they reach a
//! [`SessionStore`] and keeps decrypted records in an in-process moka cache, so a request
//! for a cached session costs a SHA-256 of the cookie and a cache probe: no store round
//! trip, no decryption (the hot-path promise of the project). Every write goes through
//! here and updates the cache after the store, so within one process the cache never
//! serves a record the store no longer holds.

pub mod coherence;
pub mod embedded;
mod local;
pub mod memory;
pub mod open;
pub mod record;
pub mod redis;
pub mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use moka::sync::Cache;

use crate::crypto::KeyRing;
pub use record::{IndexKey, Session, SessionId, StoreKey};
pub use store::{Change, Expect, Indexes, Leases, SessionStore, StoreError, Stored, Written};

/// Seconds since the Unix epoch, the unit of every time in a record.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A decrypted session as the cache holds it, with what the hot path needs precomputed.
#[derive(Debug)]
pub struct LiveSession {
    pub key: StoreKey,
    pub version: u64,
    pub record: Session,
    /// `Bearer <access token>`, built once per token so proxying only clones a refcount.
    pub bearer: HeaderValue,
}

impl LiveSession {
    fn new(key: StoreKey, version: u64, record: Session) -> Option<LiveSession> {
        let bearer = bearer_header(&record.access_token)?;
        Some(LiveSession {
            key,
            version,
            record,
            bearer,
        })
    }

    /// True once the access token is due for refresh.
    pub fn needs_refresh(&self, now: u64) -> bool {
        self.record.refresh_at.is_some_and(|at| now >= at)
    }
}

/// `Bearer <token>` as a header value; `None` when the token has bytes a header cannot
/// carry (the provider's answer is then refused, never forwarded half-made).
pub fn bearer_header(access_token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::try_from(format!("Bearer {access_token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

pub struct Sessions {
    store: Arc<dyn SessionStore>,
    cache: Cache<StoreKey, Arc<LiveSession>>,
    keys: Arc<KeyRing>,
    idle: u64,
    absolute: u64,
    /// How stale `last_seen` may get before a request writes it back: a sliding idle
    /// timeout without a store write per request.
    touch_after: u64,
}

/// How many times a read-modify-write retries when another writer got there first.
const UPDATE_ATTEMPTS: usize = 8;

impl Sessions {
    pub fn new(
        store: Arc<dyn SessionStore>,
        keys: Arc<KeyRing>,
        idle: Duration,
        absolute: Duration,
        cache_capacity: u64,
    ) -> Sessions {
        let idle = idle.as_secs().max(1);
        let cache = Cache::builder()
            .max_capacity(cache_capacity)
            // Idle sessions leave memory; the store still has them.
            .time_to_idle(Duration::from_secs(600))
            .build();
        // Other instances' writes and deletes drop our copies (a shared store only).
        if let Some(changes) = store.changes() {
            coherence::follow(changes, cache.clone());
        }
        Sessions {
            store,
            cache,
            keys,
            idle,
            absolute: absolute.as_secs().max(1),
            touch_after: (idle / 20).clamp(1, 60),
        }
    }

    /// The live session named by a session cookie's value, or `None` for a value that is
    /// malformed, unknown, expired or unreadable.
    pub async fn find_by_cookie(
        &self,
        cookie_value: &str,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        match SessionId::parse(cookie_value) {
            Some(id) => self.get(id.store_key()).await,
            None => Ok(None),
        }
    }

    /// The live session under `key`: cache first, then the store. Ends a session found past
    /// its idle or absolute limit, and slides `last_seen` when it is due.
    pub async fn get(&self, key: StoreKey) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let live = match self.cache.get(&key) {
            Some(live) => live,
            None => match self.load(key).await? {
                Some(live) => live,
                None => return Ok(None),
            },
        };
        let now = unix_now();
        if now >= live.record.ends_at(self.idle, self.absolute) {
            self.end(key).await?;
            return Ok(None);
        }
        if now >= live.record.last_seen + self.touch_after {
            return self.update(key, |s| s.last_seen = now).await;
        }
        Ok(Some(live))
    }

    /// Reads `key` from the store, bypassing (and then refreshing) the cache.
    pub async fn load(&self, key: StoreKey) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let Some(stored) = self.store.get(&key).await? else {
            self.cache.invalidate(&key);
            return Ok(None);
        };
        let Some(live) = self.open(key, &stored) else {
            self.cache.invalidate(&key);
            return Ok(None);
        };
        let live = Arc::new(live);
        self.cache.insert(key, live.clone());
        Ok(Some(live))
    }

    /// Stores a new session under a fresh ID. The ID is new on every login (no fixation).
    pub async fn create(
        &self,
        record: Session,
    ) -> Result<(SessionId, Arc<LiveSession>), StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let id = SessionId::generate();
            let key = id.store_key();
            // A collision of 256-bit random IDs will not happen; `Expect::Absent` makes
            // sure that even then no one else's session is overwritten.
            if let Some(live) = self.write(key, record.clone(), Expect::Absent).await? {
                return Ok((id, live));
            }
        }
        Err(StoreError::Unavailable(
            "could not store a new session".into(),
        ))
    }

    /// Read-modify-write of the stored record under compare-and-set, retried on conflict
    /// so that a concurrent writer's change (a refresh, a touch) is never lost.
    /// `None` when the session is gone.
    pub async fn update(
        &self,
        key: StoreKey,
        change: impl Fn(&mut Session),
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(current) = self.load(key).await? else {
                return Ok(None);
            };
            let mut record = current.record.clone();
            change(&mut record);
            if let Some(live) = self
                .write(key, record, Expect::Version(current.version))
                .await?
            {
                return Ok(Some(live));
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent writes to one session".into(),
        ))
    }

    /// Ends the session: gone from the store and the cache at once.
    pub async fn end(&self, key: StoreKey) -> Result<bool, StoreError> {
        self.cache.invalidate(&key);
        let removed = self.store.delete(&key).await?;
        self.cache.invalidate(&key);
        Ok(removed)
    }

    /// Keys of the live sessions listed under `index`.
    pub async fn find(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        self.store.find(index).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// The store itself, for what spans instances: leases, remember-once.
    pub fn store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    async fn write(
        &self,
        key: StoreKey,
        record: Session,
        expect: Expect,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let Ok(plain) = serde_json::to_vec(&record) else {
            return Err(StoreError::Unavailable(
                "session record did not serialise".into(),
            ));
        };
        let sealed = self.keys.seal(&plain, &key.0);
        let indexes = Indexes {
            sub: IndexKey::sub(&record.sub),
            sid: record.sid.as_deref().map(IndexKey::sid),
        };
        let expires_at = record.ends_at(self.idle, self.absolute);
        match self
            .store
            .put(&key, sealed, expires_at, &indexes, expect)
            .await?
        {
            Written::Ok(version) => {
                let Some(live) = LiveSession::new(key, version, record) else {
                    // Refused before it was stored by whoever built the record; reaching
                    // here means a corrupt token: drop the session rather than serve it.
                    self.end(key).await?;
                    return Ok(None);
                };
                let live = Arc::new(live);
                self.cache.insert(key, live.clone());
                Ok(Some(live))
            }
            Written::Conflict => Ok(None),
        }
    }

    fn open(&self, key: StoreKey, stored: &Stored) -> Option<LiveSession> {
        let plain = match self.keys.open(&stored.value, &key.0) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(session = %key.short(), error = %e, "session record does not open; treated as no session");
                return None;
            }
        };
        let record: Session = match serde_json::from_slice(&plain) {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(session = %key.short(), "session record does not decode; treated as no session");
                return None;
            }
        };
        LiveSession::new(key, stored.version, record)
    }
}
