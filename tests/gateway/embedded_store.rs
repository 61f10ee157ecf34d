//! The embedded store, the default, with the real `tokengate` binary: sessions survive a
//! restart and a `kill -9` under load, and a store another process holds is a clear
//! startup error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::instance::run_expecting_exit;
use crate::support::redis::free_port;
use crate::support::{status_of, wait_until, Browser, OpOptions, Setup, Store, TestGateway};

fn on_disk(dir: &std::path::Path, op: OpOptions) -> Setup {
    Setup {
        op,
        store: Store::Embedded(dir.join("sessions")),
        process: true,
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_survives_a_restart_of_the_gateway() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut gw = TestGateway::start_with(on_disk(dir.path(), OpOptions::default())).await;
    let b = gw.logged_in("alice").await;
    assert_eq!(b.api(&gw.url("/api/before")).await.0, 200);

    gw.stop_process().await;
    gw.restart_process().await;

    let (status, user) = b.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "the same cookie after a restart: {user}");
    assert_eq!(user["claims"]["sub"], "alice");
    let (status, seen) = b.api(&gw.url("/api/after")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
}

/// Logins and refreshes run flat out while the process is killed; after a restart every
/// browser that received a session cookie still has a working session. Refresh tokens do
/// not rotate here: a refresh the provider answered but the killed process never stored
/// would otherwise leave a spent token behind — a loss no gateway can avoid, not a store
/// fault.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_logins_and_refreshes_loses_no_delivered_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut setup = on_disk(
        dir.path(),
        OpOptions {
            access_token_ttl: 2,
            rotate_refresh: false,
            ..OpOptions::default()
        },
    );
    setup.extra = "[tokens]\nrefresh_before_expiry = \"1s\"\n".into();
    let mut gw = TestGateway::start_with(setup).await;
    let base = gw.url("");

    // Sessions that refresh throughout (their tokens are due every second).
    let mut browsers: Vec<Arc<Browser>> = Vec::new();
    for _ in 0..3 {
        browsers.push(Arc::new(gw.logged_in("alice").await));
    }
    let browsers = Arc::new(Mutex::new(browsers));
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for i in 0..3 {
        let (browsers, running, base) = (browsers.clone(), running.clone(), base.clone());
        // A request to a dead gateway panics inside Browser; that ends this worker only.
        workers.push(tokio::spawn(async move {
            let b = browsers.lock().expect("browsers")[i].clone();
            while running.load(Ordering::Relaxed) {
                b.api(&format!("{base}/api/burst")).await;
            }
        }));
    }
    for _ in 0..3 {
        let (browsers, running, base) = (browsers.clone(), running.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                // Listed before it logs in: whatever cookie it receives counts.
                let b = Arc::new(Browser::default());
                browsers.lock().expect("browsers").push(b.clone());
                b.login(&base, "bob", "bob-password", "/").await;
            }
        }));
    }
    let logged_in = |browsers: &Arc<Mutex<Vec<Arc<Browser>>>>| {
        browsers
            .lock()
            .expect("browsers")
            .iter()
            .filter(|b| b.cookie("tokengate").is_some())
            .count()
    };
    wait_until(
        Duration::from_secs(90),
        "logins and refreshes under way",
        || async { logged_in(&browsers) >= 12 && gw.op.refresh_grants().await >= 3 },
    )
    .await;

    // No new work after this point; what is in flight is cut off by the kill.
    running.store(false, Ordering::Relaxed);
    gw.kill9();
    for w in workers {
        let _ = w.await;
    }
    let delivered: Vec<Arc<Browser>> = browsers
        .lock()
        .expect("browsers")
        .iter()
        .filter(|b| b.cookie("tokengate").is_some())
        .cloned()
        .collect();
    assert!(delivered.len() >= 12, "{} sessions", delivered.len());

    // The store opens cleanly (the process gets ready) and has every delivered session.
    gw.restart_process().await;
    for (i, b) in delivered.iter().enumerate() {
        let (status, user) = b.api(&gw.url("/bff/user")).await;
        assert_eq!(
            status,
            200,
            "session {i} of {} lost: {user}",
            delivered.len()
        );
        let (status, seen) = b.api(&gw.url("/api/after-restart")).await;
        assert_eq!(status, 200, "session {i}: {seen}");
        assert_eq!(seen["token"]["valid"], true, "session {i}: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_held_by_another_process_or_unreadable_is_a_startup_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = TestGateway::start_with(on_disk(dir.path(), OpOptions::default())).await;
    let other = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let second = gw.config_toml(other(free_port()), other(free_port()));
    let (code, stderr) = tokio::task::block_in_place(|| run_expecting_exit(&second));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("session.path: ") && stderr.contains("in use by another process"),
        "{stderr}"
    );

    let garbage = tempfile::tempdir().expect("tempdir");
    std::fs::write(garbage.path().join("sessions.redb"), b"no database here").expect("write");
    let unreadable = second.replace(
        &dir.path().join("sessions").display().to_string(),
        &garbage.path().display().to_string(),
    );
    let (code, stderr) = tokio::task::block_in_place(|| run_expecting_exit(&unreadable));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("session.path: cannot open the embedded store"),
        "{stderr}"
    );
    // The first gateway was not disturbed.
    assert_eq!(status_of(&gw.admin_url("/readyz")).await, 200);
}
