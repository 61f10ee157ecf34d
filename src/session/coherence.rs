//! Cache coherence between instances: a session another instance rewrote or ended leaves
//! this instance's cache as soon as the store's notice arrives (well under a second on
//! Redis), so a logout anywhere is a logout everywhere.

use std::sync::Arc;

use moka::sync::Cache;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use super::store::Change;
use super::{LiveSession, StoreKey};

/// Drops cached sessions as notices arrive, until the store closes its notices (when it
/// is dropped). Must run inside a Tokio runtime.
pub fn follow(mut changes: Receiver<Change>, cache: Cache<StoreKey, Arc<LiveSession>>) {
    tokio::spawn(async move {
        loop {
            match changes.recv().await {
                Ok(Change::Key(key)) => cache.invalidate(&key),
                // Notices were missed (a reconnect, or this task fell behind): any entry
                // may be stale, so all go; the next request of each session reloads it.
                Ok(Change::Lost) | Err(RecvError::Lagged(_)) => cache.invalidate_all(),
                Err(RecvError::Closed) => return,
            }
        }
    });
}
