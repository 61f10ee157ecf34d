//! A test client that speaks DBSC (Device Bound Session Credentials, the WICG draft at
//! revision d346811 of 2026-02-17) from the browser's side, as the spec tells a browser to.
//! Chromium does not run DBSC headless on Linux, so this client stands in for it: it is
//! the [`Browser`] of the other tests plus what a DBSC user agent adds.
//!
//! - It reads the `Secure-Session-Registration` header (an RFC 9651 list of inner lists of
//!   algorithm tokens, with `path` and `challenge` parameters) of the responses it gets,
//!   makes a P-256 key pair and registers: `POST <path>` with its cookies and
//!   `Secure-Session-Response: "<jwt>"`, the JWT typed `dbsc+jwt`, its public key in the
//!   `jwk` header, the challenge as `jti`.
//! - It keeps the session instructions of the answer (identifier, refresh URL, the
//!   credential cookies) and, like a browser's cookie jar, the expiry of every cookie from
//!   its `Max-Age`: an expired cookie leaves the jar.
//! - Before each request, when a credential cookie is missing it refreshes first:
//!   `POST <refresh_url>` with `Sec-Secure-Session-Id`; on a 403 with a
//!   `Secure-Session-Challenge` it signs the challenge and retries once. An answer of
//!   `{"continue": false}`, or a 4xx other than 403, ends the DBSC session on its side; the
//!   request then goes on without the bound cookie, as the spec says.
//!
//! The low-level steps are public too ([`DeviceKey`], [`DbscClient::refresh_with`],
//! [`DbscClient::register_with`]), so tests can replay, forge and go stale on purpose.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::browser::Landed;
use super::Browser;

pub const REGISTRATION: &str = "secure-session-registration";
pub const RESPONSE: &str = "secure-session-response";
pub const CHALLENGE: &str = "secure-session-challenge";
pub const SESSION_ID: &str = "sec-secure-session-id";

/// How much before its `Max-Age` runs out the client counts a cookie as expired: the time a
/// request takes to reach the gateway, so that a cookie the client still sends is not one
/// the gateway has just seen expire. (A browser has the same race; a test must not.)
pub const EXPIRY_MARGIN: Duration = Duration::from_millis(150);

/// One registration offer of a `Secure-Session-Registration` header.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// The algorithm tokens of the inner list (`ES256`, `RS256`).
    pub algorithms: Vec<String>,
    pub path: String,
    pub challenge: String,
    /// The optional `authorization` parameter.
    pub authorization: Option<String>,
}

/// Parses a `Secure-Session-Registration` header: every inner list with its parameters.
/// Panics when the header is not a structured-field list of such inner lists, or an offer
/// lacks `path` or `challenge`: the gateway must not send such a header.
pub fn parse_registration(header: &str) -> Vec<Offer> {
    let list: sfv::List = sfv::Parser::new(header)
        .parse()
        .unwrap_or_else(|e| panic!("Secure-Session-Registration is no sf-list ({e}): {header}"));
    list.into_iter()
        .map(|entry| {
            let sfv::ListEntry::InnerList(inner) = entry else {
                panic!("a registration offer is an inner list: {header}");
            };
            let algorithms = (inner.items.iter())
                .map(|item| {
                    (item.bare_item.as_token())
                        .unwrap_or_else(|| panic!("an algorithm is a token: {header}"))
                        .as_str()
                        .to_owned()
                })
                .collect();
            let string = |name: &str| {
                (inner.params.get(name)).map(|v| {
                    let s = v.as_string();
                    s.unwrap_or_else(|| panic!("`{name}` is an sf-string: {header}"))
                        .as_str()
                        .to_owned()
                })
            };
            Offer {
                algorithms,
                path: string("path").unwrap_or_else(|| panic!("no `path`: {header}")),
                challenge: string("challenge").unwrap_or_else(|| panic!("no challenge: {header}")),
                authorization: string("authorization"),
            }
        })
        .collect()
}

