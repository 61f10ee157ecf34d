//! What the browser sends, as bytes: non-ASCII and non-UTF-8 header values, over HTTP/1.1
//! and HTTP/2 (h2c with prior knowledge on the plain listener), forwarding headers from
//! untrusted and trusted peers, and the limit on open connections. What the upstream
//! received is checked on its raw header bytes (`Seen::headers`).
//!
//! Issue 20's findings reproduced here: 1 (`a_session_cookie_beside_a_non_ascii_cookie_…`,
//! `a_non_ascii_cookie_does_not_hide_the_session_…`, `a_session_cookie_in_its_own_line_…`),
//! 4 (`forwarding_headers_from_an_untrusted_peer_…`), and from 5: no limit on open client
//! connections (`connections_beyond_max_connections_…`). Findings 2, 3 and the rest of 5
//! are in hostile_upstream.rs.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::upstream::Seen;
use crate::support::{op, wait_until, Setup, TestGateway};

/// `/api` user, `/opt` user-optional, `/cc` client, `/` none; `server_extra` in `[server]`.
fn setup(server_extra: &str) -> Setup {
    Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                 [[route]]\npath = \"/opt\"\nupstream = \"{upstream}\"\ntoken = \"user-optional\"\n\n\
                 [[route]]\npath = \"/cc\"\nupstream = \"{upstream}\"\ntoken = \"client\"\n\
                 scopes = [\"api\"]\n\n\
                 [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
            .into(),
        server_extra: server_extra.into(),
        ..Setup::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    User,
    UserOptional,
    Client,
    None,
}

/// Each route kind, by its prefix.
const ROUTES: [(&str, Kind); 4] = [
    ("", Kind::None),
    ("/cc", Kind::Client),
    ("/opt", Kind::UserOptional),
    ("/api", Kind::User),
];

/// A cookie beside the session's, with a non-ASCII value: Latin-1 (not UTF-8) and UTF-8.
const LANGS: [&[u8]; 2] = [b"lang=Jos\xe9", b"lang=Jos\xc3\xa9"];

struct Proto {
    name: &'static str,
    version: reqwest::Version,
    client: reqwest::Client,
}

fn protocols() -> [Proto; 2] {
    let base = || {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
    };
    [
        Proto {
            name: "h1",
            version: reqwest::Version::HTTP_11,
            client: base().http1_only().build().expect("client"),
        },
        Proto {
            name: "h2",
            version: reqwest::Version::HTTP_2,
            client: base().http2_prior_knowledge().build().expect("client"),
        },
    ]
}

