//! The storage contract every backend fulfils: bytes in, bytes out.
//!
//! Backends know nothing of sessions, tokens or encryption (habit 10): they keep sealed
//! values under a [`StoreKey`] with an expiry, a version for compare-and-set writes, and
//! two secondary indexes (by hashed `sub` and hashed `sid`). Everything above — records,
//! sealing, caching — lives in `session::Sessions`.
//!
//! Beyond values, a store offers what several gateway instances need to agree on: a lease
//! per session (one refresh at a time across instances), a "remember once" set (replay
//! caches), and notices of changes made by other instances (cache coherence).

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::record::{IndexKey, StoreKey};

/// A value as the store holds it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub value: Vec<u8>,
    /// Bumped by every successful write; compare-and-set is on this.
    pub version: u64,
    /// Unix seconds after which the store treats the value as gone.
    pub expires_at: u64,
}

/// The precondition of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Create only: fails if the key exists.
    Absent,
    /// Replace only the version that was read: fails if anyone wrote since.
    Version(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    /// Written; the value now has this version.
    Ok(u64),
    /// The precondition did not hold; nothing was written.
    Conflict,
}

/// The index entries a value is listed under.
#[derive(Clone, Debug)]
pub struct Indexes {
    pub sub: IndexKey,
    pub sid: Option<IndexKey>,
}

/// A change another instance made, as [`SessionStore::changes`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The value under this key was rewritten or deleted elsewhere: drop any copy of it.
    Key(StoreKey),
    /// Notices may have been missed (a reconnect, a slow reader): drop every copy.
    Lost,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or failed; the caller answers 503 and keeps nothing.
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// One lease per store key: who may refresh a session while several instances share the
/// store. A lease ends at its deadline unless its holder renews it, so a holder that dies
/// blocks the others for one time to live at most.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes the lease on `key` for `holder` for `ttl`; false while someone else holds an
    /// unexpired lease. A holder that takes its own lease again extends it.
    async fn lease_acquire(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Extends the lease by `ttl` from now, only for its holder; false when the lease
    /// expired or someone else holds it.
    async fn lease_renew(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up, only for its holder; false when `holder` did not hold it.
    async fn lease_release(&self, key: &StoreKey, holder: &str) -> Result<bool, StoreError>;
}

#[async_trait]
pub trait SessionStore: Leases {
    /// The value under `key`, unless absent or expired.
    async fn get(&self, key: &StoreKey) -> Result<Option<Stored>, StoreError>;

    /// Writes `value` under `key` if `expect` holds, listing it under `indexes`.
    async fn put(
        &self,
        key: &StoreKey,
        value: Vec<u8>,
        expires_at: u64,
        indexes: &Indexes,
        expect: Expect,
    ) -> Result<Written, StoreError>;

    /// Removes `key` and its index entries; true when something was removed.
    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError>;

    /// Keys listed under `index` whose values still live.
    async fn find(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError>;

    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// True the first time `key` is seen within `ttl` (by any instance on this store),
    /// false on every later call until it is forgotten: the replay cache of one-time
    /// values such as the `jti` of a logout token.
    async fn remember_once(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, StoreError>;

    /// Notices of keys written or deleted by *other* instances sharing this store, for
    /// callers that cache values; `None` for a store only this process can change.
    fn changes(&self) -> Option<broadcast::Receiver<Change>>;
}
