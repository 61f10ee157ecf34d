//! The store contract (habit 10): every backend passes these unchanged. One function per
//! behaviour; `mod.rs` makes each a test per backend. The functions of one handle take
//! `s`; those of two take `a` and `b` (the same handle twice for a single-process store,
//! two instances' handles for a shared one). Every key and index name is fresh, so the
//! tests of one backend may share a server.

use std::time::{Duration, Instant};

use crate::support::wait_until;
use tokengate::session::{
    unix_now, Change, Expect, IndexKey, Indexes, SessionStore, StoreKey, Written,
};

/// A key of this test only: backends on a shared server must not see another test's.
pub fn fresh_key() -> StoreKey {
    StoreKey(tokengate::crypto::random_bytes::<32>())
}

/// `name` made unique to this test, for index names.
fn unique(name: &str) -> String {
    format!("{name}-{}", fresh_key().hex())
}

fn idx(sub: &str, sid: Option<&str>) -> Indexes {
    Indexes {
        sub: IndexKey::sub(sub),
        sid: sid.map(IndexKey::sid),
    }
}

fn later() -> u64 {
    unix_now() + 3600
}

async fn put(
    store: &dyn SessionStore,
    k: StoreKey,
    value: &[u8],
    expires_at: u64,
    indexes: &Indexes,
    expect: Expect,
) -> Written {
    store
        .put(&k, value.to_vec(), expires_at, indexes, expect)
        .await
        .expect("put")
}

/// Creates `k` (`Expect::Absent`) and returns its version; panics if that is refused.
async fn create(s: &dyn SessionStore, k: StoreKey, value: &[u8], indexes: &Indexes) -> u64 {
    let Written::Ok(v) = put(s, k, value, later(), indexes, Expect::Absent).await else {
        panic!("create failed")
    };
    v
}

// === One handle =========================================================================

/// An absent key reads as nothing; once created, it reads back with its value, version
/// and expiry.
pub async fn put_then_get_returns_the_value_version_and_expiry(s: &dyn SessionStore) {
    let (alice, s1) = (unique("alice"), unique("s1"));
    let later = later();
    let k1 = fresh_key();
    assert!(s.get(&k1).await.expect("get").is_none());
    let Written::Ok(v1) = put(
        s,
        k1,
        b"one",
        later,
        &idx(&alice, Some(&s1)),
        Expect::Absent,
    )
    .await
    else {
        panic!("create failed")
    };
    let got = s.get(&k1).await.expect("get").expect("present");
    assert_eq!((got.value.as_slice(), got.version), (&b"one"[..], v1));
    assert_eq!(got.expires_at, later);
}

/// Create is exclusive: `Expect::Absent` on a key that exists is a conflict.
pub async fn expect_absent_refuses_an_existing_key(s: &dyn SessionStore) {
    let (alice, s1) = (unique("alice"), unique("s1"));
    let k1 = fresh_key();
    create(s, k1, b"one", &idx(&alice, Some(&s1))).await;
    let again = put(s, k1, b"x", later(), &idx(&alice, None), Expect::Absent).await;
    assert_eq!(again, Written::Conflict);
}

/// Compare-and-set: a version that is not the current one is a conflict.
pub async fn version_mismatch_is_refused(s: &dyn SessionStore) {
    let alice = unique("alice");
    let k1 = fresh_key();
    let v1 = create(s, k1, b"one", &idx(&alice, Some(&unique("s1")))).await;
    let stale = put(
        s,
        k1,
        b"x",
        later(),
        &idx(&alice, None),
        Expect::Version(v1 + 7),
    )
    .await;
    assert_eq!(stale, Written::Conflict);
}

/// The current version wins and gives a greater one; the old version then loses.
pub async fn the_current_version_wins_and_the_old_one_then_loses(s: &dyn SessionStore) {
    let (alice, s1) = (unique("alice"), unique("s1"));
    let later = later();
    let k1 = fresh_key();
    let v1 = create(s, k1, b"one", &idx(&alice, Some(&s1))).await;
    let Written::Ok(v2) = put(
        s,
        k1,
        b"two",
        later,
        &idx(&alice, Some(&s1)),
        Expect::Version(v1),
    )
    .await
    else {
        panic!("cas with the current version failed")
    };
    assert!(v2 > v1);
    let stale_again = put(s, k1, b"x", later, &idx(&alice, None), Expect::Version(v1)).await;
    assert_eq!(
        stale_again,
        Written::Conflict,
        "an old version must not win"
    );
}

