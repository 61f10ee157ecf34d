//! The upstream exchange of a request over plain HTTP/1.1, written out in the request's
//! own task: the head encoded straight into the connection's write buffer, one `write`
//! (with the body too when it is small and already here), the response head parsed from
//! the connection's read buffer, and a body already read with its head handed back
//! without a further step.
//!
//! This is the common proxied request — a `GET` or a small `POST` to an API beside the
//! gateway — and hyper's client pays for its generality on every one: a task per
//! connection that the request must wake and wait on through channels, a dispatch loop,
//! and a body that comes back through another channel. Measured on the benchmark
//! machine, a pass-through proxy spent 2.6–2.8 µs of user time per request with hyper's
//! client and 1.9–2.0 µs with this exchange (docs/benchmarks.md). Requests whose body has
//! no length (chunked), upgrades and `https://` upstreams keep hyper's client
//! ([`super::pool`] picks).
//!
//! Responses are framed as RFC 9112 §6.3 says: no body for `HEAD`, 1xx, 204 and 304;
//! `Transfer-Encoding` ending in `chunked` ([`super::chunked`]); another transfer coding,
//! or neither header, until the upstream closes; else `Content-Length`. A connection
//! goes back to the pool only after a complete response that did not ask to close it.

use std::future::{poll_fn, Future};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body::{Body, Frame};
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

use super::chunked::{ChunkedDecoder, ChunkedError, Decoded};
use super::pool::Watch;

/// A response head larger than this is refused: far more than upstreams send (nginx's
/// proxy refuses heads over 4–8 KiB unless told otherwise).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Response header fields at most (hyper's client default).
const MAX_HEADERS: usize = 100;
/// The room a read of a response head makes: enough for a small API response whole.
const HEAD_READ: usize = 8 * 1024;
/// The room a read of a body still streaming makes: fewer system calls for a download.
const BODY_READ: usize = 64 * 1024;

/// A first piece of a request body at most this long goes out in the head's `write`.
const COALESCE: usize = 16 * 1024;

/// Why an exchange failed, and whether the request may go again on another connection.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Writing the request failed: the upstream has not seen all of it.
    #[error("writing the request: {0}")]
    Write(io::Error),
    /// The connection closed before the first byte of a response.
    #[error("the connection closed before a response")]
    ClosedEarly,
    #[error("reading the response: {0}")]
    Read(io::Error),
    #[error("the response ended early")]
    Truncated,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("malformed chunked body: {0}")]
    Chunked(#[from] ChunkedError),
    /// The client's request body failed (it went away, or sent less than it said).
    #[error("reading the request body: {0}")]
    RequestBody(Box<dyn std::error::Error + Send + Sync>),
    /// The pool's sweep found the response head overdue.
    #[error("no response head in time")]
    TimedOut,
}

/// What of a request's body has been taken from the client, across the connections the
/// request is tried on.
#[derive(Default)]
pub struct Upload {
    /// The first piece, kept while nothing more was taken: the whole request can then
    /// still be sent again.
    first: Option<Bytes>,
    /// More than the first piece was taken: the request cannot go again.
    pub taken_more: bool,
    /// The client's body has ended, all of it taken.
    ended: bool,
}

impl Upload {
    /// Takes note of a frame of the client's body: its data, if any, to send.
    fn take<E>(&mut self, frame: Option<Result<Frame<Bytes>, E>>) -> Result<Option<Bytes>, H1Error>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let data = match frame {
            None => {
                self.ended = true;
                return Ok(None);
            }
            Some(Err(e)) => return Err(H1Error::RequestBody(e.into())),
            // Trailers cannot follow a body framed by its length: dropped, as hyper's
            // client drops them.
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => return Ok(None),
            },
        };
        if self.first.is_none() && !self.taken_more {
            self.first = Some(data.clone());
        } else {
            self.first = None;
            self.taken_more = true;
        }
        Ok(Some(data))
    }
}

/// A plain TCP connection to an upstream, with what was read from it and not yet used.
pub struct RawConn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
    pub(super) watch: Arc<Watch>,
}

/// How the body of a response is delimited.
pub enum Framing {
    /// No body at all.
    Empty,
    /// This many bytes still to come.
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Until the upstream closes the connection (which then cannot be reused).
    Close,
}

/// A response head, what delimits its body, and whether the connection can carry
/// another request once the body is read.
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    pub keep_alive: bool,
}

impl RawConn {
    pub(super) fn new(stream: TcpStream, watch: Arc<Watch>) -> RawConn {
        RawConn {
            stream,
            read: BytesMut::new(),
            write: Vec::new(),
            watch,
        }
    }

    /// True while the connection sits idle and open: nothing arrived on it since its last
    /// response (an upstream that closed it, or sent bytes nobody asked for, is done
    /// with). Usually one look at the readiness tokio already has, no system call.
    pub fn is_reusable(&self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness left from the last read (it filled the buffer) or news: look.
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }

