//! Device Bound Session Credentials (DBSC): a session the browser binds to a key its
//! device holds, so a copied cookie is worth minutes rather than the whole session.
//!
//! The server side of the WICG draft (w3c/webappsec-dbsc, `spec.bs` at revision d346811 of
//! 2026-02-17):
//! - The login's last response offers registration ([`offer`]):
//!   `Secure-Session-Registration: (ES256 RS256);path="/bff/dbsc/register";challenge="…"`.
//! - The browser makes a key pair and posts a proof (a `dbsc+jwt` JWS carrying the public
//!   key and answering the challenge) to [`REGISTER_PATH`] with the session cookie
//!   ([`register`]). The record keeps the key, the browser gets a short-lived bound cookie
//!   (`session.bound_cookie_lifetime`) and its instructions (what to keep, where to renew).
//! - From then on a request counts as the session's only with an unexpired bound cookie
//!   ([`admit`]). When it is missing, the browser holds its requests and posts to
//!   [`REFRESH_PATH`] ([`refresh`]): the first answer is a challenge (403), the second post
//!   carries the proof signed by the device key, and its answer a new bound cookie.
//!
//! Challenges and bound cookies are sealed with the session key ring, bound to the
//! session's store key and to their purpose, so every instance can check them and none
//! has to remember them. A challenge serves once: the record keeps the sequence number of
//! the newest one a proof answered and refuses any not newer, a compare-and-set in the
//! store. The DBSC session identifier is the store key sealed: a refresh finds its session
//! by it alone, since the session cookie (SameSite=Strict) is not sent on a refresh that a
//! cross-site navigation set off.

pub mod proof;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use sfv::{KeyRef, ListSerializer, Parser, StringRef, TokenRef};

use crate::config::DeviceBinding;
use crate::crypto::cookie;
use crate::crypto::KeyRing;
use crate::gateway::Gateway;
use crate::metrics::{Counter, DeviceBindingCounts};
use crate::server::respond::json;
use crate::server::{Body, Reject};
use crate::session::device::{
    admit, bound_cookie, challenge, challenge_seq, identifier, now_ms, session_of, Admit, Sealed,
};
use crate::session::{BoundDevice, Conditional, EndReason, SessionId, StoreKey};
use proof::ProofError;

pub const REGISTER_PATH: &str = "/bff/dbsc/register";
pub const REFRESH_PATH: &str = "/bff/dbsc/refresh";

const REGISTRATION: &str = "secure-session-registration";
const CHALLENGE: &str = "secure-session-challenge";
const RESPONSE: &str = "secure-session-response";
const SESSION_ID: &str = "sec-secure-session-id";

/// The `Secure-Session-Registration` header a login's response carries for the new
/// session under `key`; `None` with `device_binding = "off"`.
pub fn offer(gw: &Gateway, key: &StoreKey) -> Option<HeaderValue> {
    if gw.config.session.device_binding == DeviceBinding::Off {
        return None;
    }
    let value = registration_header(&gw.keys, key)?;
    gw.metrics.device_binding.offered.inc();
    Some(value)
}

fn registration_header(keys: &KeyRing, key: &StoreKey) -> Option<HeaderValue> {
    let challenge = challenge(keys, Sealed::RegistrationChallenge, key, 0);
    let mut list = ListSerializer::new();
    {
        let mut algs = list.inner_list();
        let _ = algs.bare_item(TokenRef::from_str("ES256").ok()?);
        let _ = algs.bare_item(TokenRef::from_str("RS256").ok()?);
        let _ = algs
            .finish()
            .parameter(
                KeyRef::from_str("path").ok()?,
                StringRef::from_str(REGISTER_PATH).ok()?,
            )
            .parameter(
                KeyRef::from_str("challenge").ok()?,
                StringRef::from_str(&challenge).ok()?,
            );
    }
    HeaderValue::try_from(list.finish()?).ok()
}

fn challenge_header(keys: &KeyRing, key: &StoreKey, last: u64, id: &str) -> Option<HeaderValue> {
    let challenge = challenge(keys, Sealed::RefreshChallenge, key, last);
    let value = sfv::ItemSerializer::new()
        .bare_item(StringRef::from_str(&challenge).ok()?)
        .parameter(KeyRef::from_str("id").ok()?, StringRef::from_str(id).ok()?)
        .finish();
    HeaderValue::try_from(value).ok()
}

