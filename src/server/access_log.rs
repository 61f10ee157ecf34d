//! The access log (`[log] access = true`): one line per request on the public listener,
//! written when its response is complete — the body sent to its end, or the connection
//! gone — with what an operator follows traffic by:
//!
//! | field | what |
//! |---|---|
//! | `method`, `path` | the request's method and path, never its query |
//! | `route` | the matched route's path, `/bff`, or absent (no route) |
//! | `status` | the response's; `499` when the client left before there was one |
//! | `duration_us` | from the request's arrival to the end of the response body, in µs |
//! | `upstream_us` | the upstream's time to its response head, in µs; absent when not proxied |
//! | `bytes_in`, `bytes_out` | request body bytes read, response body bytes sent |
//! | `session` | the session tag, when the request came with a live session |
//! | `aborted` | `true` when the response body did not reach its end |
//!
//! The line is a tracing event of target `tokengate::access` ([`crate::logging`] formats
//! it: text, or JSON with `TOKENGATE_LOG_FORMAT=json`) and names its request ID as every
//! line of the request does. Its fields are the ones above and nothing else: no header,
//! no cookie, no token, no query string can reach it.
//!
//! With the access log off nothing here runs: [`begin`] makes no entry (no clock read, no
//! allocation), the response body goes out as it is (in the other arm of an `Either`),
//! and the hooks ([`saw_session`], [`upstream_answered`], [`request_body`],
//! [`read_body`]) find no entry in the task and return.
//!
//! # The session tag
//!
//! Twelve hex characters of SHA-256 over a label and the session's store key
//! ([`tag_of`]), for a request during which the gateway found a live session (token
//! routes, `/bff/user`, logout). Not [`StoreKey::short`]: that is the store key's own
//! first bytes, and would name the stored record in every line. The tag is one-way (the
//! store key is itself SHA-256 of a 256-bit random ID: neither it nor the cookie can be
//! worked back from the tag), the same on every instance, across restarts and key
//! rotations (so one user's requests can be followed behind a load balancer), and 48 bits
//! long, so that two live sessions share a tag only by a rare accident (about 0.2 % for
//! a million sessions). Unkeyed on purpose: whoever holds both a store dump and the logs
//! can tell which sealed record made which requests, and learns no more than that; a tag
//! keyed by the session key ring would change at every key rotation.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest, Sha256};

use super::Body;
use crate::config::LogConfig;
use crate::metrics::RouteStats;
use crate::net::timeout::{BytesIn, CountBytes};
use crate::session::StoreKey;

/// The target of the access lines (`logging::ACCESS_TARGET`).
pub use crate::logging::ACCESS_TARGET as TARGET;

/// The body of every public response: as the gateway made it, or, with the access log
/// on, counted and logged when it is done.
pub type PublicBody = http_body_util::Either<Body, Counted>;

tokio::task_local! {
    /// The entry of the request this task is serving, while the access log is on.
    static ENTRY: Arc<Entry>;
}

/// What the request's handling tells its line: shared with the request body on its way
/// upstream, which the upstream connection's task reads.
struct Entry {
    started: Instant,
    /// Request body bytes read so far.
    bytes_in: AtomicU64,
    /// The upstream's time to its response head in nanoseconds, plus one; 0: none.
    upstream: AtomicU64,
    /// The session tag plus one; 0: no live session.
    session: AtomicU64,
}

/// One request's access line, written once, when this is dropped: with the response
/// body (the end of the body or of the connection), or with the request's future when
/// the client left before the answer was ready.
pub struct AccessLog {
    entry: Arc<Entry>,
    id: HeaderValue,
    method: Method,
    /// A copy: the request's own path may hold the connection's read buffer.
    path: Box<str>,
    route: Option<Box<str>>,
    /// `None` until the response exists.
    status: Option<StatusCode>,
    bytes_out: u64,
    /// The body reached its end.
    complete: bool,
}

/// The access line of `req`, which arrived at `started` and is known as `id`, when
/// `config` turns the access log on.
pub fn begin<B>(
    config: &LogConfig,
    req: &Request<B>,
    id: &HeaderValue,
    started: Instant,
) -> Option<AccessLog> {
    config.access.then(|| AccessLog::new(req, id, started))
}

impl AccessLog {
    fn new<B>(req: &Request<B>, id: &HeaderValue, started: Instant) -> AccessLog {
        AccessLog {
            entry: Arc::new(Entry {
                started,
                bytes_in: AtomicU64::new(0),
                upstream: AtomicU64::new(0),
                session: AtomicU64::new(0),
            }),
            id: id.clone(),
            method: req.method().clone(),
            path: req.uri().path().into(),
            route: None,
            status: None,
            bytes_out: 0,
            complete: false,
        }
    }

