//! One conformance suite (suite.rs) run against every session store backend (habit 10).

mod suite;

use std::sync::Arc;

use tokengate::session::memory::MemoryStore;

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_meets_the_contract() {
    suite::single(Arc::new(MemoryStore::default())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_reports_no_changes() {
    use tokengate::session::SessionStore;
    assert!(MemoryStore::default().changes().is_none());
}
