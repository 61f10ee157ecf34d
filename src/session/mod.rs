//! Sessions: the server-side allow-list behind the cookie.
//!
//! [`Sessions`] is the one door to session state. It seals records before they reach a
//! [`SessionStore`] and keeps decrypted records in an in-process moka cache, so a request
//! for a cached session costs a SHA-256 of the cookie and a cache probe: no store round
//! trip, no decryption (the hot-path promise of the project). Every write goes through
//! here and updates the cache after the store, so within one process the cache never
//! serves a record the store no longer holds.

pub mod coherence;
pub mod device;
pub mod embedded;
mod local;
pub mod memory;
pub mod open;
pub mod record;
pub mod redis;
pub mod store;

#[cfg(test)]
mod tests;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::HeaderValue;
use moka::sync::Cache;

use crate::crypto::signing::SigningKey;
use crate::crypto::KeyRing;
use crate::metrics::Counter;
pub use record::{
    AccessToken, BoundDevice, Claims, EndReason, IndexKey, Session, SessionId, StoreKey, Token,
};
pub use store::{Change, Expect, Indexes, Leases, SessionStore, StoreError, Stored, Written};

/// Seconds since the Unix epoch, the unit of every time in a record.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What [`Sessions::update_if`] did.
pub enum Conditional {
    /// No such session.
    Gone,
    /// The change declined the record as it was stored; nothing written.
    Declined,
    Written(Arc<LiveSession>),
}

/// A decrypted session as the cache holds it, with what the hot path needs precomputed.
#[derive(Debug)]
pub struct LiveSession {
    pub key: StoreKey,
    pub version: u64,
    /// The record, except the access tokens' bytes: those live only in the header values
    /// below (a cached session holds each token once; `access_token` here is empty).
    /// Writes never start from this copy: `Sessions::update` reads the store.
    pub record: Session,
    /// `Bearer <access token>` (or `DPoP <access token>` for a DPoP session), built once
    /// per token so proxying only clones a refcount.
    pub bearer: HeaderValue,
    /// The same for the tokens of other audiences, by resource (few: one per route
    /// `resource`, so a short list beats a map).
    resource_bearers: Vec<(String, HeaderValue)>,
    /// The session's DPoP key, parsed once from the record.
    pub dpop: Option<Arc<SigningKey>>,
    /// The claims parsed, on the first request to a route with `require` rules: a session
    /// that never meets one never pays for the map.
    claims: OnceLock<serde_json::Map<String, serde_json::Value>>,
}

impl LiveSession {
    fn new(key: StoreKey, version: u64, mut record: Session) -> Option<LiveSession> {
        let dpop = match &record.dpop_key {
            Some(pkcs8) => {
                let der = crate::crypto::b64url_decode(pkcs8)?;
                Some(Arc::new(SigningKey::from_p256_pkcs8(&der).ok()?))
            }
            None => None,
        };
        let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
        let bearer = authorization_header(scheme, record.access_token.secret())?;
        let resource_bearers = record
            .resource_tokens
            .iter()
            .map(|(r, t)| Some((r.clone(), authorization_header(scheme, t.token.secret())?)))
            .collect::<Option<Vec<_>>>()?;
        record.access_token = Token::default();
        for t in record.resource_tokens.values_mut() {
            t.token = Token::default();
        }
        Some(LiveSession {
            key,
            version,
            record,
            bearer,
            resource_bearers,
            dpop,
            claims: OnceLock::new(),
        })
    }

    /// The session's claims as a map, parsed once per cached session.
    pub fn claims(&self) -> &serde_json::Map<String, serde_json::Value> {
        self.claims.get_or_init(|| self.record.claims.to_map())
    }

    /// The `Authorization` value for `resource` (`None`: the default audience) unless
    /// that token is missing or due for refresh at `now`.
    pub fn fresh_bearer(&self, resource: Option<&str>, now: u64) -> Option<&HeaderValue> {
        let refresh_at = self.record.refresh_due(resource)?;
        if refresh_at.is_some_and(|at| now >= at) {
            return None;
        }
        self.bearer_for(resource)
    }

