//! The upstream connection pools: one per upstream origin, every exchange through hyper's
//! client connections (`hyper::client::conn::http1`, or `http2` for a route that asks
//! for it). Framing, chunked coding, keep-alive and what may be sent again are hyper's.
//!
//! A route knows its upstream when the gateway starts, so each route is handed its
//! origin's pool then and a request finds it by index: no key to build or hash, no map
//! to lock beyond the pool's own short list of idle connections.
//!
//! HTTP/1.1: a connection goes back to the idle list when the response body it carried
//! has been read to the end (or at once when the response has none); a response
//! abandoned half-way closes its connection, as HTTP/1.1 leaves no other way to reuse it.
//! Idle connections are taken most-recent first, so the warm ones stay warm and the cold
//! ones age out after `upstream.pool_idle_timeout`. HTTP/2: one connection per origin,
//! shared by every request, made again when it closes.
//!
//! `upstream.response_timeout` on an HTTP/1.1 connection is kept by the pool's sweep, not
//! by a timer per request: the connection notes when the response head of the request it
//! carries is due (a relaxed store when it is sent, another when the head is in), and the
//! sweep, every eighth of the timeout (at most once a second), aborts a connection whose
//! head is overdue; the request waiting on it fails as timed out. A tokio timer armed and
//! cancelled for every request cost about 800 of a proxied request's 49,000 instructions
//! (`bench/profile.sh`).
//! Connecting and HTTP/2 exchanges, and `upstream.read_timeout` while a body streams
//! ([`super::timeout`]), are tokio timers.

mod body;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::AbortHandle;
use tower_service::Service;

use crate::net::{Connector, UpstreamBody};
use crate::route::Route;
use crate::sweep::{self, Millis, Watched};

pub use body::{BodyError, PooledBody};

/// Idle connections kept per upstream origin at most.
const MAX_IDLE: usize = 256;

/// The largest response head accepted from an upstream, status line included (and the
/// largest chunked trailer section); a larger one is a 502.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an upstream exchange failed before its response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    #[error("no response head within upstream.response_timeout")]
    Timeout,
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// A pool's time limits (`upstream.pool_idle_timeout`, `.response_timeout`,
/// `.read_timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: Duration,
    pub response: Duration,
    pub read: Duration,
}

/// The pools of every route's upstream, for each worker, indexed by route.
///
/// Each worker (an event loop of its own, see `app::serve`) has pools of its own: a
/// connection is made, driven and reused on the one thread whose requests it carries, so
/// no request wakes another thread to reach its upstream, as nginx's workers each keep
/// their own upstream connections.
pub struct Upstreams {
    by_worker: Vec<Vec<Arc<Pool>>>,
}

impl Upstreams {
    /// For each of `workers` workers, one pool per distinct upstream origin and protocol
    /// among `routes`; routes to the same origin share it. `http1` and `http2` are the
    /// connectors for each protocol.
    pub fn new(
        routes: &[Route],
        http1: &Connector,
        http2: &Connector,
        timeouts: Timeouts,
        workers: usize,
    ) -> Upstreams {
        let by_worker = (0..workers.max(1))
            .map(|_| {
                let mut origins: Vec<(Uri, bool, Arc<Pool>)> = Vec::new();
                routes
                    .iter()
                    .map(|route| {
                        let origin = route.upstream.origin();
                        let h2 = route.upstream.http2;
                        if let Some((_, _, pool)) =
                            origins.iter().find(|(o, p, _)| *o == origin && *p == h2)
                        {
                            return pool.clone();
                        }
                        let connector = if h2 { http2.clone() } else { http1.clone() };
                        let pool = Pool::new(origin.clone(), h2, connector, timeouts);
                        origins.push((origin, h2, pool.clone()));
                        pool
                    })
                    .collect()
            })
            .collect();
        Upstreams { by_worker }
    }

    /// How many workers the pools are for.
    pub fn workers(&self) -> usize {
        self.by_worker.len()
    }

    /// The pool of route `index`'s upstream origin for `worker`. (A lookup, not an
    /// `async fn` that sends: each layer of future around the exchange moves the request
    /// once more.)
    pub fn pool(&self, worker: usize, index: usize) -> Result<&Arc<Pool>, SendError> {
        self.by_worker
            .get(worker)
            .and_then(|pools| pools.get(index))
            // Pools are built for every worker and route at start; this cannot happen.
            .ok_or_else(|| SendError::Connect("no pool for this route".into()))
    }
}

