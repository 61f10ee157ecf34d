//! Who may use a route and how they must have signed in, against the real provider:
//! `require` claim rules (403 `forbidden`), `acr` and `max_age` (401 `step_up_required`
//! whose `login_url` the provider honours), the upstream's own RFC 9470 challenge, the
//! `/bff/login` parameters, and claims from the userinfo endpoint.

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::browser::Browser;
use crate::support::op::{self, OpOptions};
use crate::support::{wait_until, Setup, TestGateway};

const ROUTES: &str =
    "[[route]]\npath = \"/api/admin\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     require = { groups = [\"admins\"] }\n\n\
     [[route]]\npath = \"/api/acme\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     require = { tenant = [\"acme\"], email_verified = [true] }\n\n\
     [[route]]\npath = \"/api/globex\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     require = { tenant = [\"globex\"] }\n\n\
     [[route]]\npath = \"/api/pay\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     acr = [\"urn:tokengate:mfa\"]\n\n\
     [[route]]\npath = \"/api/recent\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
     max_age = \"2s\"\n\n\
     [[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
     [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n";

fn setup() -> Setup {
    Setup {
        routes: ROUTES.into(),
        ..Setup::default()
    }
}

/// The `login_url` of a `step_up_required` answer.
fn login_url(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "step_up_required", "{body}");
    body["login_url"].as_str().expect("login_url").to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn require_lets_matching_users_through_and_refuses_the_others() {
    let gw = TestGateway::start_with(setup()).await;
    let alice = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;

    let (status, seen) = alice.api(&gw.url("/api/admin/users")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    let (status, body) = bob.api(&gw.url("/api/admin/users")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("/api/admin"),
        "the route is named: {message}"
    );
    for claim_value in ["staff", "bob", "acme"] {
        assert!(
            !body.to_string().contains(claim_value),
            "no claim value: {body}"
        );
    }
    assert!(
        gw.upstream
            .last("/api/admin/users")
            .is_some_and(|s| { s.token.is_some_and(|t| !t.is_empty()) }),
        "alice's call went through"
    );
    let to_admin = gw
        .upstream
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|s| s.path == "/api/admin/users")
        .count();
    assert_eq!(to_admin, 1, "bob's call never reached the upstream");

    // Scalars and several rules: both are of tenant acme with a verified address.
    for b in [&alice, &bob] {
        assert_eq!(b.api(&gw.url("/api/acme/x")).await.0, 200);
        assert_eq!(b.api(&gw.url("/api/globex/x")).await.0, 403);
    }
    // Without a session it is still a 401, and without X-CSRF a 403 csrf, as on any
    // token route: the rules come after both.
    let anonymous = Browser::default();
    assert_eq!(anonymous.api(&gw.url("/api/admin/x")).await.0, 401);
    let resp = bob
        .send(Method::GET, &gw.url("/api/admin/x"), &[], None)
        .await;
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "csrf");
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_groups_count_from_the_next_refresh() {
    let mut s = setup();
    // A token refreshed every 2 seconds (at half its life).
    s.op = OpOptions {
        access_token_ttl: 4,
        ..OpOptions::default()
    };
    let gw = TestGateway::start_with(s).await;
    let bob = gw.logged_in("bob").await;
    let alice = gw.logged_in("alice").await;
    assert_eq!(bob.api(&gw.url("/api/admin/x")).await.0, 403);
    assert_eq!(alice.api(&gw.url("/api/admin/x")).await.0, 200);

    gw.op
        .set_claims("bob", json!({ "groups": ["staff", "admins"] }))
        .await;
    gw.op
        .set_claims("alice", json!({ "groups": ["staff"] }))
        .await;
    // The sessions still hold the claims of their last grant.
    assert_eq!(bob.api(&gw.url("/api/admin/x")).await.0, 403);
    assert_eq!(alice.api(&gw.url("/api/admin/x")).await.0, 200);

    // A call after the token is due refreshes it; the refreshed ID token's claims judge.
    let refreshes = gw.op.refresh_grants().await;
    wait_until(
        Duration::from_secs(15),
        "both sessions refreshed",
        || async {
            let (a, b) = (
                alice.api(&gw.url("/api/x")).await.0,
                bob.api(&gw.url("/api/x")).await.0,
            );
            assert_eq!((a, b), (StatusCode::OK, StatusCode::OK));
            gw.op.refresh_grants().await >= refreshes + 2
        },
    )
    .await;
    assert_eq!(
        bob.api(&gw.url("/api/admin/x")).await.0,
        200,
        "bob is an admin now"
    );
    assert_eq!(
        alice.api(&gw.url("/api/admin/x")).await.0,
        403,
        "alice is not any more"
    );
    let (_, user) = bob.api(&gw.url("/bff/user")).await;
    assert_eq!(
        user["claims"]["groups"],
        json!(["staff", "admins"]),
        "{user}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_with_acr_asks_for_step_up_and_the_stronger_login_passes() {
    let gw = TestGateway::start_with(setup()).await;
    let alice = gw.logged_in("alice").await;
    let (_, user) = alice.api(&gw.url("/bff/user")).await;
    assert_eq!(user["claims"]["acr"], op::ACR_PASSWORD, "{user}");
    let old_cookie = alice.cookie("tokengate").expect("cookie");

    let resp = alice
        .send(
            Method::GET,
            &gw.url("/api/pay/transfer"),
            &[("x-csrf", "1"), ("referer", &gw.url("/payments?step=2"))],
            None,
        )
        .await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    let url = login_url(status, &body);
    assert_eq!(
        url,
        "/bff/login?acr_values=urn%3Atokengate%3Amfa&returnUrl=%2Fpayments%3Fstep%3D2"
    );
    assert!(
        gw.upstream.last("/api/pay").is_none(),
        "nothing reached the upstream"
    );

    // The provider still has alice's session, but not at that level: it asks again,
    // with the second factor.
    let landed = alice
        .login_from(&gw.url(&url), "alice", "alice-password", Some(op::MFA_CODE))
        .await;
    assert_eq!(landed.url, gw.url("/payments?step=2"));
    assert_ne!(
        alice.cookie("tokengate").expect("cookie"),
        old_cookie,
        "a new session"
    );
    let (status, seen) = alice.api(&gw.url("/api/pay/transfer")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    let (_, user) = alice.api(&gw.url("/bff/user")).await;
    assert_eq!(user["claims"]["acr"], op::ACR_MFA, "{user}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_with_max_age_wants_a_recent_authentication() {
    let gw = TestGateway::start_with(setup()).await;
    let alice = gw.logged_in("alice").await;
    assert_eq!(
        alice.api(&gw.url("/api/recent/x")).await.0,
        200,
        "just signed in"
    );
    // Two seconds on, the sign-in is too old for this route.
    wait_until(Duration::from_secs(10), "the sign-in to age", || async {
        alice.api(&gw.url("/api/recent/x")).await.0 == 401
    })
    .await;
    let (status, body) = alice.api(&gw.url("/api/recent/x")).await;
    let url = login_url(status, &body);
    assert_eq!(url, "/bff/login?max_age=2&returnUrl=%2F");
    // The provider's session is older than that too: it asks for the password again.
    let landed = alice
        .login_from(&gw.url(&url), "alice", "alice-password", None)
        .await;
    assert_eq!(landed.url, gw.url("/"));
    let (status, seen) = alice.api(&gw.url("/api/recent/x")).await;
    assert_eq!(status, 200, "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstreams_rfc_9470_challenge_becomes_step_up_required() {
    let gw = TestGateway::start_with(setup()).await;
    let alice = gw.logged_in("alice").await;
    let (status, body) = alice.api(&gw.url("/api/orders/step-up")).await;
    let url = login_url(status, &body);
    assert_eq!(
        url,
        "/bff/login?acr_values=urn%3Atokengate%3Amfa&returnUrl=%2F"
    );
    assert!(
        gw.upstream.last("/api/orders/step-up").is_some(),
        "the upstream asked"
    );
    // Any other 401 of the upstream goes back to the browser as the upstream gave it.
    let resp = alice.api_response(&gw.url("/api/orders/deny")).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_some());
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "from the upstream");

    alice
        .login_from(&gw.url(&url), "alice", "alice-password", Some(op::MFA_CODE))
        .await;
    let (status, seen) = alice.api(&gw.url("/api/orders/step-up")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["claims"]["acr"], op::ACR_MFA, "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_forwards_the_allow_listed_parameters_and_refuses_others() {
    let gw = TestGateway::start_with(setup()).await;
    let browser = Browser::default();
    let resp = browser
        .send(
            Method::GET,
            &gw.url(
                "/bff/login?returnUrl=%2Fa&prompt=login&login_hint=alice&ui_locales=fr-CA%20en\
                 &acr_values=urn%3Atokengate%3Amfa&max_age=600",
            ),
            &[],
            None,
        )
        .await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()[LOCATION]
        .to_str()
        .expect("location")
        .to_owned();
    let to = reqwest::Url::parse(&location).expect("url");
    assert!(location.starts_with(&gw.op.issuer), "{location}");
    let param = |name: &str| {
        to.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    // The page's prompt joins the configured one (`consent`, for the refresh token).
    assert_eq!(param("prompt").as_deref(), Some("login consent"));
    assert_eq!(param("login_hint").as_deref(), Some("alice"));
    assert_eq!(param("ui_locales").as_deref(), Some("fr-CA en"));
    assert_eq!(param("acr_values").as_deref(), Some("urn:tokengate:mfa"));
    assert_eq!(param("max_age").as_deref(), Some("600"));
    // The provider takes them: its login form comes up.
    let landed = browser
        .follow(
            location.clone(),
            browser.send(Method::GET, &location, &[], None).await,
        )
        .await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert!(
        landed.body.contains("id=\"code\""),
        "the second factor is asked for"
    );

    for refused in [
        "/bff/login?scope=admin",
        "/bff/login?redirect_uri=https%3A%2F%2Fevil.example%2F",
        "/bff/login?prompt=create",
        "/bff/login?prompt=none%20login",
        "/bff/login?max_age=-1",
        "/bff/login?acr_values=%22x%22",
        "/bff/login?login_hint=a%0Ab",
        "/bff/login?prompt=login&prompt=none",
    ] {
        let resp = browser.send(Method::GET, &gw.url(refused), &[], None).await;
        assert_eq!(resp.status(), 400, "{refused}");
        assert!(resp.headers().get(LOCATION).is_none(), "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_claims_join_the_id_tokens_and_are_fetched_again_after_a_refresh() {
    let routes = format!(
        "[[route]]\npath = \"/api/admin\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n\
         resource = \"{aud}\"\nrequire = {{ groups = [\"admins\"] }}\n\n\
         [[route]]\npath = \"/api\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\nresource = \"{aud}\"\n\n\
         [[route]]\npath = \"/me\"\nupstream = \"{{upstream}}\"\ntoken = \"user\"\n",
        aud = op::API_AUDIENCE
    );
    let op_options = OpOptions {
        userinfo_claims: true,
        access_token_ttl: 4,
        ..OpOptions::default()
    };
    // Without oidc.userinfo, the ID token alone: no groups, no e-mail.
    let plain = TestGateway::start_with(Setup {
        routes: routes.clone(),
        op: op_options.clone(),
        ..Setup::default()
    })
    .await;
    let alice = plain.logged_in("alice").await;
    let (_, user) = alice.api(&plain.url("/bff/user")).await;
    assert_eq!(user["claims"]["sub"], "alice", "{user}");
    assert!(user["claims"].get("email").is_none(), "{user}");
    assert_eq!(alice.api(&plain.url("/api/admin/x")).await.0, 403);
    drop(plain);

    let gw = TestGateway::start_with(Setup {
        routes,
        op: op_options,
        oidc_extra: "userinfo = true".into(),
        ..Setup::default()
    })
    .await;
    let alice = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;
    let (_, user) = alice.api(&gw.url("/bff/user")).await;
    assert_eq!(user["claims"]["email"], "alice@example.test", "{user}");
    assert_eq!(
        user["claims"]["groups"],
        json!(["staff", "admins"]),
        "{user}"
    );
    let (status, seen) = alice.api(&gw.url("/api/admin/x")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen["token"]["valid"], true,
        "the route's audience token: {seen}"
    );
    assert_eq!(bob.api(&gw.url("/api/admin/x")).await.0, 403);

    // After a refresh of the session's own token (the one without an audience, which
    // `/me` carries), userinfo is asked again.
    gw.op
        .set_claims("bob", json!({ "groups": ["admins"] }))
        .await;
    wait_until(
        Duration::from_secs(15),
        "bob's claims refreshed",
        || async {
            assert_eq!(bob.api(&gw.url("/me")).await.0, 200);
            let (_, user) = bob.api(&gw.url("/bff/user")).await;
            user["claims"]["groups"] == json!(["admins"])
        },
    )
    .await;
    assert_eq!(bob.api(&gw.url("/api/admin/x")).await.0, 200);
}
