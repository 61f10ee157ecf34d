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
