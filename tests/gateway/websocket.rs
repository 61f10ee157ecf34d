//! WebSockets on token routes (`websocket = true`): a browser's upgrade is admitted by
//! its `Origin` (it cannot carry `X-CSRF`), the upstream gets the bearer, and the tunnel
//! closes within a second of the session's end, whatever ends it and on whichever
//! instance. The test upstream echoes raw bytes after its 101: the gateway tunnels bytes
//! and never reads WebSocket frames, so an echo is what proves the tunnel.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::redis::RedisServer;
use crate::support::{echoes, read_body, read_head, Browser, Setup, Store, TestGateway};

const ADMIN_TOKEN: &str = "admin-token-for-the-websocket-tests-0123";

/// The longest a tunnel may stay open after its session ends.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

fn setup(store: Store) -> Setup {
    Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\nwebsocket = true\n\n\
                 [[route]]\npath = \"/plain\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                 [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
            .into(),
        extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\""),
        store,
        ..Setup::default()
    }
}

/// An upgrade request to `path` with these extra header lines; returns the connection
/// and the response head.
async fn upgrade(gw_addr: &str, path: &str, extra: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(gw_addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {gw_addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut conn).await;
    (conn, head)
}

/// A browser's WebSocket to `/api/ws` for the session `cookie`: the page's own `Origin`,
/// no `X-CSRF`. Checks the tunnel echoes both ways.
async fn open_socket(gw: &TestGateway, addr: &str, cookie: &str) -> TcpStream {
    let origin = gw.url("");
    let (mut conn, head) = upgrade(
        addr,
        "/api/ws",
        &format!("Origin: {origin}\r\nCookie: tokengate={cookie}\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut conn, b"ping").await;
    conn
}

/// Logs `browser` out (as the SPA's logout button would, in another tab); returns when.
async fn logout(browser: &Browser, gw: &TestGateway) -> Instant {
    let resp = browser.logout(&gw.url("")).await;
    let ended = Instant::now();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    ended
}

/// Waits for the tunnel to close; returns how long after `since` it did.
async fn closed_after(conn: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return since.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the tunnel was still open 10 s on"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_websocket_is_admitted_by_its_origin_and_carries_the_token() {
    let gw = TestGateway::start_with(setup(Store::Memory)).await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let addr = gw.addr.to_string();
    let _conn = open_socket(&gw, &addr, &cookie).await;
    let seen = gw
        .upstream
        .last("/api/ws")
        .expect("upstream saw the upgrade");
    let token = seen.token.expect("a bearer token on the upgrade request");
    let claims = gw.upstream.verify(&token).await.expect("token verifies");
    assert_eq!(claims["sub"], "alice");
    assert!(
        seen.headers.get("cookie").is_none(),
        "the session cookie stays here"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_or_missing_origin_and_a_route_without_websocket_are_refused() {
    let gw = TestGateway::start_with(setup(Store::Memory)).await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let addr = gw.addr.to_string();
    let session = format!("Cookie: tokengate={cookie}\r\n");
    let cases = [
        // A page of another origin, with the user's cookie (as a lax browser might send).
        (
            "/api/ws",
            format!("Origin: http://evil.example\r\n{session}"),
            "403",
            "csrf",
        ),
        // A subdomain or another port of ours is another origin too.
        (
            "/api/ws",
            format!(
                "Origin: http://{}\r\n{session}",
                gw.addr.to_string().replace("127.0.0.1", "localhost")
            ),
            "403",
            "csrf",
        ),
        // Our origin, but the browser says the request is cross-site.
        (
            "/api/ws",
            format!(
                "Origin: {}\r\nSec-Fetch-Site: cross-site\r\n{session}",
                gw.url("")
            ),
            "403",
            "csrf",
        ),
        // No Origin: not a browser, so the header every token request needs.
        ("/api/ws", session.clone(), "403", "csrf"),
        // A token route without `websocket = true` takes no upgrade at all.
        (
            "/plain/ws",
            format!("Origin: {}\r\nX-CSRF: 1\r\n{session}", gw.url("")),
            "403",
            "upgrade_refused",
        ),
    ];
    for (path, headers, status, code) in cases {
        let (mut conn, head) = upgrade(&addr, path, &headers).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "{headers}: {head}"
        );
        let body = read_body(&mut conn, &head).await;
        let json: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"], code, "{headers}");
    }
    assert!(
        gw.upstream.last("/api/ws").is_none(),
        "nothing reached the upstream"
    );
    assert!(
        gw.upstream.last("/plain/ws").is_none(),
        "nothing reached the upstream"
    );
    // Without Origin, the header admits a non-browser client.
    let (_conn, head) = upgrade(&addr, "/api/ws", &format!("X-CSRF: 1\r\n{session}")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tunnel_closes_within_a_second_of_a_logout_or_an_admin_end() {
    let gw = TestGateway::start_with(setup(Store::Memory)).await;
    let addr = gw.addr.to_string();

    // Logout in another tab of the same browser.
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut conn = open_socket(&gw, &addr, &cookie).await;
    let other_socket_of_bob = {
        let bob = gw.logged_in("bob").await;
        open_socket(&gw, &addr, &bob.cookie("tokengate").expect("cookie")).await
    };
    let ended = logout(&browser, &gw).await;
    let took = closed_after(&mut conn, ended).await;
    assert!(took <= CLOSE_LIMIT, "closed {took:?} after the logout");

    // An admin ends the user's sessions.
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut conn = open_socket(&gw, &addr, &cookie).await;
    let resp = reqwest::Client::new()
        .delete(gw.admin_url("/admin/sessions?sub=alice"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin");
    let ended = Instant::now();
    assert_eq!(resp.status(), 200);
    let took = closed_after(&mut conn, ended).await;
    assert!(took <= CLOSE_LIMIT, "closed {took:?} after the admin's end");

    // Another user's socket lives on.
    let mut bob = other_socket_of_bob;
    echoes(&mut bob, b"still").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tunnel_closes_within_a_second_of_an_end_on_another_instance() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let gw = TestGateway::start_with(setup(Store::Redis(server.url()))).await;
    let other = gw.another().await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    // The socket is on the other instance; the logout happens here.
    let mut conn = open_socket(&gw, &other.addr.to_string(), &cookie).await;
    let ended = logout(&browser, &gw).await;
    let took = closed_after(&mut conn, ended).await;
    assert!(
        took <= CLOSE_LIMIT,
        "closed {took:?} after a logout on another instance"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tunnel_closes_within_a_second_of_a_back_channel_logout_or_the_sessions_lifetime() {
    let mut s = setup(Store::Memory);
    s.session_extra = "idle_timeout = \"4s\"\nabsolute_timeout = \"4s\"".into();
    let gw = TestGateway::start_with(s).await;
    let addr = gw.addr.to_string();

    // Signing out at the provider: its back-channel logout ends the session here.
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut conn = open_socket(&gw, &addr, &cookie).await;
    let before = gw.op.stats().await["backchannel_logouts"]
        .as_u64()
        .unwrap_or(0);
    browser
        .sign_out_at_provider(&gw.op.issuer, crate::support::op::CLIENT_ID)
        .await;
    // The provider delivers the logout token before it finishes the sign-out page.
    let delivered = Instant::now();
    assert!(
        gw.op.stats().await["backchannel_logouts"]
            .as_u64()
            .unwrap_or(0)
            > before
    );
    let took = closed_after(&mut conn, delivered).await;
    assert!(
        took <= CLOSE_LIMIT,
        "closed {took:?} after the back-channel logout"
    );

    // The absolute lifetime (4 s) ends a session with a socket open, and the socket.
    let browser = gw.logged_in("bob").await;
    let created = Instant::now();
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut conn = open_socket(&gw, &addr, &cookie).await;
    let took = closed_after(&mut conn, created).await;
    // Lifetimes count whole seconds from login: the end is due between 3 and 5 s after.
    assert!(
        took >= Duration::from_secs(3) && took <= Duration::from_secs(5) + CLOSE_LIMIT,
        "closed {took:?} after login with a 4 s lifetime"
    );
}
