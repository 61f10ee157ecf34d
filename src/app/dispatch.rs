//! One entry for every public request: `/bff/*` is answered by the gateway, everything
//! else goes to the route table and the proxy.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::{ready, Either};
use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;

use crate::gateway::Gateway;
use crate::logging::with_request_id;
use crate::metrics::RouteStats;
use crate::server::access_log::{self, during, PublicBody};
use crate::server::listener::ConnInfo;
use crate::server::request::{has_dot_segment, X_REQUEST_ID};
use crate::server::{Body, Reject};
use crate::telemetry::{FutureExt as _, Telemetry};

#[expect(
    clippy::manual_async_fn,
    reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
)]
pub fn handle(
    gw: Arc<Gateway>,
    mut req: Request<Incoming>,
    conn: ConnInfo,
) -> impl Future<Output = Response<PublicBody>> {
    // An `async` block, not an `async fn`: see `crate::proxy::forward` for why.
    async move {
        let started = Instant::now();
        gw.metrics.requests.inc();
        let id = gw.request_ids.for_request(req.headers());
        // The upstream sees the same ID as our logs and the browser.
        req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
        // The request's access line, when the access log is on (server::access_log).
        let access = access_log::begin(&gw.config.log, &req, &id, started);
        // Every line logged while the request is served names it (crate::logging).
        let (mut resp, stats) = match &gw.telemetry {
            None => {
                with_request_id(id.clone(), during(access.as_ref(), route(&gw, req, conn))).await
            }
            // Traced: the request's span is current while it is served. Boxed, so that an
            // untraced request's future stays the size it was.
            Some(telemetry) => {
                let trace = trace_of(&gw, telemetry, &req, &conn);
                let served = during(access.as_ref(), route(&gw, req, conn));
                let traced = Box::pin(served.with_context(trace.clone()));
                let answer = with_request_id(id.clone(), traced).await;
                crate::telemetry::finish_request(&trace, answer.0.status());
                answer
            }
        };
        stats.record(resp.status(), started.elapsed());
        resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
        access_log::until_sent(access, resp, stats)
    }
}

/// The trace of a request, when traces are on: named by its route's prefix, its
/// `traceparent` believed only from a peer whose forwarding headers are (`trusted_proxies`).
fn trace_of(
    gw: &Gateway,
    telemetry: &Telemetry,
    req: &Request<Incoming>,
    conn: &ConnInfo,
) -> opentelemetry::Context {
    let path = req.uri().path();
    let route = if path == "/bff" || path.starts_with("/bff/") {
        Some("/bff")
    } else if has_dot_segment(path) {
        None
    } else {
        gw.routes.find(path).map(|r| r.prefix.as_str())
    };
    let trusted = gw.forwarding.trusts(conn.remote.ip());
    telemetry.request(req.method(), path, route, req.headers(), trusted)
}

/// Which answer a request gets: refused, the `/bff` flows, a route's proxy, or 404.
///
/// Not an `async` block: it picks the future to await and returns it, so the proxy's
/// future is not wrapped in (and moved into) one more layer of its own.
fn route(
    gw: &Gateway,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> impl Future<Output = (Response<Body>, &RouteStats)> + '_ {
    let path = req.uri().path();
    if has_dot_segment(path) {
        // `/api/../bff/user` and friends: refused rather than resolved, so a route's
        // prefix check and the upstream's idea of the path can never disagree.
        let resp = Reject::BadRequest("the path has dot segments").response();
        return Either::Left(ready((resp, gw.metrics.unmatched())));
    }
    if path == "/bff" || path.starts_with("/bff/") {
        // Boxed: the login and callback flows make a large future, and without the box
        // every proxied request would carry (and move) its size.
        let bff = Box::pin(crate::bff::handle(gw, req));
        return Either::Right(Either::Left(bff.map(|resp| (resp, gw.metrics.bff()))));
    }
    match gw.routes.find(path) {
        Some(route) => Either::Right(Either::Right(
            crate::proxy::forward(gw, route, req, conn).map(move |forwarded| {
                let resp = forwarded.unwrap_or_else(|reject| reject.response());
                (resp, gw.metrics.route(route.index))
            }),
        )),
        None => Either::Left(ready((Reject::NotFound.response(), gw.metrics.unmatched()))),
    }
}