/// Parses a `Secure-Session-Challenge` header: `(challenge, id)` for every member.
pub fn parse_challenges(header: &str) -> Vec<(String, Option<String>)> {
    let list: sfv::List = sfv::Parser::new(header)
        .parse()
        .unwrap_or_else(|e| panic!("Secure-Session-Challenge is no sf-list ({e}): {header}"));
    list.into_iter()
        .map(|entry| {
            let sfv::ListEntry::Item(item) = entry else {
                panic!("a challenge is an item: {header}");
            };
            let challenge = (item.bare_item.as_string())
                .unwrap_or_else(|| panic!("a challenge is an sf-string: {header}"))
                .as_str()
                .to_owned();
            let id = (item.params.get("id")).map(|v| {
                v.as_string()
                    .expect("`id` is an sf-string")
                    .as_str()
                    .to_owned()
            });
            (challenge, id)
        })
        .collect()
}

/// The challenge for session `id` in the `Secure-Session-Challenge` headers of `headers`
/// (one without an `id` applies to any session).
pub fn challenge_in(headers: &HeaderMap, id: &str) -> Option<String> {
    (headers.get_all(CHALLENGE).iter())
        .filter_map(|h| h.to_str().ok())
        .flat_map(parse_challenges)
        .find(|(_, for_id)| for_id.as_deref().is_none_or(|i| i == id))
        .map(|(challenge, _)| challenge)
}

/// `value` as an RFC 9651 sf-string, as a header value.
pub fn sf_string(value: &str) -> String {
    sfv::ItemSerializer::new()
        .bare_item(sfv::StringRef::from_str(value).expect("an sf-string"))
        .finish()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A device key: a P-256 key pair made with ring, signing ES256 JWS.
pub struct DeviceKey {
    pkcs8: Vec<u8>,
    x: String,
    y: String,
}

impl DeviceKey {
    pub fn generate() -> DeviceKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("P-256 key pair");
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        assert_eq!(
            (point.len(), point[0]),
            (65, 4),
            "an uncompressed P-256 point"
        );
        DeviceKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            x: b64(&point[1..33]),
            y: b64(&point[33..]),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y})
    }

    /// The JOSE header of a DBSC proof: ES256, `typ` `dbsc+jwt`, and `jwk` when given.
    pub fn header(jwk: Option<&Value>) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dbsc+jwt".into());
        header.jwk = jwk.map(|j| serde_json::from_value(j.clone()).expect("a JWK"));
        header
    }

    /// `claims` under `header`, signed with this key (JWS compact, raw r||s signature).
    pub fn jws(&self, header: &Header, claims: &Value) -> String {
        jsonwebtoken::encode(header, claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .expect("ES256 signature")
    }

    /// The registration proof: `jwk` in the header, the challenge as `jti`.
    pub fn registration_proof(&self, challenge: &str) -> String {
        self.jws(
            &DeviceKey::header(Some(&self.jwk())),
            &json!({ "jti": challenge }),
        )
    }

    /// A registration proof that presents `claimed`'s public key but is signed with this
    /// one: a bad signature.
    pub fn registration_proof_claiming(&self, claimed: &DeviceKey, challenge: &str) -> String {
        self.jws(
            &DeviceKey::header(Some(&claimed.jwk())),
            &json!({ "jti": challenge }),
        )
    }

    /// The refresh proof: no `jwk` (the gateway has the key), the challenge as `jti`.
    pub fn refresh_proof(&self, challenge: &str) -> String {
        self.jws(&DeviceKey::header(None), &json!({ "jti": challenge }))
    }
}

/// One credential of the session instructions: a cookie the session needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub name: String,
    pub attributes: String,
}

/// The session instructions of a registration or refresh answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Instructions {
    pub id: String,
    pub refresh_url: String,
    pub origin: Option<String>,
    pub credentials: Vec<Credential>,
}

