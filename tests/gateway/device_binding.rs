//! Device Bound Session Credentials (DBSC, WICG draft revision d346811 of 2026-02-17):
//! the gateway offers a registration at the login's callback, binds the session to the
//! browser's key, and from then on wants a short-lived bound cookie that only proofs signed
//! by that key renew. Chromium cannot run DBSC headless here, so the browser side is
//! [`DbscClient`], a test client that speaks DBSC as the spec says.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::dbsc::{
    challenge_in, parse_challenges, parse_registration, sf_string, DbscClient, DeviceKey,
    RefreshOutcome, CHALLENGE, REGISTRATION, SESSION_ID,
};
use crate::support::redis::RedisServer;
use crate::support::{wait_until, Browser, Setup, Store, TestGateway};

const SESSION: &str = "tokengate";
const BOUND: &str = "tokengate-bound";

fn binding(mode: &str, lifetime: &str) -> Setup {
    Setup {
        session_extra: format!(
            "device_binding = \"{mode}\"\nbound_cookie_lifetime = \"{lifetime}\"\n"
        ),
        ..Setup::default()
    }
}

/// The value of the sample `series` (`name{labels}`) in a Prometheus page; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (s == series).then(|| v.parse().expect("a sample value"))
        })
        .unwrap_or(0.0)
}