/// `Expect::Version` of a key that does not exist is a conflict.
pub async fn expect_version_of_an_absent_key_is_refused(s: &dyn SessionStore) {
    let missing = put(
        s,
        fresh_key(),
        b"x",
        later(),
        &idx(&unique("alice"), None),
        Expect::Version(1),
    )
    .await;
    assert_eq!(missing, Written::Conflict, "no version of an absent key");
}

/// `find` by subject and by session id gives exactly the keys written under them.
pub async fn indexes_find_by_sub_and_sid(s: &dyn SessionStore) {
    let (alice, bob) = (unique("alice"), unique("bob"));
    let (s1, s2) = (unique("s1"), unique("s2"));
    let later = later();
    let (k1, k2, k3) = (fresh_key(), fresh_key(), fresh_key());
    create(s, k1, b"one", &idx(&alice, Some(&s1))).await;
    put(s, k2, b"b", later, &idx(&alice, Some(&s2)), Expect::Absent).await;
    put(s, k3, b"c", later, &idx(&bob, None), Expect::Absent).await;
    let mut found = s.find(&IndexKey::sub(&alice)).await.expect("find");
    found.sort();
    let mut want = vec![k1, k2];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(s.find(&IndexKey::sid(&s2)).await.expect("find"), vec![k2]);
    assert_eq!(s.find(&IndexKey::sub(&bob)).await.expect("find"), vec![k3]);
    let nobody = IndexKey::sub(&unique("carol"));
    assert!(s.find(&nobody).await.expect("find").is_empty());
}

/// A rewrite under other indexes moves the key from the old index entries to the new.
pub async fn a_rewrite_moves_the_key_between_index_entries(s: &dyn SessionStore) {
    let (bob, dave) = (unique("bob"), unique("dave"));
    let later = later();
    let k3 = fresh_key();
    put(s, k3, b"c", later, &idx(&bob, None), Expect::Absent).await;
    let Written::Ok(_) = put(s, k3, b"c2", later, &idx(&dave, None), Expect::Version(1)).await
    else {
        panic!("rewrite of k3 failed")
    };
    assert!(s.find(&IndexKey::sub(&bob)).await.expect("find").is_empty());
    assert_eq!(s.find(&IndexKey::sub(&dave)).await.expect("find"), vec![k3]);
    assert!(s.delete(&k3).await.expect("delete"));
}

/// Delete removes the value and its index entries, once; the neighbours stay.
pub async fn delete_removes_the_value_and_its_index_entries(s: &dyn SessionStore) {
    let alice = unique("alice");
    let (s1, s2) = (unique("s1"), unique("s2"));
    let (k1, k2) = (fresh_key(), fresh_key());
    create(s, k1, b"one", &idx(&alice, Some(&s1))).await;
    put(
        s,
        k2,
        b"b",
        later(),
        &idx(&alice, Some(&s2)),
        Expect::Absent,
    )
    .await;
    assert!(s.delete(&k2).await.expect("delete"));
    assert!(!s.delete(&k2).await.expect("delete"));
    assert!(s.get(&k2).await.expect("get").is_none());
    assert_eq!(
        s.find(&IndexKey::sub(&alice)).await.expect("find"),
        vec![k1]
    );
    assert!(s.find(&IndexKey::sid(&s2)).await.expect("find").is_empty());
}

/// A value written already expired is gone at once, from reads and indexes.
pub async fn a_value_written_already_expired_is_gone_at_once(s: &dyn SessionStore) {
    let dave = unique("dave");
    let k4 = fresh_key();
    let past = unix_now().saturating_sub(1);
    put(s, k4, b"old", past, &idx(&dave, None), Expect::Absent).await;
    assert!(s.get(&k4).await.expect("get").is_none());
    assert!(s
        .find(&IndexKey::sub(&dave))
        .await
        .expect("find")
        .is_empty());
    assert!(
        !s.delete(&k4).await.expect("delete"),
        "nothing live removed"
    );
}