impl Instructions {
    /// The instructions in a JSON answer, when it has them (a session identifier and at
    /// least one cookie credential).
    pub fn parse(body: &Value) -> Option<Instructions> {
        let id = body["session_identifier"].as_str()?.to_owned();
        let refresh_url = body["refresh_url"].as_str()?.to_owned();
        let credentials: Vec<Credential> = (body["credentials"].as_array()?.iter())
            .filter(|c| c["type"] == "cookie")
            .filter_map(|c| {
                Some(Credential {
                    name: c["name"].as_str()?.to_owned(),
                    attributes: c["attributes"].as_str().unwrap_or("").to_owned(),
                })
            })
            .collect();
        (!id.is_empty() && !credentials.is_empty()).then(|| Instructions {
            id,
            refresh_url,
            origin: body["scope"]["origin"].as_str().map(str::to_owned),
            credentials,
        })
    }
}

/// A response read whole: status, headers, body as text and as JSON (`Null` if not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    pub async fn read(resp: Response) -> Answer {
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every `Set-Cookie` header of the answer.
    pub fn set_cookies(&self) -> Vec<String> {
        (self.headers.get_all("set-cookie").iter())
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// The answer says the session is over: 200 `{"continue": false}`.
    pub fn ends_session(&self) -> bool {
        self.status == StatusCode::OK && self.json["continue"] == false
    }
}

/// What a refresh came to, from the client's side.
#[derive(Clone, Debug, PartialEq)]
pub enum RefreshOutcome {
    /// New instructions and cookies.
    Refreshed,
    /// `{"continue": false}` or a 4xx other than 403: the DBSC session is over.
    Ended(StatusCode),
    /// A transient failure (a second 403, a 5xx): the session is kept, the request goes
    /// on without the cookie.
    Failed(StatusCode),
    /// There was no DBSC session to refresh.
    NoSession,
}

/// The DBSC user agent: a [`Browser`], a device key, and the session it registered.
pub struct DbscClient {
    browser: Browser,
    /// The gateway's URL (no trailing slash): where the login starts and relative
    /// registration paths resolve.
    base: String,
    key: DeviceKey,
    session: Mutex<Option<Instructions>>,
    /// When each cookie with a `Max-Age` expires.
    expiries: Mutex<HashMap<String, Instant>>,
    /// How many of the browser's recorded `Set-Cookie` headers were read for expiries.
    seen: Mutex<usize>,
    /// One refresh at a time, as the spec defers requests while one is under way.
    refreshing: tokio::sync::Mutex<()>,
    refreshes: AtomicUsize,
}

impl DbscClient {
    pub fn new(base: &str) -> DbscClient {
        DbscClient::with_browser(base, Browser::default())
    }

    /// A DBSC client on `browser`, its cookies and the offers it has received included.
    pub fn with_browser(base: &str, browser: Browser) -> DbscClient {
        DbscClient {
            browser,
            base: base.trim_end_matches('/').to_owned(),
            key: DeviceKey::generate(),
            session: Mutex::new(None),
            expiries: Mutex::new(HashMap::new()),
            seen: Mutex::new(0),
            refreshing: tokio::sync::Mutex::new(()),
            refreshes: AtomicUsize::new(0),
        }
    }

    /// A client logged in as `user` at `base` and registered: panics unless the gateway
    /// offered a registration and bound the session.
    pub async fn logged_in(base: &str, user: &str) -> DbscClient {
        let client = DbscClient::new(base);
        let landed = client.login(user).await;
        assert_eq!(
            landed.status,
            StatusCode::OK,
            "login landed: {}",
            landed.body
        );
        let registered = client.register().await;
        assert_eq!(
            registered.status,
            StatusCode::OK,
            "registration: {}",
            registered.text
        );
        assert!(
            client.session().is_some(),
            "registered: {}",
            registered.text
        );
        client
    }

    /// The browser underneath: its requests skip the DBSC steps.
    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// The DBSC session's instructions, while it lasts.
    pub fn session(&self) -> Option<Instructions> {
        self.session.lock().expect("session").clone()
    }

    /// Forgets the DBSC session (its cookies stay in the jar until they expire).
    pub fn forget(&self) {
        *self.session.lock().expect("session") = None;
    }

    /// Successful refreshes so far.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// The first credential cookie's name (`tokengate-bound`), once registered.
    pub fn bound_cookie_name(&self) -> Option<String> {
        (self.session()).and_then(|s| s.credentials.first().map(|c| c.name.clone()))
    }

