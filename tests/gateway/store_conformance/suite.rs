//! The store contract (habit 10): every backend passes these unchanged. `single` checks
//! one store handle; `shared` checks two handles on one store, as two gateway instances
//! see it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::wait_until;
use tokengate::session::{
    unix_now, Change, Expect, IndexKey, Indexes, SessionStore, StoreKey, Written,
};

/// A key of this test run only: backends on a shared server must not see another run's.
pub fn fresh_key() -> StoreKey {
    StoreKey(tokengate::crypto::random_bytes::<32>())
}

fn idx(sub: &str, sid: Option<&str>) -> Indexes {
    Indexes {
        sub: IndexKey::sub(sub),
        sid: sid.map(IndexKey::sid),
    }
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

/// Values, versions, indexes, expiry, leases and remember-once on one handle. `tag`
/// makes the index names of this run unique.
pub async fn single(store: Arc<dyn SessionStore>) {
    let s = store.as_ref();
    let tag = StoreKey(tokengate::crypto::random_bytes::<32>()).hex();
    let (alice, bob, dave) = (
        format!("alice-{tag}"),
        format!("bob-{tag}"),
        format!("dave-{tag}"),
    );
    let (s1, s2) = (format!("s1-{tag}"), format!("s2-{tag}"));
    let later = unix_now() + 3600;
    let (k1, k2, k3, k4) = (fresh_key(), fresh_key(), fresh_key(), fresh_key());

    // === create, read
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

    // === create is exclusive
    let again = put(s, k1, b"x", later, &idx(&alice, None), Expect::Absent).await;
    assert_eq!(again, Written::Conflict);

    // === compare-and-set on the version
    let stale = put(
        s,
        k1,
        b"x",
        later,
        &idx(&alice, None),
        Expect::Version(v1 + 7),
    )
    .await;
    assert_eq!(stale, Written::Conflict);
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
    let missing = put(
        s,
        fresh_key(),
        b"x",
        later,
        &idx(&alice, None),
        Expect::Version(1),
    )
    .await;
    assert_eq!(missing, Written::Conflict, "no version of an absent key");

    // === indexes
    put(s, k2, b"b", later, &idx(&alice, Some(&s2)), Expect::Absent).await;
    put(s, k3, b"c", later, &idx(&bob, None), Expect::Absent).await;
    let mut found = s.find(&IndexKey::sub(&alice)).await.expect("find");
    found.sort();
    let mut want = vec![k1, k2];
    want.sort();
    assert_eq!(found, want);
    assert_eq!(s.find(&IndexKey::sid(&s2)).await.expect("find"), vec![k2]);
    assert_eq!(s.find(&IndexKey::sub(&bob)).await.expect("find"), vec![k3]);
    let nobody = IndexKey::sub(&format!("carol-{tag}"));
    assert!(s.find(&nobody).await.expect("find").is_empty());

    // === a rewrite moves the value between index entries
    let Written::Ok(_) = put(s, k3, b"c2", later, &idx(&dave, None), Expect::Version(1)).await
    else {
        panic!("rewrite of k3 failed")
    };
    assert!(s.find(&IndexKey::sub(&bob)).await.expect("find").is_empty());
    assert_eq!(s.find(&IndexKey::sub(&dave)).await.expect("find"), vec![k3]);
    assert!(s.delete(&k3).await.expect("delete"));

    // === delete removes value and index entries
    assert!(s.delete(&k2).await.expect("delete"));
    assert!(!s.delete(&k2).await.expect("delete"));
    assert!(s.get(&k2).await.expect("get").is_none());
    assert_eq!(
        s.find(&IndexKey::sub(&alice)).await.expect("find"),
        vec![k1]
    );
    assert!(s.find(&IndexKey::sid(&s2)).await.expect("find").is_empty());

    // === a value written already expired is gone at once, from reads and indexes
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

    // === a value expires at its expiry, and leaves its index entries
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
        later,
        &idx(&dave, None),
        Expect::Absent,
    )
    .await
    else {
        panic!("an expired key can be created again")
    };

    leases(s, s).await;
    remember_once(s, s).await;
    s.ping().await.expect("ping");
}

/// Lease exclusivity, renewal, release by the holder only and expiry, seen through two
/// handles (the same one twice for a single-process store).
pub async fn leases(a: &dyn SessionStore, b: &dyn SessionStore) {
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

    // A lease ends at its deadline unless renewed; renewal pushes the deadline.
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
pub async fn remember_once(a: &dyn SessionStore, b: &dyn SessionStore) {
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

/// Two handles on one store, as two instances: they see each other's writes, conflict on
/// versions, share leases and the once-set, and each hears of the other's changes — not
/// of its own. Both must be subscribed to notices already; `Lost` notices are skipped.
pub async fn shared(a: Arc<dyn SessionStore>, b: Arc<dyn SessionStore>) {
    let mut a_notices = a.changes().expect("a shared store reports changes");
    let mut b_notices = b.changes().expect("a shared store reports changes");
    let later = unix_now() + 3600;
    let tag = fresh_key().hex();
    let sub = format!("erin-{tag}");
    let create = |s: Arc<dyn SessionStore>, k: StoreKey| {
        let sub = sub.clone();
        async move {
            let w = put(s.as_ref(), k, b"v", later, &idx(&sub, None), Expect::Absent).await;
            assert!(matches!(w, Written::Ok(_)), "create failed");
        }
    };

    // === each hears the other, never itself: notices of one channel arrive in the order
    // they were sent, so a notice of one's own write would come first.
    let (x, y, z) = (fresh_key(), fresh_key(), fresh_key());
    create(a.clone(), x).await;
    create(b.clone(), y).await;
    next_notice(&mut a_notices, y, "a hears b's create, not its own").await;
    next_notice(&mut b_notices, x, "b hears a's create").await;
    create(a.clone(), z).await;
    next_notice(&mut b_notices, z, "b hears a's next create, not its own").await;

    // === writes, versions and deletes cross over
    let k = fresh_key();
    let Written::Ok(v1) = put(
        a.as_ref(),
        k,
        b"from-a",
        later,
        &idx(&sub, None),
        Expect::Absent,
    )
    .await
    else {
        panic!("create on a failed")
    };
    let seen = b.get(&k).await.expect("get").expect("b sees a's write");
    assert_eq!(seen.value, b"from-a");
    next_notice(&mut b_notices, k, "b hears of a's create").await;
    let Written::Ok(v2) = put(
        b.as_ref(),
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
    let late = put(
        a.as_ref(),
        k,
        b"stale",
        later,
        &idx(&sub, None),
        Expect::Version(v1),
    )
    .await;
    assert_eq!(
        late,
        Written::Conflict,
        "a's stale version loses to b's write"
    );
    next_notice(&mut a_notices, k, "a hears of b's rewrite").await;
    let mut found = a.find(&IndexKey::sub(&sub)).await.expect("find");
    found.sort();
    let mut want = vec![x, y, z, k];
    want.sort();
    assert_eq!(found, want);
    assert!(a.delete(&k).await.expect("delete"));
    next_notice(&mut b_notices, k, "b hears of a's delete").await;
    assert!(b.get(&k).await.expect("get").is_none());

    leases(a.as_ref(), b.as_ref()).await;
    remember_once(a.as_ref(), b.as_ref()).await;
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