/// GET `path` over `proto` with `headers` as raw bytes (repeated names are sent as
/// separate lines); the status, the upstream's JSON echo, and the request as the upstream
/// saw it (when it got there).
async fn send(
    gw: &TestGateway,
    proto: &Proto,
    path: &str,
    headers: &[(&str, &[u8])],
) -> (u16, Value, Option<Seen>) {
    let mut req = proto.client.get(gw.url(path));
    for (name, value) in headers {
        let value = HeaderValue::from_bytes(value).expect("a header value");
        req = req.header(*name, value);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {path}: {e:?}", proto.name));
    assert_eq!(resp.version(), proto.version, "{} {path}", proto.name);
    let status = resp.status().as_u16();
    let echo = resp.json().await.unwrap_or(Value::Null);
    (status, echo, gw.upstream.last(path))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every header the upstream received, as `name: value` bytes.
fn raw_headers(seen: &Seen) -> Vec<Vec<u8>> {
    seen.headers
        .iter()
        .map(|(name, value)| [name.as_str().as_bytes(), b": ", value.as_bytes()].concat())
        .collect()
}

fn shown(seen: &Seen) -> String {
    raw_headers(seen)
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// No header the upstream received holds `needle`, anywhere in its bytes.
fn assert_nowhere(seen: &Seen, needle: &[u8], what: &str) {
    assert!(
        !raw_headers(seen).iter().any(|h| contains(h, needle)),
        "{what} reached the upstream: {}",
        shown(seen)
    );
}

/// The values of `name` the upstream received, as bytes.
fn values(seen: &Seen, name: &str) -> Vec<Vec<u8>> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

/// The credential the route kind presents, as the upstream verified it.
fn assert_token(kind: Kind, echo: &Value, what: &str) {
    let token = &echo["token"];
    match kind {
        Kind::User | Kind::UserOptional => {
            assert_eq!(token["valid"], true, "{what}: authenticated: {echo}");
            assert_eq!(token["claims"]["sub"], "alice", "{what}: as alice: {echo}");
        }
        Kind::Client => {
            assert_eq!(token["valid"], true, "{what}: the client token: {echo}");
            assert_eq!(
                token["claims"]["client_id"],
                op::CLIENT_ID,
                "{what}: {echo}"
            );
            assert_ne!(
                token["claims"]["sub"], "alice",
                "{what}: not alice's: {echo}"
            );
        }
        Kind::None => assert_eq!(token["error"], "no token", "{what}: {echo}"),
    }
}

async fn alice_session(gw: &TestGateway) -> Vec<u8> {
    let sid = gw
        .logged_in("alice")
        .await
        .cookie("tokengate")
        .expect("session cookie");
    assert!(sid.len() >= 16, "a session ID worth searching for: {sid:?}");
    sid.into_bytes()
}

/// Issue 20, finding 1: a `Cookie` header that failed `to_str` was copied upstream whole,
/// session ID included.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_cookie_beside_a_non_ascii_cookie_never_reaches_the_upstream() {
    let gw = TestGateway::start_with(setup("")).await;
    let sid = alice_session(&gw).await;
    let mut n = 0;
    for proto in &protocols() {
        for (prefix, kind) in ROUTES {
            for lang in LANGS {
                n += 1;
                let path = format!("{prefix}/beside-{}-{n}", proto.name);
                let what = format!("{} {path} ({kind:?}, {})", proto.name, lossy(lang));
                let cookie = [b"tokengate=".as_slice(), &sid, b"; ", lang].concat();
                let (status, echo, seen) =
                    send(&gw, proto, &path, &[("cookie", &cookie), ("x-csrf", b"1")]).await;
                if let Some(seen) = &seen {
                    assert_nowhere(seen, &sid, &format!("{what}: the session ID"));
                }
                assert_eq!(status, 200, "{what}: {echo}");
                let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
                assert_eq!(
                    values(&seen, "cookie"),
                    [lang.to_vec()],
                    "{what}: the other cookie arrives, its bytes intact: {}",
                    shown(&seen)
                );
                assert_token(kind, &echo, &what);
            }
        }
    }
}

/// Issue 20, finding 1: on a `user` route the same header hid the session (a 401 any
/// sibling subdomain could cause by planting one cookie).
#[tokio::test(flavor = "multi_thread")]
async fn a_non_ascii_cookie_does_not_hide_the_session_on_a_user_route() {
    let gw = TestGateway::start_with(setup("")).await;
    let sid = alice_session(&gw).await;
    let session = [b"tokengate=".as_slice(), &sid].concat();
    let mut n = 0;
    for proto in &protocols() {
        for lang in LANGS {
            for cookie in [
                [session.as_slice(), b"; ", lang].concat(),
                [lang, b"; ", session.as_slice()].concat(),
                [lang, b"; ", session.as_slice(), b"; theme=d\xfcnkel"].concat(),
            ] {
                n += 1;
                let path = format!("/api/hidden-{}-{n}", proto.name);
                let what = format!("{} {path} (Cookie: {})", proto.name, lossy(&cookie));
                let (status, echo, seen) =
                    send(&gw, proto, &path, &[("cookie", &cookie), ("x-csrf", b"1")]).await;
                assert_eq!(status, 200, "{what}: the session is found: {echo}");
                assert_token(Kind::User, &echo, &what);
                let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
                assert_nowhere(&seen, &sid, &format!("{what}: the session ID"));
            }
        }
    }
}

/// Issue 20, finding 1, with the session cookie in a `Cookie` line of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_cookie_in_its_own_line_beside_a_non_ascii_cookie_line_never_reaches_the_upstream(
) {
    let gw = TestGateway::start_with(setup("")).await;
    let sid = alice_session(&gw).await;
    let session = [b"tokengate=".as_slice(), &sid].concat();
    let mut n = 0;
    for proto in &protocols() {
        for (prefix, kind) in ROUTES {
            for lang in LANGS {
                for session_first in [true, false] {
                    n += 1;
                    let path = format!("{prefix}/lines-{}-{n}", proto.name);
                    let what = format!(
                        "{} {path} ({kind:?}, {}, session line first: {session_first})",
                        proto.name,
                        lossy(lang)
                    );
                    let mut headers: Vec<(&str, &[u8])> = vec![("cookie", lang), ("x-csrf", b"1")];
                    headers.insert(usize::from(!session_first), ("cookie", &session));
                    let (status, echo, seen) = send(&gw, proto, &path, &headers).await;
                    if let Some(seen) = &seen {
                        assert_nowhere(seen, &sid, &format!("{what}: the session ID"));
                    }
                    assert_eq!(status, 200, "{what}: {echo}");
                    let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
                    let cookies = values(&seen, "cookie");
                    assert!(
                        cookies.iter().any(|c| contains(c, lang)),
                        "{what}: the other cookie arrives, its bytes intact: {}",
                        shown(&seen)
                    );
                    assert_token(kind, &echo, &what);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_bytes_in_other_header_values_pass_through_unchanged() {
    let gw = TestGateway::start_with(setup("")).await;
    let sid = alice_session(&gw).await;
    let cookie = [b"tokengate=".as_slice(), &sid].concat();
    for proto in &protocols() {
        for (prefix, kind) in ROUTES {
            let path = format!("{prefix}/note-{}", proto.name);
            let what = format!("{} {path}", proto.name);
            let (status, echo, seen) = send(
                &gw,
                proto,
                &path,
                &[
                    ("cookie", &cookie),
                    ("x-csrf", b"1"),
                    ("x-note", b"\xff\xfe"),
                    ("x-latin", b"Jos\xe9 \x80\xa0 end"),
                ],
            )
            .await;
            assert_eq!(status, 200, "{what}: {echo}");
            let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
            assert_eq!(values(&seen, "x-note"), [b"\xff\xfe".to_vec()], "{what}");
            assert_eq!(
                values(&seen, "x-latin"),
                [b"Jos\xe9 \x80\xa0 end".to_vec()],
                "{what}"
            );
            assert_token(kind, &echo, &what);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_authorization_never_reaches_the_upstream_of_a_token_route_whatever_its_bytes() {
    let gw = TestGateway::start_with(setup("")).await;
    let sid = alice_session(&gw).await;
    let cookie = [b"tokengate=".as_slice(), &sid].concat();
    let chosen: [&[u8]; 3] = [
        b"Bearer \xff\xfe-browser-chosen",
        b"Bearer browser-chosen",
        b"Basic \xe9browser-chosen",
    ];
    let mut n = 0;
    for proto in &protocols() {
        // `/opt` without a session is forwarded without a token: the browser's is dropped
        // all the same.
        let routes = [
            ("/api", Kind::User, true),
            ("/opt", Kind::UserOptional, true),
            ("/opt", Kind::None, false),
            ("/cc", Kind::Client, false),
        ];
        for (prefix, kind, with_session) in routes {
            for authorization in chosen {
                n += 1;
                let path = format!("{prefix}/auth-{}-{n}", proto.name);
                let what = format!("{} {path} ({})", proto.name, lossy(authorization));
                let mut headers: Vec<(&str, &[u8])> =
                    vec![("authorization", authorization), ("x-csrf", b"1")];
                if with_session {
                    headers.push(("cookie", &cookie));
                }
                let (status, echo, seen) = send(&gw, proto, &path, &headers).await;
                assert_eq!(status, 200, "{what}: {echo}");
                let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
                assert_nowhere(
                    &seen,
                    b"browser-chosen",
                    &format!("{what}: the browser's credential"),
                );
                let expected = usize::from(kind != Kind::None);
                assert_eq!(
                    values(&seen, "authorization").len(),
                    expected,
                    "{what}: only the gateway's credential: {}",
                    shown(&seen)
                );
                assert_token(kind, &echo, &what);
            }
        }
    }
}

/// HTTP/1.1 only: HTTP/2 has no `Connection` header (a client strips it before sending).
#[tokio::test(flavor = "multi_thread")]
async fn headers_listed_in_connection_never_reach_the_upstream_whatever_the_list_holds() {
    let gw = TestGateway::start_with(setup("")).await;
    let [h1, _] = protocols();
    let lists: [&[u8]; 3] = [b"x-drop", b"keep-alive, x-drop", b"x-drop, x-\xe9"];
    for (i, list) in lists.into_iter().enumerate() {
        for (prefix, _) in ROUTES {
            let path = format!("{prefix}/listed-{i}");
            let what = format!("h1 {path} (Connection: {})", lossy(list));
            let (status, echo, seen) = send(
                &gw,
                &h1,
                &path,
                &[("connection", list), ("x-drop", b"1"), ("x-csrf", b"1")],
            )
            .await;
            // `/api` without a session is 401 before anything is forwarded.
            if prefix == "/api" {
                assert_eq!(status, 401, "{what}: {echo}");
                continue;
            }
            assert_eq!(status, 200, "{what}: {echo}");
            let seen = seen.unwrap_or_else(|| panic!("{what}: never reached the upstream"));
            for name in ["x-drop", "connection"] {
                assert!(
                    values(&seen, name).is_empty(),
                    "{what}: {name} reached the upstream: {}",
                    shown(&seen)
                );
            }
        }
    }
}

/// What a client sends to claim another origin, path or address.
const FORWARDING: [(&str, &[u8]); 10] = [
    ("forwarded", b"for=1.2.3.4;host=evil"),
    ("x-forwarded-for", b"1.2.3.4"),
    ("x-forwarded-host", b"evil.example"),
    ("x-forwarded-proto", b"gopher"),
    ("x-forwarded-port", b"1"),
    ("x-forwarded-prefix", b"/evil"),
    ("x-real-ip", b"1.2.3.4"),
    ("x-original-url", b"/admin"),
    ("x-rewrite-url", b"/admin"),
    ("host", b"evil.example"),
];

/// The forwarding headers, over `proto` (no `Host` over HTTP/2: `:authority` is the URL's).
async fn send_forwarding(gw: &TestGateway, proto: &Proto, path: &str) -> Seen {
    let headers: Vec<(&str, &[u8])> = FORWARDING
        .into_iter()
        .filter(|(name, _)| proto.version == reqwest::Version::HTTP_11 || *name != "host")
        .collect();
    let (status, echo, seen) = send(gw, proto, path, &headers).await;
    assert_eq!(status, 200, "{} {path}: {echo}", proto.name);
    seen.unwrap_or_else(|| panic!("{} {path}: never reached the upstream", proto.name))
}

fn one(seen: &Seen, name: &str, what: &str) -> String {
    let got = values(seen, name);
    assert_eq!(got.len(), 1, "{what}: one {name}: {}", shown(seen));
    String::from_utf8_lossy(&got[0]).into_owned()
}

/// Issue 20, finding 4: `Forwarded`, `X-Real-IP`, `X-Forwarded-Port/-Prefix`,
/// `X-Original-URL` passed as sent, and `X-Forwarded-Host` came from the client's `Host`.
#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_an_untrusted_peer_are_replaced_by_the_gateways_own() {
    let gw = TestGateway::start_with(setup("")).await;
    let public = gw.addr.to_string();
    for proto in &protocols() {
        let path = format!("/untrusted-{}", proto.name);
        let what = format!("{} {path}", proto.name);
        let seen = send_forwarding(&gw, proto, &path).await;
        assert_eq!(one(&seen, "x-forwarded-for", &what), "127.0.0.1", "{what}");
        assert_eq!(one(&seen, "x-real-ip", &what), "127.0.0.1", "{what}");
        assert_eq!(one(&seen, "x-forwarded-host", &what), public, "{what}");
        assert_eq!(one(&seen, "x-forwarded-proto", &what), "http", "{what}");
        assert_eq!(
            one(&seen, "forwarded", &what),
            format!("for=127.0.0.1;host=\"{public}\";proto=http"),
            "{what}"
        );
        assert_eq!(
            one(&seen, "host", &what),
            gw.upstream.addr.to_string(),
            "{what}"
        );
        for name in [
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-original-url",
            "x-rewrite-url",
        ] {
            assert!(
                values(&seen, name).is_empty(),
                "{what}: the client's {name} reached the upstream: {}",
                shown(&seen)
            );
        }
        for claimed in [b"evil".as_slice(), b"1.2.3.4", b"gopher", b"/admin"] {
            assert_nowhere(&seen, claimed, &format!("{what}: {}", lossy(claimed)));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_a_trusted_proxy_are_extended_not_replaced() {
    let gw = TestGateway::start_with(setup("trusted_proxies = [\"127.0.0.0/8\"]")).await;
    let public = gw.addr.to_string();
    for proto in &protocols() {
        let path = format!("/trusted-{}", proto.name);
        let what = format!("{} {path}", proto.name);
        let seen = send_forwarding(&gw, proto, &path).await;
        assert_eq!(
            one(&seen, "x-forwarded-for", &what),
            "1.2.3.4, 127.0.0.1",
            "{what}"
        );
        assert_eq!(one(&seen, "x-real-ip", &what), "1.2.3.4", "{what}");
        let forwarded: Vec<String> = values(&seen, "forwarded")
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(
            forwarded.join(", ").starts_with("for=1.2.3.4;host=evil"),
            "{what}: the proxy's Forwarded is kept: {forwarded:?}"
        );
        // Still the gateway's own public URL, never what a proxy or client says.
        assert_eq!(one(&seen, "x-forwarded-host", &what), public, "{what}");
        assert_eq!(one(&seen, "x-forwarded-proto", &what), "http", "{what}");
    }
}

/// Reads a response head within `limit`; `None` when the connection ends (or fails)
/// first.
async fn response_head(conn: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(limit, async {
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    })
    .await
    .ok()
    .flatten()
}

/// A connection that sent one request and got a 200 head, kept open.
async fn served_connection(gw: &TestGateway, i: usize) -> Option<TcpStream> {
    let mut conn = TcpStream::connect(gw.addr).await.ok()?;
    let request = format!("GET /kept-{i} HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr);
    conn.write_all(request.as_bytes()).await.ok()?;
    let head = response_head(&mut conn, Duration::from_secs(2)).await?;
    head.starts_with("HTTP/1.1 200").then_some(conn)
}

fn refused_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tokengate_connections_refused_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Issue 20, finding 5: no limit on open client connections.
#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_max_connections_are_closed_at_once_counted_and_served_again_later() {
    let gw = TestGateway::start_with(setup("max_connections = 4")).await;
    let mut kept = Vec::new();
    for i in 0..4 {
        let conn = served_connection(&gw, i)
            .await
            .unwrap_or_else(|| panic!("connection {i} of 4 is served"));
        kept.push(conn);
    }

    // The fifth: closed at once, never served.
    let mut fifth = TcpStream::connect(gw.addr).await.expect("connect");
    let request = format!("GET /fifth HTTP/1.1\r\nHost: {}\r\n\r\n", gw.addr);
    let _ = fifth.write_all(request.as_bytes()).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match fifth.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    assert!(
        closed,
        "the fifth connection is closed at once: {}",
        lossy(&got)
    );
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "the fifth connection is not served: {}",
        lossy(&got)
    );
    assert!(
        gw.upstream.last("/fifth").is_none(),
        "the fifth request never reached the upstream"
    );
    wait_until(
        Duration::from_secs(5),
        "tokengate_connections_refused_total >= 1",
        || async { refused_total(&gw.metrics_text().await) >= 1.0 },
    )
    .await;

    // One of the four goes: a new connection is served.
    drop(kept.pop());
    let mut i = 4;
    wait_until(
        Duration::from_secs(10),
        "a new connection served once one of the four closed",
        || {
            i += 1;
            let gw = &gw;
            async move { served_connection(gw, i).await.is_some() }
        },
    )
    .await;
    drop(kept);
}

fn lossy(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}