    /// The bound cookie's value in the jar, when there is one that has not expired.
    pub fn bound_cookie(&self) -> Option<String> {
        self.drop_expired();
        self.browser.cookie(&self.bound_cookie_name()?)
    }

    /// When the cookie `name` expires, from the `Max-Age` it was last set with.
    pub fn expiry(&self, name: &str) -> Option<Instant> {
        self.expiries.lock().expect("expiries").get(name).copied()
    }

    /// The whole login at the gateway through the provider's form; the callback's
    /// `Secure-Session-Registration` header is recorded, not acted on.
    pub async fn login(&self, user: &str) -> Landed {
        let landed = (self.browser)
            .login(&self.base, user, &format!("{user}-password"), "/")
            .await;
        self.read_expiries();
        landed
    }

    /// The last registration offer received that this client can take (ES256).
    pub fn offer(&self) -> Option<Offer> {
        let seen = self.browser.registrations.lock().expect("registrations");
        (seen.iter().rev())
            .flat_map(|h| parse_registration(h))
            .find(|o| o.algorithms.iter().any(|a| a == "ES256"))
    }

    /// Registers on the last offer with this client's key; on success, keeps the
    /// session instructions. Panics when no offer was received.
    pub async fn register(&self) -> Answer {
        let offer = self.offer().expect("a Secure-Session-Registration offer");
        let proof = self.key.registration_proof(&offer.challenge);
        self.register_with(&offer.path, &proof).await
    }

    /// `POST <path>` (relative to the gateway) with `Secure-Session-Response: "<proof>"`
    /// and the cookies; on a 200 with instructions, keeps them as the DBSC session.
    pub async fn register_with(&self, path: &str, proof: &str) -> Answer {
        let url = join(&self.base, path);
        let answer = self.post(&url, &[(RESPONSE, sf_string(proof))]).await;
        if answer.status == StatusCode::OK {
            if let Some(instructions) = Instructions::parse(&answer.json) {
                *self.session.lock().expect("session") = Some(instructions);
            }
        }
        answer
    }

    /// The refresh request itself, at the refresh URL resolved against `at` (a URL of the
    /// instance to ask): `Sec-Secure-Session-Id` of the session, `Secure-Session-Response`
    /// when `proof` is given, and the cookies. Cookies set are absorbed; the DBSC session
    /// is left as it is. Panics when there is no session.
    pub async fn refresh_with(&self, at: &str, proof: Option<&str>) -> Answer {
        let session = self.session().expect("a DBSC session to refresh");
        let mut headers = vec![(SESSION_ID, sf_string(&session.id))];
        if let Some(proof) = proof {
            headers.push((RESPONSE, sf_string(proof)));
        }
        self.post(&join(at, &session.refresh_url), &headers).await
    }

    /// A refresh request as given, at the refresh URL resolved against `at` (default
    /// `/bff/dbsc/refresh` before any registration): for malformed ids and the like.
    pub async fn refresh_raw(&self, at: &str, headers: &[(&str, String)]) -> Answer {
        let path = (self.session()).map_or("/bff/dbsc/refresh".to_owned(), |s| s.refresh_url);
        self.post(&join(at, &path), headers).await
    }

    /// The refresh as the spec has a browser do it, against the instance of `at`: ask,
    /// answer the challenge of a 403 once, then keep or end the session by the answer.
    pub async fn refresh(&self, at: &str) -> RefreshOutcome {
        let Some(session) = self.session() else {
            return RefreshOutcome::NoSession;
        };
        let mut answer = self.refresh_with(at, None).await;
        if answer.status == StatusCode::FORBIDDEN {
            let Some(challenge) = challenge_in(&answer.headers, &session.id) else {
                return RefreshOutcome::Failed(answer.status);
            };
            let proof = self.key.refresh_proof(&challenge);
            answer = self.refresh_with(at, Some(&proof)).await;
        }
        match answer.status {
            StatusCode::OK if answer.ends_session() => {
                self.forget();
                RefreshOutcome::Ended(answer.status)
            }
            StatusCode::OK => match Instructions::parse(&answer.json) {
                Some(instructions) => {
                    *self.session.lock().expect("session") = Some(instructions);
                    self.refreshes.fetch_add(1, Ordering::SeqCst);
                    RefreshOutcome::Refreshed
                }
                None => {
                    self.forget();
                    RefreshOutcome::Ended(answer.status)
                }
            },
            StatusCode::FORBIDDEN => RefreshOutcome::Failed(answer.status),
            s if s.is_client_error() => {
                self.forget();
                RefreshOutcome::Ended(s)
            }
            s => RefreshOutcome::Failed(s),
        }
    }

