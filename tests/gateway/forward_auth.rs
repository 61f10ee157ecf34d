//! Forward auth: a real nginx routes, tokengate answers its `auth_request` subrequests on
//! the forward-auth listener (examples/nginx/forward-auth.conf, the same directives).
//! Login goes through nginx to tokengate's public listener; API calls go from nginx to the
//! verifying upstream with the token tokengate handed back; refusals reach the browser as
//! tokengate's JSON. And the Traefik form of the question, asked directly.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::browser::Browser;
use crate::support::nginx::{free_addr, Nginx};
use crate::support::op::{OpOptions, ACR_MFA};
use crate::support::{http_client, now, wait_until, Setup, TestGateway};

/// The server block of examples/nginx/forward-auth.conf without TLS: `/bff/` to the
/// public listener, `/api/` behind `auth_request`, `/` straight to the upstream (the SPA).
const NGINX: &str = r#"
map $tokengate_error $tokengate_refusal {
    ""      '{"error":"forward_auth_unavailable","message":"the gateway could not be asked"}';
    default $tokengate_error;
}
server {
    listen @LISTEN@;

    location /bff/ {
        proxy_pass http://@GATEWAY@;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }

    location /api/ {
        auth_request /_tokengate;
        auth_request_set $tokengate_authorization $upstream_http_authorization;
        auth_request_set $tokengate_dpop $upstream_http_dpop;
        auth_request_set $tokengate_cookie $upstream_http_cookie;
        auth_request_set $tokengate_error $upstream_http_x_tokengate_error;
        error_page 401 = @tokengate_401;
        error_page 403 = @tokengate_403;
        error_page 500 = @tokengate_500;
        proxy_set_header Authorization $tokengate_authorization;
        proxy_set_header DPoP $tokengate_dpop;
        proxy_set_header Cookie $tokengate_cookie;
        proxy_pass http://@API@;
    }

    location = /_tokengate {
        internal;
        proxy_pass http://@FORWARD_AUTH@;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header X-Original-URI $request_uri;
        proxy_set_header X-Original-Method $request_method;
    }

    location @tokengate_401 {
        default_type application/json;
        add_header Cache-Control "no-store" always;
        return 401 $tokengate_refusal;
    }
    location @tokengate_403 {
        default_type application/json;
        add_header Cache-Control "no-store" always;
        return 403 $tokengate_refusal;
    }
    location @tokengate_500 {
        default_type application/json;
        add_header Cache-Control "no-store" always;
        return 500 $tokengate_refusal;
    }

    location / {
        proxy_pass http://@API@;
    }
}
"#;

/// `/api/pay` wants a second factor; `/api/read` takes GET only; the rest of `/api` any
/// session; `/` no token.
const ROUTES: &str =
    "[[route]]\npath = \"/api/pay\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     acr = [\"urn:tokengate:mfa\"]\n\n\
     [[route]]\npath = \"/api/read\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     methods = [\"GET\"]\n\n\
     [[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
     [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n";

/// nginx in front of a gateway with a forward-auth listener.
struct Front {
    gw: TestGateway,
    nginx: Nginx,
    forward_auth: SocketAddr,
}

impl Front {
    async fn start(mut setup: Setup) -> Front {
        let public = free_addr();
        let forward_auth = free_addr();
        setup.public_origin = Some(format!("http://{public}"));
        setup.extra = format!(
            "{}\n[forward_auth]\nlisten = \"{forward_auth}\"\n",
            setup.extra
        );
        let gw = TestGateway::start_with(setup).await;
        let conf = NGINX
            .replace("@GATEWAY@", &gw.addr.to_string())
            .replace("@FORWARD_AUTH@", &forward_auth.to_string())
            .replace("@API@", &gw.upstream.addr.to_string());
        let nginx = Nginx::start(public, &conf).await;
        Front {
            gw,
            nginx,
            forward_auth,
        }
    }

    fn url(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// A browser logged in through nginx, landed on nginx's `/`.
    async fn logged_in(&self, user: &str) -> Browser {
        let b = Browser::default();
        let landed = b
            .login(&self.url(""), user, &format!("{user}-password"), "/")
            .await;
        assert_eq!(landed.url, self.url("/"), "login through nginx lands on /");
        assert_eq!(landed.status, 200, "{}", landed.body);
        assert!(b.cookie("tokengate").is_some(), "the session cookie is set");
        b
    }
}

fn setup() -> Setup {
    Setup {
        routes: ROUTES.into(),
        ..Setup::default()
    }
}

/// The names of the cookies in a request's `Cookie` headers.
fn cookie_names(headers: &http::HeaderMap) -> Vec<String> {
    let text: Vec<String> = headers
        .get_all(COOKIE.as_str())
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    text.iter()
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.split('=').next().map(|n| n.trim().to_owned()))
        .filter(|n| !n.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_api_calls_carry_the_users_verified_token() {
    let front = Front::start(setup()).await;
    let b = front.logged_in("alice").await;

    let resp = b
        .send(
            Method::GET,
            &front.url("/api/items?page=2"),
            &[("x-csrf", "1"), ("cookie", "app-pref=dark")],
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get(AUTHORIZATION).is_none(),
        "the browser never sees a token"
    );
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    assert_eq!(seen["query"], "page=2", "{seen}");

    // What the upstream received, checked again the way an API checks it.
    let call = front
        .gw
        .upstream
        .last("/api/items")
        .expect("the call arrived");
    let token = call.token.as_deref().expect("a bearer token");
    assert_eq!(
        call.headers[AUTHORIZATION.as_str()]
            .to_str()
            .expect("ascii")
            .split(' ')
            .next(),
        Some("Bearer")
    );
    let claims = front.gw.upstream.verify(token).await.expect("valid token");
    assert_eq!(claims["sub"], "alice", "{claims}");
    // The session cookie stays between the browser and the gateway; the app's own goes on.
    let names = cookie_names(&call.headers);
    assert!(
        names.iter().all(|n| !n.starts_with("tokengate")),
        "{names:?}"
    );
    assert!(names.contains(&"app-pref".to_owned()), "{names:?}");

    // Another user's call carries that user's token.
    let bob = front.logged_in("bob").await;
    let (status, seen) = bob.api(&front.url("/api/whoami")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["claims"]["sub"], "bob", "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_refusals_reach_the_browser_as_the_gateways_json() {
    let front = Front::start(setup()).await;

    // No session: 401, the proxy's JSON, and nothing reached the upstream.
    let stranger = Browser::default();
    let resp = stranger.api_response(&front.url("/api/items")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    assert!(resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json")));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(front.gw.upstream.last("/api/items").is_none());

    // A session, but no X-CSRF: 403 csrf.
    let b = front.logged_in("alice").await;
    let resp = b
        .send(Method::GET, &front.url("/api/items"), &[], None)
        .await;
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "csrf", "{body}");

    // A route that wants a second factor: 401 step_up_required with its login URL.
    let (status, body) = b.api(&front.url("/api/pay/now")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "step_up_required", "{body}");
    let login_url = body["login_url"].as_str().expect("login_url");
    assert!(
        login_url.starts_with("/bff/login?") && login_url.contains("acr_values="),
        "{login_url}"
    );
    let stepped = b
        .login_from(
            &front.url(login_url),
            "alice",
            "alice-password",
            Some(crate::support::op::MFA_CODE),
        )
        .await;
    assert_eq!(stepped.status, 200, "{}", stepped.body);
    let (status, seen) = b.api(&front.url("/api/pay/now")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["claims"]["acr"], ACR_MFA, "{seen}");

    // A refusal that auth_request cannot pass on (405 here): nginx's 500, with the
    // gateway's JSON naming the cause.
    let resp = b
        .send(
            Method::POST,
            &front.url("/api/read/x"),
            &[("x-csrf", "1")],
            None,
        )
        .await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "method_not_allowed", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_fifty_calls_at_expiry_share_one_refresh() {
    let front = Front::start(Setup {
        op: OpOptions {
            access_token_ttl: 5,
            ..OpOptions::default()
        },
        ..setup()
    })
    .await;
    let b = Arc::new(front.logged_in("alice").await);
    let (status, first) = b.api(&front.url("/api/first")).await;
    assert_eq!(status, 200, "{first}");
    let exp = first["token"]["claims"]["exp"].as_u64().expect("exp");
    wait_until(
        Duration::from_secs(20),
        "access token expiry",
        || async move { now() > exp },
    )
    .await;
    let before = front.gw.op.refresh_grants().await;

    let calls = (0..50).map(|i| {
        let b = b.clone();
        let url = front.url(&format!("/api/concurrent/{i}"));
        tokio::spawn(async move { b.api(&url).await })
    });
    let mut jtis = HashSet::new();
    for call in futures_util::future::join_all(calls).await {
        let (status, seen) = call.expect("task");
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["token"]["valid"], true, "{seen}");
        jtis.insert(seen["token"]["claims"]["jti"].to_string());
    }
    assert_eq!(jtis.len(), 1, "every call carried the one refreshed token");
    assert!(!jtis.contains(&first["token"]["claims"]["jti"].to_string()));
    assert_eq!(
        front.gw.op.refresh_grants().await,
        before + 1,
        "exactly one refresh grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_nginx_a_dpop_bound_session_sends_a_proof_for_the_upstream_url() {
    let front = Front::start(Setup {
        op: OpOptions {
            dpop: true,
            ..OpOptions::default()
        },
        oidc_extra: "dpop = true".into(),
        ..setup()
    })
    .await;
    let b = front.logged_in("alice").await;
    let (status, seen) = b.api(&front.url("/api/bound?x=1")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["scheme"], "DPoP", "{seen}");
    assert_eq!(seen["dpop"]["valid"], true, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forward_auth_answers_are_never_served_on_the_public_side() {
    let front = Front::start(setup()).await;
    let b = front.logged_in("alice").await;
    let session = b.cookie("tokengate").expect("session cookie");

    // nginx keeps its subrequest location internal.
    let resp = b.api_response(&front.url("/_tokengate")).await;
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get(AUTHORIZATION).is_none());

    // The gateway's public listener takes a forward-auth question for an ordinary request:
    // proxied by its route (`/`, no token), never answered with a token.
    let client = http_client();
    for path in ["/_tokengate", "/", "/api/items"] {
        let resp = client
            .get(front.gw.url(path))
            .header(COOKIE, format!("tokengate={session}"))
            .header("x-csrf", "1")
            .header("x-original-method", "GET")
            .header("x-original-uri", "/api/items")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/api/items")
            .send()
            .await
            .expect("request");
        assert!(resp.headers().get(AUTHORIZATION).is_none(), "{path}");
        assert!(resp.headers().get("dpop").is_none(), "{path}");
        let status = resp.status();
        let body = resp.text().await.expect("body");
        assert!(!body.contains("eyJ"), "{path}: no token in {body}");
        if path == "/api/items" {
            // A token route proxies as ever: the token goes upstream, not back.
            assert_eq!(status, 200, "{body}");
            let seen: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(seen["path"], "/api/items");
        } else {
            assert_eq!(status, 200, "{path}: {body}");
            let seen: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(seen["path"], path, "proxied to the upstream: {body}");
            assert_eq!(seen["token"]["valid"], false, "no token on `/`: {body}");
        }
    }

    // The forward-auth listener is the only one that answers with the token.
    let resp = client
        .get(format!("http://{}/", front.forward_auth))
        .header(COOKIE, format!("tokengate={session}"))
        .header("x-csrf", "1")
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/items")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get(AUTHORIZATION).is_some());
}

/// The Traefik form (`X-Forwarded-Method`, `X-Forwarded-Uri`), asked directly, without an
/// ingress: every answer the forward-auth listener gives.
#[tokio::test(flavor = "multi_thread")]
async fn traefik_form_asked_directly() {
    let forward_auth = free_addr();
    let gw = TestGateway::start_with(Setup {
        extra: format!("[forward_auth]\nlisten = \"{forward_auth}\"\n"),
        ..setup()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let session = format!("tokengate={}", b.cookie("tokengate").expect("cookie"));
    let origin = format!("http://{}", gw.addr);
    let client = http_client();
    let ask = |method: &str, uri: &str, extra: &[(&str, &str)]| {
        let mut req = client
            .get(format!("http://{forward_auth}/"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", uri);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let refusal = |resp: reqwest::Response| async move {
        let status = resp.status();
        let header = resp
            .headers()
            .get("x-tokengate-error")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body: Value = resp.json().await.expect("json");
        let header: Value =
            serde_json::from_str(&header.expect("x-tokengate-error")).expect("json");
        assert_eq!(header, body, "the header repeats the body");
        (status, body)
    };

    // Allowed: the user's bearer, the other cookies, never cached.
    let resp = ask(
        "GET",
        "/api/items?x=1",
        &[
            ("cookie", &format!("{session}; app-pref=dark")),
            ("x-csrf", "1"),
            ("origin", &origin),
        ],
    )
    .await
    .expect("ask");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(resp.headers()[COOKIE], "app-pref=dark");
    let bearer = resp.headers()[AUTHORIZATION].to_str().expect("ascii");
    let token = bearer.strip_prefix("Bearer ").expect("a bearer token");
    let claims = gw.upstream.verify(token).await.expect("valid");
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert!(resp.text().await.expect("body").is_empty());

    // Only the gateway's cookie: no Cookie to send upstream at all.
    let resp = ask(
        "GET",
        "/api/items",
        &[("cookie", &session), ("x-csrf", "1")],
    )
    .await
    .expect("ask");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get(COOKIE).is_none());

    // `token = "none"`: allowed, no token.
    let resp = ask("GET", "/index.html", &[("cookie", &session)])
        .await
        .expect("ask");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get(AUTHORIZATION).is_none());

    // The proxy's refusals, each with its JSON.
    for (what, method, uri, headers, status, error) in [
        (
            "no session",
            "GET",
            "/api/x",
            vec![("x-csrf", "1")],
            401,
            "unauthorized",
        ),
        (
            "no X-CSRF",
            "GET",
            "/api/x",
            vec![("cookie", session.as_str())],
            403,
            "csrf",
        ),
        (
            "a foreign Origin",
            "GET",
            "/api/x",
            vec![
                ("cookie", session.as_str()),
                ("x-csrf", "1"),
                ("origin", "https://evil.example"),
            ],
            403,
            "csrf",
        ),
        (
            "a method the route does not take",
            "DELETE",
            "/api/read/1",
            vec![("cookie", session.as_str()), ("x-csrf", "1")],
            405,
            "method_not_allowed",
        ),
        (
            "a WebSocket handshake on a route without websocket",
            "GET",
            "/api/feed",
            vec![
                ("cookie", session.as_str()),
                ("origin", origin.as_str()),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-websocket-version", "13"),
            ],
            403,
            "upgrade_refused",
        ),
        (
            "a second factor",
            "GET",
            "/api/pay/x",
            vec![("cookie", session.as_str()), ("x-csrf", "1")],
            401,
            "step_up_required",
        ),
        (
            "the gateway's own path",
            "GET",
            "/bff/user",
            vec![],
            404,
            "not_found",
        ),
        (
            "dot segments",
            "GET",
            "/api/../bff/user",
            vec![("cookie", session.as_str()), ("x-csrf", "1")],
            400,
            "bad_request",
        ),
        ("a bad method", "G T", "/api/x", vec![], 400, "bad_request"),
        ("a bad URI", "GET", "api/x", vec![], 400, "bad_request"),
    ] {
        let resp = ask(method, uri, &headers).await.expect("ask");
        assert!(resp.headers().get(AUTHORIZATION).is_none(), "{what}");
        let (got, body) = refusal(resp).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert_eq!(body["error"], error, "{what}: {body}");
    }

    // Not named, or named both ways: 400.
    let resp = client
        .get(format!("http://{forward_auth}/"))
        .header(COOKIE, &session)
        .header("x-csrf", "1")
        .send()
        .await
        .expect("ask");
    assert_eq!(refusal(resp).await.0, StatusCode::BAD_REQUEST);
    let resp = ask(
        "GET",
        "/",
        &[
            ("cookie", &session),
            ("x-csrf", "1"),
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/items"),
        ],
    )
    .await
    .expect("ask");
    assert_eq!(refusal(resp).await.0, StatusCode::BAD_REQUEST);

    // Each answer counts under its route.
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("tokengate_responses_total{route=\"/api\",status=\"2xx\"} 2"),
        "{metrics}"
    );
}
