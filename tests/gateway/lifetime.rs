//! How long a session lives: `session.idle_timeout` slides with use,
//! `session.absolute_timeout` ends it however much it is used.

use std::time::Duration;

use crate::support::{now, wait_until, Setup, TestGateway};

fn lifetimes(idle: &str, absolute: &str) -> Setup {
    Setup {
        session_extra: format!("idle_timeout = \"{idle}\"\nabsolute_timeout = \"{absolute}\"\n"),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn use_keeps_a_session_alive_past_its_idle_timeout() {
    let gw = TestGateway::start_with(lifetimes("3s", "1h")).await;
    let b = gw.logged_in("alice").await;
    // Twice the idle timeout, a use every 300 ms.
    let until = now() + 6;
    while now() < until {
        let (status, body) = b.api(&gw.url("/bff/user")).await;
        assert_eq!(status, 200, "a session in use ended: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_unused_for_its_idle_timeout_ends() {
    let gw = TestGateway::start_with(lifetimes("2s", "1h")).await;
    let b = gw.logged_in("alice").await;
    assert_eq!(b.api(&gw.url("/bff/user")).await.0, 200);
    // The last use was at or before `used`.
    let used = now();
    wait_until(Duration::from_secs(10), "the idle timeout", || async move {
        now() >= used + 3
    })
    .await;
    let (status, body) = b.api(&gw.url("/api/x")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(b.api(&gw.url("/bff/user")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_ends_at_its_absolute_timeout_however_much_it_is_used() {
    // The idle timeout may not exceed the absolute one; used every 300 ms, the session
    // never idles, so only the absolute timeout can end it.
    let gw = TestGateway::start_with(lifetimes("3s", "3s")).await;
    let before_login = now();
    let b = gw.logged_in("alice").await;
    let after_login = now();
    // In use all along: fine until 3 s after the login, over from then on.
    loop {
        let t = now();
        let status = b.api(&gw.url("/bff/user")).await.0;
        // Whole seconds: one second of slack for the clock ticking during the call.
        if t < before_login + 2 {
            assert_eq!(status, 200, "ended before its absolute timeout");
        }
        if t > after_login + 3 {
            assert_eq!(status, 401, "still alive after its absolute timeout");
            break;
        }
        assert!(t < after_login + 15, "test took too long");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_the_user_with_slide_false_does_not_extend_the_session() {
    let gw = TestGateway::start_with(lifetimes("2s", "1h")).await;
    let b = gw.logged_in("alice").await;
    let login = now();
    // An SPA polling its login state must not keep an abandoned session alive.
    loop {
        let t = now();
        let status = b.api(&gw.url("/bff/user?slide=false")).await.0;
        if t > login + 3 {
            assert_eq!(status, 401, "polling kept the session alive");
            break;
        }
        assert!(t < login + 15, "test took too long");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