    /// What a DBSC browser does before a request to `url`: expired cookies leave the jar;
    /// with a DBSC session whose credential cookie is missing, refresh first (at the
    /// instance of `url`). Returns the refresh's outcome when one was made.
    pub async fn before_request(&self, url: &str) -> Option<RefreshOutcome> {
        self.drop_expired();
        if self.has_credentials()? {
            return None;
        }
        let _one = self.refreshing.lock().await;
        self.drop_expired();
        if self.has_credentials()? {
            return None;
        }
        Some(self.refresh(url).await)
    }

    /// With a session: whether every credential cookie is in the jar.
    fn has_credentials(&self) -> Option<bool> {
        let session = self.session()?;
        Some((session.credentials.iter()).all(|c| self.browser.cookie(&c.name).is_some()))
    }

    /// One request as a DBSC browser sends it: [`DbscClient::before_request`], then the
    /// request with the jar's cookies.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        form: Option<&[(&str, &str)]>,
    ) -> Response {
        self.before_request(url).await;
        let resp = self.browser.send(method, url, headers, form).await;
        self.read_expiries();
        resp
    }

    /// GET with `X-CSRF: 1`, as the SPA calls its API; the whole response.
    pub async fn api_response(&self, url: &str) -> Response {
        self.send(Method::GET, url, &[("x-csrf", "1")], None).await
    }

    /// GET with `X-CSRF: 1`; status and JSON (or Null).
    pub async fn api(&self, url: &str) -> (StatusCode, Value) {
        let resp = self.api_response(url).await;
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST /bff/logout` with `X-CSRF: 1` at `gateway`.
    pub async fn logout(&self, gateway: &str) -> Answer {
        let resp = (self.send(
            Method::POST,
            &format!("{gateway}/bff/logout"),
            &[("x-csrf", "1")],
            None,
        ))
        .await;
        Answer::read(resp).await
    }

    async fn post(&self, url: &str, headers: &[(&str, String)]) -> Answer {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = self.browser.send(Method::POST, url, &headers, None).await;
        self.read_expiries();
        Answer::read(resp).await
    }

    /// Reads the `Max-Age` of every `Set-Cookie` received since the last call.
    fn read_expiries(&self) {
        let now = Instant::now();
        let all = self.browser.set_cookies.lock().expect("set-cookies");
        let mut seen = self.seen.lock().expect("seen");
        let mut expiries = self.expiries.lock().expect("expiries");
        for header in &all[*seen..] {
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let max_age = parts.find_map(|attr| {
                let (k, v) = attr.split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("max-age")
                    .then(|| v.trim().parse::<i64>().ok())?
            });
            match max_age {
                Some(secs) if secs > 0 && !value.trim().is_empty() => {
                    let secs = secs.unsigned_abs();
                    expiries.insert(name.trim().to_owned(), now + Duration::from_secs(secs));
                }
                // Cleared (the browser dropped it already), or a session cookie.
                _ => {
                    expiries.remove(name.trim());
                }
            }
        }
        *seen = all.len();
    }

    /// Drops from the jar every cookie whose `Max-Age` has run out.
    fn drop_expired(&self) {
        let now = Instant::now();
        let mut expiries = self.expiries.lock().expect("expiries");
        expiries.retain(|name, expiry| {
            let live = now + EXPIRY_MARGIN < *expiry;
            if !live {
                self.browser.remove_cookie(name);
            }
            live
        });
    }
}

/// `path` resolved against `base` (a URL).
pub fn join(base: &str, path: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(path))
        .unwrap_or_else(|e| panic!("{path} against {base}: {e}"))
        .to_string()
}
