//! Proxying a matched request, as named phases in the order they run (habit 3):
//!
//! 1. [`admit`] — is the method allowed on this route?
//! 2. [`authorise`] — CSRF defence (for a WebSocket upgrade, its `Origin`), session
//!    lookup, the route's [`access`] rules, a fresh access token (maybe a refresh);
//!    yields the `Authorization` value to send, if any. May answer 401/403/503.
//! 3. [`prepare`] — the upstream URI and the header rewrite of [`headers`]; takes the
//!    client side of a WebSocket upgrade. Changes only the request.
//! 4. [`send`] — the route's upstream pool ([`pool`]: hyper's client), bounded by
//!    `upstream.response_timeout`. May answer 502/504.
//! 5. [`respond`] — ambiguous framing refused (502), response hop-by-hop headers out, our
//!    cookie names protected, an RFC 9470 challenge turned into `step_up_required`, the
//!    body streamed back untouched; a `101` is wired into a tunnel, which a session's
//!    end closes.
//!
//! Bodies are never buffered: the request's `Incoming` goes upstream as it arrives and
//! the upstream's body comes back the same way, both under `upstream.read_timeout`
//! ([`timeout`]).
//!
//! Forward auth (`crate::forward_auth`) runs phases 1 and 2 alone, through [`credential`],
//! for a request an ingress describes and sends upstream itself: one policy, one token.

pub mod access;
pub mod dpop;
pub mod upgrade;

use std::future::Future;
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::config::TokenPolicy;
use crate::crypto::cookie;
use crate::gateway::Gateway;
use crate::net::pool::{self, PooledBody};
use crate::net::timeout::TimedBody;
use crate::net::UpstreamBody;
use crate::route::Route;
use crate::server::csrf;
use crate::server::headers;
use crate::server::listener::ConnInfo;
use crate::server::{Body, Reject};
use crate::session::{unix_now, StoreKey};

/// The phases, in order; a [`Reject`] is the caller's to turn into its response.
///
/// Written as a function that returns an `async` block rather than as an `async fn`, like
/// the other steps a proxied request takes through (`app::dispatch::handle`, [`send`],
/// `Pool::send`): an `async fn` copies its arguments into locals of its future, so the
/// future holds the request twice, and every layer's future is built and moved whole
/// into the one above it: without those copies the plain release build serves about 4 %
/// more requests per second (docs/benchmarks.md).
#[expect(clippy::manual_async_fn, reason = "see the comment above")]
pub fn forward<'a>(
    gw: &'a Gateway,
    route: &'a Route,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> impl Future<Output = Result<Response<Body>, Reject>> + 'a {
    async move {
        let upgrading = headers::is_upgrade(req.headers());
        admit(route, req.method(), upgrading)?;
        // One look at the cookies serves the session lookup and the upstream rewrite.
        let cookies = cookie::scan(req.headers(), gw.cookies.session());
        let mix = cookies.mix;
        let worker = conn.worker;
        let credential = authorise(gw, route, req.headers(), cookies.named, upgrading).await?;
        // Where a step-up login returns to, should the upstream ask for one (RFC 9470).
        let referer = credential
            .session
            .and_then(|_| req.headers().get(http::header::REFERER).cloned());
        let session = credential.session;
        let (upstream_req, client_upgrade) = prepare(
            gw,
            route,
            req,
            conn,
            credential.authorization,
            mix,
            upgrading,
        )?;
        let resp = match credential.dpop {
            None => send(gw, route, worker, upstream_req).await?,
            // Boxed: its future holds two exchanges, and sized into every request's future
            // it would be moved about by the requests that carry no proof too.
            Some(binding) => {
                Box::pin(send_with_proof(gw, route, worker, binding, upstream_req)).await?
            }
        };
        if session.is_some() {
            let origin = &gw.config.server.public_origin;
            if let Some(step_up) =
                access::upstream_step_up(resp.status(), resp.headers(), referer.as_ref(), origin)
            {
                return Err(step_up);
            }
        }
        let watch = session.map(|key| upgrade::Watch {
            sessions: gw.sessions.clone(),
            key,
        });
        respond(resp, client_upgrade, watch)
    }
}