/// An HTTP/1.1 connection: the handle requests are sent through, and what the pool's
/// sweep watches on it.
struct Conn {
    sender: http1::SendRequest<UpstreamBody>,
    watch: Arc<Watch>,
}

impl Conn {
    /// Closes the connection at once (aborts the task that drives it).
    fn close(&self) {
        self.watch.task.abort();
    }
}

/// A connection as the pool's sweep sees it: when the response head of its exchange
/// under way is due, and the task that drives it.
struct Watch {
    /// On the pool's [`Millis`] clock; 0 while no exchange waits for a head.
    due: AtomicU64,
    /// Set by the sweep when `due` passed: it has aborted the connection.
    overdue: AtomicBool,
    task: AbortHandle,
}

struct Idle {
    conn: Conn,
    /// The pool's sweep count when it went idle: its age in sweeps, without reading the
    /// clock for every request that hands a connection back.
    since: u64,
}

enum Connections {
    /// Idle HTTP/1.1 connections, oldest first; taken from the end (most recent first).
    Http1(Mutex<Vec<Idle>>),
    /// The one HTTP/2 connection, shared (its handle is a cheap clone).
    Http2(Http2Conn),
}

struct Http2Conn {
    /// The connection in use; a std mutex, held only to clone or replace the handle.
    current: Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    /// Held while a connection is made (an async mutex: across the connect), so that
    /// requests finding none at once wait for one connection rather than each make one.
    connecting: tokio::sync::Mutex<()>,
}

impl Http2Conn {
    fn open(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    }
}

pub struct Pool {
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    connector: Connector,
    timeouts: Timeouts,
    conns: Connections,
    /// Idle prunes so far; one every `prune_period(idle)`.
    sweeps: AtomicU64,
    /// Set once the prune task and the response sweep run (HTTP/1.1 pools, from their
    /// first connection).
    pruning: Once,
    /// The clock of the response deadlines, and the connections whose deadlines the
    /// sweep checks.
    clock: Millis,
    exchanges: Watched<Watch>,
}

impl Pool {
    fn new(origin: Uri, http2: bool, connector: Connector, timeouts: Timeouts) -> Arc<Pool> {
        let conns = match http2 {
            false => Connections::Http1(Mutex::new(Vec::new())),
            true => Connections::Http2(Http2Conn {
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }),
        };
        Arc::new(Pool {
            origin,
            connector,
            timeouts,
            conns,
            sweeps: AtomicU64::new(0),
            pruning: Once::new(),
            clock: Millis::default(),
            exchanges: Watched::default(),
        })
    }

    /// Starts pruning idle connections and sweeping for overdue response heads, in one
    /// task on the runtime of the worker whose connections they are (the one making its
    /// first connection); once.
    fn start_pruning(self: &Arc<Self>) {
        self.pruning.call_once(|| {
            let weak = Arc::downgrade(self);
            let mut prunes = tokio::time::interval(prune_period(self.timeouts.idle));
            let mut sweeps = tokio::time::interval(sweep::period_for(self.timeouts.response));
            for tick in [&mut prunes, &mut sweeps] {
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.reset();
            }
            tokio::spawn(async move {
                loop {
                    let prune = tokio::select! {
                        _ = prunes.tick() => true,
                        _ = sweeps.tick() => false,
                    };
                    let Some(pool) = weak.upgrade() else { return };
                    match prune {
                        true => pool.prune(),
                        false => pool.expire(pool.clock.at(Instant::now())),
                    }
                }
            });
        });
    }

