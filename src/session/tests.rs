//! The store contract, run against every backend (habit 10), and the behaviour of
//! `Sessions` above it.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryStore;
use super::*;

fn key(n: u8) -> StoreKey {
    StoreKey([n; 32])
}

fn idx(sub: &str, sid: Option<&str>) -> Indexes {
    Indexes {
        sub: IndexKey::sub(sub),
        sid: sid.map(IndexKey::sid),
    }
}

/// The conformance suite: every backend must pass it unchanged.
pub async fn conformance(store: Arc<dyn SessionStore>) {
    let later = unix_now() + 3600;
    let k = key(1);

    // === create, read
    assert!(store.get(&k).await.expect("get").is_none());
    let v1 = store
        .put(
            &k,
            b"one".to_vec(),
            later,
            &idx("alice", Some("s1")),
            Expect::Absent,
        )
        .await
        .expect("put");
    let Written::Ok(v1) = v1 else {
        panic!("create failed")
    };
    let got = store.get(&k).await.expect("get").expect("present");
    assert_eq!((got.value.as_slice(), got.version), (&b"one"[..], v1));

    // === create is exclusive
    let again = store
        .put(
            &k,
            b"x".to_vec(),
            later,
            &idx("alice", None),
            Expect::Absent,
        )
        .await
        .expect("put");
    assert_eq!(again, Written::Conflict);

    // === compare-and-set on the version
    let stale = store
        .put(
            &k,
            b"x".to_vec(),
            later,
            &idx("alice", None),
            Expect::Version(v1 + 7),
        )
        .await
        .expect("put");
    assert_eq!(stale, Written::Conflict);
    let Written::Ok(v2) = store
        .put(
            &k,
            b"two".to_vec(),
            later,
            &idx("alice", Some("s1")),
            Expect::Version(v1),
        )
        .await
        .expect("put")
    else {
        panic!("cas with the current version failed")
    };
    assert!(v2 > v1);
    let stale_again = store
        .put(
            &k,
            b"x".to_vec(),
            later,
            &idx("alice", None),
            Expect::Version(v1),
        )
        .await
        .expect("put");
    assert_eq!(
        stale_again,
        Written::Conflict,
        "an old version must not win"
    );

    // === indexes
    store
        .put(
            &key(2),
            b"b".to_vec(),
            later,
            &idx("alice", Some("s2")),
            Expect::Absent,
        )
        .await
        .expect("put");
    store
        .put(
            &key(3),
            b"c".to_vec(),
            later,
            &idx("bob", None),
            Expect::Absent,
        )
        .await
        .expect("put");
    let mut alice = store.find(&IndexKey::sub("alice")).await.expect("find");
    alice.sort();
    assert_eq!(alice, vec![key(1), key(2)]);
    assert_eq!(
        store.find(&IndexKey::sid("s2")).await.expect("find"),
        vec![key(2)]
    );
    assert!(store
        .find(&IndexKey::sub("carol"))
        .await
        .expect("find")
        .is_empty());

    // === delete removes value and index entries
    assert!(store.delete(&key(2)).await.expect("delete"));
    assert!(!store.delete(&key(2)).await.expect("delete"));
    assert!(store.get(&key(2)).await.expect("get").is_none());
    assert_eq!(
        store.find(&IndexKey::sub("alice")).await.expect("find"),
        vec![key(1)]
    );
    assert!(store
        .find(&IndexKey::sid("s2"))
        .await
        .expect("find")
        .is_empty());

    // === expired values are gone, from reads and from indexes
    let past = unix_now().saturating_sub(1);
    store
        .put(
            &key(4),
            b"old".to_vec(),
            past,
            &idx("dave", None),
            Expect::Absent,
        )
        .await
        .expect("put");
    assert!(store.get(&key(4)).await.expect("get").is_none());
    assert!(store
        .find(&IndexKey::sub("dave"))
        .await
        .expect("find")
        .is_empty());

    store.ping().await.expect("ping");
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    conformance(Arc::new(MemoryStore::default())).await;
}

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
    assert_eq!(live.record.refresh_token.as_deref(), Some("rotated"));
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
