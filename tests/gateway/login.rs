//! Logging in through the real provider, and what the browser ends up holding.

use reqwest::{Method, Url};

use crate::support::{Browser, OpOptions, Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn login_gives_claims_at_bff_user_and_no_token() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;

    let (status, user) = browser.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["claims"]["sub"], "alice");
    assert_eq!(user["claims"]["name"], "Alice Example");
    assert_eq!(user["claims"]["email"], "alice@example.test");
    let logout_url = user["session"]["logout_url"].as_str().expect("logout_url");
    assert!(logout_url.starts_with("/bff/logout?sid="), "{logout_url}");
    assert!(user["session"]["expires_at"].as_u64().is_some());

    let text = user.to_string();
    assert!(!text.contains("eyJ"), "a JWT leaked to /bff/user: {text}");

    // The tokens the gateway holds, as the provider issued them; then look for them in
    // everything the browser received, logout included.
    let (status, echo) = browser.api(&gw.url("/api/who")).await;
    assert_eq!(status, 200, "{echo}");
    let issued = gw.op.issued().await;
    let login = issued
        .iter()
        .find(|t| t["grant_type"] == "authorization_code")
        .expect("the provider issued tokens for the login");
    let token = |name: &str| login[name].as_str().expect(name).to_owned();
    let (access, refresh, id_token) = (
        token("access_token"),
        token("refresh_token"),
        token("id_token"),
    );
    assert_eq!(
        gw.upstream.last("/api/who").and_then(|s| s.token),
        Some(access.clone()),
        "the upstream got the access token"
    );
    assert!(
        !echo.to_string().contains(&access),
        "the test upstream must not echo the token"
    );
    let resp = browser
        .send(Method::GET, &gw.url(logout_url), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let end_session = Url::parse(&location).expect("end-session URL");
    assert!(
        end_session
            .query_pairs()
            .any(|(k, v)| k == "client_id" && v == "gateway"),
        "{location}"
    );
    let revoked = gw.op.revocations().await;
    assert_eq!(
        revoked.last().and_then(|r| r["token"].as_str()),
        Some(refresh.as_str()),
        "the refresh token was revoked at logout"
    );
    let set_cookies = browser.set_cookies.lock().expect("set-cookies").join("\n");
    for (what, token) in [
        ("access token", &access),
        ("ID token", &id_token),
        ("refresh token", &refresh),
    ] {
        assert!(token.len() > 20, "{what} looks real: {token}");
        assert!(!text.contains(token.as_str()), "{what} leaked to /bff/user");
        assert!(
            !set_cookies.contains(token.as_str()),
            "{what} leaked into a cookie"
        );
        assert!(
            !location.contains(token.as_str()),
            "{what} leaked into the logout redirect"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_cookie_is_httponly_strict_and_opaque() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    let header = browser
        .set_cookie_header("tokengate")
        .expect("Set-Cookie for the session");
    let attrs: Vec<&str> = header.split(';').map(str::trim).collect();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(&attr), "{attr} missing: {header}");
    }
    // Host-only (no Domain); plain http public_url (local development): no Secure.
    for attr in &attrs[1..] {
        let name = attr.split('=').next().unwrap_or("").to_ascii_lowercase();
        assert!(
            name != "domain" && name != "secure",
            "unexpected {attr}: {header}"
        );
    }
    let value = browser.cookie("tokengate").expect("cookie");
    assert_eq!(value.len(), 43, "a 256-bit random ID, not a token: {value}");
    assert!(value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // The login-state cookie is spent at the callback.
    let jar_has_login_state = browser
        .set_cookies
        .lock()
        .expect("set-cookies")
        .iter()
        .any(|h| h.starts_with("tokengate-login-") && h.contains("Max-Age=0"));
    assert!(
        jar_has_login_state,
        "the login-state cookie is cleared at the callback"
    );
    assert!(
        !browser
            .set_cookies
            .lock()
            .expect("set-cookies")
            .iter()
            .any(|h| h.starts_with("tokengate-login-") && h.contains("SameSite=Strict")),
        "login-state cookies are Lax so the provider's redirect carries them"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_login_makes_a_new_session_id() {
    let gw = TestGateway::start().await;
    let first = gw.logged_in("alice").await;
    let second = gw.logged_in("alice").await;
    assert_ne!(first.cookie("tokengate"), second.cookie("tokengate"));
    // Both sessions work independently.
    assert_eq!(first.api(&gw.url("/bff/user")).await.0, 200);
    assert_eq!(second.api(&gw.url("/bff/user")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_login_renews_the_session_while_the_provider_session_lives() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let old = b.cookie("tokengate").expect("cookie");

    // The browser still has the provider's session cookie: no form is shown.
    let landed = b
        .navigate(&gw.url("/bff/login?returnUrl=%2Fagain&prompt=none"))
        .await;
    assert_eq!(landed.url, gw.url("/again"), "{}", landed.body);
    let new = b.cookie("tokengate").expect("a session after the renewal");
    assert_ne!(new, old, "the renewal makes a new session ID");
    let (status, user) = b.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["claims"]["sub"], "alice");

    // The session the browser had before is over.
    let resp = reqwest::Client::new()
        .get(gw.url("/bff/user"))
        .header("cookie", format!("tokengate={old}"))
        .header("x-csrf", "1")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 401, "the replaced session still works");
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_login_without_a_provider_session_reports_login_required_to_the_spa() {
    let gw = TestGateway::start().await;
    let b = crate::support::Browser::default();
    let landed = b
        .navigate(&gw.url("/bff/login?returnUrl=%2Fapp%3Fx%3D1&prompt=none"))
        .await;
    assert_eq!(
        landed.url,
        gw.url("/app?x=1&error=login_required"),
        "{}",
        landed.body
    );
    assert!(
        b.cookie("tokengate").is_none(),
        "no session without a login"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_https_the_session_cookie_is_host_prefixed_and_secure() {
    let p = crate::support::pki();
    let gw = TestGateway::start_with(crate::support::Setup {
        server_extra: format!(
            "tls = {{ cert = \"{}\", key = \"{}\" }}",
            p.server_cert.display(),
            p.server_key.display()
        ),
        public_scheme: "https",
        ..Default::default()
    })
    .await;
    let base = format!("https://127.0.0.1:{}", gw.addr.port());
    let b = crate::support::Browser::default();
    let landed = b.login(&base, "alice", "alice-password", "/").await;
    assert_eq!(landed.url, format!("{base}/"));
    assert!(
        b.cookie("tokengate").is_none(),
        "no plain-http name on https"
    );
    let set = b
        .set_cookie_header("__Host-Http-tokengate")
        .expect("the __Host- session cookie");
    let attrs: Vec<String> = set
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for required in ["secure", "httponly", "samesite=strict", "path=/"] {
        assert!(attrs.iter().any(|a| a == required), "{required} in {set}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{set}");
    let (status, seen) = b.api(&format!("{base}/api/x")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true);
}

/// Interop: a provider whose discovery promises `iss` (RFC 9207) but whose error responses
/// lack it. Such a response is not trusted — no code could be redeemed from it anyway —
/// yet a silent renewal must not strand the SPA on an error page: the browser goes back
/// to `returnUrl` with the `login_required` the SPA helper handles, and the log says why.
#[tokio::test(flavor = "multi_thread")]
async fn silent_renewal_error_without_the_promised_iss_returns_login_required_and_warns() {
    let gw = TestGateway::start_with(Setup {
        op: OpOptions {
            drop_error_iss: true,
            ..OpOptions::default()
        },
        process: true,
        ..Setup::default()
    })
    .await;
    let discovery: serde_json::Value =
        reqwest::get(format!("{}/.well-known/openid-configuration", gw.op.issuer))
            .await
            .expect("discovery")
            .json()
            .await
            .expect("discovery JSON");
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"], true,
        "the provider promises iss"
    );

    let b = Browser::default();
    let start = gw.url("/bff/login?returnUrl=%2Fapp%3Fx%3D1&prompt=none");
    let to_provider = b.send(Method::GET, &start, &[], None).await;
    assert_eq!(to_provider.status(), 302);
    let authorize = location(&to_provider);
    let to_callback = b.send(Method::GET, &authorize, &[], None).await;
    let callback = Url::parse(&location(&to_callback)).expect("callback URL");
    assert!(
        callback.as_str().starts_with(&gw.url("/bff/callback")),
        "{callback}"
    );
    let params: Vec<(String, String)> = callback.query_pairs().into_owned().collect();
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "error" && v == "login_required"),
        "an error response: {callback}"
    );
    assert!(
        !params.iter().any(|(k, _)| k == "iss" || k == "code"),
        "without iss and without a code: {callback}"
    );

    let landed = b.follow(authorize, to_callback).await;
    assert_eq!(
        landed.url,
        gw.url("/app?x=1&error=login_required"),
        "{}",
        landed.body
    );
    assert!(b.cookie("tokengate").is_none(), "no session");
    let stats = gw.op.stats().await;
    assert_eq!(stats["grants"]["authorization_code"], 0, "{stats}");
    crate::support::wait_until(
        std::time::Duration::from_secs(5),
        "the warning in the gateway's log",
        || async {
            gw.log().lines().any(|l| {
                l.contains("WARN")
                    && l.contains("without the iss the provider promised")
                    && l.contains("login_required")
            })
        },
    )
    .await;
}

/// A provider that promises `iss`: an interactive login's error response without it is
/// still refused with an error page (the user is in front of it and can start again),
/// and so is a silent renewal's answer that carries a code but no `iss`.
#[tokio::test(flavor = "multi_thread")]
async fn responses_without_the_promised_iss_are_refused_outside_silent_errors() {
    let gw = TestGateway::start().await;
    for (start, answer) in [
        ("/bff/login?returnUrl=%2Fapp", "error=access_denied"),
        ("/bff/login?returnUrl=%2Fapp&prompt=none", "code=some-code"),
    ] {
        let b = Browser::default();
        let to_provider = b.send(Method::GET, &gw.url(start), &[], None).await;
        let authorize = Url::parse(&location(&to_provider)).expect("authorize URL");
        let state = authorize
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state");
        let callback = format!(
            "{}?{answer}&state={}",
            gw.url("/bff/callback"),
            crate::support::browser::urlencode(&state)
        );
        let landed = b.navigate(&callback).await;
        assert_eq!(landed.status, 400, "{start} {answer}: {}", landed.body);
        assert!(
            landed.body.contains("lacks the issuer"),
            "{start} {answer}: {}",
            landed.body
        );
        assert!(b.cookie("tokengate").is_none(), "no session");
    }
    // Not even tried: a redeemed `some-code` would show as a refused grant.
    let stats = gw.op.stats().await;
    assert_eq!(stats["grants"]["authorization_code"], 0, "{stats}");
    assert_eq!(stats["grant_errors"], serde_json::json!({}), "{stats}");
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"]
        .to_str()
        .expect("ascii location")
        .to_owned()
}
