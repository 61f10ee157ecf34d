//! `POST /bff/backchannel-logout`: the provider tells us a user's session ended there
//! (OpenID Connect Back-Channel Logout 1.0). The logout token's signature is checked
//! against the provider's keys (refetched once for an unknown key), its claims by
//! [`logout_token::validate`], its `jti` against the replay memory in the session store;
//! then every session
//! named by `sid` (and, when both are given, the same `sub`) or else by `sub` ends.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::gateway::Gateway;
use crate::oidc::logout_token::{self, LogoutClaims, CLOCK_SKEW_SECS, MAX_AGE_SECS};
use crate::server::{Body, Reject};
use crate::session::{unix_now, EndReason, IndexKey, StoreKey};

/// Largest request body read: a logout token is a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

/// How long an accepted logout token's `jti` is remembered: as long as such a token could
/// still pass the `iat` check.
const REPLAY_MEMORY: Duration = Duration::from_secs(MAX_AGE_SECS + CLOCK_SKEW_SECS);

/// True the first time `(issuer, jti)` is seen by any instance on this session store: the
/// replay memory lives in the store (`remember_once`), so a token played to a second
/// instance behind the same load balancer is refused as well.
async fn first_sighting(gw: &Gateway, issuer: &str, jti: &str) -> Result<bool, Reject> {
    let mut h = Sha256::new();
    h.update(b"logout-jti\0");
    h.update(issuer.as_bytes());
    h.update([0]);
    h.update(jti.as_bytes());
    gw.sessions
        .store()
        .remember_once(&h.finalize().into(), REPLAY_MEMORY)
        .await
        .map_err(|_| Reject::StoreUnavailable)
}

pub async fn receive(gw: &Gateway, req: Request<Incoming>) -> Result<Response<Body>, Reject> {
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !is_form {
        return Err(Reject::BadRequest(
            "a logout token is posted as application/x-www-form-urlencoded",
        ));
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Reject::PayloadTooLarge
            } else {
                Reject::BadRequest("the request body is broken")
            }
        })?
        .to_bytes();
    crate::server::access_log::read_body(body.len());
    let Some(token) = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
    else {
        return Err(Reject::BadRequest("logout_token is missing"));
    };
    let provider = gw.provider.get().ok_or(Reject::ProviderUnavailable)?;
    let claims = match provider.verify_jws(&token).await {
        Ok((header, payload)) => logout_token::validate(
            &header,
            &payload,
            provider.issuer(),
            provider.client_id(),
            unix_now(),
        )
        .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let claims = claims.map_err(|reason| {
        tracing::warn!(%reason, "back-channel logout token refused");
        Reject::BadRequest("invalid logout token")
    })?;
    if !first_sighting(gw, provider.issuer(), &claims.jti).await? {
        tracing::warn!("back-channel logout token replayed; refused");
        return Err(Reject::BadRequest("invalid logout token"));
    }
    let ended = end_sessions(gw, &claims).await?;
    gw.metrics.logouts.backchannel.inc();
    tracing::info!(sessions = ended, "back-channel logout");
    let mut resp = Response::new(http_body_util::Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Ends the sessions the token names; how many ended.
async fn end_sessions(gw: &Gateway, claims: &LogoutClaims) -> Result<usize, Reject> {
    let store_down = |_| Reject::StoreUnavailable;
    let keys: Vec<StoreKey> = match (&claims.sid, &claims.sub) {
        (Some(sid), sub) => {
            let mut keys = gw
                .sessions
                .find(&IndexKey::sid(sid))
                .await
                .map_err(store_down)?;
            if let Some(sub) = sub {
                let mut same_user = Vec::with_capacity(keys.len());
                for key in keys {
                    let live = gw.sessions.peek(key).await.map_err(store_down)?;
                    if live.is_some_and(|l| &l.record.sub == sub) {
                        same_user.push(key);
                    }
                }
                keys = same_user;
            }
            keys
        }
        (None, Some(sub)) => gw
            .sessions
            .find(&IndexKey::sub(sub))
            .await
            .map_err(store_down)?,
        (None, None) => Vec::new(),
    };
    let mut ended = 0;
    for key in keys {
        if gw
            .sessions
            .end(key, EndReason::Backchannel)
            .await
            .map_err(store_down)?
        {
            ended += 1;
        }
    }
    Ok(ended)
}
