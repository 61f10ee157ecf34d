//! Fault injection: the provider slow, answering garbage or dropping connections during
//! login and refresh; the upstream resetting connections or streaming without end; a
//! client going away mid-stream. Each answers with the right status, keeps the session,
//! and leaves no connection or task behind (the gateway's own gauges return to where
//! they were).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{wait_until, Browser, OpOptions, Setup, TestGateway};

/// A gauge from `/metrics`.
async fn gauge(gw: &TestGateway, name: &str) -> i64 {
    let text = gw.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

/// Waits until the public listener holds no more connections than `baseline`.
async fn connections_settle(gw: &TestGateway, baseline: i64) {
    wait_until(
        Duration::from_secs(10),
        "connections back to baseline",
        || async { gauge(gw, "tokengate_connections_open").await <= baseline },
    )
    .await;
}

fn short_provider_timeout() -> Setup {
    Setup {
        op: OpOptions {
            access_token_ttl: 4,
            ..OpOptions::default()
        },
        oidc_extra: "timeout = \"1s\"".into(),
        ..Setup::default()
    }
}

/// A logged-in browser whose access token is already due for refresh.
async fn due_for_refresh(gw: &TestGateway) -> Browser {
    let b = gw.logged_in("alice").await;
    let (_, seen) = b.api(&gw.url("/api/first")).await;
    let exp = seen["token"]["claims"]["exp"].as_u64().expect("exp");
    wait_until(Duration::from_secs(20), "token expiry", || async move {
        tokengate::session::unix_now() > exp
    })
    .await;
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_fault_at_refresh_keeps_the_session() {
    for (fault, ms, status, error) in [
        ("slow", 3000, 503, "provider_unavailable"),
        ("reset", 0, 503, "provider_unavailable"),
        ("garbage", 0, 502, "provider_error"),
    ] {
        let gw = TestGateway::start_with(short_provider_timeout()).await;
        let b = due_for_refresh(&gw).await;
        let baseline = gauge(&gw, "tokengate_connections_open").await;
        gw.op.fault(fault, ms).await;
        let resp = b.api_response(&gw.url("/api/during")).await;
        assert_eq!(resp.status(), status, "{fault}");
        if status == 503 {
            assert!(resp.headers().contains_key("retry-after"), "{fault}");
        }
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], error, "{fault}");
        assert_eq!(
            b.api(&gw.url("/bff/user")).await.0,
            200,
            "{fault}: session kept"
        );

        gw.op.fault("off", 0).await;
        let (status, seen) = b.api(&gw.url("/api/after")).await;
        assert_eq!(status, 200, "{fault}: the same session refreshes: {seen}");
        assert_eq!(seen["token"]["valid"], true);
        connections_settle(&gw, baseline).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_fault_at_login_makes_no_session() {
    for (fault, ms, status) in [("slow", 3000, 503), ("reset", 0, 503), ("garbage", 0, 400)] {
        let gw = TestGateway::start_with(short_provider_timeout()).await;
        gw.op.fault(fault, ms).await;
        let b = Browser::default();
        let landed = b.login(&gw.url(""), "alice", "alice-password", "/").await;
        assert_eq!(landed.status, status, "{fault}: {}", landed.body);
        assert!(landed.body.contains("<h1>"), "{fault}: an error page");
        assert!(b.cookie("tokengate").is_none(), "{fault}: no session");
        gw.op.fault("off", 0).await;
        let b = gw.logged_in("alice").await;
        assert_eq!(
            b.api(&gw.url("/api/x")).await.0,
            200,
            "{fault}: login works again"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_drops_the_connection_is_502_and_the_gateway_carries_on() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let baseline = gauge(&gw, "tokengate_connections_open").await;
    for _ in 0..5 {
        let resp = b.api_response(&gw.url("/api/reset")).await;
        assert_eq!(resp.status(), 502);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["error"], "upstream_unreachable");
    }
    assert_eq!(b.api(&gw.url("/api/fine")).await.0, 200, "session kept");
    connections_settle(&gw, baseline).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_leaving_an_endless_download_leaves_nothing_behind() {
    // The real binary, so its task count is its own.
    let gw = TestGateway::start_with(Setup {
        process: true,
        ..Setup::default()
    })
    .await;
    let connections = gauge(&gw, "tokengate_connections_open").await;
    let tasks = gauge(&gw, "tokengate_tasks_alive").await;
    for _ in 0..5 {
        let mut conn = tokio::net::TcpStream::connect(gw.addr)
            .await
            .expect("connect");
        let request = format!("GET /files/endless HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr);
        conn.write_all(request.as_bytes()).await.expect("write");
        // Some of the endless body arrives; then the client goes away.
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while got < 4 * 1024 * 1024 {
            let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
                .await
                .expect("body keeps coming")
                .expect("read");
            assert!(n > 0, "the stream ended");
            got += n;
        }
        drop(conn);
    }
    connections_settle(&gw, connections).await;
    wait_until(
        Duration::from_secs(10),
        "tasks back to baseline",
        || async { gauge(&gw, "tokengate_tasks_alive").await <= tasks },
    )
    .await;
}
