//! Logging in through the real provider, and what the browser ends up holding.

use crate::support::TestGateway;

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

    // The API call reveals the access token the gateway holds; /bff/user must not.
    let (status, _) = browser.api(&gw.url("/api/who")).await;
    assert_eq!(status, 200);
    let token = gw
        .upstream
        .last("/api/who")
        .and_then(|s| s.token)
        .expect("upstream saw a token");
    let text = user.to_string();
    assert!(!text.contains(&token), "access token leaked to /bff/user");
    assert!(!text.contains("eyJ"), "a JWT leaked to /bff/user: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_cookie_is_httponly_strict_and_opaque() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    let header = browser
        .set_cookie_header("tokengate")
        .expect("Set-Cookie for the session");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(header.contains(attr), "{attr} missing: {header}");
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