/// The string a request header holds as a structured-field string (parameters ignored,
/// as the draft says); a bare token is taken too.
fn string_field(headers: &HeaderMap, name: &str) -> Option<String> {
    let item: sfv::Item = Parser::new(headers.get(name)?.as_bytes()).parse().ok()?;
    match item.bare_item {
        sfv::BareItem::String(s) => Some(s.as_str().to_owned()),
        sfv::BareItem::Token(t) => Some(t.as_str().to_owned()),
        _ => None,
    }
}

/// `POST /bff/dbsc/register`: binds the session named by the cookie to the key of the
/// proof, which must answer a registration challenge issued for this session.
pub async fn register(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    let counts = &gw.metrics.device_binding;
    let result = bind(gw, req).await;
    match &result {
        Ok(_) => counts.bound.inc(),
        Err(_) => counts.refused.inc(),
    }
    result
}

async fn bind(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    let cookie::Lookup::One(value) = cookie::find(req.headers(), gw.cookies.session()) else {
        return Err(Reject::NoSession);
    };
    let key = SessionId::store_key_of(value).ok_or(Reject::NoSession)?;
    let live = gw
        .sessions
        .peek(key)
        .await
        .map_err(|_| Reject::StoreUnavailable)?
        .ok_or(Reject::NoSession)?;
    if live.record.device.is_some() {
        return Err(Reject::BadRequest(
            "the session is already bound to a device",
        ));
    }
    // Under `required`, an unbound session past its grace ends rather than binds late.
    let verdict = admit(
        &gw.config.session,
        &gw.cookies,
        &gw.keys,
        &live,
        req.headers(),
        crate::session::unix_now(),
    );
    if verdict == Admit::End {
        gw.sessions
            .end(key, EndReason::Unbound)
            .await
            .map_err(|_| Reject::StoreUnavailable)?;
        return Err(Reject::NoSession);
    }
    let text = string_field(req.headers(), RESPONSE).ok_or(Reject::BadRequest(
        "Secure-Session-Response is missing or malformed",
    ))?;
    let proof = proof::registration(&text).map_err(|e| {
        tracing::info!(error = %e, "DBSC registration refused");
        Reject::BadRequest("the registration proof is not valid")
    })?;
    let Some(seq) = challenge_seq(
        &gw.keys,
        Sealed::RegistrationChallenge,
        &key,
        &proof.challenge,
    ) else {
        let header = registration_header(&gw.keys, &key)
            .ok_or(Reject::BadRequest("no challenge can be made"))?;
        return Err(Reject::DeviceProofNeeded(REGISTRATION, header));
    };
    let now = crate::session::unix_now();
    let changed = gw
        .sessions
        .update_if(key, |record| {
            if record.device.is_some() {
                return false;
            }
            record.device = Some(BoundDevice {
                jwk: proof.jwk.clone(),
                alg: proof.alg.to_owned(),
                bound_at: now,
                last_challenge: seq,
            });
            true
        })
        .await
        .map_err(|_| Reject::StoreUnavailable)?;
    match changed {
        Conditional::Written(_) => {
            tracing::info!(session = %key.short(), alg = proof.alg, "session bound to a device key");
            Ok(instructions(gw, &key, &identifier(&gw.keys, &key)))
        }
        Conditional::Declined => Err(Reject::BadRequest(
            "the session is already bound to a device",
        )),
        Conditional::Gone => Err(Reject::NoSession),
    }
}

