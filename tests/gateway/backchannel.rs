//! Back-channel logout: the provider ends a user's sessions at the gateway, and no forged,
//! stale or replayed logout token ends anything.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{now, op, wait_until, Browser, Setup, TestGateway};

/// Claims of a valid logout token for the session `sid` of `sub`.
fn claims(gw: &TestGateway, sid: &str, sub: &str) -> Value {
    json!({
        "iss": gw.op.issuer,
        "aud": op::CLIENT_ID,
        "iat": now(),
        "jti": tokengate::crypto::random_token(),
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        "sid": sid,
        "sub": sub,
    })
}

async fn post_logout_token(gw: &TestGateway, token: &str) -> u16 {
    reqwest::Client::new()
        .post(gw.url("/bff/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .expect("back-channel request")
        .status()
        .as_u16()
}

/// Logs alice's provider session `sid` out through the back channel; returns the token.
async fn log_alice_out(gw: &TestGateway, alice: &Browser, sid: &str) -> String {
    let token = gw.op.sign(json!({}), claims(gw, sid, "alice"), false).await;
    assert_eq!(post_logout_token(gw, &token).await, 200);
    assert_eq!(alice.api(&gw.url("/api/x")).await.0, 401);
    token
}

async fn provider_sid(gw: &TestGateway, b: &Browser) -> String {
    let (status, user) = b.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    user["claims"]["sid"]
        .as_str()
        .expect("the ID token carries the provider's sid")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_out_at_the_provider_ends_the_gateway_session() {
    let gw = TestGateway::start().await;
    let alice = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;
    assert_eq!(alice.api(&gw.url("/api/x")).await.0, 200);

    alice
        .sign_out_at_provider(&gw.op.issuer, op::CLIENT_ID)
        .await;
    wait_until(
        Duration::from_secs(10),
        "a delivered logout token",
        || async { gw.op.stats().await["backchannel_logouts"].as_u64() >= Some(1) },
    )
    .await;
    assert_eq!(alice.api(&gw.url("/api/x")).await.0, 401, "alice is out");
    assert_eq!(alice.api(&gw.url("/bff/user")).await.0, 401);
    assert_eq!(bob.api(&gw.url("/api/x")).await.0, 200, "bob is not");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_logout_tokens_are_400_and_end_nothing() {
    let gw = TestGateway::start().await;
    let alice = gw.logged_in("alice").await;
    let sid = provider_sid(&gw, &alice).await;
    let good = claims(&gw, &sid, "alice");
    let variant = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = good.clone();
        f(c.as_object_mut().expect("object"));
        c
    };
    let cases: Vec<(&str, Value, Value, bool)> = vec![
        ("signed by another key", json!({}), good.clone(), true),
        (
            "wrong audience",
            json!({}),
            variant(&|m| {
                m.insert("aud".into(), json!("another-client"));
            }),
            false,
        ),
        (
            "stale iat",
            json!({}),
            variant(&|m| {
                m.insert("iat".into(), json!(now() - 3600));
            }),
            false,
        ),
        (
            "carries a nonce",
            json!({}),
            variant(&|m| {
                m.insert("nonce".into(), json!("n-0S6_WzA2Mj"));
            }),
            false,
        ),
        (
            "no logout event",
            json!({}),
            variant(&|m| {
                m.remove("events");
            }),
            false,
        ),
        (
            "wrong issuer",
            json!({}),
            variant(&|m| {
                m.insert("iss".into(), json!("https://evil.example"));
            }),
            false,
        ),
        (
            "HMAC with a guessable key",
            json!({ "alg": "HS256" }),
            good.clone(),
            false,
        ),
        (
            "typed as an access token",
            json!({ "typ": "at+jwt" }),
            good.clone(),
            false,
        ),
        (
            "typed as an ID token",
            json!({ "typ": "id_token+jwt" }),
            good.clone(),
            false,
        ),
    ];
    for (what, header, claims, foreign) in cases {
        let token = gw.op.sign(header, claims, foreign).await;
        assert_eq!(post_logout_token(&gw, &token).await, 400, "{what}");
    }
    // `alg: none`, unsigned.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!("{}.{}.", b64(&json!({ "alg": "none" })), b64(&good));
    assert_eq!(post_logout_token(&gw, &unsigned).await, 400, "alg none");
    assert_eq!(post_logout_token(&gw, "not-a-jwt").await, 400, "garbage");

    assert_eq!(
        alice.api(&gw.url("/api/x")).await.0,
        200,
        "no invalid token ended the session"
    );
}

/// Interop: many providers type their logout tokens with the generic `JWT` (Back-Channel
/// Logout 1.0 only recommends `logout+jwt`), some send no `typ`; both must end the session.
#[tokio::test(flavor = "multi_thread")]
async fn logout_tokens_typed_jwt_or_untyped_end_the_session() {
    let gw = TestGateway::start().await;
    let bob = gw.logged_in("bob").await;
    for typ in [json!({ "typ": "JWT" }), json!({ "typ": "jwt" }), json!({})] {
        let alice = gw.logged_in("alice").await;
        let sid = provider_sid(&gw, &alice).await;
        assert_eq!(alice.api(&gw.url("/api/x")).await.0, 200);
        let token = gw
            .op
            .sign(typ.clone(), claims(&gw, &sid, "alice"), false)
            .await;
        assert_eq!(post_logout_token(&gw, &token).await, 200, "header {typ}");
        assert_eq!(
            alice.api(&gw.url("/api/x")).await.0,
            401,
            "header {typ}: alice's session ended"
        );
    }
    assert_eq!(
        bob.api(&gw.url("/api/x")).await.0,
        200,
        "bob's session lives"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_token_works_once() {
    let gw = TestGateway::start().await;
    let alice = gw.logged_in("alice").await;
    let sid = provider_sid(&gw, &alice).await;
    let token = log_alice_out(&gw, &alice, &sid).await;

    // Alice logs in again, silently: the provider session (and so its sid) is the same.
    // The old token played again is refused and her new session lives.
    let landed = alice
        .navigate(&gw.url("/bff/login?prompt=none&returnUrl=/"))
        .await;
    assert_eq!(landed.url, gw.url("/"), "silent login");
    assert_eq!(provider_sid(&gw, &alice).await, sid);
    assert_eq!(post_logout_token(&gw, &token).await, 400, "replayed jti");
    assert_eq!(alice.api(&gw.url("/api/x")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_naming_only_the_user_ends_all_their_sessions() {
    let gw = TestGateway::start().await;
    let phone = gw.logged_in("alice").await;
    let laptop = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;
    let mut c = claims(&gw, "", "alice");
    c.as_object_mut().expect("object").remove("sid");
    let token = gw.op.sign(json!({}), c, false).await;
    assert_eq!(post_logout_token(&gw, &token).await, 200);
    assert_eq!(phone.api(&gw.url("/api/x")).await.0, 401);
    assert_eq!(laptop.api(&gw.url("/api/x")).await.0, 401);
    assert_eq!(bob.api(&gw.url("/api/x")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_signed_with_a_rotated_key_is_accepted_after_a_key_refetch() {
    // The provider restarts with a new signing key; the gateway still holds the old key
    // set and must fetch the new one when a logout token names the new key.
    let state = tempfile::tempdir().expect("tempdir");
    let mut setup = Setup::default();
    setup.op.state_dir = Some(state.path().to_owned());
    let mut gw = TestGateway::start_with(setup).await;
    let alice = gw.logged_in("alice").await;
    let sid = provider_sid(&gw, &alice).await;

    std::fs::remove_file(state.path().join("jwks.json")).expect("old key removed");
    tokio::task::block_in_place(|| gw.op.restart());
    log_alice_out(&gw, &alice, &sid).await;
}