/// Phase 4 for a DPoP-bound token: the request with its proof, sent again once with a
/// new proof when the upstream asks for a nonce.
async fn send_with_proof(
    gw: &Gateway,
    route: &Route,
    worker: usize,
    binding: dpop::Binding,
    mut upstream_req: Request<UpstreamBody>,
) -> Result<Response<PooledBody>, Reject> {
    // The proof names the whole URL; the request line carries only its path.
    let target = upstream_req
        .uri()
        .path_and_query()
        .cloned()
        .and_then(|path| route.absolute(path).ok())
        .ok_or(Reject::BadRequest("the request path cannot be forwarded"))?;
    let replay = dpop::sign(gw, &binding, &mut upstream_req, &target)?;
    let resp = send(gw, route, worker, upstream_req).await?;
    let again = dpop::retry(gw, &binding, replay, resp.status(), resp.headers(), &target)?;
    match again {
        Some(req) => send(gw, route, worker, req).await,
        None => Ok(resp),
    }
}

/// What a request carries upstream: an `Authorization` value, and for a DPoP-bound
/// token the key and token its proof is made for.
#[derive(Default)]
pub(crate) struct Credential {
    pub(crate) authorization: Option<HeaderValue>,
    pub(crate) dpop: Option<dpop::Binding>,
    /// The user session the token is from.
    pub(crate) session: Option<StoreKey>,
}

/// Phases 1 and 2 for a request that is described, not carried: forward auth
/// (`crate::forward_auth`) asks with the browser's headers, the original method, and
/// whether it is a protocol upgrade. The same rules and the same token (refresh included)
/// as for a proxied request.
pub(crate) async fn credential(
    gw: &Gateway,
    route: &Route,
    method: &Method,
    headers: &HeaderMap,
    upgrading: bool,
) -> Result<Credential, Reject> {
    admit(route, method, upgrading)?;
    let session_cookie = cookie::find(headers, gw.cookies.session());
    authorise(gw, route, headers, session_cookie, upgrading).await
}

/// Phase 1: the route's method list, and whether it takes a protocol upgrade (on a token
/// route only with `websocket = true`).
fn admit(route: &Route, method: &Method, upgrading: bool) -> Result<(), Reject> {
    if !route.allows(method) {
        return Err(Reject::MethodNotAllowed);
    }
    if upgrading && !route.websocket && route.token != TokenPolicy::None {
        return Err(Reject::UpgradeRefused);
    }
    Ok(())
}

/// Phase 2: the token this request carries upstream, per the route's policy.
async fn authorise(
    gw: &Gateway,
    route: &Route,
    headers: &http::HeaderMap,
    session_cookie: cookie::Lookup<'_>,
    upgrading: bool,
) -> Result<Credential, Reject> {
    let csrf = |headers: &http::HeaderMap| match upgrading {
        false => csrf::check(&gw.config.server.public_origin, headers),
        true => csrf::check_upgrade(&gw.config.server.public_origin, headers),
    };
    match route.token {
        TokenPolicy::None => Ok(Credential::default()),
        TokenPolicy::User => {
            // CSRF first: a cross-site request learns nothing, not even whether a session exists.
            csrf(headers)?;
            let live = gw
                .session_named(headers, session_cookie, true)
                .await?
                .ok_or(Reject::NoSession)?;
            if !route.require.is_empty() || !route.step_up.is_empty() {
                let referer = headers.get(http::header::REFERER);
                let origin = &gw.config.server.public_origin;
                access::check(route, &live, unix_now(), referer, origin)?;
            }
            user_credential(gw, route, live).await
        }
        TokenPolicy::UserOptional => match gw.session_named(headers, session_cookie, true).await? {
            Some(live) => {
                csrf(headers)?;
                user_credential(gw, route, live).await
            }
            None => Ok(Credential::default()),
        },
        TokenPolicy::Client => gw
            .client_tokens
            .bearer(route.resource.as_ref(), route.scope.as_ref())
            .await
            .map(|b| Credential {
                authorization: Some(b),
                ..Credential::default()
            })
            .map_err(Reject::from),
    }
}

async fn user_credential(
    gw: &Gateway,
    route: &Route,
    live: std::sync::Arc<crate::session::LiveSession>,
) -> Result<Credential, Reject> {
    let session = Some(live.key);
    let key = live.dpop.clone();
    let authorization = gw
        .refresher
        .bearer(live, route.resource.as_ref())
        .await
        .map_err(Reject::from)?;
    let Some(key) = key else {
        return Ok(Credential {
            authorization: Some(authorization),
            dpop: None,
            session,
        });
    };
    // A DPoP session's header is `DPoP <token>`.
    let token = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("DPoP "))
        .ok_or(Reject::TokenUnavailable)?
        .to_owned();
    if !route.dpop {
        // The route's upstream accepts Bearer only.
        let bearer = crate::session::bearer_header(&token).ok_or(Reject::TokenUnavailable)?;
        return Ok(Credential {
            authorization: Some(bearer),
            dpop: None,
            session,
        });
    }
    Ok(Credential {
        authorization: Some(authorization),
        dpop: Some(dpop::Binding { key, token }),
        session,
    })
}

