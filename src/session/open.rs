//! The store `session.store` names, built once at start.

use std::sync::Arc;

use super::embedded::EmbeddedStore;
use super::memory::MemoryStore;
use super::redis::{RedisStore, Target};
use super::SessionStore;
use crate::config::{SessionConfig, StoreKind};

/// Opens the configured store; the error names the key to fix. Blocks while an embedded
/// store opens (and recovers after an unclean stop).
pub fn store(config: &SessionConfig) -> Result<Arc<dyn SessionStore>, String> {
    Ok(match config.store {
        StoreKind::Memory => Arc::new(MemoryStore::default()),
        StoreKind::Embedded => {
            Arc::new(EmbeddedStore::open(&config.path).map_err(|e| e.to_string())?)
        }
        StoreKind::Redis => {
            let target = match &config.redis_url {
                Some(url) => Target::Standalone(url.clone()),
                None => Target::Cluster(config.redis_cluster.clone()),
            };
            let where_ = if config.redis_url.is_some() {
                "session.redis_url"
            } else {
                "session.redis_cluster"
            };
            Arc::new(RedisStore::open(&target).map_err(|e| format!("{where_}: {e}"))?)
        }
    })
}
