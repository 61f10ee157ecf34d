//! One conformance suite (suite.rs) run against every session store backend (habit 10):
//! [`conformance!`] makes each behaviour of the suite a test of its own per backend, in a
//! module named after the backend, e.g.
//! `store_conformance::redis_cluster::version_mismatch_is_refused`. Every test gets a
//! fresh store (the Redis ones fresh handles on the process's shared server or cluster,
//! with keys of their own) so they run in parallel, and a failure names the behaviour.

mod suite;

use std::sync::Arc;

use tokengate::session::memory::MemoryStore;
use tokengate::session::SessionStore;

/// `conformance!(backend, store: FRESH [, two_handles: PAIR] [, also: { ITEMS }])` makes
/// `mod backend` with one `#[tokio::test]` per behaviour of [`suite`]:
///
/// - `FRESH`: an expression of a future of `(keep, store)`: a fresh
///   `Arc<dyn SessionStore>` and whatever must live as long as it (a directory, a turn on a server);
///   evaluated anew by every test. The lease and remember-once behaviours run with this
///   one handle as both sides.
/// - `PAIR`, for a store shared by instances: a function of `alone: bool` giving a
///   future of `(keep, a, b)`, two handles on one store, which nothing else writes to
///   while `keep` lives if `alone` (the notice behaviours count on that). Every
///   two-handle behaviour runs in `mod backend::two_handles`.
/// - `ITEMS`: the backend's own tests, put in the same module.
macro_rules! conformance {
    (
        $backend:ident,
        store: $store:expr
        $(, two_handles: $pair:expr)?
        $(, also: { $($also:item)* })?
        $(,)?
    ) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            conformance!(@one $store;
                put_then_get_returns_the_value_version_and_expiry,
                expect_absent_refuses_an_existing_key,
                version_mismatch_is_refused,
                the_current_version_wins_and_the_old_one_then_loses,
                expect_version_of_an_absent_key_is_refused,
                indexes_find_by_sub_and_sid,
                a_rewrite_moves_the_key_between_index_entries,
                delete_removes_the_value_and_its_index_entries,
                a_value_written_already_expired_is_gone_at_once,
                a_value_expires_at_its_expiry_and_leaves_its_index_entries,
                ping_answers,
            );
            conformance!(@one_as_both $store;
                a_lease_is_exclusive_and_only_its_holder_renews_or_releases_it,
                a_lease_ends_at_its_deadline_unless_renewed,
                remember_once_is_true_once_per_key_within_its_ttl,
            );

            $(
                /// The same through two handles on one store, as two gateway instances.
                mod two_handles {
                    #[allow(unused_imports)]
                    use super::*;

                    conformance!(@two $pair, false;
                        a_lease_is_exclusive_and_only_its_holder_renews_or_releases_it,
                        a_lease_ends_at_its_deadline_unless_renewed,
                        remember_once_is_true_once_per_key_within_its_ttl,
                    );
                    conformance!(@two $pair, true;
                        each_handle_hears_the_others_changes_not_its_own,
                        writes_versions_and_deletes_cross_between_handles,
                    );
                }
            )?

            $($($also)*)?
        }
    };
    (@one $store:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $behaviour() {
            let (_keep, store) = $store.await;
            crate::store_conformance::suite::$behaviour(store.as_ref()).await;
        }
    )*};
    (@one_as_both $store:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $behaviour() {
            let (_keep, store) = $store.await;
            crate::store_conformance::suite::$behaviour(store.as_ref(), store.as_ref()).await;
        }
    )*};
    (@two $pair:expr, $alone:literal; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $behaviour() {
            let (_keep, a, b) = ($pair)($alone).await;
            crate::store_conformance::suite::$behaviour(a.as_ref(), b.as_ref()).await;
        }
    )*};
}

conformance!(
    memory,
    store: async { ((), Arc::new(MemoryStore::default()) as Arc<dyn SessionStore>) },
);

#[tokio::test(flavor = "multi_thread")]
async fn memory_store_reports_no_changes() {
    assert!(MemoryStore::default().changes().is_none());
}

/// A fresh embedded store in a directory of its own.
async fn embedded_store() -> (tempfile::TempDir, Arc<dyn SessionStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tokengate::session::embedded::EmbeddedStore::open(dir.path()).expect("open");
    (dir, Arc::new(store))
}

