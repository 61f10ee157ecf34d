//! Refreshing access tokens: after expiry a call carries a fresh token, and concurrent
//! calls of one session share a single refresh grant at the provider.

use std::time::Duration;

use serde_json::Value;

use crate::support::{now, wait_until, OpOptions, Setup, TestGateway};

async fn token_claims(b: &crate::support::Browser, gw: &TestGateway) -> Value {
    let (status, seen) = b.api(&gw.url("/api/token")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    seen["token"]["claims"].clone()
}

/// Waits until the access token with expiry `exp` has expired.
async fn until_expired(exp: u64) {
    wait_until(
        Duration::from_secs(20),
        "access token expiry",
        || async move { now() > exp },
    )
    .await;
}

fn short_lived() -> Setup {
    Setup {
        op: OpOptions {
            access_token_ttl: 5,
            ..OpOptions::default()
        },
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn call_after_expiry_gets_a_fresh_token() {
    let gw = TestGateway::start_with(short_lived()).await;
    let b = gw.logged_in("alice").await;
    let first = token_claims(&b, &gw).await;
    assert_eq!(
        first["exp"].as_u64().expect("exp") - first["iat"].as_u64().expect("iat"),
        5
    );
    until_expired(first["exp"].as_u64().expect("exp")).await;

    let second = token_claims(&b, &gw).await;
    assert_ne!(second["jti"], first["jti"], "a new token after expiry");
    assert!(second["exp"].as_u64() > first["exp"].as_u64());
    assert_eq!(gw.op.refresh_grants().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_after_expiry_share_one_refresh() {
    let gw = TestGateway::start_with(short_lived()).await;
    let b = std::sync::Arc::new(gw.logged_in("alice").await);
    let first = token_claims(&b, &gw).await;
    until_expired(first["exp"].as_u64().expect("exp")).await;
    let before = gw.op.refresh_grants().await;

    let url = gw.url("/api/concurrent");
    let calls = (0..200).map(|_| {
        let b = b.clone();
        let url = url.clone();
        tokio::spawn(async move { b.api(&url).await })
    });
    let results = futures_util::future::join_all(calls).await;
    let mut jtis = std::collections::HashSet::new();
    for r in results {
        let (status, seen) = r.expect("task");
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["token"]["valid"], true, "{seen}");
        jtis.insert(seen["token"]["claims"]["jti"].to_string());
    }
    assert_eq!(
        jtis.len(),
        1,
        "all 200 calls carried the same refreshed token"
    );
    assert!(!jtis.contains(&first["jti"].to_string()));
    assert_eq!(
        gw.op.refresh_grants().await,
        before + 1,
        "exactly one refresh grant"
    );
    // The provider saw no replay, so it did not revoke the grant: the rotated refresh
    // token works at the next expiry too.
    let stats = gw.op.stats().await;
    assert_eq!(stats["grant_errors"], serde_json::json!({}), "{stats}");
    let second = token_claims(&b, &gw).await;
    until_expired(second["exp"].as_u64().expect("exp")).await;
    let third = token_claims(&b, &gw).await;
    assert_ne!(third["jti"], second["jti"]);
    assert_eq!(gw.op.refresh_grants().await, before + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_token_refused_by_provider_ends_the_session() {
    let gw = TestGateway::start_with(short_lived()).await;
    let b = gw.logged_in("alice").await;
    let first = token_claims(&b, &gw).await;
    assert!(gw.op.revoke_refresh_tokens("alice").await >= 1);
    until_expired(first["exp"].as_u64().expect("exp")).await;

    let (status, body) = b.api(&gw.url("/api/after-revoke")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(
        b.api(&gw.url("/bff/user")).await.0,
        401,
        "the session is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_down_at_refresh_is_503_with_retry_after_and_keeps_the_session() {
    let state = tempfile::tempdir().expect("tempdir");
    let mut setup = short_lived();
    setup.op.state_dir = Some(state.path().to_owned());
    let mut gw = TestGateway::start_with(setup).await;
    let b = gw.logged_in("alice").await;
    let first = token_claims(&b, &gw).await;

    tokio::task::block_in_place(|| gw.op.kill());
    until_expired(first["exp"].as_u64().expect("exp")).await;
    let resp = b
        .send(
            reqwest::Method::GET,
            &gw.url("/api/down"),
            &[("x-csrf", "1")],
            None,
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers().contains_key("retry-after"),
        "503 carries Retry-After"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "provider_unavailable");
    assert_eq!(
        b.api(&gw.url("/bff/user")).await.0,
        200,
        "the session is kept"
    );

    // The provider comes back with its state: the kept refresh token works.
    tokio::task::block_in_place(|| gw.op.restart());
    let second = token_claims(&b, &gw).await;
    assert_ne!(second["jti"], first["jti"]);
    assert_eq!(gw.op.refresh_grants().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_post_and_non_rotating_refresh_tokens_work() {
    let gw = TestGateway::start_with(Setup {
        op: OpOptions {
            access_token_ttl: 5,
            rotate_refresh: false,
            client_auth: "client_secret_post",
            ..OpOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let mut last = token_claims(&b, &gw).await;
    // Two refreshes in a row: the second one reuses the refresh token the provider did
    // not replace.
    for round in 1..=2 {
        until_expired(last["exp"].as_u64().expect("exp")).await;
        let next = token_claims(&b, &gw).await;
        assert_ne!(next["jti"], last["jti"], "round {round}: a new token");
        last = next;
    }
    let stats = gw.op.stats().await;
    assert_eq!(stats["grants"]["refresh_token"], 2, "{stats}");
    assert_eq!(stats["grant_errors"], serde_json::json!({}), "{stats}");
    // Both refreshes redeemed the refresh token of the login: the provider never sent
    // another one, or sent the same one back.
    let issued = gw.op.issued().await;
    let original = issued[0]["refresh_token"]
        .as_str()
        .expect("login refresh token");
    for t in issued.iter().filter(|t| t["grant_type"] == "refresh_token") {
        assert!(
            t["refresh_token"].is_null() || t["refresh_token"] == original,
            "{t}"
        );
    }

    // Revocation at logout authenticates the same way.
    let (_, user) = b.api(&gw.url("/bff/user")).await;
    let logout = user["session"]["logout_url"].as_str().expect("logout_url");
    let resp = b
        .send(reqwest::Method::GET, &gw.url(logout), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(gw.op.stats().await["revocations"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_ends_when_its_refresh_token_does() {
    // The provider says its refresh tokens live 3 s (`refresh_expires_in`); the access
    // token would live much longer, but without a way to renew it the session is over.
    let gw = TestGateway::start_with(Setup {
        op: OpOptions {
            refresh_token_ttl: Some(3),
            ..OpOptions::default()
        },
        ..Setup::default()
    })
    .await;
    let login = now();
    let b = gw.logged_in("alice").await;
    assert_eq!(b.api(&gw.url("/api/x")).await.0, 200);
    wait_until(
        Duration::from_secs(20),
        "the refresh token's end",
        || async move { now() > login + 4 },
    )
    .await;
    assert_eq!(b.api(&gw.url("/api/x")).await.0, 401);
    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("tokengate_sessions_ended_total{reason=\"tokens_expired\"} 1"),
        "{metrics}"
    );
}