/// A value expires at its expiry (not before), leaves its index entries, and its key can
/// be created again.
pub async fn a_value_expires_at_its_expiry_and_leaves_its_index_entries(s: &dyn SessionStore) {
    let dave = unique("dave");
    let soon_key = fresh_key();
    let soon = unix_now() + 1;
    let Written::Ok(_) = put(
        s,
        soon_key,
        b"brief",
        soon,
        &idx(&dave, None),
        Expect::Absent,
    )
    .await
    else {
        panic!("create failed")
    };
    wait_until(Duration::from_secs(5), "the value to expire", || async {
        s.get(&soon_key).await.expect("get").is_none()
    })
    .await;
    assert!(unix_now() >= soon, "expired early");
    assert!(s
        .find(&IndexKey::sub(&dave))
        .await
        .expect("find")
        .is_empty());
    let Written::Ok(_) = put(
        s,
        soon_key,
        b"again",
        later(),
        &idx(&dave, None),
        Expect::Absent,
    )
    .await
    else {
        panic!("an expired key can be created again")
    };
}

pub async fn ping_answers(s: &dyn SessionStore) {
    s.ping().await.expect("ping");
}

// === Two handles (or one twice) =========================================================

/// A lease is exclusive; its holder re-acquires and renews it; only the holder renews or
/// releases it, once; after release another takes it, and the first has lost it.
pub async fn a_lease_is_exclusive_and_only_its_holder_renews_or_releases_it(
    a: &dyn SessionStore,
    b: &dyn SessionStore,
) {
    let k = fresh_key();
    let long = Duration::from_secs(30);
    assert!(a.lease_acquire(&k, "A", long).await.expect("acquire"));
    assert!(
        !b.lease_acquire(&k, "B", long).await.expect("acquire"),
        "exclusive"
    );
    assert!(a
        .lease_acquire(&k, "A", long)
        .await
        .expect("re-acquire by holder"));
    assert!(
        !b.lease_renew(&k, "B", long).await.expect("renew"),
        "only the holder renews"
    );
    assert!(a.lease_renew(&k, "A", long).await.expect("renew"));
    assert!(
        !b.lease_release(&k, "B").await.expect("release"),
        "only the holder releases"
    );
    assert!(
        !b.lease_acquire(&k, "B", long).await.expect("acquire"),
        "still held by A"
    );
    assert!(a.lease_release(&k, "A").await.expect("release"));
    assert!(
        !a.lease_release(&k, "A").await.expect("release"),
        "released once"
    );
    assert!(b
        .lease_acquire(&k, "B", long)
        .await
        .expect("acquire after release"));
    assert!(
        !a.lease_renew(&k, "A", long).await.expect("renew"),
        "A lost it"
    );
    assert!(b.lease_release(&k, "B").await.expect("release"));
}

/// A lease ends at its deadline unless renewed; renewal pushes the deadline.
pub async fn a_lease_ends_at_its_deadline_unless_renewed(
    a: &dyn SessionStore,
    b: &dyn SessionStore,
) {
    let long = Duration::from_secs(30);
    let k = fresh_key();
    let short = Duration::from_millis(400);
    assert!(a.lease_acquire(&k, "A", short).await.expect("acquire"));
    let taken = Instant::now();
    assert!(a
        .lease_renew(&k, "A", Duration::from_secs(2))
        .await
        .expect("renew"));
    wait_until(
        Duration::from_secs(5),
        "the renewed lease to expire",
        || async { b.lease_acquire(&k, "B", long).await.expect("acquire") },
    )
    .await;
    assert!(
        taken.elapsed() >= Duration::from_millis(1500),
        "renewal did not extend the lease: taken over after {:?}",
        taken.elapsed()
    );
    assert!(
        !a.lease_renew(&k, "A", long).await.expect("renew"),
        "expired lease is lost"
    );
    assert!(b.lease_release(&k, "B").await.expect("release"));
}