    /// Sends `req` upstream, up to the response head, which must come within the response
    /// timeout of `started` (when the caller began the exchange). The response body keeps
    /// an HTTP/1.1 connection until it has been read. (An `async` block: see
    /// `proxy::forward`.)
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
    )]
    pub fn send(
        self: &Arc<Self>,
        req: Request<UpstreamBody>,
        started: Instant,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + '_ {
        async move {
            let deadline = started + self.timeouts.response;
            match &self.conns {
                Connections::Http1(_) => self.send_http1(req, deadline).await,
                Connections::Http2(_) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    Box::pin(self.send_http2(req, deadline)).await
                }
            }
        }
    }

    /// HTTP/1.1: an idle connection or a new one. A request that hyper hands back as not
    /// written (the idle connection had closed under it) goes again on another. Once any
    /// of it was written, only a bodiless request of an idempotent method (RFC 9110
    /// §9.2.2) goes again, and only when the reused connection closed before any answer:
    /// an upstream that closes a keep-alive connection without saying so may do it just
    /// as the next request is written.
    ///
    /// The response head is due by `deadline`: connecting under a timer, the exchange
    /// under the pool's sweep (see the module's comment).
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
    )]
    fn send_http1(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + '_ {
        async move {
            let due = self.clock.at(deadline);
            loop {
                let (mut conn, reused) = match self.take() {
                    Some(c) => (c, true),
                    // Boxed: connecting is rare, and its future would otherwise make every
                    // request's future (moved about at each step) several times larger.
                    None => (Box::pin(self.connect_http1_by(deadline)).await?, false),
                };
                // An idle connection was ready when it went back; a new one is ready once
                // its handshake is done. One that closed since hands the request back.
                let again = if reused { replayable(&req) } else { None };
                conn.watch.due.store(due, Ordering::Relaxed);
                let sent = conn.sender.try_send_request(req).await;
                conn.watch.due.store(0, Ordering::Relaxed);
                // Overdue: the sweep has aborted the connection, whatever came of it (a head
                // that came as the sweep ran is refused with it: its body cannot follow).
                if conn.watch.overdue.load(Ordering::Relaxed) {
                    return Err(SendError::Timeout);
                }
                match sent {
                    Ok(resp) => return Ok(self.lease(conn, resp)),
                    Err(mut e) => match (e.take_message(), again) {
                        (Some(back), _) if reused => req = back,
                        (None, Some(copy)) if e.error().is_incomplete_message() => req = copy,
                        _ => return Err(SendError::Exchange(e.into_error())),
                    },
                }
            }
        }
    }

    /// HTTP/2: the shared connection, made when there is none or it has closed. A
    /// request hyper hands back unsent goes once more on a new connection.
    async fn send_http2(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<PooledBody>, SendError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let exchange = async {
                let mut sender = self.http2_sender().await?;
                sender.ready().await?;
                Ok::<_, SendError>(sender.try_send_request(req).await)
            };
            let sent = match tokio::time::timeout_at(deadline, exchange).await {
                Ok(sent) => sent?,
                Err(_) => return Err(SendError::Timeout),
            };
            match sent {
                Ok(resp) => {
                    return Ok(resp.map(|inner| PooledBody::new(inner, None, self.timeouts.read)))
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if tries < 2 => req = back,
                    _ => return Err(SendError::Exchange(e.into_error())),
                },
            }
        }
    }

    /// Aborts the connections whose response head was due before `now` (on the pool's
    /// clock); forgets the closed ones.
    fn expire(&self, now: u64) {
        self.exchanges.sweep(|watch| {
            let due = watch.due.load(Ordering::Relaxed);
            if due != 0 && now >= due {
                watch.overdue.store(true, Ordering::Relaxed);
                watch.task.abort();
            }
        });
    }

    /// The most recently used idle connection still open.
    fn take(&self) -> Option<Conn> {
        let Connections::Http1(idle) = &self.conns else {
            return None;
        };
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if !entry.conn.sender.is_closed() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` idle, unless it closed or the list is full.
    fn checkin(&self, conn: Conn) {
        let Connections::Http1(idle) = &self.conns else {
            return;
        };
        if conn.sender.is_closed() {
            return;
        }
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            let since = self.sweeps.load(Ordering::Relaxed);
            idle.push(Idle { conn, since });
        }
    }

    /// Drops the connections idle for longer than the idle timeout, and the closed ones.
    ///
    /// A connection that went idle after prune `n` has been idle more than `k - 1`
    /// periods at prune `n + k`; it goes at the first prune where that is at least the
    /// idle timeout: at most one period after the timeout.
    fn prune(&self) {
        let Connections::Http1(idle) = &self.conns else {
            return;
        };
        let now = self.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let keep = prunes_to_expire(self.timeouts.idle);
        let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
        // Oldest first: everything before the first young one has expired.
        let expired = idle
            .iter()
            .position(|e| now.saturating_sub(e.since) <= keep)
            .unwrap_or(idle.len());
        for gone in idle.drain(..expired) {
            gone.conn.close();
        }
        idle.retain(|e| !e.conn.sender.is_closed());
    }

    /// A new connection to the origin. The connector resolves the name, sets TCP_NODELAY
    /// and bounds the TCP and TLS set-up by `upstream.connect_timeout`.
    async fn dial(&self) -> Result<<Connector as Service<Uri>>::Response, SendError> {
        self.connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)
    }

    /// A new connection, made by `deadline` (the response's: a slow connect is the same
    /// timeout to the request).
    async fn connect_http1_by(self: &Arc<Self>, deadline: Instant) -> Result<Conn, SendError> {
        let deadline = tokio::time::Instant::from_std(deadline);
        tokio::time::timeout_at(deadline, self.connect_http1())
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    async fn connect_http1(self: &Arc<Self>) -> Result<Conn, SendError> {
        self.start_pruning();
        let io = self.dial().await?;
        let (sender, conn) = http1::Builder::new()
            // The whole response head, status line included: a larger one is refused.
            .max_header_size(MAX_RESPONSE_HEAD)
            .handshake(io)
            .await?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        let watch = Arc::new(Watch {
            due: AtomicU64::new(0),
            overdue: AtomicBool::new(false),
            task: task.abort_handle(),
        });
        self.exchanges.add(&watch);
        Ok(Conn { sender, watch })
    }

    async fn http2_sender(&self) -> Result<http2::SendRequest<UpstreamBody>, SendError> {
        let Connections::Http2(shared) = &self.conns else {
            return Err(SendError::Connect("not an HTTP/2 pool".into()));
        };
        if let Some(sender) = shared.open() {
            return Ok(sender);
        }
        let _connecting = shared.connecting.lock().await;
        // Another request may have made one while this one waited.
        if let Some(sender) = shared.open() {
            return Ok(sender);
        }
        let io = self.dial().await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(MAX_RESPONSE_HEAD).unwrap_or(u32::MAX))
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        *shared.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    /// The response, its body holding `conn` until read to the end. A `101` hands the
    /// connection over to the tunnel.
    fn lease(self: &Arc<Self>, conn: Conn, resp: Response<Incoming>) -> Response<PooledBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let lease = (!switching).then(|| (conn, self.clone()));
        resp.map(|inner| PooledBody::new(inner, lease, self.timeouts.read))
    }
}

/// How often idle connections are pruned: every half idle timeout, between ten times a
/// second and once a second.
fn prune_period(idle: Duration) -> Duration {
    (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// The prunes an idle connection outlives: the idle timeout in whole periods, rounded up.
fn prunes_to_expire(idle: Duration) -> u64 {
    let period = prune_period(idle).as_nanos();
    u64::try_from(idle.as_nanos().div_ceil(period)).unwrap_or(u64::MAX)
}

/// A copy of `req` to send again, for a bodiless request of an idempotent method (its
/// head; the header values are reference-counted bytes); `None` for any other. The
/// copy's body is empty, as the original's was.
fn replayable(req: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    use http::Method;
    let idempotent = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    if !idempotent || !http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut copy = Request::new(http_body_util::Either::Right(http_body_util::Empty::new()));
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{prune_period, prunes_to_expire};

    #[test]
    fn idle_connections_are_pruned_often_enough_for_the_idle_timeout() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        // The default: every second; 90 s idle is 90 prunes.
        assert_eq!(prune_period(s(90)), s(1));
        assert_eq!(prunes_to_expire(s(90)), 90);
        // A short idle timeout: every half of it, not more than ten times a second.
        assert_eq!(prune_period(ms(300)), ms(150));
        assert_eq!(prunes_to_expire(ms(300)), 2);
        assert_eq!(prune_period(ms(150)), ms(100));
        assert_eq!(prunes_to_expire(ms(150)), 2);
        assert_eq!(prunes_to_expire(Duration::ZERO), 0);
    }
}
