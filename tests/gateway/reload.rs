//! `SIGHUP` reloads the configuration file of the running binary: new routes and rules,
//! keys, client credentials and limits serve new requests at once, while sessions and
//! open connections stay and traffic across the reload sees no error; a file with
//! problems is refused with each problem logged and the running configuration kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::support::{fresh_key, read_body, read_head, wait_until, Setup, TestGateway};

fn process() -> Setup {
    Setup {
        process: true,
        ..Setup::default()
    }
}

/// The value of the reload counter for `outcome` on `/metrics`.
async fn reloads(gw: &TestGateway, outcome: &str) -> u64 {
    let text = gw.metrics_text().await;
    let series = format!("tokengate_config_reloads_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series:?} in /metrics"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_route_serves_at_once_and_nothing_in_flight_notices() {
    let gw = TestGateway::start_with(process()).await;
    let alice = Arc::new(gw.logged_in("alice").await);
    let cookie = alice.cookie("tokengate").expect("cookie");

    // A keep-alive connection opened before the reload.
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /api/admin/x HTTP/1.1\r\nHost: {}\r\nCookie: tokengate={cookie}\r\nX-CSRF: 1\r\n\r\n",
        gw.addr
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    read_body(&mut conn, &head).await;

    // Traffic on several connections across the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (alice, url) = (alice.clone(), gw.url("/api/load"));
            let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let resp = alice.api_response(&url).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if resp.status() != StatusCode::OK {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = resp.bytes().await;
                }
            })
        })
        .collect();
    wait_until(
        Duration::from_secs(10),
        "traffic before the reload",
        || async { sent.load(Ordering::Relaxed) >= 50 },
    )
    .await;

    // A route only admins may use, in front of /api.
    gw.reload_with(|toml| {
        toml.replacen(
            "[[route]]",
            "[[route]]\npath = \"/api/admin\"\nupstream = \"{up}\"\ntoken = \"user\"\n\
             require = { groups = [\"nobody\"] }\n\n[[route]]",
            1,
        )
        .replace("{up}", &gw.upstream.url())
    });
    wait_until(
        Duration::from_secs(10),
        "the new route to serve",
        || async { alice.api(&gw.url("/api/admin/x")).await.0 == StatusCode::FORBIDDEN },
    )
    .await;
    let at_reload = sent.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "traffic after the reload",
        || async { sent.load(Ordering::Relaxed) >= at_reload + 50 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {} requests",
        sent.load(Ordering::Relaxed)
    );

    // The session is the same one, and so is the connection opened before.
    assert_eq!(alice.cookie("tokengate").as_deref(), Some(cookie.as_str()));
    conn.write_all(request.as_bytes())
        .await
        .expect("write again");
    let head = read_head(&mut conn).await;
    assert!(
        head.starts_with("HTTP/1.1 403"),
        "the old connection, the new rule: {head}"
    );
    assert_eq!(reloads(&gw, "applied").await, 1);
    assert_eq!(reloads(&gw, "refused").await, 0);
    assert!(gw.log().contains("configuration reloaded"), "{}", gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_is_refused_with_its_problems_and_the_running_one_stays() {
    let gw = TestGateway::start_with(process()).await;
    let alice = gw.logged_in("alice").await;
    gw.reload_with(|toml| {
        toml.replacen("token = \"user\"", "token = \"sometimes\"", 1)
            .replacen("[session]", "[session]\nidle_timeout = \"soon\"", 1)
    });
    wait_until(Duration::from_secs(10), "the refusal", || async {
        reloads(&gw, "refused").await == 1
    })
    .await;
    let log = gw.log();
    assert!(log.contains("configuration reload refused"), "{log}");
    assert!(
        log.contains("route[0].token"),
        "each problem with its key path: {log}"
    );
    assert!(log.contains("session.idle_timeout"), "{log}");
    let (status, seen) = alice.api(&gw.url("/api/x")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true);
    assert_eq!(reloads(&gw, "applied").await, 0);

    // What cannot change in a running process keeps its running value, with a warning.
    gw.reload_with(|toml| toml.replace(&gw.admin.to_string(), "127.0.0.1:1"));
    wait_until(Duration::from_secs(10), "the reload", || async {
        gw.log().contains("server.admin_listen")
    })
    .await;
    assert!(gw.log().contains("restart to apply"), "{}", gw.log());
    assert_eq!(
        reloads(&gw, "applied").await,
        1,
        "served by the old admin listener"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_client_credentials_and_limits_change_live() {
    let gw = TestGateway::start_with(process()).await;
    let alice = gw.logged_in("alice").await;

    // A new key in front: new sessions are sealed with it, old ones still open.
    let new_key = fresh_key();
    gw.reload_with(|toml| toml.replacen("keys = [\"", &format!("keys = [\"{new_key}\", \""), 1));
    wait_until(Duration::from_secs(10), "the reload", || async {
        reloads(&gw, "applied").await == 1
    })
    .await;
    assert_eq!(alice.api(&gw.url("/api/x")).await.0, 200);
    let bob = gw.logged_in("bob").await;
    assert_eq!(bob.api(&gw.url("/api/x")).await.0, 200);

    // A wrong client secret is used from the reload on: the provider refuses the code
    // exchange; the right one again, and logins work.
    gw.reload_with(|toml| {
        toml.replacen("keys = [\"", &format!("keys = [\"{new_key}\", \""), 1)
            .replace(
                "client_secret = \"gateway-secret\"",
                "client_secret = \"wrong-secret\"",
            )
    });
    wait_until(Duration::from_secs(10), "the reload", || async {
        reloads(&gw, "applied").await == 2
    })
    .await;
    let refused = wait_for_login_status(&gw, |s| s != StatusCode::OK).await;
    assert_eq!(
        refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "invalid_client is the gateway's fault"
    );
    assert_eq!(
        alice.api(&gw.url("/api/x")).await.0,
        200,
        "sessions are untouched"
    );

    // Limits: at most 8 request headers from now on (new connections).
    gw.reload_with(|toml| {
        toml.replacen("keys = [\"", &format!("keys = [\"{new_key}\", \""), 1)
            .replacen("[server]", "[server]\nmax_headers = 8", 1)
    });
    wait_until(Duration::from_secs(10), "the reload", || async {
        reloads(&gw, "applied").await == 3
    })
    .await;
    let ok = wait_for_login_status(&gw, |s| s == StatusCode::OK).await;
    assert_eq!(ok, StatusCode::OK, "the right secret again");
    let mut many = reqwest::Client::new().get(gw.url("/x"));
    for i in 0..12 {
        many = many.header(format!("x-extra-{i}"), "1");
    }
    assert_eq!(many.send().await.expect("request").status(), 431);

    // The log level: debug lines appear from the reload on.
    assert!(!gw.log().contains(" DEBUG "), "info by default");
    gw.reload_with(|toml| {
        format!(
            "{}\n[log]\nlevel = \"debug\"\n",
            toml.replacen("keys = [\"", &format!("keys = [\"{new_key}\", \""), 1)
        )
    });
    wait_until(Duration::from_secs(10), "debug lines", || async {
        let _ = alice.api(&gw.url("/api/x")).await;
        gw.log().contains(" DEBUG ")
    })
    .await;
}

/// Logs a new browser in until the landing page's status meets `done`; returns it.
async fn wait_for_login_status(gw: &TestGateway, done: impl Fn(StatusCode) -> bool) -> StatusCode {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let b = crate::support::Browser::default();
        let landed = b.login(&gw.url(""), "alice", "alice-password", "/").await;
        if done(landed.status) {
            return landed.status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "login stayed {}",
            landed.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
