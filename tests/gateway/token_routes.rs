//! Routes whose token is not the user's default one: `client` (the gateway's own
//! client-credentials token) and `resource` (a user token for another audience).

use serde_json::Value;

use crate::support::{op, Setup, TestGateway};

fn routes() -> Setup {
    Setup {
        routes: format!(
            "[[route]]\npath = \"/api\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n\n\
             [[route]]\npath = \"/other\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n\
             resource = \"{}\"\n\n\
             [[route]]\npath = \"/machine\"\nupstream = \"{{upstream}}\"\ntoken = \"client\"\n\
             scopes = [\"api\"]\n",
            op::OTHER_AUDIENCE
        ),
        ..Setup::default()
    }
}

fn verified(seen: &Value) -> &Value {
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    &seen["token"]["claims"]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_route_gets_the_gateways_own_token_cached() {
    let gw = TestGateway::start_with(routes()).await;
    // No browser session is needed or looked at.
    let first: Value = reqwest::get(gw.url("/machine/jobs"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let claims = verified(&first);
    assert_eq!(claims["client_id"], op::CLIENT_ID);
    assert_eq!(claims["aud"], op::API_AUDIENCE);
    assert!(claims.get("sub").is_none_or(|s| s != "alice"), "{claims}");
    let second: Value = reqwest::get(gw.url("/machine/jobs"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(verified(&second)["jti"], claims["jti"], "cached");
    assert_eq!(gw.op.stats().await["grants"]["client_credentials"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_route_gets_a_user_token_for_that_audience() {
    let gw = TestGateway::start_with(routes()).await;
    let b = gw.logged_in("alice").await;
    let (status, other) = b.api(&gw.url("/other/x")).await;
    assert_eq!(status, 200, "{other}");
    let claims = verified(&other);
    assert_eq!(claims["aud"], op::OTHER_AUDIENCE);
    assert_eq!(claims["sub"], "alice");

    let (_, default) = b.api(&gw.url("/api/x")).await;
    assert_eq!(verified(&default)["aud"], op::API_AUDIENCE);
    // The resource token is kept: a second call needs no new grant.
    let grants = gw.op.refresh_grants().await;
    let (_, again) = b.api(&gw.url("/other/y")).await;
    assert_eq!(verified(&again)["jti"], claims["jti"]);
    assert_eq!(gw.op.refresh_grants().await, grants);
}