    /// How many bytes of the body have been read with the head and not yet taken.
    pub fn buffered(&self) -> usize {
        self.read.len()
    }

    /// The first `n` buffered bytes (at most all of them), without copying.
    pub fn take_buffered(&mut self, n: u64) -> Bytes {
        let n = usize::try_from(n).map_or(self.read.len(), |n| n.min(self.read.len()));
        self.read.split_to(n).freeze()
    }

    /// Sends `req` and reads the response head, both within the pool's response timeout
    /// (see [`Watch`]). A body goes out piece by piece as the client sends it; its first
    /// piece, when the client has sent it already, in the head's `write`. The response
    /// is read all along, so an upstream that answers before it has read the whole body
    /// (a `413`, say) is heard, and its connection is not reused. `upload` says what of
    /// the body was taken from the client, for [`super::pool`] to know whether the
    /// request can go again on another connection.
    pub async fn exchange<B>(
        &mut self,
        req: &mut Request<B>,
        upload: &mut Upload,
    ) -> Result<Head, H1Error>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        encode_head(req, &mut self.write);
        let method = req.method().clone();
        let body = req.body_mut();
        let mut ended = upload.ended || body.is_end_stream();
        if !ended && upload.first.is_none() {
            // One look, no wait: the piece the client sent with its head, if any.
            let frame = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
            if let Poll::Ready(frame) = frame {
                upload.take(frame)?;
                ended = upload.ended;
            }
        }
        let mut chunk = match &upload.first {
            Some(first) if first.len() <= COALESCE => {
                self.write.extend_from_slice(first);
                Bytes::new()
            }
            Some(first) => first.clone(),
            None => Bytes::new(),
        };
        let RawConn {
            stream,
            read,
            write,
            watch,
        } = self;
        let mut written = 0;
        let mut got_any = false;
        // A failed write ends the request, not the exchange: an upstream that refused the
        // body may have answered before it closed, and its answer is what the client gets.
        let mut failed: Option<io::Error> = None;
        poll_fn(|cx| {
            watch.waker.register(cx.waker());
            if watch.timed_out.load(Ordering::Relaxed) {
                return Poll::Ready(Err(H1Error::TimedOut));
            }
            loop {
                // The request, as far as it can go now; `more` when it went some way and
                // has further to go.
                let mut more = false;
                let sending = failed.is_none();
                if sending && (written < write.len() || !chunk.is_empty()) {
                    let out = if written < write.len() {
                        &write[written..]
                    } else {
                        &chunk[..]
                    };
                    match Pin::new(&mut *stream).poll_write(cx, out) {
                        Poll::Ready(Ok(0)) => failed = Some(io::ErrorKind::WriteZero.into()),
                        Poll::Ready(Ok(n)) => {
                            if written < write.len() {
                                written += n;
                            } else {
                                chunk.advance(n);
                            }
                            more = written < write.len() || !chunk.is_empty() || !ended;
                        }
                        Poll::Ready(Err(e)) => failed = Some(e),
                        Poll::Pending => {}
                    }
                } else if sending && !ended {
                    if let Poll::Ready(frame) = Pin::new(&mut *body).poll_frame(cx) {
                        if let Some(data) = upload.take(frame)? {
                            chunk = data;
                        }
                        ended = upload.ended;
                        more = true;
                    }
                }
                // The response, which may come before the request is all out.
                if !read.is_empty() {
                    if let Some(mut head) = parse_head(read, &method)? {
                        head.keep_alive &= ended && written == write.len() && chunk.is_empty();
                        return Poll::Ready(Ok(head));
                    }
                    if read.len() > MAX_HEAD_BYTES {
                        return Poll::Ready(Err(H1Error::Malformed("response head too large")));
                    }
                }
                let filled = poll_fill(stream, read, HEAD_READ, cx);
                if matches!(&filled, Poll::Ready(Ok(0) | Err(_))) {
                    // Nothing (more) to hear: the request's own failure is the answer.
                    // (Until the connection's end is seen, tokio's readiness may not
                    // show it yet: the exchange waits for it, within the timeout.)
                    if let Some(e) = failed.take() {
                        return Poll::Ready(Err(H1Error::Write(e)));
                    }
                }
                match filled {
                    // An upstream that closed an idle connection may answer the request
                    // with a reset rather than an end: either way, no response began.
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) if !got_any => {
                        return Poll::Ready(Err(H1Error::ClosedEarly))
                    }
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(H1Error::Truncated)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(H1Error::Read(e))),
                    Poll::Ready(Ok(_)) => got_any = true,
                    Poll::Pending if !more => return Poll::Pending,
                    Poll::Pending => {}
                }
            }
        })
        .await
    }

    /// The next piece of a body framed by `framing`: `None` at its end. On an error the
    /// connection is not to be used again.
    pub fn poll_body(
        &mut self,
        framing: &mut Framing,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, H1Error>>> {
        loop {
            match framing {
                Framing::Empty | Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(left) if !self.read.is_empty() => {
                    let data = self.take_buffered(*left);
                    *left -= data.len() as u64;
                    return Poll::Ready(Some(Ok(data)));
                }
                Framing::Chunked(decoder) => match decoder.decode(&mut self.read) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(Decoded::End) => return Poll::Ready(None),
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                },
                Framing::Close if !self.read.is_empty() => {
                    return Poll::Ready(Some(Ok(self.read.split().freeze())));
                }
                Framing::Length(_) | Framing::Close => {}
            }
            match poll_fill(&mut self.stream, &mut self.read, BODY_READ, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(H1Error::Read(e)))),
                Poll::Ready(Ok(0)) => {
                    return match framing {
                        Framing::Close => {
                            *framing = Framing::Empty;
                            Poll::Ready(None)
                        }
                        _ => Poll::Ready(Some(Err(H1Error::Truncated))),
                    }
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}

/// One read into `buf`'s spare room (`room` bytes of it made when short). Through
/// tokio's `AsyncRead`, which forgets the socket's readiness after a short read: an idle
/// connection's next [`RawConn::is_reusable`] then needs no system call.
fn poll_fill(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    room: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < room / 4 {
        buf.reserve(room);
    }
    // `read_buf` is a single attempt: dropping it while pending loses nothing.
    pin!(stream.read_buf(buf)).poll(cx)
}

/// `METHOD /path HTTP/1.1`, the header fields, the blank line. A request with an empty
/// body whose method usually has one says so with `content-length: 0`, as hyper's client
/// does.
fn encode_head<B>(req: &Request<B>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    for (name, value) in req.headers() {
        has_length |= name == CONTENT_LENGTH;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless_method = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
    );
    if !has_length && !bodiless_method {
        out.extend_from_slice(b"content-length: 0\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses one final response head from the front of `buf`, taking it off: `None` while
/// the head is incomplete. Interim (1xx) responses before it are taken off and skipped;
/// a `101` is refused, as no request here asks to switch protocols.
fn parse_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, H1Error> {
    loop {
        // Where each field lies in the head, so that its values can be shared slices of
        // one frozen buffer instead of copies (a head is at most MAX_HEAD_BYTES plus a
        // read, well within u32).
        let mut fields = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let (len, status, minor, count) = {
            let mut headers =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(H1Error::Malformed("too many header fields"))
                }
                Err(_) => return Err(H1Error::Malformed("not an HTTP/1.1 response head")),
            };
            let base = buf.as_ptr() as usize;
            let at = |s: &[u8]| u32::try_from(s.as_ptr() as usize - base).unwrap_or(u32::MAX);
            let len_of = |s: &[u8]| u32::try_from(s.len()).unwrap_or(0);
            for (slot, h) in fields.iter_mut().zip(resp.headers.iter()) {
                let value = h.value;
                *slot = (
                    at(h.name.as_bytes()),
                    len_of(h.name.as_bytes()),
                    at(value),
                    len_of(value),
                );
            }
            (
                len,
                resp.code.unwrap_or(0),
                resp.version.unwrap_or(1),
                resp.headers.len(),
            )
        };
        let status =
            StatusCode::from_u16(status).map_err(|_| H1Error::Malformed("bad status code"))?;
        let head = buf.split_to(len).freeze();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(H1Error::Malformed("an unrequested protocol switch"));
        }
        if status.is_informational() {
            continue;
        }
        let mut headers = HeaderMap::with_capacity(count);
        for &(name_at, name_len, value_at, value_len) in &fields[..count] {
            let span = |at: u32, len: u32| at as usize..(at as usize + len as usize);
            let name = head
                .get(span(name_at, name_len))
                .and_then(|n| HeaderName::from_bytes(n).ok())
                .ok_or(H1Error::Malformed("bad header name"))?;
            let value = head
                .get(span(value_at, value_len))
                .map(|_| head.slice(span(value_at, value_len)))
                .and_then(|v| HeaderValue::from_maybe_shared(v).ok())
                .ok_or(H1Error::Malformed("bad header value"))?;
            headers.append(name, value);
        }
        let (framing, framing_keeps) = framing(&headers, status, method)?;
        let keep_alive = minor == 1 && framing_keeps && !asks_to_close(&headers);
        return Ok(Some(Head {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// What delimits the body (RFC 9112 §6.3), and whether that framing leaves the
/// connection usable after it.
fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    method: &Method,
) -> Result<(Framing, bool), H1Error> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        let last = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        return Ok(match last {
            // With a `Content-Length` beside it, the message may be an attempt to smuggle
            // one past a proxy: read it as chunked and close afterwards.
            Some(c) if c.eq_ignore_ascii_case("chunked") => (
                Framing::Chunked(ChunkedDecoder::new()),
                !headers.contains_key(CONTENT_LENGTH),
            ),
            _ => (Framing::Close, false),
        });
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return Ok((Framing::Close, false));
    };
    let length = content_length(first.as_bytes())?;
    for other in lengths {
        if content_length(other.as_bytes())? != length {
            return Err(H1Error::Malformed("conflicting Content-Length fields"));
        }
    }
    Ok((
        if length == 0 {
            Framing::Empty
        } else {
            Framing::Length(length)
        },
        true,
    ))
}

/// A `Content-Length` value: digits only, no sign, no list.
fn content_length(value: &[u8]) -> Result<u64, H1Error> {
    let bad = H1Error::Malformed("bad Content-Length");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad)
}

/// True when the response's `Connection` lists `close`.
fn asks_to_close(headers: &HeaderMap) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use http::{Method, Request, StatusCode};

    use super::{encode_head, parse_head, Framing, H1Error, Upload};

    fn parse(text: &str, method: Method) -> Result<Option<super::Head>, H1Error> {
        let mut buf = BytesMut::from(text.as_bytes());
        parse_head(&mut buf, &method)
    }

    #[test]
    fn a_head_is_encoded_with_its_fields_in_order() {
        let req = Request::post("/api/items?x=1")
            .header("host", "api.local")
            .header("authorization", "Bearer t")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        encode_head(&req, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api/items?x=1 HTTP/1.1\r\nhost: api.local\r\nauthorization: Bearer t\r\n\
             content-length: 0\r\n\r\n"
        );
        let get = Request::get("/").header("host", "h").body(()).unwrap();
        let mut out = Vec::new();
        encode_head(&get, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nhost: h\r\n\r\n"
        );
    }

    #[test]
    fn an_upload_can_go_again_while_only_its_first_piece_was_taken() {
        type Frame = Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>;
        let data = |s: &'static str| -> Frame { Some(Ok(http_body::Frame::data(s.into()))) };
        let mut upload = Upload::default();
        assert_eq!(
            upload.take(data("first")).unwrap().as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(upload.first.as_deref(), Some(&b"first"[..]));
        assert!(!upload.taken_more && !upload.ended);
        let trailers = Some(Ok(http_body::Frame::trailers(http::HeaderMap::new())));
        assert!(upload.take::<std::io::Error>(trailers).unwrap().is_none());
        assert!(!upload.taken_more, "trailers are dropped, not taken");
        assert!(upload.take::<std::io::Error>(None).unwrap().is_none());
        assert!(upload.ended && upload.first.is_some());

        let mut upload = Upload::default();
        upload.take(data("one")).unwrap();
        assert_eq!(
            upload.take(data("two")).unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert!(
            upload.taken_more && upload.first.is_none(),
            "no longer in hand"
        );
        let failed: Frame = Some(Err(std::io::ErrorKind::ConnectionReset.into()));
        assert!(matches!(upload.take(failed), Err(H1Error::RequestBody(_))));
    }

    #[test]
    fn a_head_is_parsed_and_taken_off_the_buffer() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nokHTTP"[..],
        );
        let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers.get_all("x-a").iter().count(), 2);
        assert!(matches!(head.framing, Framing::Length(2)));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"okHTTP");
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", Method::GET)
            .unwrap()
            .is_none());
    }

    #[test]
    fn bodies_are_framed_as_rfc_9112_says() {
        let framing = |text: &str, method: Method| {
            parse(text, method).map(|h| h.map(|h| (h.framing, h.keep_alive)))
        };
        let cases: [(&str, Method, &str, bool); 8] = [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::HEAD,
                "empty",
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                Method::GET,
                "empty",
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Method::GET,
                "empty",
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Method::GET,
                "chunked",
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Method::GET,
                "chunked",
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::GET,
                "close",
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", Method::GET, "close", false),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                Method::GET,
                "empty",
                false,
            ),
        ];
        for (text, method, want, keep) in cases {
            let (f, k) = framing(text, method).unwrap().unwrap();
            let got = match f {
                Framing::Empty => "empty",
                Framing::Length(_) => "length",
                Framing::Chunked(_) => "chunked",
                Framing::Close => "close",
            };
            assert_eq!((got, k), (want, keep), "{text}");
        }
        let (_, keep) = framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(!keep, "an HTTP/1.0 response closes its connection");
    }

    #[test]
    fn malformed_heads_are_refused() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "SMTP ready\r\n\r\n",
        ] {
            assert!(parse(text, Method::GET).is_err(), "{text}");
        }
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(parse(&text, Method::GET).is_err());
    }
}
