//! Refusals: no or bad session cookie, CSRF, open redirects, forged callbacks, logout.

use reqwest::{Method, Url};
use serde_json::Value;

use crate::support::{browser::urlencode, Browser, OpOptions, Setup, TestGateway};

async fn status_with_cookie(gw: &TestGateway, path: &str, cookie: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(gw.url(path))
        .header("cookie", format!("tokengate={cookie}"))
        .header("x-csrf", "1")
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cookie_is_401_json() {
    let gw = TestGateway::start().await;
    let b = Browser::default();
    for path in ["/api/x", "/bff/user"] {
        let (status, body) = b.api(&gw.url(path)).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"], "unauthorized", "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cookies_are_401_and_the_gateway_keeps_serving() {
    let gw = TestGateway::start().await;
    let other = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let foreign = other
        .logged_in("alice")
        .await
        .cookie("tokengate")
        .expect("cookie");
    let good = b.cookie("tokengate").expect("cookie");
    let mut tampered = good.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let random = crate::support::fresh_key().replace(['+', '/', '='], "A")[..43].to_owned();
    let long = "A".repeat(4000);
    for (what, cookie) in [
        ("tampered", tampered.as_str()),
        ("truncated", &good[..20]),
        ("empty", ""),
        ("random", random.as_str()),
        ("from another gateway", foreign.as_str()),
        ("oversized", long.as_str()),
        ("not base64", "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"),
    ] {
        let (status, body) = status_with_cookie(&gw, "/api/x", cookie).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "unauthorized", "{what}");
    }
    // Still serving, and the real session is untouched.
    assert_eq!(status_with_cookie(&gw, "/api/x", &good).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn csrf_header_and_origin_are_enforced() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let no_header = b.send(Method::GET, &gw.url("/api/x"), &[], None).await;
    assert_eq!(no_header.status(), 403);
    assert_eq!(
        no_header.json::<Value>().await.expect("json")["error"],
        "csrf"
    );
    let user_no_header = b.send(Method::GET, &gw.url("/bff/user"), &[], None).await;
    assert_eq!(user_no_header.status(), 403);
    let foreign = b
        .send(
            Method::POST,
            &gw.url("/api/x"),
            &[("x-csrf", "1"), ("origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(foreign.status(), 403);
    let foreign_get = b
        .send(
            Method::GET,
            &gw.url("/api/x"),
            &[("x-csrf", "1"), ("origin", "https://evil.example")],
            None,
        )
        .await;
    assert_eq!(foreign_get.status(), 403, "Origin is checked for GET too");
    let cross_site = b
        .send(
            Method::GET,
            &gw.url("/api/x"),
            &[("x-csrf", "1"), ("sec-fetch-site", "cross-site")],
            None,
        )
        .await;
    assert_eq!(cross_site.status(), 403);
    let own_origin = gw.url("");
    let same = b
        .send(
            Method::POST,
            &gw.url("/api/x"),
            &[("x-csrf", "1"), ("origin", own_origin.as_str())],
            None,
        )
        .await;
    assert_eq!(same.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn return_url_must_stay_on_this_site() {
    let gw = TestGateway::start().await;
    for bad in [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(gw.url(&format!("/bff/login?returnUrl={}", urlencode(bad))))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 400, "{bad}");
        assert!(resp.headers().get("location").is_none(), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_with_a_wrong_state_is_400_and_makes_no_session() {
    let gw = TestGateway::start().await;
    let b = Browser::default();
    // Start a real login so a login-state cookie exists, then answer with another state.
    let resp = b
        .send(Method::GET, &gw.url("/bff/login?returnUrl=/"), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    let resp = b
        .send(
            Method::GET,
            &gw.url("/bff/callback?code=abc&state=not-the-state"),
            &[],
            None,
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        b.cookie("tokengate").is_none(),
        "no session cookie on a forged callback"
    );
    assert_eq!(gw.op.stats().await["grants"]["authorization_code"], 0);
}

/// Starts a login in `b` (so its login-state cookie is set) and returns its `state`.
async fn start_login(gw: &TestGateway, b: &Browser) -> String {
    let resp = b
        .send(Method::GET, &gw.url("/bff/login?returnUrl=/"), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    let authorize =
        Url::parse(resp.headers()["location"].to_str().expect("ascii")).expect("authorization URL");
    assert!(authorize.as_str().starts_with(&gw.op.issuer), "{authorize}");
    authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state")
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_from_another_issuer_is_refused_before_the_code_is_used() {
    let gw = TestGateway::start().await;
    let b = Browser::default();
    let state = start_login(&gw, &b).await;
    let callback = format!(
        "/bff/callback?code=some-code&state={}&iss={}",
        urlencode(&state),
        urlencode("https://evil.example"),
    );
    let resp = b.send(Method::GET, &gw.url(&callback), &[], None).await;
    assert_eq!(resp.status(), 400);
    assert!(b.cookie("tokengate").is_none(), "no session");
    let stats = gw.op.stats().await;
    assert_eq!(
        stats["grant_errors"],
        serde_json::json!({}),
        "the code never reached the provider: {stats}"
    );
    assert_eq!(stats["grants"]["authorization_code"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_error_at_the_callback_is_a_400_page_naming_it_escaped() {
    let gw = TestGateway::start().await;
    let b = Browser::default();
    let state = start_login(&gw, &b).await;
    // The provider's answer for this very login, as a provider sends an error back.
    let callback = format!(
        "/bff/callback?state={}&iss={}&error=access_denied&error_description={}",
        urlencode(&state),
        urlencode(&gw.op.issuer),
        urlencode("<script>alert(1)</script>"),
    );
    let resp = b.send(Method::GET, &gw.url(&callback), &[], None).await;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await.expect("body");
    assert!(html.contains("access_denied"), "names the error: {html}");
    assert!(
        !html.contains("<script>"),
        "provider text unescaped: {html}"
    );
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(b.cookie("tokengate").is_none(), "no session on an error");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_needs_the_sid_then_ends_everything() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let refresh_tokens_before = gw.op.revocations().await.len();

    let no_sid = b.send(Method::GET, &gw.url("/bff/logout"), &[], None).await;
    assert_eq!(no_sid.status(), 400);
    let wrong_sid = b
        .send(Method::GET, &gw.url("/bff/logout?sid=abc"), &[], None)
        .await;
    assert_eq!(wrong_sid.status(), 400);
    assert_eq!(
        b.api(&gw.url("/api/x")).await.0,
        200,
        "session survives a refused logout"
    );

    let (_, user) = b.api(&gw.url("/bff/user")).await;
    let logout = user["session"]["logout_url"]
        .as_str()
        .expect("logout_url")
        .to_owned();
    let cookie = b.cookie("tokengate").expect("cookie");
    let resp = b.send(Method::GET, &gw.url(&logout), &[], None).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(&format!("{}/session/end", gw.op.issuer)),
        "{location}"
    );
    // By default the ID token does not travel through the browser: client_id names us.
    assert!(!location.contains("id_token_hint="), "{location}");
    assert!(location.contains("client_id=gateway"), "{location}");
    assert!(location.contains("post_logout_redirect_uri="), "{location}");
    assert!(b.cookie("tokengate").is_none(), "cookie cleared");
    // The old cookie no longer works, and the refresh token was revoked at the provider.
    assert_eq!(status_with_cookie(&gw, "/api/x", &cookie).await.0, 401);
    let revoked = gw.op.revocations().await;
    assert_eq!(revoked.len(), refresh_tokens_before + 1);
    assert_eq!(
        revoked.last().expect("one")["token_type_hint"],
        "refresh_token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_by_post_needs_the_csrf_header() {
    // With logout_id_token_hint the end-session redirect carries the ID token, for
    // providers that require it.
    let gw = TestGateway::start_with(Setup {
        oidc_extra: "logout_id_token_hint = true".into(),
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let cookie = b.cookie("tokengate").expect("cookie");

    let no_header = b
        .send(Method::POST, &gw.url("/bff/logout"), &[], None)
        .await;
    assert_eq!(no_header.status(), 403);
    assert_eq!(b.api(&gw.url("/api/x")).await.0, 200, "session survives");

    let resp = b.logout(&gw.url("")).await;
    assert_eq!(resp.status(), 302);
    let location = Url::parse(resp.headers()["location"].to_str().expect("ascii")).expect("url");
    let hint = location
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned());
    let issued = gw.op.issued().await;
    assert_eq!(
        hint.as_deref(),
        issued[0]["id_token"].as_str(),
        "{location}"
    );
    assert_eq!(status_with_cookie(&gw, "/api/x", &cookie).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_completes_without_revocation_or_end_session_endpoints() {
    let gw = TestGateway::start_with(Setup {
        op: crate::support::OpOptions {
            disable: "revocation,end_session",
            ..Default::default()
        },
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let cookie = b.cookie("tokengate").expect("cookie");
    let resp = b.logout(&gw.url("")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "/", "a local redirect");
    assert_eq!(status_with_cookie(&gw, "/api/x", &cookie).await.0, 401);
    assert_eq!(gw.op.stats().await["revocations"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_completes_when_the_provider_is_down() {
    let mut gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let cookie = b.cookie("tokengate").expect("cookie");
    tokio::task::block_in_place(|| gw.op.kill());
    let resp = b.logout(&gw.url("")).await;
    assert_eq!(
        resp.status(),
        302,
        "revocation failing does not stop logout"
    );
    assert_eq!(status_with_cookie(&gw, "/api/x", &cookie).await.0, 401);
}

/// Logs `b` out by POST; returns the end-session redirect.
async fn log_out(gw: &TestGateway, b: &Browser) -> String {
    let resp = b
        .send(
            Method::POST,
            &gw.url("/bff/logout"),
            &[("x-csrf", "1"), ("origin", &gw.url(""))],
            None,
        )
        .await;
    assert_eq!(resp.status(), 302);
    resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}

/// Interop: a provider that publishes its revocation endpoint only in its RFC 8414
/// metadata, not in OpenID discovery. Logout still revokes the refresh token there.
#[tokio::test(flavor = "multi_thread")]
async fn logout_revokes_at_an_endpoint_published_only_in_rfc8414_metadata() {
    let gw = TestGateway::start_with(Setup {
        op: OpOptions {
            rfc8414_only: "revocation_endpoint",
            ..OpOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let get = |path: &'static str| {
        let url = format!("{}{path}", gw.op.issuer);
        async move {
            let v: Value = reqwest::get(url)
                .await
                .expect("metadata")
                .json()
                .await
                .expect("metadata JSON");
            v
        }
    };
    let discovery = get("/.well-known/openid-configuration").await;
    assert!(
        discovery.get("revocation_endpoint").is_none(),
        "the case reproduced: {discovery}"
    );
    let rfc8414 = get("/.well-known/oauth-authorization-server").await;
    assert!(rfc8414["revocation_endpoint"].is_string(), "{rfc8414}");

    let b = gw.logged_in("alice").await;
    let refresh = gw
        .op
        .issued()
        .await
        .last()
        .and_then(|t| t["refresh_token"].as_str().map(str::to_owned))
        .expect("the login's refresh token");
    log_out(&gw, &b).await;
    let revoked = gw.op.revocations().await;
    assert_eq!(
        revoked.last().and_then(|r| r["token"].as_str()),
        Some(refresh.as_str()),
        "the refresh token was revoked at the RFC 8414 endpoint: {revoked:?}"
    );
}

/// An endpoint named in the configuration wins over the one discovery publishes.
#[tokio::test(flavor = "multi_thread")]
async fn a_configured_end_session_endpoint_wins_over_discovery() {
    let gw = TestGateway::start_with(Setup {
        oidc_extra: "end_session_endpoint = \"{issuer}/session/end?from=config\"".into(),
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let location = log_out(&gw, &b).await;
    assert!(
        location.starts_with(&format!("{}/session/end?from=config&", gw.op.issuer)),
        "{location}"
    );
    assert_eq!(
        gw.op.revocations().await.len(),
        1,
        "revocation from discovery"
    );
}
