//! Gateways on Redis (a real `redis-server`, a real 3-node Cluster): the login, refresh
//! and logout suite; several instances sharing sessions, one refresh and logouts; Redis
//! going away and coming back; key rotation over stored records.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokengate::session::{unix_now, SessionId};

use crate::support::redis::{RedisCluster, RedisServer};
use crate::support::{
    fresh_key, status_of, wait_until, Browser, OpOptions, Setup, Store, TestGateway,
};

fn on(store: Store, access_token_ttl: u64) -> Setup {
    Setup {
        op: OpOptions {
            access_token_ttl,
            ..OpOptions::default()
        },
        store,
        ..Setup::default()
    }
}

async fn token(b: &Browser, url: &str) -> Value {
    let (status, seen) = b.api(url).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    seen["token"]["claims"].clone()
}

async fn until_expired(claims: &Value) {
    let exp = claims["exp"].as_u64().expect("exp");
    wait_until(
        Duration::from_secs(30),
        "access token expiry",
        || async move { unix_now() > exp },
    )
    .await;
}

/// Login, a refresh after expiry, logout: what every store must carry.
async fn login_refresh_logout(store: Store) {
    let gw = TestGateway::start_with(on(store, 3)).await;
    let b = gw.logged_in("alice").await;
    let first = token(&b, &gw.url("/api/first")).await;
    until_expired(&first).await;
    let second = token(&b, &gw.url("/api/second")).await;
    assert_ne!(second["jti"], first["jti"], "a refreshed token");
    assert_eq!(gw.op.refresh_grants().await, 1);

    let (_, user) = b.api(&gw.url("/bff/user")).await;
    let logout = user["session"]["logout_url"].as_str().expect("logout_url");
    let resp = b
        .send(reqwest::Method::GET, &gw.url(logout), &[], None)
        .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(b.api(&gw.url("/bff/user")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refresh_logout_on_redis_standalone() {
    let server = tokio::task::block_in_place(RedisServer::start);
    login_refresh_logout(Store::Redis(server.url())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refresh_logout_on_a_redis_cluster() {
    let cluster = tokio::task::block_in_place(RedisCluster::start);
    login_refresh_logout(Store::RedisCluster(cluster.urls())).await;
}

/// Three instances, a provider that rotates refresh tokens and revokes the whole grant on
/// a replay: 300 concurrent calls of one session after expiry, spread over the three, make
/// exactly one refresh grant and all succeed with the same new token.
#[tokio::test(flavor = "multi_thread")]
async fn three_instances_refresh_a_session_once() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let mut setup = on(Store::Redis(server.url()), 10);
    assert!(setup.op.rotate_refresh, "replay detection is on");
    // The refreshed token is due again only 9 s later: longer than the burst takes.
    setup.extra = "[tokens]\nrefresh_before_expiry = \"1s\"\n".into();
    let gw = TestGateway::start_with(setup).await;
    let (b1, b2) = (gw.another().await, gw.another().await);
    let bases = [gw.url(""), b1.url(""), b2.url("")];
    let browser = Arc::new(gw.logged_in("alice").await);
    let first = token(&browser, &gw.url("/api/first")).await;
    until_expired(&first).await;
    let before = gw.op.refresh_grants().await;

    let calls = (0..300).map(|i| {
        let (b, url) = (browser.clone(), format!("{}/api/many/{i}", bases[i % 3]));
        tokio::spawn(async move { b.api(&url).await })
    });
    let mut jtis = HashSet::new();
    for r in futures_util::future::join_all(calls).await {
        let (status, seen) = r.expect("task");
        assert_eq!(status, 200, "{seen}");
        assert_eq!(seen["token"]["valid"], true, "{seen}");
        jtis.insert(seen["token"]["claims"]["jti"].to_string());
    }
    assert_eq!(
        gw.op.refresh_grants().await,
        before + 1,
        "exactly one refresh grant"
    );
    assert_eq!(jtis.len(), 1, "all 300 calls carried the one new token");
    assert!(!jtis.contains(&first["jti"].to_string()));
    let stats = gw.op.stats().await;
    assert_eq!(stats["grant_errors"], serde_json::json!({}), "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_on_one_instance_is_refused_by_another_within_a_second() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let gw = TestGateway::start_with(on(Store::Redis(server.url()), 300)).await;
    let other = gw.another().await;
    let b = gw.logged_in("alice").await;
    // The other instance has the session in its cache.
    assert_eq!(b.api(&other.url("/api/cached")).await.0, 200);
    assert_eq!(b.api(&other.url("/bff/user")).await.0, 200);

    let cookie = b.cookie("tokengate").expect("cookie");
    let resp = b.logout(&gw.url("")).await;
    assert_eq!(resp.status(), 302);
    let ended = Instant::now();
    let stale = Browser::default();
    stale.set_cookie("tokengate", &cookie);
    wait_until(
        Duration::from_secs(1),
        "the other instance to refuse the ended session",
        || async { stale.api(&other.url("/api/after-logout")).await.0 == 401 },
    )
    .await;
    assert!(ended.elapsed() <= Duration::from_secs(1));
    assert_eq!(stale.api(&other.url("/bff/user")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_is_503_and_the_same_session_works_when_it_returns() {
    let mut server = tokio::task::block_in_place(RedisServer::start);
    let gw = TestGateway::start_with(on(Store::Redis(server.url()), 300)).await;
    let b = gw.logged_in("alice").await;
    assert_eq!(b.api(&gw.url("/api/before")).await.0, 200);

    tokio::task::block_in_place(|| server.stop_saving());
    wait_until(
        Duration::from_secs(5),
        "503 while Redis is down",
        || async { b.api(&gw.url("/api/down")).await.0 == 503 },
    )
    .await;
    let resp = b.api_response(&gw.url("/api/down")).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"], "store_unavailable", "{body}");
    let readyz = reqwest::get(gw.admin_url("/readyz")).await.expect("readyz");
    assert_eq!(readyz.status(), 503);
    let ready: Value = readyz.json().await.expect("json");
    assert_eq!(ready["store"], false, "{ready}");
    let healthz = reqwest::get(gw.admin_url("/healthz"))
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200, "the process is up");

    tokio::task::block_in_place(|| server.restart());
    wait_until(Duration::from_secs(10), "service to resume", || async {
        b.api(&gw.url("/api/back")).await.0 == 200
    })
    .await;
    let (status, user) = b.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["claims"]["sub"], "alice");
    assert_eq!(status_of(&gw.admin_url("/readyz")).await, 200);
}

/// The key id an envelope names: bytes 1..5, the first four bytes of SHA-256 of the key.
fn key_id(key_b64: &str) -> Vec<u8> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .expect("base64 key");
    Sha256::digest(key)[..4].to_vec()
}

/// Instances with rotated key rings, on one store: a record sealed under the old key is
/// read after a new first key is added, re-sealed under the new key on its next write,
/// and a ring without its key reads it as no session.
#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_reads_old_records_reseals_them_and_drops_unknown_keys() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let (old, new, unrelated) = (fresh_key(), fresh_key(), fresh_key());
    let mut setup = on(Store::Redis(server.url()), 300);
    setup.key = Some(old.clone());
    // A short idle timeout makes every use after a second write `last_seen` back.
    setup.session_extra = "idle_timeout = \"20s\"\n".into();
    let gw = TestGateway::start_with(setup).await;
    let b = gw.logged_in("alice").await;
    let store_key = SessionId::parse(&b.cookie("tokengate").expect("cookie"))
        .expect("session id")
        .store_key();
    let raw = redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let sealed_key = |raw: &redis::aio::MultiplexedConnection| {
        let mut raw = raw.clone();
        let field = format!("tg:{{{}}}:s", store_key.hex());
        async move {
            let envelope: Vec<u8> = redis::cmd("HGET")
                .arg(field)
                .arg("x")
                .query_async(&mut raw)
                .await
                .expect("hget");
            envelope[1..5].to_vec()
        }
    };
    assert_eq!(sealed_key(&raw).await, key_id(&old));

    let keys = |ring: &[&str]| {
        let list = ring
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let old = old.clone();
        move |toml: String| {
            toml.replace(&format!("keys = [\"{old}\"]"), &format!("keys = [{list}]"))
        }
    };
    let rotated = gw.another_with(keys(&[&new, &old])).await;
    let (status, user) = b.api(&rotated.url("/bff/user")).await;
    assert_eq!(
        status, 200,
        "a record sealed under the old key is read: {user}"
    );
    wait_until(
        Duration::from_secs(10),
        "the next write to re-seal under the new key",
        || async {
            assert_eq!(b.api(&rotated.url("/api/use")).await.0, 200);
            sealed_key(&raw).await == key_id(&new)
        },
    )
    .await;

    let forgotten = gw.another_with(keys(&[&unrelated])).await;
    let (status, body) = b.api(&forgotten.url("/api/x")).await;
    assert_eq!(
        status, 401,
        "a key no longer in the ring is no session: {body}"
    );
    assert_eq!(body["error"], "unauthorized");
    assert_eq!(b.api(&forgotten.url("/bff/user")).await.0, 401);
    assert_eq!(
        b.api(&rotated.url("/bff/user")).await.0,
        200,
        "the record itself is untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_token_used_on_one_instance_is_refused_by_another() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let gw = TestGateway::start_with(on(Store::Redis(server.url()), 300)).await;
    let other = gw.another().await;
    let b = gw.logged_in("alice").await;
    let (_, user) = b.api(&gw.url("/bff/user")).await;
    let token = gw
        .op
        .sign(
            serde_json::json!({}),
            serde_json::json!({
                "iss": gw.op.issuer, "aud": crate::support::op::CLIENT_ID,
                "iat": tokengate::session::unix_now(), "jti": "played-twice",
                "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
                "sid": user["claims"]["sid"], "sub": "alice",
            }),
            false,
        )
        .await;
    let post = |url: String| {
        let token = token.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .form(&[("logout_token", token.as_str())])
                .send()
                .await
                .expect("back-channel request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(gw.url("/bff/backchannel-logout")).await, 200);
    // The replay memory is the shared store's, not the first instance's.
    assert_eq!(post(other.url("/bff/backchannel-logout")).await, 400);
}
