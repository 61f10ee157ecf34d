//! The admin API: listing and ending a user's sessions, behind the admin token.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Setup, TestGateway};

const ADMIN_TOKEN: &str = "admin-token-for-the-tests-0123456789";

async fn admin(
    gw: &TestGateway,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, gw.admin_url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("admin request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn ending_a_users_sessions_ends_exactly_those() {
    let gw = TestGateway::start_with(Setup {
        extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\""),
        ..Setup::default()
    })
    .await;
    let phone = gw.logged_in("alice").await;
    let laptop = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;
    let list = "/admin/sessions?sub=alice";

    assert_eq!(admin(&gw, Method::GET, list, None).await.0, 401);
    assert_eq!(admin(&gw, Method::GET, list, Some("wrong")).await.0, 401);
    let in_url = format!("{list}&token={ADMIN_TOKEN}");
    assert_eq!(admin(&gw, Method::GET, &in_url, None).await.0, 400);
    assert_eq!(
        admin(&gw, Method::GET, "/admin/sessions", Some(ADMIN_TOKEN))
            .await
            .0,
        400,
        "sub is required"
    );

    let (status, listed) = admin(&gw, Method::GET, list, Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{listed}");
    let sessions = listed["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2, "{listed}");
    assert!(sessions.iter().all(|s| s["sub"] == "alice"));
    assert!(!listed.to_string().contains("eyJ"), "no token: {listed}");
    for b in [&phone, &laptop] {
        let cookie = b.cookie("tokengate").expect("cookie");
        assert!(!listed.to_string().contains(&cookie), "no cookie value");
    }

    let (status, ended) = admin(&gw, Method::DELETE, list, Some(ADMIN_TOKEN)).await;
    assert_eq!((status.as_u16(), &ended["ended"]), (200, &Value::from(2)));
    assert_eq!(phone.api(&gw.url("/api/x")).await.0, 401);
    assert_eq!(laptop.api(&gw.url("/api/x")).await.0, 401);
    assert_eq!(bob.api(&gw.url("/api/x")).await.0, 200, "bob untouched");

    // One session by its id.
    let (_, listed) = admin(
        &gw,
        Method::GET,
        "/admin/sessions?sub=bob",
        Some(ADMIN_TOKEN),
    )
    .await;
    let id = listed["sessions"][0]["id"].as_str().expect("id").to_owned();
    let one = format!("/admin/sessions/{id}");
    assert_eq!(
        admin(&gw, Method::DELETE, &one, Some(ADMIN_TOKEN)).await.0,
        200
    );
    assert_eq!(bob.api(&gw.url("/api/x")).await.0, 401);
    assert_eq!(
        admin(&gw, Method::DELETE, &one, Some(ADMIN_TOKEN)).await.0,
        404
    );

    let metrics = gw.metrics_text().await;
    assert!(
        metrics.contains("tokengate_sessions_ended_total{reason=\"admin\"} 3"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_admin_token_there_is_no_admin_api() {
    let gw = TestGateway::start().await;
    let (status, _) = admin(&gw, Method::GET, "/admin/sessions?sub=alice", Some("x")).await;
    assert_eq!(status, 404);
}
