//! DPoP towards upstreams (RFC 9449 §7): a DPoP-bound token goes with a fresh proof for
//! the exact method and URL the upstream sees, signed by the session's key, carrying the
//! upstream's latest nonce. An upstream that asks for a (new) nonce gets the request again
//! once, when it had no body to replay; with a body, its 401 goes back to the SPA and the
//! nonce is used from the next request on.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{Either, Empty};

use crate::crypto::signing::SigningKey;
use crate::gateway::Gateway;
use crate::net::UpstreamBody;
use crate::oidc::dpop::{self, DPOP};
use crate::server::Reject;

/// The session key and token a proof is made for.
pub struct Binding {
    pub key: Arc<SigningKey>,
    /// The access token, for `ath`.
    pub token: String,
}

/// What is needed to send a bodiless request again.
pub struct Replay {
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
}

/// Adds the `DPoP` proof header for the request as it will be sent to `target` (its
/// absolute URL); returns what a nonce retry needs when the request has no body.
pub fn sign(
    gw: &Gateway,
    binding: &Binding,
    req: &mut Request<UpstreamBody>,
    target: &http::Uri,
) -> Result<Option<Replay>, Reject> {
    let proof = header(gw, binding, req.method(), target)?;
    req.headers_mut().insert(&DPOP, proof);
    Ok(bodiless(req).then(|| Replay {
        method: req.method().clone(),
        uri: req.uri().clone(),
        headers: req.headers().clone(),
    }))
}

/// The `DPoP` header for a request sent as `method` to `target` (its absolute URL), with
/// the upstream's latest nonce when one is known. Forward auth answers it for the ingress
/// to send, and so never learns a nonce the upstream asks for.
pub fn header(
    gw: &Gateway,
    binding: &Binding,
    method: &Method,
    target: &http::Uri,
) -> Result<HeaderValue, Reject> {
    let nonce = gw.upstream_nonces.get(&dpop::origin(target));
    proof(binding, method, target, nonce.as_deref())
}

/// After the upstream answered: remembers a nonce it sent, and when it asked for one
/// and the request can be replayed, the request again with a new proof.
pub fn retry(
    gw: &Gateway,
    binding: &Binding,
    replay: Option<Replay>,
    status: http::StatusCode,
    headers: &HeaderMap,
    target: &http::Uri,
) -> Result<Option<Request<UpstreamBody>>, Reject> {
    let origin = dpop::origin(target);
    if !gw.upstream_nonces.learn(&origin, headers) {
        return Ok(None);
    }
    let Some(replay) = replay.filter(|_| dpop::wants_nonce(status, headers, b"")) else {
        return Ok(None);
    };
    let nonce = gw.upstream_nonces.get(&origin);
    let mut req = Request::new(Either::Right(Empty::<Bytes>::new()));
    *req.method_mut() = replay.method;
    *req.uri_mut() = replay.uri;
    *req.headers_mut() = replay.headers;
    let proof = proof(binding, req.method(), target, nonce.as_deref())?;
    req.headers_mut().insert(&DPOP, proof);
    Ok(Some(req))
}

fn proof(
    binding: &Binding,
    method: &Method,
    uri: &http::Uri,
    nonce: Option<&str>,
) -> Result<HeaderValue, Reject> {
    dpop::proof(
        &binding.key,
        method.as_str(),
        &dpop::htu(uri),
        Some(&binding.token),
        nonce,
    )
    .ok()
    .and_then(|p| HeaderValue::from_str(&p).ok())
    .ok_or(Reject::TokenUnavailable)
}

/// A request with no body to send again: a method that carries none and no framing.
fn bodiless(req: &Request<UpstreamBody>) -> bool {
    let h = req.headers();
    matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
    ) && !h.contains_key(http::header::TRANSFER_ENCODING)
        && h.get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}
