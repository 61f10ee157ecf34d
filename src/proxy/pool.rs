//! The upstream connection pool: one per upstream origin, holding idle HTTP/1.1
//! connections ready for the next proxied request.
//!
//! A route knows its upstream when the gateway starts, so each route is handed its
//! origin's pool then and a request finds it by index: no key to build or hash, no map
//! to lock beyond the pool's own short list of idle connections. A connection goes back
//! to that list when the response body it carried has been read to the end (or at once
//! when the response has none); a response abandoned half-way takes its connection down
//! with it, as HTTP/1.1 leaves no other way to reuse it. Idle connections are taken
//! most-recent first, so the warm ones stay warm and the cold ones age out after
//! `upstream.pool_idle_timeout`.
//!
//! Upstreams are spoken to in HTTP/1.1, over TCP or TLS (rustls), like nginx's
//! `proxy_http_version 1.1` with `keepalive`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use tower_service::Service;

use super::upstream::{Connector, UpstreamBody};
use crate::route::Route;

/// Idle connections kept per upstream origin at most.
const MAX_IDLE: usize = 256;

/// Why an upstream exchange failed before its response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// The pools of every route's upstream, indexed by route.
pub struct Upstreams {
    by_route: Vec<Arc<Pool>>,
}

impl Upstreams {
    /// One pool per distinct upstream origin among `routes`; routes to the same origin
    /// share it.
    pub fn new(routes: &[Route], connector: Connector, idle_timeout: Duration) -> Upstreams {
        let mut origins: Vec<(Uri, Arc<Pool>)> = Vec::new();
        let by_route = routes
            .iter()
            .map(|route| {
                let origin = route.upstream.origin();
                if let Some((_, pool)) = origins.iter().find(|(o, _)| *o == origin) {
                    return pool.clone();
                }
                let pool = Pool::new(origin.clone(), connector.clone(), idle_timeout);
                origins.push((origin, pool.clone()));
                pool
            })
            .collect();
        Upstreams { by_route }
    }

    /// The pool of route `index`'s upstream origin. (A lookup, not an `async fn` that
    /// sends: each layer of future around the exchange moves the request once more.)
    pub fn pool(&self, index: usize) -> Result<&Arc<Pool>, SendError> {
        self.by_route
            .get(index)
            // Routes and pools are built from the same list; this cannot happen.
            .ok_or_else(|| SendError::Connect("no pool for this route".into()))
    }
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    /// The pool's sweep count when it went idle: its age in sweeps, without reading the
    /// clock for every request that hands a connection back.
    since: u64,
}

pub struct Pool {
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    connector: Connector,
    idle_timeout: Duration,
    /// Oldest first; taken from the end.
    idle: Mutex<Vec<Idle>>,
    /// Sweeps so far; one every `sweep_period(idle_timeout)`.
    sweeps: AtomicU64,
}