conformance!(
    embedded,
    store: embedded_store(),
    also: {
        use tokengate::session::embedded::{EmbeddedStore, OpenError};
        use tokengate::session::{unix_now, Expect, IndexKey, Indexes, SessionStore, Written};

        use super::suite;

        /// A store opens in a directory that does not exist yet (here: below another store).
        #[tokio::test(flavor = "multi_thread")]
        async fn embedded_store_opens_in_a_directory_it_creates() {
            let dir = tempfile::tempdir().expect("tempdir");
            let _store = EmbeddedStore::open(dir.path()).expect("open");
            assert!(EmbeddedStore::open(&dir.path().join("nested/deeper")).is_ok());
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn embedded_store_keeps_values_across_reopen_and_sweeps_expired_ones() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (kept, brief) = (suite::fresh_key(), suite::fresh_key());
            let ix = Indexes {
                sub: IndexKey::sub("frank"),
                sid: Some(IndexKey::sid("f1")),
            };
            {
                let store = EmbeddedStore::open(dir.path()).expect("open");
                let w = store
                    .put(
                        &kept,
                        b"kept".to_vec(),
                        unix_now() + 3600,
                        &ix,
                        Expect::Absent,
                    )
                    .await
                    .expect("put");
                assert_eq!(w, Written::Ok(1));
                let w = store
                    .put(
                        &brief,
                        b"gone".to_vec(),
                        unix_now().saturating_sub(1),
                        &ix,
                        Expect::Absent,
                    )
                    .await
                    .expect("put");
                assert_eq!(w, Written::Ok(1));
                assert!(store
                    .remember_once(&[7; 32], std::time::Duration::from_secs(60))
                    .await
                    .expect("once"));
            }
            let store = EmbeddedStore::open(dir.path()).expect("reopen");
            let got = store
                .get(&kept)
                .await
                .expect("get")
                .expect("kept across reopen");
            assert_eq!((got.value.as_slice(), got.version), (&b"kept"[..], 1));
            assert_eq!(
                store.find(&IndexKey::sid("f1")).await.expect("find"),
                vec![kept]
            );
            assert!(
                !store
                    .remember_once(&[7; 32], std::time::Duration::from_secs(60))
                    .await
                    .expect("once"),
                "remember-once survives a restart"
            );
            assert_eq!(
                store.sweep().await.expect("sweep"),
                1,
                "the expired record is swept"
            );
            assert_eq!(store.sweep().await.expect("sweep"), 0, "and only once");
            assert!(
                store.get(&kept).await.expect("get").is_some(),
                "the live one stays"
            );
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn embedded_store_in_use_or_unreadable_is_an_error_naming_session_path() {
            let dir = tempfile::tempdir().expect("tempdir");
            let _first = EmbeddedStore::open(dir.path()).expect("open");
            let Err(e) = EmbeddedStore::open(dir.path()) else {
                panic!("a second open of the same store must fail")
            };
            assert!(matches!(e, OpenError::InUse(_)), "{e}");
            assert!(e.to_string().starts_with("session.path: "), "{e}");

            let garbage = tempfile::tempdir().expect("tempdir");
            std::fs::write(
                garbage.path().join("sessions.redb"),
                b"not a database at all, just bytes",
            )
            .expect("write");
            let Err(e) = EmbeddedStore::open(garbage.path()) else {
                panic!("a file that is no store must not open")
            };
            assert!(matches!(e, OpenError::Unreadable(..)), "{e}");
            assert!(e.to_string().starts_with("session.path: "), "{e}");
        }
    }
);

mod redis {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokengate::session::redis::{RedisStore, Target};
    use tokengate::session::{
        unix_now, Change, Expect, IndexKey, Indexes, SessionStore, StoreError,
    };
    use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

    use super::suite;
    use crate::support::redis::{RedisCluster, RedisServer};
    use crate::support::wait_until;

    /// A store handle whose change notices are subscribed.
    async fn open(target: Target) -> Arc<dyn SessionStore> {
        let store = RedisStore::open(&target).expect("open");
        assert!(
            store.wait_subscribed(Duration::from_secs(10)).await,
            "change notices subscribed"
        );
        Arc::new(store)
    }

    /// The shared server and cluster of the process (`RedisServer::shared`) serve many
    /// conformance tests at once, or one alone: one that counts on hearing only its own
    /// change notices.
    static STANDALONE_TURNS: RwLock<()> = RwLock::const_new(());
    static CLUSTER_TURNS: RwLock<()> = RwLock::const_new(());

    /// A test's turn on a shared server, held as long as its handles.
    pub(super) enum Turn {
        Among(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
        Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
    }

    impl Turn {
        async fn take(turns: &'static RwLock<()>, alone: bool) -> Turn {
            if alone {
                Turn::Alone(turns.write().await)
            } else {
                Turn::Among(turns.read().await)
            }
        }
    }

    /// A fresh handle on the process's shared standalone server.
    pub(super) async fn standalone() -> (Turn, Arc<dyn SessionStore>) {
        let (turn, store, _) = standalone_pair(false).await;
        (turn, store)
    }

    /// Two handles on the process's shared standalone server; nothing else uses it
    /// meanwhile if `alone`.
    pub(super) async fn standalone_pair(
        alone: bool,
    ) -> (Turn, Arc<dyn SessionStore>, Arc<dyn SessionStore>) {
        let turn = Turn::take(&STANDALONE_TURNS, alone).await;
        let server = tokio::task::block_in_place(RedisServer::shared);
        let target = Target::Standalone(server.url());
        let (a, b) = (open(target.clone()).await, open(target).await);
        (turn, a, b)
    }

    /// A fresh handle on the process's shared cluster.
    pub(super) async fn cluster() -> (Turn, Arc<dyn SessionStore>) {
        let (turn, store, _) = cluster_pair(false).await;
        (turn, store)
    }

    /// Two handles on the process's shared cluster, as [`standalone_pair`]; the second
    /// knows only the last node, and learns the others from it.
    pub(super) async fn cluster_pair(
        alone: bool,
    ) -> (Turn, Arc<dyn SessionStore>, Arc<dyn SessionStore>) {
        let turn = Turn::take(&CLUSTER_TURNS, alone).await;
        let urls = tokio::task::block_in_place(RedisCluster::shared).urls();
        let last = urls.last().cloned().expect("three nodes");
        let a = open(Target::Cluster(urls)).await;
        let b = open(Target::Cluster(vec![last])).await;
        (turn, a, b)
    }

    /// Index sets do not keep members of expired sessions, nor outlive them.
    #[tokio::test(flavor = "multi_thread")]
    async fn redis_index_sets_drop_expired_members_and_expire_themselves() {
        let server = tokio::task::block_in_place(RedisServer::start);
        let store = open(Target::Standalone(server.url())).await;
        let mut raw = redis::Client::open(server.url())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        let sub = IndexKey::sub("grace");
        let IndexKey::Sub(hash) = sub else {
            unreachable!()
        };
        let set = format!("tg:i:s:{}", tokengate::session::StoreKey(hash).hex());
        let ix = Indexes { sub, sid: None };
        let (brief, lasting) = (suite::fresh_key(), suite::fresh_key());
        store
            .put(&brief, b"b".to_vec(), unix_now() + 1, &ix, Expect::Absent)
            .await
            .expect("put");
        let members: u64 = redis::cmd("ZCARD")
            .arg(&set)
            .query_async(&mut raw)
            .await
            .expect("zcard");
        assert_eq!(members, 1);
        let ttl = ttl_of(&mut raw, &set).await;
        assert!(
            (0..=2).contains(&ttl),
            "the set expires with its member: ttl {ttl}"
        );
        wait_until(Duration::from_secs(5), "the session to expire", || async {
            store.get(&brief).await.expect("get").is_none()
        })
        .await;
        // A write under the same index trims the expired member.
        store
            .put(
                &lasting,
                b"l".to_vec(),
                unix_now() + 3600,
                &ix,
                Expect::Absent,
            )
            .await
            .expect("put");
        let left: Vec<String> = redis::cmd("ZRANGE")
            .arg(&set)
            .arg(0)
            .arg(-1)
            .query_async(&mut raw)
            .await
            .expect("zrange");
        assert_eq!(left, vec![lasting.hex()], "only the live member is left");
        let ttl = ttl_of(&mut raw, &set).await;
        assert!(
            ttl > 3000,
            "the set lives as long as its longest member: ttl {ttl}"
        );
        // Values at rest are the bytes given, under the hash-tagged key.
        let stored: Vec<u8> = redis::cmd("HGET")
            .arg(format!("tg:{{{}}}:s", lasting.hex()))
            .arg("x")
            .query_async(&mut raw)
            .await
            .expect("hget");
        assert_eq!(stored, b"l");
    }

    async fn ttl_of(raw: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query_async(raw)
            .await
            .expect("ttl")
    }

    /// Redis down: calls fail fast as `Unavailable`, notices report `Lost`; Redis back:
    /// the same store handle works again, nothing restarted.
    #[tokio::test(flavor = "multi_thread")]
    async fn redis_down_is_unavailable_and_service_resumes_when_it_returns() {
        let mut server = tokio::task::block_in_place(RedisServer::start);
        let store = open(Target::Standalone(server.url())).await;
        let mut notices = store.changes().expect("notices");
        let k = suite::fresh_key();
        let ix = Indexes {
            sub: IndexKey::sub("heidi"),
            sid: None,
        };
        store
            .put(&k, b"v".to_vec(), unix_now() + 3600, &ix, Expect::Absent)
            .await
            .expect("put");
        tokio::task::block_in_place(|| server.stop_saving());

        let started = Instant::now();
        let down = store.get(&k).await;
        assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "failing took {:?}",
            started.elapsed()
        );
        assert!(store.ping().await.is_err());
        wait_until(Duration::from_secs(5), "notices to report the loss", || {
            let got = notices.try_recv();
            async move { matches!(got, Ok(Change::Lost)) }
        })
        .await;

        tokio::task::block_in_place(|| server.restart());
        wait_until(
            Duration::from_secs(10),
            "the store to answer again",
            || async { matches!(store.get(&k).await, Ok(Some(_))) },
        )
        .await;
        store.ping().await.expect("ping after the restart");
    }
}

conformance!(
    redis_standalone,
    store: crate::store_conformance::redis::standalone(),
    two_handles: crate::store_conformance::redis::standalone_pair,
);

conformance!(
    redis_cluster,
    store: crate::store_conformance::redis::cluster(),
    two_handles: crate::store_conformance::redis::cluster_pair,
);
