//! The hostile-input suite: one attack per case, each with its exact expected status.
//! After every case the response is searched for anything secret or internal (the
//! victim's cookie, every token the provider issued, the client secret, the admin token,
//! source paths, panic text), and the victim's session must still work. At the end of
//! each family the gateway's own log lines (captured at TRACE level for the whole binary)
//! are searched the same way.
//!
//! A test binary of its own: it owns the process's log subscriber.

#[path = "gateway/support/mod.rs"]
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::capture::Capture;
use support::{op, Browser, Setup, TestGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN_TOKEN: &str = "admin-token-for-the-hostile-suite-42";

// === Log capture ========================================================================

fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(Capture::install)
}

// === Cases ==============================================================================

enum Req {
    Http {
        method: Method,
        path: String,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    },
    /// Bytes written to a fresh connection as they are (what no HTTP client would send).
    Raw(Vec<u8>),
}

struct Attack {
    name: String,
    req: Req,
    /// The status expected; 0: the connection is closed without a response.
    expect: u16,
}

fn get(name: &str, path: &str, headers: &[(&str, &str)], expect: u16) -> Attack {
    send(name, Method::GET, path, headers, None, expect)
}

fn send(
    name: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    expect: u16,
) -> Attack {
    Attack {
        name: name.to_owned(),
        req: Req::Http {
            method,
            path: path.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
        },
        expect,
    }
}

fn raw(name: &str, bytes: impl Into<Vec<u8>>, expect: u16) -> Attack {
    Attack {
        name: name.to_owned(),
        req: Req::Raw(bytes.into()),
        expect,
    }
}

/// A gateway, a logged-in victim, and what must never leak.
struct Arena {
    gw: TestGateway,
    victim: Browser,
    victim_cookie: String,
}

impl Arena {
    async fn new(setup: Setup) -> Arena {
        logs();
        let gw = TestGateway::start_with(setup).await;
        let victim = gw.logged_in("alice").await;
        let victim_cookie = victim.cookie("tokengate").expect("cookie");
        let arena = Arena {
            gw,
            victim,
            victim_cookie,
        };
        arena.victim_intact("before the attacks").await;
        arena
    }

    async fn with_admin() -> Arena {
        Arena::new(Setup {
            extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\""),
            server_extra: "header_read_timeout = \"2s\"".into(),
            routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                     [[route]]\npath = \"/readonly\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
                     methods = [\"GET\"]\n\n\
                     [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
                .into(),
            ..Setup::default()
        })
        .await
    }

    async fn victim_intact(&self, after: &str) {
        let (status, body) = self.victim.api(&self.gw.url("/api/victim")).await;
        assert_eq!(
            status, 200,
            "the victim's session broke after {after}: {body}"
        );
        assert_eq!(body["token"]["valid"], true, "after {after}: {body}");
    }

    /// Everything that must never appear in a response or a log line.
    async fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            self.victim_cookie.clone(),
            op::CLIENT_SECRET.to_owned(),
            ADMIN_TOKEN.to_owned(),
        ];
        for t in self.gw.op.issued().await {
            for field in ["access_token", "refresh_token", "id_token"] {
                if let Some(v) = t[field].as_str() {
                    // The signature part alone identifies a JWT; the tail any token.
                    secrets.push(v[v.len().saturating_sub(24)..].to_owned());
                }
            }
        }
        secrets
    }

    /// Runs every attack, checks each answer and the victim after it; returns how many.
    async fn run(&self, attacks: Vec<Attack>) -> usize {
        let secrets = self.secrets().await;
        for a in &attacks {
            let (status, text) = match &a.req {
                Req::Http {
                    method,
                    path,
                    headers,
                    body,
                } => self.http(method, path, headers, body.clone()).await,
                Req::Raw(bytes) => self.raw(bytes).await,
            };
            assert_eq!(status, a.expect, "{}: {text}", a.name);
            no_leak(&a.name, &text, &secrets);
            self.victim_intact(&a.name).await;
        }
        attacks.len()
    }

    async fn http(
        &self,
        method: &Method,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        let mut req = support::http_client().request(method.clone(), self.gw.url(path));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let mut text = format!("{:?}\n", resp.headers());
        text.push_str(&resp.text().await.unwrap_or_default());
        (status, text)
    }

    async fn raw(&self, bytes: &[u8]) -> (u16, String) {
        let mut conn = tokio::net::TcpStream::connect(self.gw.addr)
            .await
            .expect("connect");
        conn.write_all(bytes).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(15), conn.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// The end of a family: the logs so far hold none of the secrets either.
    async fn logs_are_clean(&self) {
        let secrets = self.secrets().await;
        let text = logs().text();
        assert!(!text.is_empty(), "logs were captured");
        no_leak("the logs", &text, &secrets);
    }
}