impl Pool {
    fn new(origin: Uri, connector: Connector, idle_timeout: Duration) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            origin,
            connector,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
            sweeps: AtomicU64::new(0),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool)));
        }
        pool
    }

    /// Sends `req` upstream, up to the response head. The response body keeps the
    /// connection until it has been read. (An `async` block: see `proxy::forward`.)
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
    )]
    pub fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + '_ {
        async move {
            origin_form(req.uri_mut());
            loop {
                let (mut sender, reused) = match self.checkout() {
                    Some(s) => (s, true),
                    // Boxed: connecting is rare, and its future would otherwise make every
                    // request's future (moved about at each step) several times larger.
                    None => (Box::pin(self.connect()).await?, false),
                };
                if sender.ready().await.is_err() {
                    // Closed while idle; a fresh connection that fails to become ready is
                    // reported by the exchange below.
                    if reused {
                        continue;
                    }
                }
                match sender.try_send_request(req).await {
                    Ok(resp) => return Ok(self.lease(sender, resp)),
                    Err(mut e) => match e.take_message() {
                        // Not written: the connection closed under it. Another one may do.
                        Some(back) if reused => req = back,
                        _ => return Err(SendError::Exchange(e.into_error())),
                    },
                }
            }
        }
    }

    /// The most recently used idle connection still open.
    fn checkout(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: self.sweeps.load(Ordering::Relaxed),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, SendError> {
        // The connector bounds the TCP and TLS set-up by `upstream.connect_timeout`.
        let io = self
            .connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// The response, its body holding `sender` until read to the end. A `101` hands the
    /// connection over to the tunnel, and a body already ended frees it now.
    fn lease(
        self: &Arc<Self>,
        sender: SendRequest<UpstreamBody>,
        resp: Response<Incoming>,
    ) -> Response<PooledBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        resp.map(|inner| {
            let mut body = PooledBody {
                inner,
                lease: (!switching).then(|| (sender, self.clone())),
            };
            if body.inner.is_end_stream() {
                body.release();
            }
            body
        })
    }

    /// Counts a sweep and drops the idle connections older than the idle timeout.
    ///
    /// A connection that went idle after sweep `n` has been idle more than `k - 1`
    /// periods at sweep `n + k`; it goes at the first sweep where that is at least the
    /// idle timeout. With the period half the timeout, that is between one and one and a
    /// half timeouts after it went idle, as when its age was read from the clock.
    fn prune(&self) {
        let now = self.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let keep = sweeps_to_expire(self.idle_timeout);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Oldest first: everything before the first young one has expired.
        let expired = idle
            .iter()
            .position(|e| now.saturating_sub(e.since) <= keep)
            .unwrap_or(idle.len());
        idle.drain(..expired);
        idle.retain(|e| !e.sender.is_closed());
    }
}

/// How often a pool is swept: half its idle timeout, at most ten times a second.
fn sweep_period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 2).max(Duration::from_millis(100))
}

/// The sweeps an idle connection outlives: `idle_timeout` in whole periods, rounded up.
fn sweeps_to_expire(idle_timeout: Duration) -> u64 {
    let period = sweep_period(idle_timeout).as_nanos();
    u64::try_from(idle_timeout.as_nanos().div_ceil(period)).unwrap_or(u64::MAX)
}

/// Prunes a pool now and then, until the pool is gone.
async fn sweep(pool: Weak<Pool>) {
    let period = match pool.upgrade() {
        Some(p) => sweep_period(p.idle_timeout),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match pool.upgrade() {
            Some(p) => p.prune(),
            None => return,
        }
    }
}

/// `/path?query`: what HTTP/1.1 puts on the request line to an origin server (the proxy
/// hands requests over in that form already).
fn origin_form(uri: &mut Uri) {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return;
    }
    let mut parts = std::mem::take(uri).into_parts();
    parts.scheme = None;
    parts.authority = None;
    *uri = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"));
}

/// An upstream response body that returns its connection to the pool once read to the
/// end; dropped before that, it closes the connection.
pub struct PooledBody {
    inner: Incoming,
    lease: Option<(SendRequest<UpstreamBody>, Arc<Pool>)>,
}

impl PooledBody {
    /// Back to the pool: now if the connection can take the next request, else once it
    /// can (a request body the upstream answered before reading may still be going
    /// out). Only ready connections are idle, so no request ever waits on another's.
    fn release(&mut self) {
        let Some((mut sender, pool)) = self.lease.take() else {
            return;
        };
        if sender.is_ready() {
            pool.checkin(sender);
            return;
        }
        // Outside a runtime (a body dropped as the process ends) the connection just closes.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limit = pool.idle_timeout;
        rt.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(limit, sender.ready()).await {
                pool.checkin(sender);
            }
        });
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{sweep_period, sweeps_to_expire};

    #[test]
    fn an_idle_connection_outlives_the_idle_timeout_in_whole_sweeps() {
        let ms = Duration::from_millis;
        // 90 s: swept every 45 s, kept at two sweeps, gone at the third (90–135 s idle).
        assert_eq!(
            sweep_period(Duration::from_secs(90)),
            Duration::from_secs(45)
        );
        assert_eq!(sweeps_to_expire(Duration::from_secs(90)), 2);
        // Short timeouts: swept every 100 ms at most.
        assert_eq!(sweep_period(ms(150)), ms(100));
        assert_eq!(sweeps_to_expire(ms(150)), 2);
        assert_eq!(sweeps_to_expire(ms(50)), 1);
        assert_eq!(sweeps_to_expire(Duration::ZERO), 0);
    }
}
