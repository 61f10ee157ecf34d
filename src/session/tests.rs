//! The behaviour of `Sessions` above a store. The store contract itself is one suite run
//! against every backend: tests/store_conformance.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryStore;
use super::*;

fn record(sub: &str) -> Session {
    let now = unix_now();
    Session {
        sub: sub.into(),
        sid: Some("provider-sid".into()),
        claims: Default::default(),
        id_token: "id.token.value".into(),
        access_token: "access-token-value".into(),
        access_expires_at: Some(now + 300),
        refresh_at: Some(now + 240),
        refresh_token: Some("refresh-token-value".into()),
        created_at: now,
        last_seen: now,
        ..Session::default()
    }
}

struct Fixture {
    store: Arc<MemoryStore>,
    sessions: Sessions,
}

fn fixture(keys: &[[u8; 32]]) -> Fixture {
    let store = Arc::new(MemoryStore::default());
    let ring = Arc::new(crate::crypto::KeyRing::new(keys).expect("keys"));
    let sessions = Sessions::new(
        store.clone(),
        ring,
        Duration::from_secs(3600),
        Duration::from_secs(86400),
        1000,
    );
    Fixture { store, sessions }
}

#[tokio::test]
async fn created_session_is_found_by_its_cookie_value() {
    let f = fixture(&[[1; 32]]);
    let (id, live) = f.sessions.create(record("alice")).await.expect("create");
    let found = f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .expect("session");
    assert_eq!(found.record.sub, "alice");
    assert_eq!(found.key, live.key);
    assert_eq!(found.bearer, "Bearer access-token-value");
}

#[tokio::test]
async fn store_holds_only_sealed_bytes_under_the_hash_of_the_id() {
    let f = fixture(&[[1; 32]]);
    let (id, _) = f.sessions.create(record("alice")).await.expect("create");
    assert!(f
        .store
        .get(&StoreKey(*b"not-the-key-at-all-32-bytes-long"))
        .await
        .expect("get")
        .is_none());
    let stored = f
        .store
        .get(&id.store_key())
        .await
        .expect("get")
        .expect("stored");
    let raw = String::from_utf8_lossy(&stored.value);
    for secret in [
        "alice",
        "access-token-value",
        "refresh-token-value",
        "id.token.value",
        id.secret(),
    ] {
        assert!(!raw.contains(secret), "{secret} visible at rest");
    }
}

#[tokio::test]
async fn unknown_or_malformed_cookies_find_nothing() {
    let f = fixture(&[[1; 32]]);
    let unknown = SessionId::generate();
    for v in ["", "abc", unknown.secret()] {
        assert!(f
            .sessions
            .find_by_cookie(v)
            .await
            .expect("lookup")
            .is_none());
    }
}

#[tokio::test]
async fn record_sealed_under_a_removed_key_is_no_session() {
    let old = fixture(&[[1; 32]]);
    let (id, _) = old.sessions.create(record("alice")).await.expect("create");
    // Same store, a ring without the old key.
    let ring = Arc::new(crate::crypto::KeyRing::new(&[[2; 32]]).expect("keys"));
    let rotated = Sessions::new(
        old.store.clone(),
        ring,
        Duration::from_secs(3600),
        Duration::from_secs(86400),
        10,
    );
    assert!(rotated
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .is_none());
}

#[tokio::test]
async fn update_applies_on_top_of_a_concurrent_write() {
    let f = fixture(&[[1; 32]]);
    let (id, first) = f.sessions.create(record("alice")).await.expect("create");
    // Another writer changes the record behind the cache's back…
    f.sessions
        .update(first.key, |s| s.refresh_token = Some("rotated".into()))
        .await
        .expect("update")
        .expect("live");
    // …and a second update still sees and keeps that change.
    let live = f
        .sessions
        .update(id.store_key(), |s| s.access_token = "new-access".into())
        .await
        .expect("update")
        .expect("live");
    assert_eq!(
        live.record.refresh_token.as_ref().map(Token::secret),
        Some("rotated")
    );
    assert_eq!(live.bearer, "Bearer new-access");
}

#[tokio::test]
async fn ended_session_is_gone_at_once() {
    let f = fixture(&[[1; 32]]);
    let (id, live) = f.sessions.create(record("alice")).await.expect("create");
    assert!(f
        .sessions
        .end(live.key, EndReason::Logout)
        .await
        .expect("end"));
    assert!(f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .is_none());
}

#[tokio::test]
async fn session_past_its_absolute_lifetime_is_no_session() {
    let f = fixture(&[[1; 32]]);
    let mut r = record("alice");
    r.created_at = unix_now() - 86400 - 1;
    let (id, _) = f.sessions.create(r).await.expect("create");
    assert!(f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .is_none());
}

#[tokio::test]
async fn session_idle_too_long_is_no_session() {
    let f = fixture(&[[1; 32]]);
    let mut r = record("alice");
    r.last_seen = unix_now() - 3600 - 1;
    let (id, _) = f.sessions.create(r).await.expect("create");
    assert!(f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .is_none());
}

#[tokio::test]
async fn use_slides_last_seen_forward() {
    let f = fixture(&[[1; 32]]);
    let mut r = record("alice");
    r.last_seen = unix_now() - 600;
    let (id, _) = f.sessions.create(r).await.expect("create");
    let live = f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .expect("live");
    assert!(
        live.record.last_seen + 5 >= unix_now(),
        "last_seen was not moved forward"
    );
}

#[tokio::test]
async fn a_last_seen_at_the_end_of_time_is_read_without_overflow() {
    // Fuzzing regression (session_record): `last_seen + touch_after` overflowed.
    let f = fixture(&[[1; 32]]);
    let mut r = record("alice");
    r.last_seen = u64::MAX - 10;
    let (id, _) = f.sessions.create(r).await.expect("create");
    let live = f
        .sessions
        .find_by_cookie(id.secret())
        .await
        .expect("lookup")
        .expect("live until its absolute end");
    assert_eq!(live.record.last_seen, u64::MAX - 10, "not slid backwards");
}

#[tokio::test]
async fn the_cache_holds_each_access_token_once_and_writes_keep_it_whole() {
    let f = fixture(&[[1; 32]]);
    let mut r = record("alice");
    r.resource_tokens.insert(
        "https://other".into(),
        AccessToken {
            token: "other-token".into(),
            refresh_at: Some(unix_now() + 100),
            ..Default::default()
        },
    );
    let (_, live) = f.sessions.create(r).await.expect("create");
    // The cached copy keeps the tokens only in its header values.
    assert!(live.record.access_token.is_empty());
    assert_eq!(live.bearer, "Bearer access-token-value");
    assert_eq!(
        live.fresh_bearer(Some("https://other"), unix_now())
            .expect("resource token"),
        "Bearer other-token"
    );
    // A write starts from the store's whole record, so the tokens stay in the store.
    f.sessions
        .update(live.key, |s| s.last_seen += 1)
        .await
        .expect("update")
        .expect("live");
    let stored = f.store.get(&live.key).await.expect("get").expect("stored");
    let ring = crate::crypto::KeyRing::new(&[[1; 32]]).expect("ring");
    let whole: Session =
        serde_json::from_slice(&ring.open(&stored.value, &live.key.0).expect("opens"))
            .expect("json");
    assert_eq!(whole.access_token.secret(), "access-token-value");
    assert_eq!(
        whole.resource_tokens["https://other"].token.secret(),
        "other-token"
    );
}