    /// The `Authorization` value for `resource`, due or not; `None` when there is none.
    pub fn bearer_for(&self, resource: Option<&str>) -> Option<&HeaderValue> {
        match resource {
            None => Some(&self.bearer),
            Some(r) => self
                .resource_bearers
                .iter()
                .find(|(name, _)| name == r)
                .map(|(_, v)| v),
        }
    }
}

/// `Bearer <token>` as a header value; `None` when the token has bytes a header cannot
/// carry (the provider's answer is then refused, never forwarded half-made).
pub fn bearer_header(access_token: &str) -> Option<HeaderValue> {
    authorization_header("Bearer", access_token)
}

/// `<scheme> <token>` as a sensitive header value.
pub fn authorization_header(scheme: &str, access_token: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::try_from(format!("{scheme} {access_token}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

pub struct Sessions {
    /// Sessions ended, by reason (for `/metrics`).
    pub ended: EndCounts,
    store: Arc<dyn SessionStore>,
    cache: Cache<StoreKey, Arc<LiveSession>>,
    /// Swapped whole by a configuration reload (a key added or retired).
    keys: ArcSwap<KeyRing>,
    idle: u64,
    absolute: u64,
    /// How stale `last_seen` may get before a request writes it back: a sliding idle
    /// timeout without a store write per request.
    touch_after: u64,
}

/// How long past its end the store keeps a record (see [`Sessions::write`]).
const STORE_GRACE_SECS: u64 = 60;

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
            ended: EndCounts::default(),
            store,
            cache,
            keys: ArcSwap::new(keys),
            idle,
            absolute: absolute.as_secs().max(1),
            touch_after: (idle / 20).clamp(1, 60),
        }
    }

    /// Seals with `keys` from now on, and opens with any of them (a reloaded key ring).
    pub fn set_keys(&self, keys: Arc<KeyRing>) {
        self.keys.store(keys);
    }

    /// The live session named by a session cookie's value, or `None` for a value that is
    /// malformed, unknown, expired or unreadable.
    pub async fn find_by_cookie(
        &self,
        cookie_value: &str,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        match SessionId::store_key_of(cookie_value) {
            Some(key) => self.get(key).await,
            None => Ok(None),
        }
    }

    /// The live session under `key`: cache first, then the store. Ends a session found past
    /// its idle or absolute limit, and slides `last_seen` when it is due.
    pub async fn get(&self, key: StoreKey) -> Result<Option<Arc<LiveSession>>, StoreError> {
        self.get_with(key, true).await
    }

    /// As [`Sessions::get`], but never extends the idle limit (`/bff/user?slide=false`,
    /// the admin API).
    pub async fn peek(&self, key: StoreKey) -> Result<Option<Arc<LiveSession>>, StoreError> {
        self.get_with(key, false).await
    }

    async fn get_with(
        &self,
        key: StoreKey,
        slide: bool,
    ) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let live = match self.cache.get(&key) {
            Some(live) => live,
            // The cold paths are boxed: the cached hit, the one that runs for nearly every
            // request, then moves a small future rather than one sized for a store read.
            None => match Box::pin(self.load(key)).await? {
                Some(live) => live,
                None => return Ok(None),
            },
        };
        let now = unix_now();
        let (ends_at, reason) = live.record.end(self.idle, self.absolute);
        if now >= ends_at {
            Box::pin(self.end(key, reason)).await?;
            return Ok(None);
        }
        // Saturating: a record's times are data (sealed, but data), never a reason to panic.
        if slide && now >= live.record.last_seen.saturating_add(self.touch_after) {
            return Box::pin(self.update(key, |s| s.last_seen = now)).await;
        }
        Ok(Some(live))
    }

    /// Reads `key` from the store, bypassing (and then refreshing) the cache.
    pub async fn load(&self, key: StoreKey) -> Result<Option<Arc<LiveSession>>, StoreError> {
        let Some((version, record)) = self.read(key).await? else {
            return Ok(None);
        };
        let Some(live) = LiveSession::new(key, version, record) else {
            self.cache.invalidate(&key);
            return Ok(None);
        };
        let live = Arc::new(live);
        self.cache.insert(key, live.clone());
        Ok(Some(live))
    }

    /// The whole record under `key` as the store holds it, and its version.
    async fn read(&self, key: StoreKey) -> Result<Option<(u64, Session)>, StoreError> {
        let opened = match self.store.get(&key).await? {
            Some(stored) => self.open(key, &stored).map(|r| (stored.version, r)),
            None => None,
        };
        if opened.is_none() {
            self.cache.invalidate(&key);
        }
        Ok(opened)
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
        let changed = self
            .update_if(key, |record| {
                change(record);
                true
            })
            .await?;
        Ok(match changed {
            Conditional::Written(live) => Some(live),
            Conditional::Gone | Conditional::Declined => None,
        })
    }

    /// As [`Sessions::update`], but `change` decides on the stored record whether to
    /// change it at all: a compare-and-set across instances (two instances judging the
    /// same record cannot both change it from what they saw).
    pub async fn update_if(
        &self,
        key: StoreKey,
        change: impl Fn(&mut Session) -> bool,
    ) -> Result<Conditional, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            // From the store's whole record, never the cached copy (which lacks the
            // access tokens' bytes).
            let Some((version, mut record)) = self.read(key).await? else {
                return Ok(Conditional::Gone);
            };
            if !change(&mut record) {
                return Ok(Conditional::Declined);
            }
            if let Some(live) = self.write(key, record, Expect::Version(version)).await? {
                return Ok(Conditional::Written(live));
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent writes to one session".into(),
        ))
    }

    /// Ends the session: gone from the store and the cache at once. True when it existed.
    pub async fn end(&self, key: StoreKey, reason: EndReason) -> Result<bool, StoreError> {
        self.cache.invalidate(&key);
        let removed = self.store.delete(&key).await?;
        self.cache.invalidate(&key);
        if removed {
            self.ended.inc(reason);
            tracing::info!(session = %key.short(), reason = reason.label(), "session ended");
        }
        Ok(removed)
    }

    /// Decrypted sessions held in this process's cache (an estimate).
    pub fn cached(&self) -> u64 {
        // moka counts lazily; settle pending inserts and evictions first.
        self.cache.run_pending_tasks();
        self.cache.entry_count()
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
        let sealed = self.keys.load().seal(&plain, &key.0);
        let indexes = Indexes {
            sub: IndexKey::sub(&record.sub),
            sid: record.sid.as_deref().map(IndexKey::sid),
        };
        // The store keeps a record a little past its end, so that the request which
        // finds it over ends it here, with its reason counted, rather than finding nothing.
        let expires_at = record
            .ends_at(self.idle, self.absolute)
            .saturating_add(STORE_GRACE_SECS);
        match self
            .store
            .put(&key, sealed, expires_at, &indexes, expect)
            .await?
        {
            Written::Ok(version) => {
                let Some(live) = LiveSession::new(key, version, record) else {
                    // Refused before it was stored by whoever built the record; reaching
                    // here means a corrupt token: drop the session rather than serve it.
                    self.end(key, EndReason::TokensExpired).await?;
                    return Ok(None);
                };
                let live = Arc::new(live);
                self.cache.insert(key, live.clone());
                Ok(Some(live))
            }
            Written::Conflict => Ok(None),
        }
    }

    fn open(&self, key: StoreKey, stored: &Stored) -> Option<Session> {
        let plain = match self.keys.load().open(&stored.value, &key.0) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(session = %key.short(), error = %e, "session record does not open; treated as no session");
                return None;
            }
        };
        match serde_json::from_slice(&plain) {
            Ok(record) => Some(record),
            Err(_) => {
                tracing::warn!(session = %key.short(), "session record does not decode; treated as no session");
                None
            }
        }
    }
}

/// Sessions ended, one counter per [`EndReason`].
#[derive(Default)]
pub struct EndCounts([Counter; EndReason::ALL.len()]);

impl EndCounts {
    fn inc(&self, reason: EndReason) {
        self.0[reason as usize].inc();
    }

    /// `(label, count)` for every reason.
    pub fn snapshot(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EndReason::ALL
            .iter()
            .map(|r| (r.label(), self.0[*r as usize].get()))
    }
}
