//! Forward auth: an ingress that keeps its own routing (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy `ext_authz` over HTTP) asks, before it sends a request upstream,
//! whether the request may pass and with which credential.
//!
//! The ingress sends the browser's headers (`Cookie`, `X-CSRF`, `Origin`,
//! `Sec-Fetch-Site`) and names the original request in `X-Forwarded-Method` +
//! `X-Forwarded-Uri` (Traefik) or `X-Original-Method` + `X-Original-URI` (nginx). The
//! route is matched on that URI's path as the public listener matches a request, and the
//! proxy's own phases decide ([`crate::proxy::credential`]: method list, CSRF or `Origin`,
//! session, `require`/`acr`/`max_age`, a fresh token with the same single-flight refresh,
//! the DPoP binding). The answer:
//!
//! - 200, `Cache-Control: no-store`, with `Authorization` (and `DPoP` for a DPoP-bound
//!   session on a `dpop` route) for the ingress to send upstream, none on a
//!   `token = "none"` route or for a `user-optional` request without a session; and
//!   `Cookie` holding the browser's cookies without the gateway's, absent when nothing
//!   else is left, for the ingress to send upstream in place of the browser's (the
//!   session cookie never reaches an upstream, as through the proxy).
//! - otherwise the proxy's JSON refusal (401, 403, 503, …), with the same JSON in the
//!   `X-Tokengate-Error` header too: nginx's `auth_request` drops the body of a refusal
//!   and keeps only 401 and 403, so its configuration reads the header
//!   (`auth_request_set`) to give the browser what the proxy would have.
//! - 400 when the original request is not named (or named twice, both ways), 404 when no
//!   route matches (the gateway's own `/bff` included).
//!
//! These answers carry access tokens: this listener is never the public one, and only
//! the ingress may reach it (docs/security.md).
//!
//! What only the proxy can do stays with it: the upstream's response is the ingress's, so
//! an upstream's RFC 9470 challenge is not turned into `step_up_required`, a DPoP nonce the
//! upstream asks for is not learnt, and a WebSocket tunnel is not closed when its session
//! ends.

use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SEC_WEBSOCKET_KEY};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::crypto::cookie;
use crate::gateway::Gateway;
use crate::metrics::RouteStats;
use crate::oidc::dpop::DPOP;
use crate::proxy::{self, Credential};
use crate::route::Route;
use crate::server::request::has_dot_segment;
use crate::server::{Body, Reject};

/// The refusal's JSON body again, as a header: what an nginx `auth_request` can read.
pub static X_TOKENGATE_ERROR: HeaderName = HeaderName::from_static("x-tokengate-error");

/// How each ingress names the original request: Traefik's pair (Envoy can be set up to
/// send it), then nginx's (set in its configuration).
static FORMS: [(HeaderName, HeaderName); 2] = [
    (
        HeaderName::from_static("x-forwarded-method"),
        HeaderName::from_static("x-forwarded-uri"),
    ),
    (
        HeaderName::from_static("x-original-method"),
        HeaderName::from_static("x-original-uri"),
    ),
];

/// One question from the ingress: may the request it describes pass, and with what?
pub async fn handle(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    // Only the head matters: an ingress sends no body (nginx is told not to), and one
    // that does is answered without it being read.
    let (resp, stats) = decide(gw, req.headers()).await;
    stats.record(resp.status(), started.elapsed());
    resp
}

/// The answer, and the metrics row it counts in: its route's, or `unmatched`.
async fn decide<'g>(gw: &'g Gateway, headers: &HeaderMap) -> (Response<Body>, &'g RouteStats) {
    let (method, target) = match original(headers) {
        Ok(named) => named,
        Err(reject) => return (refused(&reject), gw.metrics.unmatched()),
    };
    let path = target.path();
    // The public listener's own order (`app::dispatch`): dot segments refused, `/bff`
    // the gateway's own and never a route's, then the longest matching route.
    if has_dot_segment(path) {
        let reject = Reject::BadRequest("the path has dot segments");
        return (refused(&reject), gw.metrics.unmatched());
    }
    let route = match gw.routes.find(path) {
        Some(route) if !(path == "/bff" || path.starts_with("/bff/")) => route,
        _ => return (refused(&Reject::NotFound), gw.metrics.unmatched()),
    };
    let upgrading = is_upgrade(headers);
    let answer = match proxy::credential(gw, route, &method, headers, upgrading).await {
        Ok(credential) => allowed(gw, route, &method, &target, headers, credential),
        Err(reject) => Err(reject),
    };
    let resp = answer.unwrap_or_else(|reject| refused(&reject));
    (resp, gw.metrics.route(route.index))
}