async fn metrics_at(admin_url: &str) -> String {
    reqwest::get(admin_url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

fn refreshes(outcome: &str) -> String {
    format!("tokengate_device_binding_refreshes_total{{outcome=\"{outcome}\"}}")
}

fn registrations(outcome: &str) -> String {
    format!("tokengate_device_binding_registrations_total{{outcome=\"{outcome}\"}}")
}

fn ended(reason: &str) -> String {
    format!("tokengate_sessions_ended_total{{reason=\"{reason}\"}}")
}

const OFFERS: &str = "tokengate_device_binding_offers_total";

/// A browser without DBSC holding copies of `client`'s cookies (the session cookie and,
/// when present, the bound cookie): what a thief of the cookie jar has.
fn copy_of_cookies(client: &DbscClient) -> Browser {
    let thief = Browser::default();
    for name in [SESSION, BOUND] {
        if let Some(value) = client.browser().cookie(name) {
            thief.set_cookie(name, &value);
        }
    }
    thief
}

/// Every `Secure-Session-Registration` header the client's browser received.
fn offers_seen(client: &DbscClient) -> Vec<String> {
    client
        .browser()
        .registrations
        .lock()
        .expect("offers")
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_binds_the_session_with_a_cookie_and_instructions() {
    let gw = TestGateway::start_with(binding("optional", "5s")).await;
    let client = DbscClient::new(&gw.url(""));
    let landed = client.login("alice").await;
    assert_eq!(landed.status, 200, "{}", landed.body);

    // The callback offered one registration, and only the callback did.
    let offers = offers_seen(&client);
    assert_eq!(offers.len(), 1, "{offers:?}");
    let offer = parse_registration(&offers[0]);
    assert_eq!(offer.len(), 1, "{offers:?}");
    let offer = &offer[0];
    assert_eq!(offer.algorithms, ["ES256", "RS256"], "{offers:?}");
    assert_eq!(offer.path, "/bff/dbsc/register");
    assert!(!offer.challenge.is_empty(), "{offers:?}");
    assert_eq!(client.bound_cookie_name(), None, "not registered yet");

    let answer = client.register().await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        (answer.header("content-type").unwrap_or("")).starts_with("application/json"),
        "{:?}",
        answer.headers
    );
    assert!(
        (answer.header("cache-control").unwrap_or("")).contains("no-store"),
        "{:?}",
        answer.headers
    );
    let session_id = answer.json["session_identifier"]
        .as_str()
        .expect("session_identifier")
        .to_owned();
    assert!(!session_id.is_empty());
    assert_eq!(
        answer.json,
        json!({
            "session_identifier": session_id,
            "refresh_url": "/bff/dbsc/refresh",
            "scope": {"origin": gw.url(""), "include_site": false, "scope_specification": []},
            "credentials": [{
                "type": "cookie", "name": BOUND, "attributes": "Path=/; HttpOnly; SameSite=Strict"
            }],
        })
    );
    let set_cookie = (answer.set_cookies().into_iter())
        .find(|c| c.starts_with(&format!("{BOUND}=")))
        .expect("a bound cookie is set");
    let attributes: HashSet<String> = (set_cookie.split(';').skip(1))
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["httponly", "samesite=strict", "path=/", "max-age=5"] {
        assert!(attributes.contains(wanted), "{wanted} in {set_cookie}");
    }
    let bound = client
        .bound_cookie()
        .expect("the bound cookie is in the jar");
    assert_ne!(
        Some(bound.as_str()),
        client.browser().cookie(SESSION).as_deref()
    );
    assert!(!bound.contains(&session_id), "the bound cookie is opaque");

    let (status, user) = client.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["claims"]["sub"], "alice");
    assert_eq!(client.api(&gw.url("/api/bound")).await.0, 200);

    // Bound now: the session cookie alone is no session.
    let session_only = Browser::default();
    session_only.set_cookie(SESSION, &client.browser().cookie(SESSION).expect("session"));
    assert_eq!(session_only.api(&gw.url("/bff/user")).await.0, 401);
    assert_eq!(session_only.api(&gw.url("/api/unbound")).await.0, 401);
    // ... and that refusal did not end it.
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 200);

    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, OFFERS), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &registrations("bound")), 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, &registrations("refused")),
        0.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bound_session_lives_over_many_bound_cookie_lifetimes() {
    let gw = TestGateway::start_with(binding("optional", "1s")).await;
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    let mut values = vec![client.bound_cookie().expect("a bound cookie")];
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(8) {
        let url = if i % 2 == 0 {
            gw.url(&format!("/api/bound/{i}"))
        } else {
            gw.url("/bff/user")
        };
        let (status, body) = client.api(&url).await;
        assert_eq!(
            status,
            200,
            "request {i} ({url}) {:?} after login: {body}",
            start.elapsed()
        );
        if i % 2 == 1 {
            assert_eq!(body["claims"]["sub"], "alice", "{body}");
        }
        // The cookie that request carried.
        let sent = client.browser().cookie(BOUND).expect("a bound cookie sent");
        if values.last() != Some(&sent) {
            values.push(sent);
        }
        i += 1;
        // Pacing, not a proof: about 7 requests per bound cookie.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let distinct: HashSet<&String> = values.iter().collect();
    assert_eq!(distinct.len(), values.len(), "every bound cookie is new");
    assert!(
        values.len() >= 6,
        "the bound cookie changed {} times in 8 s of 1 s cookies",
        values.len() - 1
    );
    assert!(client.session().is_some(), "the DBSC session lives on");

    let metrics = gw.metrics_text().await;
    let refreshed = sample(&metrics, &refreshes("refreshed"));
    assert!(refreshed >= 5.0, "{metrics}");
    assert_eq!(refreshed as usize, client.refreshes(), "{metrics}");
    assert_eq!(
        refreshed as usize,
        values.len() - 1,
        "one cookie per refresh"
    );
    // Each refresh was asked for without a proof first and answered with a challenge.
    assert_eq!(
        sample(&metrics, &refreshes("challenged")),
        refreshed,
        "{metrics}"
    );
    for outcome in ["stale", "forged", "ended"] {
        assert_eq!(
            sample(&metrics, &refreshes(outcome)),
            0.0,
            "{outcome}: {metrics}"
        );
    }
}

/// The gateway's own expiry check must not be stricter than the `Max-Age` it sets: a
/// cookie sent within its Max-Age is taken. The refresh is made just before a whole second
/// of the wall clock, where an expiry kept in whole seconds and rounded down falls almost
/// a second short of the Max-Age.
#[tokio::test(flavor = "multi_thread")]
async fn a_bound_cookie_is_taken_for_its_whole_max_age() {
    let gw = TestGateway::start_with(binding("optional", "2s")).await;
    let base = gw.url("");
    let client = DbscClient::logged_in(&base, "alice").await;
    let subsec = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_millis())
    };
    wait_until(Duration::from_secs(3), "850 ms past a second", || async {
        (850..920).contains(&subsec())
    })
    .await;
    assert_eq!(client.refresh(&base).await, RefreshOutcome::Refreshed);
    let got = Instant::now();
    let cookie = client.bound_cookie().expect("a new bound cookie");
    assert_eq!(
        client
            .browser()
            .set_cookie_header(BOUND)
            .map(|h| h.contains("Max-Age=2")),
        Some(true)
    );
    // Three quarters of its Max-Age later.
    wait_until(
        Duration::from_secs(3),
        "1.5 s of the cookie's 2",
        || async move { got.elapsed() >= Duration::from_millis(1500) },
    )
    .await;
    assert_eq!(client.bound_cookie(), Some(cookie), "still in the jar");
    let (status, body) = client.api(&gw.url("/bff/user")).await;
    assert_eq!(
        status,
        200,
        "a bound cookie {:?} into its 2 s Max-Age was refused: {body}",
        got.elapsed()
    );
    assert_eq!(client.refreshes(), 1, "that request needed no refresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn copied_cookies_stop_working_when_the_bound_cookie_expires() {
    let gw = TestGateway::start_with(binding("optional", "2s")).await;
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    let thief = copy_of_cookies(&client);
    assert!(thief.cookie(BOUND).is_some(), "the bound cookie was copied");
    // Fresh copies work: that is what the bound cookie's short life is about.
    let (status, user) = thief.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(thief.api(&gw.url("/api/thief")).await.0, 200);

    let copied = Instant::now();
    wait_until(
        Duration::from_secs(10),
        "the copied cookies to be refused",
        || async {
            let (status, body) = client.api(&gw.url("/api/owner")).await;
            assert_eq!(status, 200, "the DBSC client goes on: {body}");
            thief.api(&gw.url("/bff/user")).await.0 == 401
        },
    )
    .await;
    assert!(
        copied.elapsed() >= Duration::from_secs(1),
        "refused before the cookie's lifetime: {:?}",
        copied.elapsed()
    );
    assert_eq!(thief.api(&gw.url("/api/thief")).await.0, 401);
    // The thief cannot refresh: it has the session's id but not the key.
    let id = sf_string(&client.session().expect("session").id);
    let resp = thief
        .send(
            reqwest::Method::POST,
            &gw.url("/bff/dbsc/refresh"),
            &[(SESSION_ID, id.as_str())],
            None,
        )
        .await;
    assert_eq!(resp.status(), 403, "a challenge, which it cannot sign");
    assert!(
        resp.headers().contains_key(CHALLENGE),
        "{:?}",
        resp.headers()
    );
    assert_eq!(thief.api(&gw.url("/bff/user")).await.0, 401);

    let (status, user) = client.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    assert!(client.refreshes() >= 1, "the client refreshed meanwhile");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_keeping_an_expired_bound_cookie_is_refused() {
    let gw = TestGateway::start_with(binding("optional", "2s")).await;
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    let expiry = client
        .expiry(BOUND)
        .expect("the bound cookie has a Max-Age");
    // A client that ignores Max-Age: it keeps the cookie as it came, forever.
    let keeper = copy_of_cookies(&client);
    let kept = keeper.cookie(BOUND).expect("a bound cookie");
    assert_eq!(keeper.api(&gw.url("/bff/user")).await.0, 200);

    // No request of the DBSC client meanwhile, so the kept cookie is still the newest the
    // gateway issued: only its expiry can refuse it.
    wait_until(
        Duration::from_secs(10),
        "the bound cookie's Max-Age to pass",
        || async move { Instant::now() > expiry + Duration::from_millis(500) },
    )
    .await;
    let (status, body) = keeper.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 401, "an expired bound cookie was taken: {body}");
    assert_eq!(keeper.api(&gw.url("/api/kept")).await.0, 401);
    assert_eq!(keeper.cookie(BOUND), Some(kept.clone()), "still sent");

    // The session itself is fine: the DBSC client refreshes and goes on.
    let (status, body) = client.api(&gw.url("/api/owner")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(client.refreshes(), 1);
    assert_ne!(client.bound_cookie(), Some(kept));
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_and_stale_proofs_are_challenged_again_and_the_session_lives_on() {
    // A long lifetime: no refresh but the ones this test makes.
    let gw = TestGateway::start_with(binding("optional", "5m")).await;
    let base = gw.url("");
    let client = DbscClient::logged_in(&base, "alice").await;
    let id = client.session().expect("session").id;

    let first = client.refresh_with(&base, None).await;
    assert_eq!(first.status, 403, "{}", first.text);
    let header = first.header(CHALLENGE).expect("Secure-Session-Challenge");
    let parsed = parse_challenges(header);
    assert_eq!(parsed.len(), 1, "{header}");
    assert_eq!(parsed[0].1.as_deref(), Some(id.as_str()), "id= {header}");
    let older = parsed[0].0.clone();
    let second = client.refresh_with(&base, None).await;
    let newer = challenge_in(&second.headers, &id).expect("a challenge");
    assert_ne!(older, newer, "a new challenge each time");

    let proof = client.key().refresh_proof(&newer);
    let answered = client.refresh_with(&base, Some(&proof)).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json["session_identifier"], id.as_str());
    assert!((answered.set_cookies().iter()).any(|c| c.starts_with(&format!("{BOUND}="))));

    // The same proof again: a replay.
    let replay = client.refresh_with(&base, Some(&proof)).await;
    assert_eq!(replay.status, 403, "a replayed proof: {}", replay.text);
    assert!(replay.set_cookies().is_empty(), "{:?}", replay.headers);
    let after_replay = challenge_in(&replay.headers, &id).expect("a new challenge");
    assert!(![&older, &newer].contains(&&after_replay));

    // A challenge issued before the one answered: stale.
    let stale_proof = client.key().refresh_proof(&older);
    let stale = client.refresh_with(&base, Some(&stale_proof)).await;
    assert_eq!(stale.status, 403, "a stale challenge: {}", stale.text);
    assert!(stale.set_cookies().is_empty(), "{:?}", stale.headers);
    assert!(challenge_in(&stale.headers, &id).is_some());

    // The session lives on, and the challenge given with a refusal serves.
    let (status, user) = client.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 200, "{user}");
    let proof = client.key().refresh_proof(&after_replay);
    let answered = client.refresh_with(&base, Some(&proof)).await;
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(client.api(&gw.url("/api/after")).await.0, 200);

    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &refreshes("stale")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &refreshes("refreshed")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &refreshes("challenged")), 2.0, "{metrics}");
    assert_eq!(sample(&metrics, &refreshes("forged")), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, &ended("device_proof")), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_proof_ends_the_session() {
    let gw = TestGateway::start_with(binding("optional", "5m")).await;
    let base = gw.url("");
    let client = DbscClient::logged_in(&base, "alice").await;
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 200);
    let id = client.session().expect("session").id;

    // Someone with the session's id and a challenge, but another key. (It is sent from
    // the client's own jar here; the device's bound cookie is put back after, since the
    // answer to the forger clears the forger's.)
    let kept = client.browser().cookie(BOUND).expect("a bound cookie");
    let asked = client.refresh_with(&base, None).await;
    let challenge = challenge_in(&asked.headers, &id).expect("a challenge");
    let thief = DeviceKey::generate();
    let forged = client
        .refresh_with(&base, Some(&thief.refresh_proof(&challenge)))
        .await;
    assert_eq!(forged.status, 200, "{}", forged.text);
    assert_eq!(forged.json, json!({"continue": false}));
    assert!(
        !(forged.set_cookies().iter())
            .any(|c| c.starts_with(&format!("{BOUND}=")) && !c.contains("Max-Age=0")),
        "no bound cookie for a forgery: {:?}",
        forged.headers
    );

    // Over, even for the device that holds the key and a bound cookie still unexpired.
    client.browser().set_cookie(BOUND, &kept);
    let (status, body) = client.api(&gw.url("/bff/user")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(client.api(&gw.url("/api/after")).await.0, 401);
    assert_eq!(
        client.refresh(&base).await,
        RefreshOutcome::Ended(StatusCode::OK)
    );
    assert!(
        client.session().is_none(),
        "the client forgot the DBSC session"
    );
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 401);

    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &refreshes("forged")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &ended("device_proof")), 1.0, "{metrics}");
    assert!(sample(&metrics, &refreshes("ended")) >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_refuses_bad_proofs_unissued_challenges_and_a_second_binding() {
    let gw = TestGateway::start_with(binding("optional", "5m")).await;
    let client = DbscClient::new(&gw.url(""));
    client.login("alice").await;
    let offer = client.offer().expect("an offer");

    // Without a session.
    let stranger = DbscClient::new(&gw.url(""));
    let no_session = stranger
        .register_with(
            &offer.path,
            &stranger.key().registration_proof(&offer.challenge),
        )
        .await;
    assert_eq!(no_session.status, 401, "{}", no_session.text);

    // Not a JWT; a JWT whose header key did not sign it.
    let malformed = client.register_with(&offer.path, "not-a-jwt").await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    let signer = DeviceKey::generate();
    let bad = signer.registration_proof_claiming(client.key(), &offer.challenge);
    let badly_signed = client.register_with(&offer.path, &bad).await;
    assert_eq!(badly_signed.status, 400, "{}", badly_signed.text);

    // A challenge the gateway never issued: 403 and a new offer.
    let unissued = (client.key()).registration_proof("a-challenge-never-issued");
    let refused = client.register_with(&offer.path, &unissued).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let again = parse_registration(refused.header(REGISTRATION).expect("a new offer"));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].path, offer.path);
    assert_ne!(again[0].challenge, offer.challenge, "a new challenge");
    assert!(client.session().is_none(), "nothing bound");
    assert_eq!(
        client.api(&gw.url("/bff/user")).await.0,
        200,
        "still unbound"
    );

    // The new offer binds.
    assert_eq!(client.offer().as_ref(), Some(&again[0]));
    let bound = client.register().await;
    assert_eq!(bound.status, 200, "{}", bound.text);
    assert!(client.bound_cookie().is_some());

    // A second registration of a bound session, with another key.
    let other = DeviceKey::generate();
    let twice = client
        .register_with(&offer.path, &other.registration_proof(&again[0].challenge))
        .await;
    assert_eq!(twice.status, 400, "{}", twice.text);
    // The first key still holds the session.
    client.browser().remove_cookie(BOUND);
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 200);
    assert_eq!(client.refreshes(), 1);

    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &registrations("bound")), 1.0, "{metrics}");
    assert_eq!(
        sample(&metrics, &registrations("refused")),
        5.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_needs_a_well_formed_session_id() {
    let gw = TestGateway::start_with(binding("optional", "5m")).await;
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    let base = gw.url("");
    let missing = client.refresh_raw(&base, &[]).await;
    assert_eq!(missing.status, 400, "{}", missing.text);
    let unparsable = (client.refresh_raw(&base, &[(SESSION_ID, "\"unterminated".into())])).await;
    assert_eq!(unparsable.status, 400, "{}", unparsable.text);
    let integer = client
        .refresh_raw(&base, &[(SESSION_ID, "42".into())])
        .await;
    assert_eq!(integer.status, 400, "{}", integer.text);
    // Well formed, but no session of this gateway's: over, as far as it knows.
    let unknown = (client.refresh_raw(&base, &[(SESSION_ID, sf_string("no-such-session"))])).await;
    assert!(
        unknown.ends_session(),
        "{} {}",
        unknown.status,
        unknown.text
    );
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_without_dbsc_keeps_its_session_in_optional_mode() {
    let gw = TestGateway::start_with(binding("optional", "1s")).await;
    let plain = gw.logged_in("alice").await;
    let offers = plain.registrations.lock().expect("offers").clone();
    assert_eq!(offers.len(), 1, "offered at the callback: {offers:?}");
    assert_eq!(parse_registration(&offers[0]).len(), 1);

    // Three bound-cookie lifetimes without ever registering.
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(3) {
        let (status, body) = plain.api(&gw.url(&format!("/api/plain/{i}"))).await;
        assert_eq!(status, 200, "{:?} after login: {body}", start.elapsed());
        let (status, body) = plain.api(&gw.url("/bff/user")).await;
        assert_eq!(status, 200, "{body}");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(plain.cookie(BOUND).is_none());
    assert_eq!(plain.set_cookie_header(BOUND), None, "never a bound cookie");

    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, OFFERS), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &registrations("bound")), 0.0, "{metrics}");
    assert_eq!(sample(&metrics, &ended("unbound")), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn off_mode_offers_no_registration() {
    let gw = TestGateway::start_with(binding("off", "1s")).await;
    let client = DbscClient::new(&gw.url(""));
    let landed = client.login("alice").await;
    assert_eq!(landed.status, 200, "{}", landed.body);
    let offers = offers_seen(&client);
    assert!(offers.is_empty(), "{offers:?}");
    assert_eq!(client.offer(), None);
    // An ordinary session, past the bound cookie's lifetime too.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        assert_eq!(client.api(&gw.url("/bff/user")).await.0, 200);
        assert_eq!(client.api(&gw.url("/api/off")).await.0, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(client.browser().set_cookie_header(BOUND), None);
    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, OFFERS), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn required_mode_ends_an_unbound_session_after_the_lifetime_and_keeps_a_bound_one() {
    let lifetime = Duration::from_secs(3);
    let gw = TestGateway::start_with(binding("required", "3s")).await;
    let base = gw.url("");
    let before_login = Instant::now();
    // A client that could speak DBSC but does not register (yet).
    let unbound = DbscClient::new(&base);
    unbound.login("alice").await;
    let offer = unbound.offer().expect("an offer in required mode");
    let (status, user) = unbound.api(&gw.url("/bff/user")).await;
    assert!(before_login.elapsed() < lifetime, "the login took too long");
    assert_eq!(status, 200, "an unbound session works at first: {user}");
    assert_eq!(unbound.api(&gw.url("/api/early")).await.0, 200);

    let client = DbscClient::logged_in(&base, "bob").await;
    let bound_at = Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the unbound session to end",
        || async {
            let (status, body) = client.api(&gw.url("/api/bound")).await;
            assert_eq!(status, 200, "the bound session: {body}");
            let status = unbound.api(&gw.url("/bff/user")).await.0;
            // Whole seconds on the gateway's clock: a second of slack.
            if status == 401 {
                assert!(
                    before_login.elapsed() >= lifetime - Duration::from_secs(1),
                    "ended {:?} after the login",
                    before_login.elapsed()
                );
            }
            status == 401
        },
    )
    .await;
    assert_eq!(unbound.api(&gw.url("/api/late")).await.0, 401);
    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &ended("unbound")), 1.0, "{metrics}");
    // Ended, not merely refused: too late to register it now.
    let late = unbound
        .register_with(
            &offer.path,
            &unbound.key().registration_proof(&offer.challenge),
        )
        .await;
    assert_eq!(late.status, 401, "{}", late.text);

    // The bound session goes on past twice the lifetime.
    wait_until(
        Duration::from_secs(15),
        "twice the lifetime for the bound session",
        || async {
            let (status, body) = client.api(&gw.url("/bff/user")).await;
            assert_eq!(status, 200, "the bound session: {body}");
            bound_at.elapsed() > 2 * lifetime
        },
    )
    .await;
    assert!(client.refreshes() >= 2, "{} refreshes", client.refreshes());
    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &ended("unbound")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &registrations("bound")), 1.0, "{metrics}");
}

