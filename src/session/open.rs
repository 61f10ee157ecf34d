//! The store `session.store` names, built once at start.

use std::sync::Arc;

use super::embedded::EmbeddedStore;
use super::memory::MemoryStore;
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
            return Err("session.store: \"redis\" is not available in this version yet".into())
        }
    })
}