/// Phase 3: the request as the upstream will see it.
fn prepare(
    gw: &Gateway,
    route: &Route,
    mut req: Request<Incoming>,
    conn: ConnInfo,
    bearer: Option<HeaderValue>,
    cookies: cookie::Mix,
    upgrading: bool,
) -> Result<(Request<UpstreamBody>, Option<OnUpgrade>), Reject> {
    let upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let path = route
        .upstream_path(&pq)
        .map_err(|_| Reject::BadRequest("the request path cannot be forwarded"))?;
    // HTTP/1.1 puts the origin form on the request line; HTTP/2 needs the scheme and
    // authority for its pseudo-headers.
    (parts.uri, parts.version) = match route.upstream.http2 {
        false => (Uri::from(path), Version::HTTP_11),
        true => (
            route
                .absolute(path)
                .map_err(|_| Reject::BadRequest("the request path cannot be forwarded"))?,
            Version::HTTP_2,
        ),
    };
    headers::rewrite_request(
        &mut parts.headers,
        &headers::RequestContext {
            route,
            conn: &conn,
            bearer,
            forwarding: &gw.forwarding,
            upgrade: upgrade.is_some(),
            cookies,
        },
    );
    let body = TimedBody::new(body, gw.config.upstream.read_timeout)
        .counting(crate::server::access_log::request_body());
    Ok((Request::from_parts(parts, Either::Left(body)), upgrade))
}

/// Phase 4: the upstream exchange, up to the response head (the pool keeps
/// `upstream.response_timeout`).
#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
)]
fn send<'a>(
    gw: &'a Gateway,
    route: &'a Route,
    worker: usize,
    req: Request<UpstreamBody>,
) -> impl Future<Output = Result<Response<PooledBody>, Reject>> + 'a {
    async move {
        let started = Instant::now();
        let sent = match gw.upstream.pool(worker, route.index) {
            Ok(pool) if gw.telemetry.is_none() => pool.send(req, started).await,
            // Boxed: an untraced exchange's future stays the size it was.
            Ok(pool) => Box::pin(traced_send(pool, route, req, started)).await,
            Err(e) => Err(e),
        };
        crate::server::access_log::upstream_answered(started);
        match sent {
            Ok(resp) => {
                gw.metrics
                    .route(route.index)
                    .upstream
                    .observe(started.elapsed());
                Ok(resp)
            }
            Err(pool::SendError::Timeout) => Err(Reject::UpstreamTimeout),
            Err(e) => Err(upstream_failed(e)),
        }
    }
}

/// Phase 4 when traces are on: the exchange in a client span of its own, whose
/// `traceparent` the upstream gets (crate::telemetry).
async fn traced_send(
    pool: &std::sync::Arc<pool::Pool>,
    route: &Route,
    mut req: Request<UpstreamBody>,
    started: Instant,
) -> Result<Response<PooledBody>, pool::SendError> {
    let upstream = &route.upstream.authority;
    let exchange = crate::telemetry::upstream(&mut req, upstream.host(), upstream.port_u16());
    let sent = pool.send(req, started).await;
    if let Some(exchange) = exchange {
        exchange.finish(match &sent {
            Ok(resp) => Ok(resp.status()),
            Err(pool::SendError::Timeout) => Err("timeout"),
            Err(_) => Err("unreachable"),
        });
    }
    sent
}

fn upstream_failed(e: pool::SendError) -> Reject {
    tracing::warn!(error = %e, connect = e.is_connect(), "upstream request failed");
    Reject::UpstreamUnreachable
}

/// Phase 5: the response as the browser will see it. A `101` the browser did not ask for
/// would leave its connection in no protocol at all: refused. A tunnel made for a user
/// session is watched, and closed when the session ends.
fn respond(
    mut resp: Response<PooledBody>,
    client_upgrade: Option<OnUpgrade>,
    watch: Option<upgrade::Watch>,
) -> Result<Response<Body>, Reject> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && client_upgrade.is_none() {
        tracing::warn!("upstream switched protocols unasked; answered 502");
        return Err(Reject::UpstreamInvalid);
    }
    if let Err(fault) = headers::rewrite_response(resp.headers_mut(), switching) {
        tracing::warn!(%fault, "upstream response refused; answered 502");
        return Err(Reject::UpstreamInvalid);
    }
    if let (true, Some(client)) = (switching, client_upgrade) {
        let upstream = hyper::upgrade::on(&mut resp);
        tokio::spawn(upgrade::tunnel(client, upstream, watch));
    }
    Ok(resp.map(Either::Left))
}