/// True once per key within the time to live, for every handle on the store.
pub async fn remember_once_is_true_once_per_key_within_its_ttl(
    a: &dyn SessionStore,
    b: &dyn SessionStore,
) {
    let k: [u8; 32] = tokengate::crypto::random_bytes::<32>();
    let other: [u8; 32] = tokengate::crypto::random_bytes::<32>();
    let ttl = Duration::from_millis(500);
    assert!(
        a.remember_once(&k, ttl).await.expect("once"),
        "first sighting"
    );
    assert!(!a.remember_once(&k, ttl).await.expect("once"), "seen");
    assert!(
        !b.remember_once(&k, ttl).await.expect("once"),
        "seen by the other"
    );
    assert!(b
        .remember_once(&other, Duration::from_secs(30))
        .await
        .expect("once"));
    wait_until(
        Duration::from_secs(5),
        "the remembered key to be forgotten",
        || async {
            a.remember_once(&k, Duration::from_secs(30))
                .await
                .expect("once")
        },
    )
    .await;
    assert!(
        !b.remember_once(&k, ttl).await.expect("once"),
        "remembered again"
    );
    assert!(
        !a.remember_once(&other, ttl).await.expect("once"),
        "the other key lives on"
    );
}

// === Two handles on one store, as two instances =========================================
// Both must be subscribed to notices already, and nothing else may write to their store
// meanwhile (a notice of another test's write would be out of place); `Lost` notices are
// skipped.

/// Each hears of the other's writes, never of its own: notices of one channel arrive in
/// the order they were sent, so a notice of one's own write would come first. Each finds
/// the index entries of both.
pub async fn each_handle_hears_the_others_changes_not_its_own(
    a: &dyn SessionStore,
    b: &dyn SessionStore,
) {
    let mut a_notices = a.changes().expect("a shared store reports changes");
    let mut b_notices = b.changes().expect("a shared store reports changes");
    let sub = unique("erin");
    let ix = idx(&sub, None);
    let (x, y, z) = (fresh_key(), fresh_key(), fresh_key());
    create(a, x, b"v", &ix).await;
    create(b, y, b"v", &ix).await;
    next_notice(&mut a_notices, y, "a hears b's create, not its own").await;
    next_notice(&mut b_notices, x, "b hears a's create").await;
    create(a, z, b"v", &ix).await;
    next_notice(&mut b_notices, z, "b hears a's next create, not its own").await;
    let mut found = a.find(&IndexKey::sub(&sub)).await.expect("find");
    found.sort();
    let mut want = vec![x, y, z];
    want.sort();
    assert_eq!(found, want);
}

/// Writes, versions and deletes of one are seen by the other, with a notice each.
pub async fn writes_versions_and_deletes_cross_between_handles(
    a: &dyn SessionStore,
    b: &dyn SessionStore,
) {
    let mut a_notices = a.changes().expect("a shared store reports changes");
    let mut b_notices = b.changes().expect("a shared store reports changes");
    let later = later();
    let sub = unique("erin");
    let k = fresh_key();
    let Written::Ok(v1) = put(a, k, b"from-a", later, &idx(&sub, None), Expect::Absent).await
    else {
        panic!("create on a failed")
    };
    let seen = b.get(&k).await.expect("get").expect("b sees a's write");
    assert_eq!(seen.value, b"from-a");
    next_notice(&mut b_notices, k, "b hears of a's create").await;
    let Written::Ok(v2) = put(
        b,
        k,
        b"from-b",
        later,
        &idx(&sub, None),
        Expect::Version(v1),
    )
    .await
    else {
        panic!("b's write failed")
    };
    assert!(v2 > v1);
    let late = put(a, k, b"stale", later, &idx(&sub, None), Expect::Version(v1)).await;
    assert_eq!(
        late,
        Written::Conflict,
        "a's stale version loses to b's write"
    );
    next_notice(&mut a_notices, k, "a hears of b's rewrite").await;
    assert_eq!(a.find(&IndexKey::sub(&sub)).await.expect("find"), vec![k]);
    assert!(a.delete(&k).await.expect("delete"));
    next_notice(&mut b_notices, k, "b hears of a's delete").await;
    assert!(b.get(&k).await.expect("get").is_none());
}

/// Waits for the next notice, which must be about `k`.
async fn next_notice(rx: &mut tokio::sync::broadcast::Receiver<Change>, k: StoreKey, what: &str) {
    let deadline = Duration::from_secs(5);
    loop {
        match tokio::time::timeout(deadline, rx.recv()).await {
            Ok(Ok(Change::Lost)) => continue,
            Ok(Ok(Change::Key(got))) => {
                assert_eq!(got, k, "{what}: notice for another key");
                return;
            }
            other => panic!("{what}: {other:?} within {deadline:?}"),
        }
    }
}