fn no_leak(what: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what}: a secret leaked: …{s}");
    }
    for internal in [
        "/work/",
        "/root/",
        "src/",
        ".rs:",
        "panicked",
        "RUST_BACKTRACE",
    ] {
        assert!(
            !text.contains(internal),
            "{what}: internal detail {internal:?} leaked"
        );
    }
}

fn req_line(path: &str, host: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n").into_bytes()
}

// === Families ===========================================================================

#[tokio::test(flavor = "multi_thread")]
async fn cookies() {
    let a = Arena::new(Setup::default()).await;
    let other = TestGateway::start().await;
    let foreign = other
        .logged_in("alice")
        .await
        .cookie("tokengate")
        .expect("cookie");
    let bob = a.gw.logged_in("bob").await;
    let ended = bob.cookie("tokengate").expect("cookie");
    let resp = bob
        .send(
            Method::POST,
            &a.gw.url("/bff/logout"),
            &[("x-csrf", "1")],
            None,
        )
        .await;
    assert_eq!(resp.status(), 302);
    let v = &a.victim_cookie;
    let mut flipped = v.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let c = |value: &str| format!("tokengate={value}");
    let host = a.gw.addr.to_string();
    let attacks = vec![
        get(
            "tampered",
            "/api/x",
            &[("cookie", &c(&flipped)), ("x-csrf", "1")],
            401,
        ),
        get(
            "truncated",
            "/api/x",
            &[("cookie", &c(&v[..30])), ("x-csrf", "1")],
            401,
        ),
        get(
            "empty",
            "/api/x",
            &[("cookie", "tokengate="), ("x-csrf", "1")],
            401,
        ),
        get(
            "duplicated with another value",
            "/api/x",
            &[
                ("cookie", &format!("{}; tokengate=AAAA", c(v))),
                ("x-csrf", "1"),
            ],
            401,
        ),
        get(
            "oversized",
            "/api/x",
            &[("cookie", &c(&"A".repeat(8000))), ("x-csrf", "1")],
            401,
        ),
        get(
            "from another gateway",
            "/api/x",
            &[("cookie", &c(&foreign)), ("x-csrf", "1")],
            401,
        ),
        get(
            "of an ended session",
            "/api/x",
            &[("cookie", &c(&ended)), ("x-csrf", "1")],
            401,
        ),
        get(
            "a login-state cookie as a session",
            "/bff/user",
            &[
                ("cookie", "tokengate-login-abc=AAAA; tokengate=AAAA"),
                ("x-csrf", "1"),
            ],
            401,
        ),
        get(
            "a well-formed unknown ID",
            "/bff/user",
            &[("cookie", &c(&"B".repeat(43))), ("x-csrf", "1")],
            401,
        ),
        raw(
            "bytes that are not UTF-8",
            req_line(
                "/api/x",
                &host,
                "Cookie: tokengate=\u{00ff}\u{00fe}AAAA\r\nX-CSRF: 1\r\n",
            ),
            401,
        ),
        get(
            "the __Host- name on a plain-http gateway",
            "/api/x",
            &[
                ("cookie", &format!("__Host-Http-tokengate={v}")),
                ("x-csrf", "1"),
            ],
            401,
        ),
    ];
    assert!(a.run(attacks).await >= 11);
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_and_callback() {
    let a = Arena::new(Setup::default()).await;
    // A login started by the attacker, whose state and cookie are then misused.
    let attacker = Browser::default();
    let start = attacker
        .send(Method::GET, &a.gw.url("/bff/login?returnUrl=/"), &[], None)
        .await;
    let location =
        reqwest::Url::parse(start.headers()["location"].to_str().expect("ascii")).expect("url");
    let state = location
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let login_cookie = attacker
        .set_cookies
        .lock()
        .expect("set-cookies")
        .iter()
        .find(|c| c.starts_with("tokengate-login"))
        .and_then(|c| c.split(';').next())
        .expect("login-state cookie")
        .to_owned();
    let cb = |q: &str| format!("/bff/callback?{q}");
    let with_cookie = [("cookie", login_cookie.as_str())];
    let script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let attacks = vec![
        get("no state", &cb("code=x"), &[], 400),
        get(
            "a state of no login here",
            &cb("code=x&state=forged"),
            &[],
            400,
        ),
        get(
            "a real state without its cookie",
            &cb(&format!("code=x&state={state}")),
            &[],
            400,
        ),
        get(
            "the cookie with another state",
            &cb("code=x&state=other"),
            &with_cookie,
            400,
        ),
        get(
            "a foreign issuer (mix-up)",
            &cb(&format!(
                "code=x&state={state}&iss=https%3A%2F%2Fevil.example"
            )),
            &with_cookie,
            400,
        ),
        get(
            "an unknown code",
            &cb(&format!("code=forged&state={state}")),
            &with_cookie,
            400,
        ),
        get(
            "the provider's error with markup",
            &cb(&format!(
                "error=access_denied&error_description={script}&state={state}"
            )),
            &with_cookie,
            400,
        ),
        get(
            "an unknown prompt",
            "/bff/login?returnUrl=/&prompt=create",
            &[],
            400,
        ),
    ];
    let mut count = a.run(attacks).await;

    // The escaped error page.
    let (status, page) = a
        .http(
            &Method::GET,
            &cb(&format!("error=x&error_description={script}&state={state}")),
            &[("cookie".into(), login_cookie.clone())],
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert!(!page.contains("<script>alert"), "{page}");

    // A code replayed: a completed login's callback, played again with its cookie.
    let b = Browser::default();
    let callback = b
        .login_until_callback(&a.gw.url(""), "bob", "bob-password")
        .await;
    let spent = b
        .set_cookies
        .lock()
        .expect("set-cookies")
        .iter()
        .rev()
        .find(|c| c.starts_with("tokengate-login"))
        .and_then(|c| c.split(';').next())
        .expect("login-state cookie")
        .to_owned();
    let landed = b.navigate(&callback).await;
    assert_eq!(landed.url, a.gw.url("/"), "the first use logs in");
    let (status, _) = a
        .http(
            &Method::GET,
            &callback[a.gw.url("").len()..],
            &[("cookie".into(), spent)],
            None,
        )
        .await;
    assert_eq!(status, 400, "the replayed code is refused");
    a.victim_intact("a replayed code").await;
    count += 1;

    // A provider gone wrong: each spoiled ID token refuses the login.
    for mode in [
        "wrong_aud",
        "expired",
        "wrong_nonce",
        "wrong_iss",
        "alg_none",
        "bad_signature",
    ] {
        let resp = support::http_client()
            .post(format!("{}/test/tamper?id_token={mode}", a.gw.op.issuer))
            .send()
            .await
            .expect("tamper");
        assert_eq!(resp.status(), 200);
        let b = Browser::default();
        let landed = b.login(&a.gw.url(""), "bob", "bob-password", "/").await;
        assert_eq!(landed.status, 400, "ID token {mode}: {}", landed.body);
        assert!(
            b.cookie("tokengate").is_none(),
            "ID token {mode} made a session"
        );
        a.victim_intact(mode).await;
        count += 1;
    }
    assert!(count >= 15);
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects() {
    let a = Arena::new(Setup::default()).await;
    let login = |r: &str| format!("/bff/login?returnUrl={r}");
    let long = format!("/{}", "a".repeat(3000));
    let attacks = vec![
        get(
            "absolute URL",
            &login("https%3A%2F%2Fevil.example"),
            &[],
            400,
        ),
        get("scheme-relative", &login("%2F%2Fevil.example"), &[], 400),
        get("backslash", &login("%2F%5Cevil.example"), &[], 400),
        get(
            "encoded slashes without a leading one",
            &login("%252F%252Fevil.example"),
            &[],
            400,
        ),
        get("javascript:", &login("javascript%3Aalert(1)"), &[], 400),
        get(
            "CR/LF",
            &login("%2Fok%0D%0ASet-Cookie%3A%20x%3Dy"),
            &[],
            400,
        ),
        get("tab", &login("%2F%09%2Fevil.example"), &[], 400),
        get("over-long", &login(&long), &[], 400),
        get("a leading space", &login("%20%2Fx"), &[], 400),
        get("data:", &login("data%3Atext%2Fhtml%2C%3Ch1%3E"), &[], 400),
    ];
    let mut count = a.run(attacks).await;
    // The logout redirect cannot be pointed anywhere.
    let b = a.gw.logged_in("bob").await;
    let resp = b
        .send(
            Method::POST,
            &a.gw
                .url("/bff/logout?post_logout_redirect_uri=https%3A%2F%2Fevil.example"),
            &[("x-csrf", "1")],
            None,
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().expect("ascii");
    assert!(!location.contains("evil"), "{location}");
    count += 1;
    assert!(count >= 11);
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn csrf() {
    let a = Arena::new(Setup::default()).await;
    let c = format!("tokengate={}", a.victim_cookie);
    let (_, user) = a.victim.api(&a.gw.url("/bff/user")).await;
    let victim_logout = user["session"]["logout_url"]
        .as_str()
        .expect("logout")
        .to_owned();
    let bob = a.gw.logged_in("bob").await;
    let (_, bob_user) = bob.api(&a.gw.url("/bff/user")).await;
    let bob_logout = bob_user["session"]["logout_url"]
        .as_str()
        .expect("logout")
        .to_owned();
    let attacks = vec![
        get(
            "token route without X-CSRF",
            "/api/x",
            &[("cookie", &c)],
            403,
        ),
        get(
            "X-CSRF: 0",
            "/api/x",
            &[("cookie", &c), ("x-csrf", "0")],
            403,
        ),
        get(
            "a foreign Origin",
            "/api/x",
            &[
                ("cookie", &c),
                ("x-csrf", "1"),
                ("origin", "https://evil.example"),
            ],
            403,
        ),
        get(
            "Origin: null",
            "/api/x",
            &[("cookie", &c), ("x-csrf", "1"), ("origin", "null")],
            403,
        ),
        get(
            "Sec-Fetch-Site: cross-site",
            "/api/x",
            &[
                ("cookie", &c),
                ("x-csrf", "1"),
                ("sec-fetch-site", "cross-site"),
            ],
            403,
        ),
        send(
            "a cross-site POST",
            Method::POST,
            "/api/x",
            &[("cookie", &c), ("content-type", "text/plain")],
            Some(b"x=1".to_vec()),
            403,
        ),
        get(
            "/bff/user without X-CSRF",
            "/bff/user",
            &[("cookie", &c)],
            403,
        ),
        get(
            "/bff/user from a foreign Origin",
            "/bff/user",
            &[
                ("cookie", &c),
                ("x-csrf", "1"),
                ("origin", "https://evil.example"),
            ],
            403,
        ),
        get(
            "logout GET without sid",
            "/bff/logout",
            &[("cookie", &c)],
            400,
        ),
        get(
            "logout GET with another session's sid",
            &bob_logout,
            &[("cookie", &c)],
            400,
        ),
        send(
            "logout POST without X-CSRF",
            Method::POST,
            "/bff/logout",
            &[("cookie", &c)],
            None,
            403,
        ),
    ];
    let count = a.run(attacks).await;
    assert!(count >= 11);
    assert!(victim_logout.contains("sid="));
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http() {
    let a = Arena::with_admin().await;
    let host = a.gw.addr.to_string();
    let c = format!("Cookie: tokengate={}\r\nX-CSRF: 1\r\n", a.victim_cookie);
    let big = "x".repeat(20_000);
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("x-h{i}"), "1".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let smuggle_te_cl = format!(
        "POST /api/x HTTP/1.1\r\nHost: {host}\r\n{c}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /bff/user HTTP/1.1\r\nHost: {host}\r\n\r\n"
    );
    let double_cl = format!(
        "POST /api/x HTTP/1.1\r\nHost: {host}\r\n{c}Content-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"
    );
    let attacks = vec![
        get("a 20 KB header", "/x", &[("x-big", &big)], 431),
        get("150 headers", "/x", &many, 431),
        raw("two Content-Lengths", double_cl, 400),
        raw(
            "CR inside a header value",
            req_line("/api/x", &host, &format!("{c}X-Evil: a\rb\r\n")),
            400,
        ),
        raw(
            "an obsolete folded header",
            req_line("/api/x", &host, &format!("{c}X-Fold: a\r\n b\r\n")),
            400,
        ),
        raw(
            "/api/../bff/user",
            req_line("/api/../bff/user", &host, &c),
            400,
        ),
        raw("%2e%2e", req_line("/api/%2e%2e/bff/user", &host, &c), 400),
        raw("%2E%2E", req_line("/api/%2E%2E", &host, &c), 400),
        raw("a bare dot segment", req_line("/api/./x", &host, &c), 400),
        send(
            "a method the route does not allow",
            Method::DELETE,
            "/readonly/x",
            &[
                ("cookie", &format!("tokengate={}", a.victim_cookie)),
                ("x-csrf", "1"),
            ],
            None,
            405,
        ),
        send(
            "TRACE on /bff/user",
            Method::from_bytes(b"TRACE").expect("m"),
            "/bff/user",
            &[],
            None,
            405,
        ),
        send(
            "a huge back-channel body",
            Method::POST,
            "/bff/backchannel-logout",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(vec![b'a'; 200_000]),
            413,
        ),
        raw(
            "a request line that is not HTTP",
            format!("GARBAGE\r\nHost: {host}\r\n\r\n"),
            400,
        ),
        // Cut off after `server.header_read_timeout` (2 s here), without an answer.
        raw(
            "a slowloris head",
            b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(),
            0,
        ),
    ];
    let mut count = a.run(attacks).await;

    // Content-Length beside Transfer-Encoding: hyper frames by Transfer-Encoding alone
    // (RFC 9112 §6.3) and drops the Content-Length, so the upstream sees one chunked
    // request with an empty body; then it closes the connection (RFC 9112 §6.1), so the
    // bytes after that body are never read as a request by anyone.
    let (status, text) = a.raw(smuggle_te_cl.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "one answer only: {text}"
    );
    let seen = a.gw.upstream.last("/api/x").expect("the first request");
    assert!(
        !seen.headers.contains_key("content-length"),
        "{:?}",
        seen.headers
    );
    assert!(
        a.gw.upstream.last("/bff").is_none(),
        "nothing smuggled upstream"
    );
    count += 1;

    // Path tricks that reach the catch-all `none` route: they must carry no token.
    for (name, path) in [
        ("a double slash", "//api/x"),
        ("a prefix without its boundary", "/apix"),
        ("/bff spelled in another case", "/BFF/user"),
    ] {
        let (status, body) = a
            .http(
                &Method::GET,
                path,
                &[
                    ("cookie".into(), format!("tokengate={}", a.victim_cookie)),
                    ("x-csrf".into(), "1".into()),
                ],
                None,
            )
            .await;
        assert_eq!(status, 200, "{name}");
        let seen = a.gw.upstream.last(path).expect("reached the none route");
        assert!(seen.token.is_none(), "{name} carried a token");
        assert!(!body.contains(&a.victim_cookie), "{name}");
        count += 1;
    }
    assert!(count >= 18);
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backchannel_logout_tokens() {
    let a = Arena::new(Setup::default()).await;
    let (_, user) = a.victim.api(&a.gw.url("/bff/user")).await;
    let sid = user["claims"]["sid"].as_str().expect("sid").to_owned();
    let good = json!({
        "iss": a.gw.op.issuer, "aud": op::CLIENT_ID, "iat": tokengate::session::unix_now(),
        "jti": "hostile-1",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        "sid": sid, "sub": "alice",
    });
    let variant = |k: &str, v: Value| {
        let mut c = good.clone();
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v;
        }
        c
    };
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let post = |name: &str, token: &str| {
        send(
            name,
            Method::POST,
            "/bff/backchannel-logout",
            &form,
            Some(format!("logout_token={token}").into_bytes()),
            400,
        )
    };
    let op = &a.gw.op;
    let mut attacks = vec![
        post(
            "signed by another key",
            &op.sign(json!({}), good.clone(), true).await,
        ),
        post(
            "wrong audience",
            &op.sign(json!({}), variant("aud", json!("x")), false).await,
        ),
        post(
            "wrong issuer",
            &op.sign(json!({}), variant("iss", json!("https://e")), false)
                .await,
        ),
        post(
            "stale iat",
            &op.sign(json!({}), variant("iat", json!(1)), false).await,
        ),
        post(
            "future iat",
            &op.sign(json!({}), variant("iat", json!(4_000_000_000u64)), false)
                .await,
        ),
        post(
            "a nonce",
            &op.sign(json!({}), variant("nonce", json!("n")), false)
                .await,
        ),
        post(
            "no event",
            &op.sign(json!({}), variant("events", Value::Null), false)
                .await,
        ),
        post(
            "no jti",
            &op.sign(json!({}), variant("jti", Value::Null), false).await,
        ),
        post(
            "HS256",
            &op.sign(json!({ "alg": "HS256" }), good.clone(), false)
                .await,
        ),
        post(
            "typ at+jwt (an access token)",
            &op.sign(json!({ "typ": "at+jwt" }), good.clone(), false)
                .await,
        ),
        post("alg none", "eyJhbGciOiJub25lIn0.e30."),
        post("garbage", "not.a.jwt"),
        send(
            "no logout_token",
            Method::POST,
            "/bff/backchannel-logout",
            &form,
            Some(b"x=1".to_vec()),
            400,
        ),
        send(
            "JSON instead of a form",
            Method::POST,
            "/bff/backchannel-logout",
            &[("content-type", "application/json")],
            Some(b"{}".to_vec()),
            400,
        ),
    ];
    attacks.push(send(
        "GET",
        Method::GET,
        "/bff/backchannel-logout",
        &[],
        None,
        405,
    ));
    let count = a.run(attacks).await;
    assert!(count >= 15);
    a.logs_are_clean().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api() {
    let a = Arena::with_admin().await;
    let client = support::http_client();
    let url = |path: &str| a.gw.admin_url(path);
    let status = |r: reqwest::Response| r.status().as_u16();
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "no token",
            client.get(url("/admin/sessions?sub=alice")),
            401,
        ),
        (
            "wrong token",
            client
                .get(url("/admin/sessions?sub=alice"))
                .bearer_auth("nope"),
            401,
        ),
        (
            "token in the query",
            client.get(url(&format!(
                "/admin/sessions?sub=alice&token={ADMIN_TOKEN}"
            ))),
            400,
        ),
        (
            "Basic instead of Bearer",
            client
                .get(url("/admin/sessions?sub=alice"))
                .basic_auth("admin", Some(ADMIN_TOKEN)),
            401,
        ),
        (
            "a lower-case scheme and a prefix of the token",
            client
                .delete(url("/admin/sessions?sub=alice"))
                .header("authorization", format!("bearer {}", &ADMIN_TOKEN[..10])),
            401,
        ),
        (
            "a malformed session id",
            client
                .delete(url("/admin/sessions/xyz"))
                .bearer_auth(ADMIN_TOKEN),
            400,
        ),
    ];
    let secrets = a.secrets().await;
    let mut count = 0;
    for (name, req, expect) in cases {
        let resp = req.send().await.expect("admin request");
        let got = status(resp);
        assert_eq!(got, expect, "{name}");
        a.victim_intact(name).await;
        count += 1;
    }
    // The admin API is not reachable on the public listener: /admin there is just a path
    // of the catch-all route.
    let (code, body) = a
        .http(
            &Method::DELETE,
            "/admin/sessions?sub=alice",
            &[("authorization".into(), format!("Bearer {ADMIN_TOKEN}"))],
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert!(body.contains("\"path\":\"/admin/sessions\""), "{body}");
    assert!(
        a.gw.upstream.last("/admin/sessions").is_some(),
        "proxied, not answered"
    );
    no_leak("admin on the public port", &body, &secrets);
    a.victim_intact("admin on the public port").await;
    count += 1;
    assert!(count >= 7);
    a.logs_are_clean().await;
}