/// Under `required`, registration is no way around the grace: a session that reaches
/// it unbound ends there, even when the registration is the first request after it.
#[tokio::test(flavor = "multi_thread")]
async fn required_mode_refuses_a_registration_after_the_grace() {
    let lifetime = Duration::from_secs(2);
    let gw = TestGateway::start_with(binding("required", "2s")).await;
    let late = DbscClient::new(&gw.url(""));
    late.login("alice").await;
    let logged_in = Instant::now();
    let offer = late.offer().expect("an offer in required mode");
    // A second of slack for the gateway's whole-second clock.
    wait_until(Duration::from_secs(10), "the grace to pass", || async {
        logged_in.elapsed() > lifetime + Duration::from_secs(1)
    })
    .await;
    let answer = late
        .register_with(
            &offer.path,
            &late.key().registration_proof(&offer.challenge),
        )
        .await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    let metrics = gw.metrics_text().await;
    assert_eq!(sample(&metrics, &ended("unbound")), 1.0, "{metrics}");
    assert_eq!(sample(&metrics, &registrations("bound")), 0.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_bound_on_one_instance_refreshes_on_another() {
    let server = tokio::task::block_in_place(RedisServer::start);
    let setup = Setup {
        store: Store::Redis(server.url()),
        ..binding("optional", "1s")
    };
    let gw = TestGateway::start_with(setup).await;
    let other = gw.another().await;
    // Registered on the first instance (the callback's).
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    assert_eq!(client.api(&other.url("/bff/user")).await.0, 200);

    // Once the bound cookie is gone, the next request, to the other instance, refreshes
    // there.
    wait_until(
        Duration::from_secs(5),
        "the bound cookie to expire",
        || async { client.bound_cookie().is_none() },
    )
    .await;
    let (status, body) = client.api(&other.url("/api/other")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(client.refreshes(), 1);
    let other_metrics = metrics_at(&other.admin_url("/metrics")).await;
    assert_eq!(
        sample(&other_metrics, &refreshes("refreshed")),
        1.0,
        "{other_metrics}"
    );
    assert_eq!(
        sample(&gw.metrics_text().await, &refreshes("refreshed")),
        0.0
    );

    // Then requests on both, across several lifetimes, refreshes wherever they fall.
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let url = if i % 2 == 0 {
            gw.url(&format!("/api/first/{i}"))
        } else {
            other.url(&format!("/api/second/{i}"))
        };
        let (status, body) = client.api(&url).await;
        assert_eq!(status, 200, "{url} {:?} in: {body}", start.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let on_first = sample(&gw.metrics_text().await, &refreshes("refreshed"));
    let other_metrics = metrics_at(&other.admin_url("/metrics")).await;
    let on_other = sample(&other_metrics, &refreshes("refreshed"));
    assert!(
        on_first >= 1.0 && on_other >= 1.0,
        "{on_first} + {on_other}"
    );
    assert_eq!((on_first + on_other) as usize, client.refreshes());

    // A logout on the other instance ends it for the first one's refresh too.
    let resp = client.logout(&other.url("")).await;
    assert_eq!(resp.status, 302, "{}", resp.text);
    let ended = client.refresh_with(&gw.url(""), None).await;
    assert!(ended.ends_session(), "{} {}", ended.status, ended.text);
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_clears_the_bound_cookie_and_ends_the_dbsc_session() {
    let gw = TestGateway::start_with(binding("optional", "5m")).await;
    let base = gw.url("");
    let client = DbscClient::logged_in(&base, "alice").await;
    assert!(client.bound_cookie().is_some());

    let resp = client.logout(&base).await;
    assert_eq!(resp.status, 302, "{}", resp.text);
    let cleared = (resp.set_cookies().into_iter())
        .find(|c| c.starts_with(&format!("{BOUND}=")))
        .expect("logout clears the bound cookie");
    assert!(
        cleared.to_ascii_lowercase().contains("max-age=0"),
        "{cleared}"
    );
    assert!(client.browser().cookie(BOUND).is_none());
    assert!(client.browser().cookie(SESSION).is_none());

    let after = client.refresh_with(&base, None).await;
    assert!(after.ends_session(), "{} {}", after.status, after.text);
    assert_eq!(
        client.refresh(&base).await,
        RefreshOutcome::Ended(StatusCode::OK)
    );
    assert!(client.session().is_none());
    assert_eq!(client.api(&gw.url("/bff/user")).await.0, 401);
    let metrics = gw.metrics_text().await;
    assert!(sample(&metrics, &refreshes("ended")) >= 2.0, "{metrics}");
}

/// A bound session over a long stretch, on demand (it runs for minutes):
/// `TOKENGATE_DBSC_SOAK_SECS=600 cargo test --test gateway long_stretch -- --ignored`.
/// A call a second to `/api` or `/bff/user`, 20 s bound cookies, the access token
/// refreshed as it falls due: every call answers 200, and the bound cookie is renewed
/// about once per lifetime, never more than needed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "runs for minutes: on demand"]
async fn a_bound_session_lives_on_over_a_long_stretch() {
    let secs: u64 = std::env::var("TOKENGATE_DBSC_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let gw = TestGateway::start_with(binding("optional", "20s")).await;
    let client = DbscClient::logged_in(&gw.url(""), "alice").await;
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let url = if calls.is_multiple_of(2) {
            gw.url(&format!("/api/long/{calls}"))
        } else {
            gw.url("/bff/user")
        };
        let (status, body) = client.api(&url).await;
        assert_eq!(status, 200, "call {calls} at {:?}: {body}", start.elapsed());
        calls += 1;
        // Pacing, not a proof: a call a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let lifetimes = secs / 20;
    let renewed = client.refreshes() as u64;
    assert!(
        renewed + 1 >= lifetimes && renewed <= lifetimes + 1,
        "{renewed} renewals over {lifetimes} lifetimes of the bound cookie"
    );
    let metrics = gw.metrics_text().await;
    for outcome in ["stale", "forged", "ended"] {
        assert_eq!(sample(&metrics, &refreshes(outcome)), 0.0, "{metrics}");
    }
    println!("{calls} calls over {secs} s, {renewed} bound-cookie renewals, all answered 200");
}