/// The original request's method and path (with its query), from exactly one of the
/// [`FORMS`], each header once. Both forms at once is refused rather than one preferred:
/// an ingress sets one pair and passes the other through from the browser, so honouring
/// either could let a browser name a route with weaker rules than the one it calls.
fn original(headers: &HeaderMap) -> Result<(Method, PathAndQuery), Reject> {
    let present = |name: &HeaderName| headers.get_all(name).iter().count();
    let mut named = FORMS
        .iter()
        .filter(|(method, uri)| present(method) + present(uri) > 0);
    let Some((method_name, uri_name)) = named.next() else {
        return Err(Reject::BadRequest(
            "forward auth needs X-Forwarded-Method and X-Forwarded-Uri, or X-Original-Method and X-Original-URI",
        ));
    };
    if named.next().is_some() {
        return Err(Reject::BadRequest(
            "the original request is named by both X-Forwarded-* and X-Original-* headers",
        ));
    }
    if present(method_name) != 1 || present(uri_name) != 1 {
        return Err(Reject::BadRequest(
            "the original method and URI must each be named exactly once",
        ));
    }
    let method = headers
        .get(method_name)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
        .ok_or(Reject::BadRequest("the original method is not a method"))?;
    // Origin form (`/path?query`) as ingresses send it; an absolute URI gives its path.
    let target = headers
        .get(uri_name)
        .and_then(|v| http::Uri::try_from(v.as_bytes()).ok())
        .and_then(|uri| uri.path_and_query().cloned())
        .filter(|pq| pq.path().starts_with('/'))
        .ok_or(Reject::BadRequest("the original URI is not a request path"))?;
    Ok((method, target))
}

/// A WebSocket handshake, as far as an ingress lets it be seen. `Upgrade` and
/// `Connection` are hop-by-hop: nginx clears `Upgrade` in its subrequest and Traefik drops
/// both. A browser's handshake always carries `Sec-WebSocket-Key`, which no page script
/// can set (a `Sec-` name), so it stands for the upgrade as safely as `Upgrade` does.
fn is_upgrade(headers: &HeaderMap) -> bool {
    crate::server::headers::is_upgrade(headers) || headers.contains_key(SEC_WEBSOCKET_KEY)
}

/// 200 with what the ingress sends upstream.
fn allowed(
    gw: &Gateway,
    route: &Route,
    method: &Method,
    target: &PathAndQuery,
    headers: &HeaderMap,
    credential: Credential,
) -> Result<Response<Body>, Reject> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    let h = resp.headers_mut();
    // An answer that carries a token is never kept by a cache on the way.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(binding) = &credential.dpop {
        // The proof names the URL the upstream is asked for, as the proxy would ask it:
        // the route's `upstream` and `strip_prefix` must describe what the ingress sends.
        let unforwardable = || Reject::BadRequest("the request path cannot be forwarded");
        let path = route.upstream_path(target).map_err(|_| unforwardable())?;
        let url = route.absolute(path).map_err(|_| unforwardable())?;
        h.insert(&DPOP, proxy::dpop::header(gw, binding, method, &url)?);
    }
    if let Some(authorization) = credential.authorization {
        h.insert(AUTHORIZATION, authorization);
    }
    if let Some(cookies) = cookie::without_own(headers) {
        h.insert(COOKIE, cookies);
    }
    Ok(resp)
}

/// The proxy's refusal, its JSON body also in [`X_TOKENGATE_ERROR`].
fn refused(reject: &Reject) -> Response<Body> {
    let mut resp = reject.response();
    if let Ok(body) = HeaderValue::from_maybe_shared(Bytes::from(reject.body())) {
        resp.headers_mut().insert(X_TOKENGATE_ERROR.clone(), body);
    }
    resp
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                )
            })
            .collect()
    }

    #[test]
    fn either_ingress_form_names_the_original_request() {
        for (m, u) in [
            ("x-forwarded-method", "x-forwarded-uri"),
            ("x-original-method", "x-original-uri"),
        ] {
            let (method, target) =
                original(&headers(&[(m, "POST"), (u, "/api/x?y=1")])).expect("named");
            assert_eq!(method, Method::POST);
            assert_eq!(target.as_str(), "/api/x?y=1");
        }
        let (_, target) = original(&headers(&[
            ("x-original-method", "GET"),
            ("x-original-uri", "http://app.example/api/x?y"),
        ]))
        .expect("absolute form");
        assert_eq!(target.as_str(), "/api/x?y");
    }

    #[test]
    fn a_missing_doubled_or_mixed_description_is_refused() {
        let mut twice = headers(&[("x-original-method", "GET"), ("x-original-uri", "/a")]);
        twice.append("x-original-uri", HeaderValue::from_static("/b"));
        for h in [
            headers(&[]),
            headers(&[("x-forwarded-method", "GET")]),
            headers(&[("x-original-uri", "/api")]),
            headers(&[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/public"),
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/admin"),
            ]),
            headers(&[("x-original-method", "G T"), ("x-original-uri", "/a")]),
            headers(&[("x-original-method", "GET"), ("x-original-uri", "*")]),
            headers(&[("x-original-method", "GET"), ("x-original-uri", "")]),
            twice,
        ] {
            let reject = original(&h).expect_err("refused");
            assert_eq!(reject.status(), StatusCode::BAD_REQUEST, "{h:?}");
        }
    }

    #[test]
    fn a_websocket_handshake_is_seen_without_its_hop_by_hop_headers() {
        assert!(is_upgrade(&headers(&[(
            "sec-websocket-key",
            "dGhlIHNhbXBsZSBub25jZQ=="
        )])));
        assert!(is_upgrade(&headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade")
        ])));
        assert!(!is_upgrade(&headers(&[("x-csrf", "1")])));
    }

    #[test]
    fn a_refusal_carries_its_json_in_a_header_too() {
        let resp = refused(&Reject::StepUpRequired("/bff/login?acr_values=x".into()));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let header = resp.headers()[&X_TOKENGATE_ERROR].to_str().expect("ascii");
        let json: serde_json::Value = serde_json::from_str(header).expect("json");
        assert_eq!(json["error"], "step_up_required");
        assert_eq!(json["login_url"], "/bff/login?acr_values=x");
    }
}