/// `POST /bff/dbsc/refresh`: a new bound cookie for a proof of the device key.
pub async fn refresh(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    let counts = &gw.metrics.device_binding;
    let id = string_field(req.headers(), SESSION_ID).ok_or(Reject::BadRequest(
        "Sec-Secure-Session-Id is missing or malformed",
    ))?;
    let Some(key) = session_of(&gw.keys, &id) else {
        counts.ended.inc();
        return Ok(discontinued(gw));
    };
    let live = gw
        .sessions
        .peek(key)
        .await
        .map_err(|_| Reject::StoreUnavailable)?;
    let Some(device) = live.as_ref().and_then(|l| l.record.device.clone()) else {
        counts.ended.inc();
        return Ok(discontinued(gw));
    };
    let new_challenge = |counter: &Counter| {
        counter.inc();
        challenge_header(&gw.keys, &key, device.last_challenge, &id)
            .map(|h| Reject::DeviceProofNeeded(CHALLENGE, h))
            .unwrap_or(Reject::BadRequest("Sec-Secure-Session-Id is malformed"))
    };
    let Some(text) = string_field(req.headers(), RESPONSE) else {
        return Err(new_challenge(&counts.challenged));
    };
    let answered = match proof::refresh(&text, &device) {
        Ok(challenge) => challenge,
        Err(ProofError::Forged) => return forged(gw, key, counts).await,
        Err(e @ ProofError::Malformed(_)) => {
            tracing::info!(error = %e, "DBSC refresh refused");
            return Err(Reject::BadRequest("the refresh proof is not valid"));
        }
    };
    let Some(seq) = challenge_seq(&gw.keys, Sealed::RefreshChallenge, &key, &answered) else {
        return Err(new_challenge(&counts.stale));
    };
    let changed = gw
        .sessions
        .update_if(key, |record| match &mut record.device {
            Some(d) if seq > d.last_challenge => {
                d.last_challenge = seq;
                true
            }
            _ => false,
        })
        .await
        .map_err(|_| Reject::StoreUnavailable)?;
    match changed {
        Conditional::Written(_) => {
            counts.refreshed.inc();
            Ok(instructions(gw, &key, &id))
        }
        // Answered already (a replay, or a race with another refresh).
        Conditional::Declined => Err(new_challenge(&counts.stale)),
        Conditional::Gone => {
            counts.ended.inc();
            Ok(discontinued(gw))
        }
    }
}

/// A proof the device key did not sign, for a session bound to it: whoever sent it holds
/// the session's identifier (and likely its cookies) without the key. The session ends,
/// as for a replayed refresh token.
async fn forged(
    gw: &Gateway,
    key: StoreKey,
    counts: &DeviceBindingCounts,
) -> Result<Response<Body>, Reject> {
    counts.forged.inc();
    tracing::warn!(session = %key.short(), "DBSC proof not signed by the device key: session ended");
    gw.sessions
        .end(key, EndReason::DeviceProof)
        .await
        .map_err(|_| Reject::StoreUnavailable)?;
    Ok(discontinued(gw))
}

/// The session instructions (registration and refresh answer alike), with a new bound
/// cookie.
fn instructions(gw: &Gateway, key: &StoreKey, id: &str) -> Response<Body> {
    let lifetime = gw.config.session.bound_cookie_lifetime;
    let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
    let expires = now_ms().saturating_add(lifetime_ms);
    let body = serde_json::json!({
        "session_identifier": id,
        "refresh_url": REFRESH_PATH,
        "scope": {
            "origin": gw.config.server.public_origin,
            "include_site": false,
            "scope_specification": [],
        },
        "credentials": [{
            "type": "cookie",
            "name": gw.cookies.bound(),
            "attributes": gw.cookies.bound_attributes(),
        }],
    });
    let cookie = gw
        .cookies
        .set_bound(&bound_cookie(&gw.keys, key, expires), lifetime);
    with_cookie(json(StatusCode::OK, body.to_string()), &cookie)
}

/// `{"continue": false}`: the browser drops its DBSC session (and we our bound cookie).
fn discontinued(gw: &Gateway) -> Response<Body> {
    let body = serde_json::json!({ "continue": false }).to_string();
    with_cookie(json(StatusCode::OK, body), &gw.cookies.clear_bound())
}

fn with_cookie(mut resp: Response<Body>, set_cookie: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(&[[7; 32]]).expect("ring")
    }

    #[test]
    fn the_registration_header_is_a_structured_list() {
        let keys = ring();
        let v = registration_header(&keys, &StoreKey([1; 32])).expect("header");
        let list: sfv::List = Parser::new(v.as_bytes()).parse().expect("parses");
        let Some(sfv::ListEntry::InnerList(algs)) = list.first() else {
            panic!("an inner list of algorithms: {v:?}");
        };
        let names: Vec<_> = algs
            .items
            .iter()
            .filter_map(|i| i.bare_item.as_token().map(|t| t.as_str().to_owned()))
            .collect();
        assert_eq!(names, ["ES256", "RS256"]);
        let path = algs.params.get("path").and_then(|p| p.as_string());
        assert_eq!(path.map(|p| p.as_str()), Some(REGISTER_PATH));
        let challenge = algs.params.get("challenge").and_then(|p| p.as_string());
        assert!(challenge.is_some_and(|c| challenge_seq(
            &keys,
            Sealed::RegistrationChallenge,
            &StoreKey([1; 32]),
            c.as_str()
        )
        .is_some()));
    }
}
