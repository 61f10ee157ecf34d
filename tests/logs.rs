//! The logs of a whole session lifecycle, captured at TRACE level for every crate, hold
//! no token, no refresh token, no ID token, no authorization code, no client secret and
//! no session cookie. A test binary of its own: it owns the process's log subscriber.

#[path = "gateway/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use support::capture::Capture;
use support::{op, wait_until, OpOptions, Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_lifecycle_logs_no_secret() {
    let capture = Capture::install();

    const ADMIN_TOKEN: &str = "admin-token-for-the-log-test-0123456789";
    let gw = TestGateway::start_with(Setup {
        op: OpOptions {
            access_token_ttl: 4,
            ..OpOptions::default()
        },
        extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\""),
        routes: format!(
            "[[route]]\npath = \"/api\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n\n\
             [[route]]\npath = \"/other\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n\
             resource = \"{}\"\n\n\
             [[route]]\npath = \"/machine\"\nupstream = \"{{upstream}}\"\ntoken = \"client\"\n",
            op::OTHER_AUDIENCE
        ),
        ..Setup::default()
    })
    .await;

    // Login, calls with every kind of token, a refresh after expiry.
    let alice = gw.logged_in("alice").await;
    let cookie = alice.cookie("tokengate").expect("cookie");
    assert_eq!(alice.api(&gw.url("/api/a")).await.0, 200);
    assert_eq!(alice.api(&gw.url("/other/a")).await.0, 200);
    assert_eq!(
        reqwest::get(gw.url("/machine/a"))
            .await
            .expect("call")
            .status(),
        200
    );
    let grants = gw.op.refresh_grants().await;
    wait_until(Duration::from_secs(20), "a refresh", || async {
        alice.api(&gw.url("/api/b")).await.0 == 200 && gw.op.refresh_grants().await > grants
    })
    .await;

    // Admin listing, back-channel logout of a second session, logout with revocation.
    let (_, user) = alice.api(&gw.url("/bff/user")).await;
    let bob = gw.logged_in("bob").await;
    let bob_cookie = bob.cookie("tokengate").expect("cookie");
    let listing = reqwest::Client::new()
        .get(gw.admin_url("/admin/sessions?sub=alice"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("admin");
    assert_eq!(listing.status(), 200);
    let (_, bob_user) = bob.api(&gw.url("/bff/user")).await;
    let logout_token = gw
        .op
        .sign(
            json!({}),
            json!({
                "iss": gw.op.issuer, "aud": op::CLIENT_ID,
                "iat": tokengate::session::unix_now(), "jti": "log-test-1",
                "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
                "sid": bob_user["claims"]["sid"], "sub": "bob",
            }),
            false,
        )
        .await;
    let bc = reqwest::Client::new()
        .post(gw.url("/bff/backchannel-logout"))
        .form(&[("logout_token", logout_token.as_str())])
        .send()
        .await
        .expect("back-channel");
    assert_eq!(bc.status(), 200);
    let logout = user["session"]["logout_url"].as_str().expect("logout_url");
    let resp = alice
        .send(reqwest::Method::GET, &gw.url(logout), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(gw.op.revocations().await.len(), 1);

    // Every secret that passed through the gateway.
    let mut secrets = vec![
        cookie,
        bob_cookie,
        op::CLIENT_SECRET.to_owned(),
        ADMIN_TOKEN.to_owned(),
        logout_token,
    ];
    for t in gw.op.issued().await {
        for field in ["access_token", "refresh_token", "id_token"] {
            if let Some(v) = t[field].as_str() {
                secrets.push(v.to_owned());
            }
        }
    }
    assert!(secrets.len() >= 10, "tokens were issued: {}", secrets.len());
    gw.stop().await;

    let logs = capture.text();
    assert!(
        logs.len() > 10_000,
        "TRACE logging captured: {} bytes",
        logs.len()
    );
    for secret in &secrets {
        // A token's signature part alone is enough to recognise it.
        let tail = &secret[secret.len().saturating_sub(24)..];
        assert!(
            !logs.contains(tail),
            "a secret ending in …{tail} appears in the logs"
        );
    }
    assert!(!logs.contains("eyJ"), "something JWT-shaped was logged");
}
