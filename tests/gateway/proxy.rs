//! What the upstream receives through a proxied route, and what the browser gets back.

use std::time::Duration;

use futures_util::stream;
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn user_route_carries_a_verified_bearer_token_and_no_gateway_cookie() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    browser.set_cookie("app", "1");
    let resp = browser
        .send(
            Method::GET,
            &gw.url("/api/hello?x=1"),
            &[
                ("x-csrf", "1"),
                ("authorization", "Bearer browser-chosen"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
            ],
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["path"], "/api/hello");
    assert_eq!(seen["query"], "x=1");
    let token = &seen["token"];
    assert_eq!(token["valid"], true, "upstream could not verify: {token}");
    assert_eq!(token["claims"]["sub"], "alice");
    assert_eq!(token["claims"]["aud"], crate::support::op::API_AUDIENCE);

    let h = &seen["headers"];
    let cookies = h["cookie"].to_string();
    assert!(cookies.contains("app=1"), "other cookies pass: {cookies}");
    assert!(
        !cookies.contains("tokengate"),
        "gateway cookie leaked upstream: {cookies}"
    );
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert!(h.get(hop).is_none(), "{hop} reached the upstream");
    }
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], gw.addr.to_string());
    let auth = gw
        .upstream
        .last("/api/hello")
        .and_then(|s| s.token)
        .expect("token");
    assert_ne!(
        auth, "browser-chosen",
        "the browser's Authorization was replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn none_route_forwards_without_token_and_routes_by_segment() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    // `/apix` is not under `/api`: it goes to the `/` route, which adds no token.
    let resp = browser.send(Method::GET, &gw.url("/apix"), &[], None).await;
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["token"]["valid"], false);
    assert_eq!(seen["token"]["error"], "no bearer token");
    assert!(!seen["headers"]["cookie"].to_string().contains("tokengate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_body_streams_through_to_the_upstream() {
    const MIB: usize = 1024 * 1024;
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    // 50 chunks of 1 MiB, produced as they are sent: never 50 MiB in memory here either.
    let chunks = stream::iter((0..50).map(|_| Ok::<_, std::io::Error>(vec![7u8; MIB])));
    let resp = reqwest::Client::new()
        .post(gw.url("/api/upload"))
        .header("cookie", format!("tokengate={cookie}"))
        .header("x-csrf", "1")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["body_bytes"], 50 * MIB as u64);
    assert_eq!(seen["token"]["valid"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_is_502_json() {
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gw = TestGateway::start_with(Setup {
        routes: format!(
            "[[route]]\npath = \"/\"\nupstream = \"http://{dead}\"\ntoken = \"none\"\n"
        ),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/anything")).await.expect("request");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_unreachable");
    assert!(body["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504_json() {
    let gw = TestGateway::start_with(Setup {
        extra: "[upstream]\nresponse_timeout = \"500ms\"\n".into(),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/slow?ms=3000"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_requests_are_tunnelled() {
    let gw = TestGateway::start().await;
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        gw.addr
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    conn.write_all(b"ping through the tunnel")
        .await
        .expect("write");
    let mut echo = [0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(&echo, b"ping through the tunnel");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_path_without_catch_all_route_is_404_json() {
    let gw = TestGateway::start_with(Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n".into(),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/nothing-here"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
}
