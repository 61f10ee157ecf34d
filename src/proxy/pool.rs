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
//! `proxy_http_version 1.1` with `keepalive`. A request to a plain `http://` upstream
//! without a body or with a body of known length — nearly every proxied request — is
//! exchanged in its own task by [`super::h1`] on connections of its own kind; the rest
//! (chunked bodies, upgrades, TLS) go through hyper's client.
//!
//! `upstream.response_timeout` is kept by the pool's sweep, not by a timer per request: a
//! connection notes when the request it carries was sent, and the sweep, which runs every
//! eighth of the timeout (at most every second), closes a connection whose response head
//! is overdue; the request waiting on it then fails as timed out. A timer armed and
//! disarmed for every request cost more than the rest of the pool's work for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::header::{CONTENT_LENGTH, UPGRADE};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::MaybeHttpsStream;
use tower_service::Service;

use super::h1::{Framing, H1Error, RawConn, Upload};
use super::upstream::{Connector, UpstreamBody};
use crate::route::Route;
use crate::sweep::{self, Millis, Watched};

/// Idle connections kept per upstream origin at most.
const MAX_IDLE: usize = 256;

/// Why an upstream exchange failed before its response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Exchange(#[from] hyper::Error),
    #[error("{0}")]
    Upstream(H1Error),
    #[error("no response head within upstream.response_timeout")]
    Timeout,
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
    pub fn new(routes: &[Route], connector: Connector, timeouts: Timeouts) -> Upstreams {
        let mut origins: Vec<(Uri, Arc<Pool>)> = Vec::new();
        let by_route = routes
            .iter()
            .map(|route| {
                let origin = route.upstream.origin();
                if let Some((_, pool)) = origins.iter().find(|(o, _)| *o == origin) {
                    return pool.clone();
                }
                let pool = Pool::new(origin.clone(), connector.clone(), timeouts);
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

/// A pool's time limits (`upstream.pool_idle_timeout`, `upstream.response_timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: Duration,
    pub response: Duration,
}

/// An upstream connection: the handle requests are sent through, and what the sweep
/// watches on it.
struct Conn {
    sender: SendRequest<UpstreamBody>,
    watch: Arc<Watch>,
}

/// When the request in flight on a connection was sent, for the sweep to find it overdue.
pub(super) struct Watch {
    /// The request's start on the pool's [`Millis`] clock; 0 while no request waits for
    /// its response head.
    pub(super) sent_at: AtomicU64,
    /// Set by the sweep before it closes the connection.
    pub(super) timed_out: AtomicBool,
    /// The task that drives a hyper connection; aborting it closes the connection.
    task: Option<tokio::task::AbortHandle>,
    /// The request waiting on a connection of [`super::h1`], woken by the sweep to find
    /// `timed_out` set.
    pub(super) waker: AtomicWaker,
}

impl Watch {
    fn new(task: Option<tokio::task::AbortHandle>) -> Arc<Watch> {
        Arc::new(Watch {
            sent_at: AtomicU64::new(0),
            timed_out: AtomicBool::new(false),
            task,
            waker: AtomicWaker::new(),
        })
    }
}

struct Idle<C> {
    conn: C,
    /// The pool's sweep count when it went idle: its age in sweeps, without reading the
    /// clock for every request that hands a connection back.
    since: u64,
}

/// A kind of connection the pool keeps idle: hyper's, or one of [`super::h1`].
trait Reusable {
    /// Still open, and able to carry the next request: asked before it is taken.
    fn is_usable(&self) -> bool;
    /// Worth keeping, by what is known without looking further: asked as it is handed
    /// back, right after its response, when `is_usable` would mostly repeat the look
    /// the next checkout makes anyway.
    fn may_idle(&self) -> bool;
}

impl Reusable for Conn {
    fn is_usable(&self) -> bool {
        !self.sender.is_closed()
    }

    fn may_idle(&self) -> bool {
        self.is_usable()
    }
}

impl Reusable for RawConn {
    fn is_usable(&self) -> bool {
        self.is_reusable()
    }

    fn may_idle(&self) -> bool {
        // Bytes past the response are a protocol error: the connection is done with.
        self.buffered() == 0
    }
}

/// Idle connections of one kind, oldest first; taken from the end (most recent first).
struct IdleList<C>(Mutex<Vec<Idle<C>>>);

impl<C: Reusable> IdleList<C> {
    fn new() -> IdleList<C> {
        IdleList(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most recently used idle connection still usable.
    fn take(&self) -> Option<C> {
        let mut idle = self.lock();
        while let Some(entry) = idle.pop() {
            if entry.conn.is_usable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` idle, noting the sweep count `now`, unless it may not idle or the
    /// list is full.
    fn put(&self, conn: C, now: u64) {
        if !conn.may_idle() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    /// Drops the connections idle for more than `keep` sweeps at sweep `now`, and the
    /// unusable ones.
    fn prune(&self, now: u64, keep: u64) {
        let mut idle = self.lock();
        // Oldest first: everything before the first young one has expired.
        let expired = idle
            .iter()
            .position(|e| now.saturating_sub(e.since) <= keep)
            .unwrap_or(idle.len());
        idle.drain(..expired);
        idle.retain(|e| e.conn.is_usable());
    }
}

pub struct Pool {
    /// `scheme://authority`, what the connector dials.
    origin: Uri,
    connector: Connector,
    timeouts: Timeouts,
    idle: IdleList<Conn>,
    /// Connections of [`super::h1`] (plain `http://` origins only).
    raw_idle: IdleList<RawConn>,
    /// True for an `http://` origin, whose bodiless requests go through [`super::h1`].
    plain: bool,
    /// Sweeps so far; one every `sweep_period(timeouts)`.
    sweeps: AtomicU64,
    /// Every connection opened and not yet found gone by a sweep, idle or busy.
    live: Watched<Watch>,
    /// The clock of the `sent_at` times.
    clock: Millis,
}

impl Pool {
    fn new(origin: Uri, connector: Connector, timeouts: Timeouts) -> Arc<Pool> {
        let plain = origin.scheme() == Some(&http::uri::Scheme::HTTP);
        let pool = Arc::new(Pool {
            plain,
            raw_idle: IdleList::new(),
            origin,
            connector,
            timeouts,
            idle: IdleList::new(),
            sweeps: AtomicU64::new(0),
            live: Watched::default(),
            clock: Millis::default(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let period = sweep_period(timeouts);
            rt.spawn(sweep::every(period, Arc::downgrade(&pool), |p: &Pool| {
                p.time_out();
                p.prune();
            }));
        }
        pool
    }

    /// Sends `req` upstream, up to the response head, which must come within the response
    /// timeout of `started` (when the caller began the exchange). The response body keeps
    /// the connection until it has been read. (An `async` block: see `proxy::forward`.)
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
    )]
    pub fn send(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
        started: Instant,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + '_ {
        async move {
            origin_form(req.uri_mut());
            let sent_at = self.clock.at(started);
            if self.plain
                && (req.body().is_end_stream() || has_length(&req))
                && req.method() != http::Method::CONNECT
                && !req.headers().contains_key(UPGRADE)
            {
                return self.send_inline(req, sent_at).await;
            }
            loop {
                let (mut conn, reused) = match self.idle.take() {
                    Some(c) => (c, true),
                    // Boxed: connecting is rare, and its future would otherwise make every
                    // request's future (moved about at each step) several times larger.
                    None => (Box::pin(self.connect()).await?, false),
                };
                if conn.sender.ready().await.is_err() {
                    // Closed while idle; a fresh connection that fails to become ready is
                    // reported by the exchange below.
                    if reused {
                        continue;
                    }
                }
                conn.watch.sent_at.store(sent_at, Ordering::Relaxed);
                let sent = conn.sender.try_send_request(req).await;
                conn.watch.sent_at.store(0, Ordering::Relaxed);
                match sent {
                    Ok(resp) => return Ok(self.lease(conn, resp)),
                    Err(_) if conn.watch.timed_out.load(Ordering::Relaxed) => {
                        return Err(SendError::Timeout)
                    }
                    Err(mut e) => match e.take_message() {
                        // Not written: the connection closed under it. Another one may do.
                        Some(back) if reused => req = back,
                        _ => return Err(SendError::Exchange(e.into_error())),
                    },
                }
            }
        }
    }

    /// [`Pool::send`] for a request without a body, or with a body of known length, to a
    /// plain `http://` origin, through [`super::h1`]. A reused connection that fails
    /// before any response came back is given up for another, as hyper's client does for
    /// a request it could not write; after the request was written, only for a method
    /// that is safe to repeat (the upstream may have acted on it), as nginx does. Either
    /// way only while the body taken from the client is still in hand (its first piece:
    /// the whole of a small body).
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its arguments twice; see `proxy::forward`"
    )]
    fn send_inline(
        self: &Arc<Self>,
        mut req: Request<UpstreamBody>,
        sent_at: u64,
    ) -> impl Future<Output = Result<Response<PooledBody>, SendError>> + '_ {
        async move {
            let mut upload = Upload::default();
            loop {
                let (mut conn, reused) = match self.raw_idle.take() {
                    Some(c) => (c, true),
                    None => (Box::pin(self.connect_raw()).await?, false),
                };
                conn.watch.sent_at.store(sent_at, Ordering::Relaxed);
                let exchanged = conn.exchange(&mut req, &mut upload).await;
                conn.watch.sent_at.store(0, Ordering::Relaxed);
                let again = reused && !upload.taken_more;
                match exchanged {
                    Ok(head) => return Ok(self.lease_raw(conn, head)),
                    Err(H1Error::TimedOut) => return Err(SendError::Timeout),
                    Err(H1Error::Write(_)) if again => continue,
                    Err(H1Error::ClosedEarly) if again && req.method().is_idempotent() => continue,
                    Err(e) => return Err(SendError::Upstream(e)),
                }
            }
        }
    }

    fn checkin_raw(&self, conn: RawConn) {
        self.raw_idle.put(conn, self.sweeps.load(Ordering::Relaxed));
    }

    async fn connect_raw(&self) -> Result<RawConn, SendError> {
        // For an `http://` origin the connector yields the TCP stream itself.
        let MaybeHttpsStream::Http(tcp) = self.dial().await? else {
            return Err(SendError::Connect(
                "a TLS stream to an http:// origin".into(),
            ));
        };
        let watch = Watch::new(None);
        self.live.add(&watch);
        Ok(RawConn::new(tcp.into_inner(), watch))
    }

    /// The response of [`Pool::send_inline`]: a body that came with its head (or none)
    /// frees the connection now; one still to be read keeps it until its end.
    fn lease_raw(self: &Arc<Self>, conn: RawConn, head: super::h1::Head) -> Response<PooledBody> {
        let mut resp = Response::new(PooledBody {
            kind: Kind::Raw(Box::new(Reading {
                conn,
                framing: head.framing,
                keep_alive: head.keep_alive,
                pool: self.clone(),
            })),
        });
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp.body_mut().settle();
        resp
    }

    fn checkin(&self, conn: Conn) {
        self.idle.put(conn, self.sweeps.load(Ordering::Relaxed));
    }

    /// A new connection to the origin, for either kind. The connector resolves the name,
    /// sets TCP_NODELAY and bounds the TCP and TLS set-up by `upstream.connect_timeout`.
    async fn dial(&self) -> Result<<Connector as Service<Uri>>::Response, SendError> {
        self.connector
            .clone()
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let (sender, conn) = http1::handshake(self.dial().await?).await?;
        let task = tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        let watch = Watch::new(Some(task.abort_handle()));
        self.live.add(&watch);
        Ok(Conn { sender, watch })
    }

    /// The response, its body holding `sender` until read to the end. A `101` hands the
    /// connection over to the tunnel, and a body already ended frees it now.
    fn lease(self: &Arc<Self>, conn: Conn, resp: Response<Incoming>) -> Response<PooledBody> {
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        resp.map(|inner| {
            let mut body = PooledBody {
                kind: Kind::Hyper {
                    inner,
                    lease: (!switching).then(|| (conn, self.clone())),
                },
            };
            body.settle();
            body
        })
    }

    /// Counts a sweep and drops the idle connections older than the idle timeout.
    ///
    /// A connection that went idle after sweep `n` has been idle more than `k - 1`
    /// periods at sweep `n + k`; it goes at the first sweep where that is at least the
    /// idle timeout: at most one period (a second, by default; half the idle timeout when
    /// that is shorter) after the timeout, as when its age was read from the clock.
    fn prune(&self) {
        let now = self.sweeps.fetch_add(1, Ordering::Relaxed) + 1;
        let keep = sweeps_to_expire(self.timeouts);
        self.idle.prune(now, keep);
        self.raw_idle.prune(now, keep);
    }

    /// Closes the connections whose response head is overdue, and forgets the closed ones.
    fn time_out(&self) {
        let now = self.clock.at(Instant::now());
        let limit = u64::try_from(self.timeouts.response.as_millis()).unwrap_or(u64::MAX);
        self.live.sweep(|watch| {
            let sent_at = watch.sent_at.load(Ordering::Relaxed);
            if sent_at != 0 && now.saturating_sub(sent_at) >= limit {
                watch.timed_out.store(true, Ordering::Relaxed);
                match &watch.task {
                    Some(task) => task.abort(),
                    None => watch.waker.wake(),
                }
            }
        });
    }
}

/// True when the request's body is as long as its `Content-Length` says (hyper's server
/// holds a client to that), so that the upstream can be told the same.
fn has_length(req: &Request<UpstreamBody>) -> bool {
    req.headers().contains_key(CONTENT_LENGTH) && req.body().size_hint().exact().is_some()
}

/// How often a pool is swept: as the response timeout needs (`sweep::period_for`), and
/// at least every half idle timeout (down to ten times a second).
fn sweep_period(timeouts: Timeouts) -> Duration {
    let idle = (timeouts.idle / 2).max(Duration::from_millis(100));
    idle.min(sweep::period_for(timeouts.response))
}

/// The sweeps an idle connection outlives: the idle timeout in whole periods, rounded up.
fn sweeps_to_expire(timeouts: Timeouts) -> u64 {
    let period = sweep_period(timeouts).as_nanos();
    u64::try_from(timeouts.idle.as_nanos().div_ceil(period)).unwrap_or(u64::MAX)
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
    kind: Kind,
}

enum Kind {
    /// From hyper's client, holding its connection until the end.
    Hyper {
        inner: Incoming,
        lease: Option<(Conn, Arc<Pool>)>,
    },
    /// From [`super::h1`], still to be read from its connection. Boxed: the common
    /// response arrives whole and becomes `Whole` at once, and every response is moved
    /// about at the size of the largest kind.
    Raw(Box<Reading>),
    /// All of it in hand (`None`: nothing, or nothing left); the connection is back.
    Whole(Option<Bytes>),
}

struct Reading {
    conn: RawConn,
    framing: Framing,
    keep_alive: bool,
    pool: Arc<Pool>,
}

/// Errors while a response body streams back.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    Upstream(#[from] H1Error),
}

impl PooledBody {
    /// Frees the connection as soon as the body allows: a hyper body already ended, or a
    /// body of [`super::h1`] that is empty or wholly in hand already.
    fn settle(&mut self) {
        match &mut self.kind {
            Kind::Hyper { inner, .. } if inner.is_end_stream() => self.release(),
            Kind::Raw(reading) => {
                let whole = match &mut reading.framing {
                    Framing::Empty => Some(None),
                    Framing::Length(n) if reading.conn.buffered() as u64 >= *n => {
                        Some(Some(reading.conn.take_buffered(*n)))
                    }
                    _ => None,
                };
                if let Some(data) = whole {
                    reading.framing = Framing::Empty;
                    self.release();
                    self.kind = Kind::Whole(data);
                }
            }
            _ => {}
        }
    }

    /// Back to the pool: now if the connection can take the next request, else once it
    /// can (a request body the upstream answered before reading may still be going
    /// out). Only ready connections are idle, so no request ever waits on another's.
    fn release(&mut self) {
        match std::mem::replace(&mut self.kind, Kind::Whole(None)) {
            Kind::Hyper { inner, lease } => {
                self.kind = Kind::Hyper { inner, lease: None };
                if let Some((conn, pool)) = lease {
                    Self::release_hyper(conn, pool);
                }
            }
            Kind::Raw(reading) => {
                if reading.keep_alive {
                    reading.pool.checkin_raw(reading.conn);
                }
            }
            whole @ Kind::Whole(_) => self.kind = whole,
        }
    }

    fn release_hyper(mut conn: Conn, pool: Arc<Pool>) {
        if conn.sender.is_ready() {
            pool.checkin(conn);
            return;
        }
        // Outside a runtime (a body dropped as the process ends) the connection just closes.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let limit = pool.timeouts.idle;
        rt.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(limit, conn.sender.ready()).await {
                pool.checkin(conn);
            }
        });
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Hyper { inner, lease } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => this.release(),
                    Poll::Ready(Some(Ok(_))) if inner.is_end_stream() => this.release(),
                    Poll::Ready(Some(Err(_))) => *lease = None,
                    _ => {}
                }
                polled.map(|p| p.map(|r| r.map_err(BodyError::from)))
            }
            Kind::Whole(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Raw(reading) => {
                let Reading { conn, framing, .. } = &mut **reading;
                match conn.poll_body(framing, cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        this.release();
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Ok(data))) => {
                        if matches!(framing, Framing::Length(0)) {
                            this.release();
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Poll::Ready(Some(Err(e))) => {
                        // The connection is in an unknown state: closed, not pooled.
                        this.kind = Kind::Whole(None);
                        Poll::Ready(Some(Err(e.into())))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Hyper { inner, .. } => inner.is_end_stream(),
            Kind::Whole(data) => data.is_none(),
            Kind::Raw(reading) => matches!(reading.framing, Framing::Empty | Framing::Length(0)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Hyper { inner, .. } => inner.size_hint(),
            Kind::Whole(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Raw(reading) => match &reading.framing {
                Framing::Empty => SizeHint::with_exact(0),
                Framing::Length(n) => SizeHint::with_exact(*n),
                _ => SizeHint::default(),
            },
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{sweep_period, sweeps_to_expire, Timeouts};

    #[test]
    fn a_pool_is_swept_often_enough_for_both_its_timeouts() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let t = |idle, response| Timeouts { idle, response };
        // The defaults: every second for the response timeout; 90 s idle is 90 sweeps.
        assert_eq!(sweep_period(t(s(90), s(30))), s(1));
        assert_eq!(sweeps_to_expire(t(s(90), s(30))), 90);
        // A short response timeout: every eighth of it, not more than 100 times a second.
        assert_eq!(
            sweep_period(t(s(90), ms(500))),
            Duration::from_micros(62_500)
        );
        assert_eq!(sweep_period(t(s(90), ms(40))), ms(10));
        // A short idle timeout: every half of it, not more than ten times a second.
        assert_eq!(sweep_period(t(ms(300), s(30))), ms(150));
        assert_eq!(sweeps_to_expire(t(ms(300), s(30))), 2);
        assert_eq!(sweep_period(t(ms(150), s(30))), ms(100));
        assert_eq!(sweeps_to_expire(t(ms(150), s(30))), 2);
        assert_eq!(sweeps_to_expire(t(Duration::ZERO, s(30))), 0);
    }
}
