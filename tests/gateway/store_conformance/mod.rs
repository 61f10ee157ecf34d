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

mod embedded {
    use std::sync::Arc;

    use tokengate::session::embedded::{EmbeddedStore, OpenError};
    use tokengate::session::{unix_now, Expect, IndexKey, Indexes, SessionStore, Written};

    use super::suite;

    #[tokio::test(flavor = "multi_thread")]
    async fn embedded_store_meets_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        suite::single(Arc::new(store)).await;
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

mod redis {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokengate::session::redis::{RedisStore, Target};
    use tokengate::session::{
        unix_now, Change, Expect, IndexKey, Indexes, SessionStore, StoreError,
    };

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

    #[tokio::test(flavor = "multi_thread")]
    async fn redis_standalone_store_meets_the_contract() {
        let server = tokio::task::block_in_place(RedisServer::start);
        let target = Target::Standalone(server.url());
        suite::single(open(target.clone()).await).await;
        suite::shared(open(target.clone()).await, open(target).await).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn redis_cluster_store_meets_the_contract() {
        let cluster = tokio::task::block_in_place(RedisCluster::start);
        let target = Target::Cluster(cluster.urls());
        suite::single(open(target.clone()).await).await;
        // The second instance knows only the last node: it learns the others from it.
        let last = cluster.urls().pop().expect("three nodes");
        suite::shared(open(target).await, open(Target::Cluster(vec![last])).await).await;
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