    /// Writes the line (see the module's table).
    fn write(&self) {
        let entry = &*self.entry;
        let upstream = match entry.upstream.load(Ordering::Relaxed) {
            0 => None,
            n => Some(micros(Duration::from_nanos(n - 1))),
        };
        let session = match entry.session.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Tag::of(n - 1)),
        };
        let status = self.status.map_or(499, |s| s.as_u16());
        // Strings and numbers only: the formatters write them without the formatting
        // machinery, which cost more than the rest of the line.
        crate::logging::in_request(self.id.clone(), || {
            tracing::info!(
                target: TARGET,
                method = self.method.as_str(),
                path = &*self.path,
                route = self.route.as_deref(),
                status,
                duration_us = micros(entry.started.elapsed()),
                upstream_us = upstream,
                bytes_in = entry.bytes_in.load(Ordering::Relaxed),
                bytes_out = self.bytes_out,
                session = session.as_ref().map(Tag::as_str),
                aborted = (!self.complete).then_some(true),
            )
        });
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.write();
    }
}

/// `request` with `log`'s entry in reach of the hooks below (while the access log is
/// on): the proxy and the session lookup report to it from inside the request's task.
pub fn during<F: Future>(log: Option<&AccessLog>, request: F) -> impl Future<Output = F::Output> {
    match log {
        Some(log) => Either::Left(ENTRY.scope(log.entry.clone(), request)),
        None => Either::Right(request),
    }
}

/// The response as it goes out: with the access log on, its body counted and the line
/// written when the body is done; `stats` says which route answered.
pub fn until_sent(
    log: Option<AccessLog>,
    resp: Response<Body>,
    stats: &RouteStats,
) -> Response<PublicBody> {
    let Some(mut log) = log else {
        return resp.map(http_body_util::Either::Left);
    };
    log.status = Some(resp.status());
    log.route = stats.route().map(Box::from);
    resp.map(|inner| http_body_util::Either::Right(Counted { inner, log }))
}

/// Hook: the request found a live session under `key` (`Gateway::session_named`).
pub fn saw_session(key: &StoreKey) {
    let _ = ENTRY.try_with(|e| e.session.store(tag_of(key) + 1, Ordering::Relaxed));
}

/// Hook: the upstream exchange that started at `started` is over (its response head
/// came, or it failed).
pub fn upstream_answered(started: Instant) {
    let _ = ENTRY.try_with(|e| {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        e.upstream.store(nanos + 1, Ordering::Relaxed);
    });
}

/// Hook: a counter for the request body on its way upstream, if the access log is on.
pub fn request_body() -> Option<BytesIn> {
    ENTRY.try_with(|e| e.clone() as BytesIn).ok()
}

/// Hook: the gateway read `n` bytes of the request body itself (a `/bff` endpoint).
pub fn read_body(n: usize) {
    let _ = ENTRY.try_with(|e| e.bytes_in.fetch_add(n as u64, Ordering::Relaxed));
}

/// Counts request body bytes for the request's line, from whichever task reads them.
impl CountBytes for Entry {
    fn add(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The session tag: the first 48 bits of SHA-256("tokengate access tag\0" ‖ the store
/// key). See the module's doc for why this and not the store key's own prefix. The label
/// is short enough for label, key and padding to fit one SHA-256 block: one compression
/// per request, not two.
pub fn tag_of(key: &StoreKey) -> u64 {
    let mut h = Sha256::new();
    h.update(b"tokengate access tag\0");
    h.update(key.0);
    let digest = h.finalize();
    digest[..6]
        .iter()
        .fold(0u64, |tag, byte| (tag << 8) | u64::from(*byte))
}

/// A session tag as its 12 hex characters.
struct Tag([u8; 12]);

impl Tag {
    fn of(tag: u64) -> Tag {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 12];
        for (i, digit) in text.iter_mut().enumerate() {
            *digit = HEX[(tag >> (4 * (11 - i))) as usize & 0xf];
        }
        Tag(text)
    }

    fn as_str(&self) -> &str {
        // Hex digits only, so never the empty fallback.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Whole microseconds: exact, a number in JSON, and an integer to write (a float's
/// shortest decimal form cost more than a quarter of the line's formatting).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A response body on its way to the client, counted; the request's line is written
/// when it is dropped (hyper drops it once sent, or with the connection).
pub struct Counted {
    inner: Body,
    log: AccessLog,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.log.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.log.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
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

impl Drop for Counted {
    fn drop(&mut self) {
        // hyper stops asking once a body says it has ended (a body of our own, an empty
        // one): that is an end too.
        if self.inner.is_end_stream() {
            self.log.complete = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_tag_is_twelve_hex_digits_unlike_the_store_key() {
        let key = StoreKey::of(b"a session id");
        let tag = Tag::of(tag_of(&key)).as_str().to_owned();
        assert_eq!(tag.len(), 12);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
        assert_eq!(
            tag,
            Tag::of(tag_of(&key)).as_str(),
            "the same for one session"
        );
        assert!(!key.hex().contains(&tag), "not a piece of the store key");
        assert_ne!(tag, Tag::of(tag_of(&StoreKey::of(b"another id"))).as_str());
    }

    #[test]
    fn hooks_outside_a_logged_request_do_nothing() {
        saw_session(&StoreKey::of(b"x"));
        upstream_answered(Instant::now());
        read_body(3);
        assert!(request_body().is_none());
    }

    #[test]
    fn durations_are_whole_microseconds() {
        assert_eq!(micros(Duration::from_nanos(1_234_567)), 1234);
        assert_eq!(micros(Duration::ZERO), 0);
    }
}
