//! A hostile upstream written on raw sockets: each path `/api/case/<name>` is answered one
//! malformed or tricky way. The tables below are the spec: what the upstream sends, and
//! what the browser must get. Before each case a pooled connection is warm (the case may
//! well be sent on it); after it, two users' sessions send the next requests on the pool,
//! at once and in turn: each gets its own identity back, never a byte of the other's or of
//! the hostile answer.
//!
//! Every other path is answered `200` keep-alive, with a body naming the caller: the `sub`
//! of the bearer token the upstream received and the SHA-256 of its `Authorization` value.
//!
//! Issue 20's findings reproduced here: 2 (`upstream_set_cookies_for_gateway_names_…`),
//! 3 (`a_response_with_content_length_and_chunked_…`), and from 5: the response-timeout
//! flag (`a_missing_response_head_is_504_…`), a POST sent twice (`a_post_on_a_reused_…`),
//! the head limit (`the_response_head_limit_is_64_kib`), `Transfer-Encoding: gzip` and
//! HTTP/1.0 chunked (`transfer_codings_…`), `Proxy-Authenticate`
//! (`hop_by_hop_and_proxy_authenticate_…`), no timeout while a body streams
//! (`a_body_that_stalls_…`). Findings 1 and 4, and 5's connection limit, are in
//! client_bytes.rs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::FutureExt;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::support::{wait_until, Setup, TestGateway};

// ---------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------

/// What the upstream does once it has written a case's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Waits for the next request on the same connection, and answers it.
    KeepServing,
    /// Closes the connection (a FIN; a reset when a request body was left unread).
    Close,
    /// Sends nothing more and holds the connection until the gateway lets go of it.
    Stall,
    /// Resets the connection (RST), once the browser has the response head.
    Reset,
    /// Resets the connection (RST) at once.
    ResetNow,
    /// Closes its side, then reads what still comes until the gateway closes too (the
    /// lingering close of RFC 9112 §9.6, so no reset can destroy the answer).
    LingeringClose,
}

/// What the browser must get.
#[derive(Clone, Debug)]
enum Expect {
    /// 502 with a JSON `{"error": …}`; no byte or header of the answer reaches the browser.
    BadGateway,
    /// 504 with a JSON `{"error": …}`; nothing of the (late) answer reaches the browser.
    GatewayTimeout,
    /// This status and exactly this body.
    Answer(u16, Vec<u8>),
    /// The head comes through, then reading the body fails: never a clean complete body.
    BrokenBody,
}

#[derive(Clone, Debug)]
struct Case {
    name: &'static str,
    /// The request alice sends (through `/api`, a `user` route, with `X-CSRF: 1`).
    method: Method,
    request_body: usize,
    /// Whether the upstream reads the request body before it answers.
    reads_body: bool,
    /// How long the upstream waits before it answers.
    delay: Duration,
    /// What the upstream writes, byte for byte.
    answer: Vec<u8>,
    then: Then,
    expect: Expect,
    /// The whole outcome (head and body, or the failure) comes within this.
    within: Duration,
}

fn case(name: &'static str, answer: impl AsRef<[u8]>, then: Then, expect: Expect) -> Case {
    Case {
        name,
        method: Method::GET,
        request_body: 0,
        reads_body: true,
        delay: Duration::ZERO,
        answer: answer.as_ref().to_vec(),
        then,
        expect,
        within: Duration::from_secs(10),
    }
}

fn answer(status: u16, body: &[u8]) -> Expect {
    Expect::Answer(status, body.to_vec())
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A whole second response, smuggled after a complete first one.
const SMUGGLED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET";

/// Issue 20, finding 3.
fn content_length_beside_chunked() -> Vec<Case> {
    use {Expect::BadGateway, Then::KeepServing};
    vec![case(
        "cl-and-te-chunked",
        "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         7\r\nHOSTILE\r\n0\r\n\r\n",
        KeepServing,
        BadGateway,
    )]
}

fn bad_content_lengths() -> Vec<Case> {
    use {Expect::BadGateway, Then::KeepServing};
    let h = "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\n";
    vec![
        case(
            "two-content-lengths-alike",
            format!("{h}Content-Length: 7\r\nContent-Length: 7\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
        case(
            "two-content-lengths-differing",
            format!("{h}Content-Length: 2\r\nContent-Length: 7\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
        case(
            "content-length-list-differing",
            format!("{h}Content-Length: 2, 7\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
        case(
            "content-length-negative",
            format!("{h}Content-Length: -1\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
        case(
            "content-length-beyond-u64",
            format!("{h}Content-Length: 18446744073709551616\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
        case(
            "content-length-not-a-number",
            format!("{h}Content-Length: 5x\r\n\r\nHOSTILE"),
            KeepServing,
            BadGateway,
        ),
    ]
}

fn malformed_heads() -> Vec<Case> {
    use {Expect::BadGateway, Then::KeepServing};
    vec![
        case(
            "obs-fold",
            "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nX-Folded: a\r\n b\r\nContent-Length: 7\r\n\r\nHOSTILE",
            KeepServing,
            BadGateway,
        ),
        case(
            "nul-in-a-header-value",
            "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nX-Nul: a\0b\r\nContent-Length: 7\r\n\r\nHOSTILE",
            KeepServing,
            BadGateway,
        ),
        case(
            "space-before-the-colon",
            "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nContent-Length : 7\r\n\r\nHOSTILE",
            KeepServing,
            BadGateway,
        ),
        case(
            "invalid-status-line",
            "HTTP/1.1 2000 X\r\nX-Hostile: 1\r\nContent-Length: 7\r\n\r\nHOSTILE",
            KeepServing,
            BadGateway,
        ),
        case("not-http", "SSH-2.0-x\r\n", KeepServing, BadGateway),
        case(
            "unrequested-101",
            "HTTP/1.1 101 Switching Protocols\r\nX-Hostile: 1\r\nConnection: upgrade\r\n\
             Upgrade: hostile\r\n\r\nHOSTILE",
            KeepServing,
            BadGateway,
        ),
    ]
}

/// Issue 20, finding 5 (`Transfer-Encoding: gzip` delivered as identity, HTTP/1.0 with
/// chunked coding accepted).
fn bad_transfer_codings() -> Vec<Case> {
    use {Expect::BadGateway, Then::*};
    let h = "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\n";
    vec![
        case(
            "te-gzip",
            format!("{h}Transfer-Encoding: gzip\r\n\r\nHOSTILE"),
            Close,
            BadGateway,
        ),
        case(
            "te-gzip-chunked",
            format!("{h}Transfer-Encoding: gzip, chunked\r\n\r\n7\r\nHOSTILE\r\n0\r\n\r\n"),
            KeepServing,
            BadGateway,
        ),
        case(
            "te-chunked-twice",
            format!(
                "{h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n\
                 7\r\nHOSTILE\r\n0\r\n\r\n"
            ),
            KeepServing,
            BadGateway,
        ),
        case(
            "http10-chunked",
            "HTTP/1.0 200 OK\r\nX-Hostile: 1\r\nTransfer-Encoding: chunked\r\n\r\n\
             7\r\nHOSTILE\r\n0\r\n\r\n",
            KeepServing,
            BadGateway,
        ),
    ]
}

/// A response head of exactly `size` bytes (long headers, well under hyper's count of
/// 100), then the body `ok`.
fn head_of(size: usize) -> Vec<u8> {
    let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n".to_vec();
    let mut i = 0;
    loop {
        let room = size - head.len() - 2;
        if room == 0 {
            break;
        }
        let line = if room > 4096 + 16 { 4096 } else { room };
        let prefix = format!("X-Pad-{i:02}: ");
        assert!(
            line > prefix.len() + 2,
            "head_of({size}): a short last line"
        );
        head.extend_from_slice(prefix.as_bytes());
        head.extend(std::iter::repeat_n(b'a', line - prefix.len() - 2));
        head.extend_from_slice(b"\r\n");
        i += 1;
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(head.len(), size);
    head.extend_from_slice(b"ok");
    head
}

/// Issue 20, finding 5 (the 64 KiB head limit was about 128 KiB).
fn head_sizes() -> Vec<Case> {
    use Then::KeepServing;
    vec![
        case(
            "head-of-60-kib",
            head_of(60 * 1024),
            KeepServing,
            answer(200, b"ok"),
        ),
        case(
            "head-of-100-kib",
            head_of(100 * 1024),
            KeepServing,
            Expect::BadGateway,
        ),
    ]
}

fn close_delimited_body() -> Vec<u8> {
    (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect()
}

fn tricky_but_valid() -> Vec<Case> {
    use Then::*;
    vec![
        // hyper's parser accepts bare LF line endings (RFC 9112 §2.2 allows it).
        case(
            "bare-lf-line-endings",
            "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
            KeepServing,
            answer(200, b"ok"),
        ),
        case(
            "100-continue-then-200",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            KeepServing,
            answer(200, b"final"),
        ),
        case(
            "103-early-hints-then-200",
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
            KeepServing,
            answer(200, b"final"),
        ),
        case(
            "close-delimited-body",
            cat(&[
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
                &close_delimited_body(),
            ]),
            Close,
            Expect::Answer(200, close_delimited_body()),
        ),
    ]
}

/// A second response after a complete first one: the first arrives as sent, the second
/// reaches nobody (the connection is not reused with bytes pending).
fn bytes_after_a_complete_answer() -> Vec<Case> {
    use Then::KeepServing;
    vec![
        case(
            "bytes-after-a-204",
            cat(&[b"HTTP/1.1 204 No Content\r\n\r\n", SMUGGLED]),
            KeepServing,
            answer(204, b""),
        ),
        case(
            "bytes-after-a-304",
            cat(&[
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\n",
                SMUGGLED,
            ]),
            KeepServing,
            answer(304, b""),
        ),
        Case {
            method: Method::HEAD,
            ..case(
                "bytes-after-a-head-answer",
                cat(&[b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", SMUGGLED]),
                KeepServing,
                answer(200, b""),
            )
        },
        case(
            "bytes-after-a-content-length-body",
            cat(&[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", SMUGGLED]),
            KeepServing,
            answer(200, b"ok"),
        ),
        case(
            "bytes-after-a-chunked-body",
            cat(&[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
                SMUGGLED,
            ]),
            KeepServing,
            answer(200, b"ok"),
        ),
    ]
}

fn bodies_that_break_off() -> Vec<Case> {
    use {Expect::BrokenBody, Then::*};
    let part = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789";
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    vec![
        case("reset-mid-body", part, Reset, BrokenBody),
        case("close-mid-body", part, Close, BrokenBody),
        case(
            "invalid-chunk-size",
            format!("{chunked}zz\r\nHOSTILE\r\n0\r\n\r\n"),
            KeepServing,
            BrokenBody,
        ),
        case("chunked-body-cut-by-close", chunked, Close, BrokenBody),
    ]
}

/// Issue 20, finding 5 (no timeout while a body streams). With `read_timeout = "1s"`.
fn stalled_body() -> Vec<Case> {
    vec![Case {
        within: Duration::from_secs(5),
        ..case(
            "stall-mid-body",
            "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789",
            Then::Stall,
            Expect::BrokenBody,
        )
    }]
}

/// Issue 20, finding 2.
fn gateway_set_cookies() -> Case {
    case(
        "gateway-set-cookies",
        b"HTTP/1.1 200 OK\r\n\
          Set-Cookie: tokengate=evil; X=\xe9\r\n\
          Set-Cookie: __Host-Http-tokengate=evil\r\n\
          Set-Cookie: __Host-Http-tokengate=\xff\xfe\r\n\
          Set-Cookie: tokengate-login-x=1\r\n\
          Set-Cookie: tokengate =evil\r\n\
          Set-Cookie: app=1\r\n\
          Content-Length: 2\r\n\r\nok",
        Then::KeepServing,
        answer(200, b"ok"),
    )
}

/// Issue 20, finding 5 (`Proxy-Authenticate` passes).
fn hop_by_hop_responses() -> Vec<Case> {
    vec![
        case(
            "hop-by-hop-response-headers",
            "HTTP/1.1 200 OK\r\nProxy-Authenticate: Basic realm=\"upstream\"\r\n\
             Keep-Alive: timeout=5\r\nConnection: close, x-hop\r\nX-Hop: 1\r\n\
             Trailer: X-Checksum\r\nX-App: kept\r\nContent-Length: 2\r\n\r\nok",
            Then::Close,
            answer(200, b"ok"),
        ),
        case(
            "connection-listing-beside-a-non-utf8-byte",
            b"HTTP/1.1 200 OK\r\nConnection: x-hop, x-\xe9\r\nX-Hop: 1\r\n\
              X-App: kept\r\nContent-Length: 2\r\n\r\nok",
            Then::KeepServing,
            answer(200, b"ok"),
        ),
    ]
}

/// With `response_timeout = "1s"`.
fn response_timeouts() -> (Case, Case) {
    (
        Case {
            delay: Duration::from_millis(500),
            ..case(
                "slow-but-in-time",
                "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nin time",
                Then::KeepServing,
                answer(200, b"in time"),
            )
        },
        Case {
            delay: Duration::from_secs(3),
            within: Duration::from_millis(2900),
            ..case(
                "no-head-within-the-response-timeout",
                SMUGGLED,
                Then::KeepServing,
                Expect::GatewayTimeout,
            )
        },
    )
}

/// An upload the upstream answers before reading it.
const UPLOAD: usize = 8 * 1024 * 1024;

/// A `413` before the upload is read; sent by a raw client (`send_early_answered_upload`)
/// that keeps sending while it reads the answer.
fn early_answers_to_an_upload() -> Vec<Case> {
    let upload = |c: Case| Case {
        method: Method::POST,
        request_body: UPLOAD,
        reads_body: false,
        ..c
    };
    let too_large = "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n\
                     Content-Length: 9\r\n\r\ntoo large";
    vec![
        // Closed at once: with the upload unread, the close is a reset.
        upload(case(
            "413-before-reading-an-upload-then-close",
            too_large,
            Then::Close,
            answer(413, b"too large"),
        )),
        upload(case(
            "413-before-reading-an-upload-then-lingering-close",
            too_large,
            Then::LingeringClose,
            answer(413, b"too large"),
        )),
    ]
}

/// Issue 20, finding 5 (a POST sent twice when a reused connection fails after the
/// upstream began answering). Each on a reused connection.
fn posts_that_fail() -> Vec<Case> {
    let post = |c: Case| Case {
        method: Method::POST,
        request_body: 5,
        ..c
    };
    vec![
        post(case(
            "post-read-then-closed-unanswered",
            "",
            Then::Close,
            Expect::BadGateway,
        )),
        post(case(
            "post-answer-begun-then-reset",
            "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nContent-Le",
            Then::ResetNow,
            Expect::BadGateway,
        )),
        post(case(
            "post-answer-begun-then-closed",
            "HTTP/1.1 200 OK\r\nX-Hostile: 1\r\nContent-Length: 100\r\n\r\nHOST",
            Then::Close,
            Expect::BrokenBody,
        )),
    ]
}

fn all_cases() -> Vec<Case> {
    let (slow, late) = response_timeouts();
    [
        content_length_beside_chunked(),
        bad_content_lengths(),
        malformed_heads(),
        bad_transfer_codings(),
        head_sizes(),
        tricky_but_valid(),
        bytes_after_a_complete_answer(),
        bodies_that_break_off(),
        stalled_body(),
        hop_by_hop_responses(),
        vec![gateway_set_cookies(), slow, late],
        early_answers_to_an_upload(),
        posts_that_fail(),
    ]
    .concat()
}

// ---------------------------------------------------------------------------------------
// The upstream
// ---------------------------------------------------------------------------------------

/// One request as the hostile upstream read it.
#[derive(Clone, Debug)]
struct Seen {
    conn: usize,
    method: String,
    path: String,
    body: usize,
}

struct HostileUpstream {
    addr: SocketAddr,
    /// Connections accepted so far, those still open, and those that ended (by id).
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    ended: Arc<Mutex<HashSet<usize>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Every increment closes each connection that is waiting for a request.
    close_idle: watch::Sender<u64>,
    /// Lets a connection of a `Then::Reset` case reset.
    go: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    cases: Arc<HashMap<&'static str, Case>>,
    open: Arc<AtomicUsize>,
    ended: Arc<Mutex<HashSet<usize>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    go: Arc<Notify>,
}

impl HostileUpstream {
    async fn start() -> HostileUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cases: HashMap<_, _> = all_cases().into_iter().map(|c| (c.name, c)).collect();
        let shared = Shared {
            cases: Arc::new(cases),
            open: Arc::new(AtomicUsize::new(0)),
            ended: Arc::new(Mutex::new(HashSet::new())),
            seen: Arc::new(Mutex::new(Vec::new())),
            go: Arc::new(Notify::new()),
        };
        let accepted = Arc::new(AtomicUsize::new(0));
        let (close_idle, _) = watch::channel(0u64);
        let task = tokio::spawn({
            let (shared, accepted, close_idle) =
                (shared.clone(), accepted.clone(), close_idle.clone());
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let id = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                    shared.open.fetch_add(1, Ordering::SeqCst);
                    let shared = shared.clone();
                    let idle = close_idle.subscribe();
                    tokio::spawn(async move {
                        serve(conn, id, &shared, idle).await;
                        shared.ended.lock().expect("ended").insert(id);
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }
        });
        HostileUpstream {
            addr,
            accepted,
            open: shared.open,
            ended: shared.ended,
            seen: shared.seen,
            close_idle,
            go: shared.go,
            task,
        }
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let seen = self.seen.lock().expect("seen");
        seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// Reads until `buf` holds at least `n` bytes; false at the end of the stream.
async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    let mut chunk = vec![0u8; 64 * 1024];
    while buf.len() < n {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(got) => buf.extend_from_slice(&chunk[..got]),
        }
    }
    true
}

/// The next request head (through its blank line), or `None` at the end of the stream or
/// when told to close idle connections while none has begun.
async fn read_head(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    idle: &mut watch::Receiver<u64>,
) -> Option<Vec<u8>> {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Some(buf.drain(..end + 4).collect());
        }
        let n = if buf.is_empty() {
            tokio::select! {
                read = conn.read(&mut chunk) => read.ok()?,
                _ = idle.changed() => return None,
            }
        } else {
            conn.read(&mut chunk).await.ok()?
        };
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The value of header `name` in a request head (crudely parsed: test code).
fn header<'h>(head: &'h [u8], name: &str) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name.as_bytes())
            .then(|| line[colon + 1..].trim_ascii())
    })
}

/// Reads and discards a request body (by `Content-Length`, or chunked); its length.
async fn read_body(conn: &mut TcpStream, buf: &mut Vec<u8>, head: &[u8]) -> Option<usize> {
    let chunked =
        header(head, "transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case(b"chunked"));
    if !chunked {
        let length: usize = header(head, "content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
            .unwrap_or(0);
        let mut left = length;
        while left > 0 {
            if buf.is_empty() && !fill(conn, buf, 1).await {
                return None;
            }
            let take = left.min(buf.len());
            buf.drain(..take);
            left -= take;
        }
        return Some(length);
    }
    let mut total = 0;
    loop {
        let line_end = loop {
            if let Some(end) = find(buf, b"\r\n") {
                break end;
            }
            if !fill(conn, buf, buf.len() + 1).await {
                return None;
            }
        };
        let line: Vec<u8> = buf.drain(..line_end + 2).collect();
        let size_text = std::str::from_utf8(&line[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, through the blank line.
            loop {
                let end = loop {
                    if let Some(end) = find(buf, b"\r\n") {
                        break end;
                    }
                    if !fill(conn, buf, buf.len() + 1).await {
                        return None;
                    }
                };
                buf.drain(..end + 2);
                if end == 0 {
                    return Some(total);
                }
            }
        }
        if !fill(conn, buf, size + 2).await {
            return None;
        }
        buf.drain(..size + 2);
        total += size;
    }
}

/// `sub=<sub> auth=<sha256 hex>` of the `Authorization` the upstream received.
fn identity(head: &[u8]) -> String {
    let Some(auth) = header(head, "authorization") else {
        return "sub=- auth=-".into();
    };
    let sub = std::str::from_utf8(auth)
        .ok()
        .and_then(|a| a.strip_prefix("Bearer "))
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|claims| claims["sub"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    format!("sub={sub} auth={:x}", Sha256::digest(auth))
}

async fn serve(mut conn: TcpStream, id: usize, shared: &Shared, mut idle: watch::Receiver<u64>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut conn, &mut buf, &mut idle).await else {
            return;
        };
        let line = String::from_utf8_lossy(&head[..find(&head, b"\r\n").unwrap_or(0)]).into_owned();
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let case = path
            .strip_prefix("/api/case/")
            .and_then(|name| shared.cases.get(name));
        let body = match case {
            Some(c) if !c.reads_body => 0,
            _ => match read_body(&mut conn, &mut buf, &head).await {
                Some(n) => n,
                None => return,
            },
        };
        shared.seen.lock().expect("seen").push(Seen {
            conn: id,
            method,
            path,
            body,
        });
        let Some(case) = case else {
            let me = identity(&head);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{me}",
                me.len()
            );
            if conn.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        };
        tokio::time::sleep(case.delay).await;
        if conn.write_all(&case.answer).await.is_err() {
            return;
        }
        match case.then {
            Then::KeepServing => {}
            Then::Close => return,
            Then::LingeringClose => {
                let _ = conn.shutdown().await;
                let mut sink = vec![0u8; 64 * 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Then::Stall => {
                let mut sink = vec![0u8; 16 * 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Then::Reset | Then::ResetNow => {
                if case.then == Then::Reset {
                    shared.go.notified().await;
                }
                // SO_LINGER 0: the close sends an RST (no blocking: the timeout is zero).
                #[allow(deprecated)]
                let _ = conn.set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The gateway in front of it, and two users
// ---------------------------------------------------------------------------------------

struct User {
    name: &'static str,
    cookie: String,
    /// What the upstream names this user by: `sub=… auth=<sha256 of its Authorization>`.
    identity: String,
}

struct Hostile {
    up: HostileUpstream,
    gw: TestGateway,
    client: reqwest::Client,
    alice: User,
    bob: User,
}

/// What the browser got for a case; status 0: no response came.
struct Outcome {
    status: u16,
    headers: HeaderMap,
    body: Result<Vec<u8>, String>,
    took: Duration,
}

fn lossy(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(300)];
    let more = if bytes.len() > 300 { "…" } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(shown))
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "status {} after {:?}, headers [", self.status, self.took)?;
        for (name, value) in &self.headers {
            write!(f, "{name}: {} ", lossy(value.as_bytes()))?;
        }
        match &self.body {
            Ok(body) => write!(f, "], body ({} bytes) {}", body.len(), lossy(body)),
            Err(e) => write!(f, "], body failed: {e}"),
        }
    }
}

impl Outcome {
    fn assert_meets(&self, case: &Case) {
        let name = case.name;
        assert!(
            self.took < case.within,
            "{name}: the outcome took longer than {:?}: {self}",
            case.within
        );
        match &case.expect {
            Expect::BadGateway | Expect::GatewayTimeout => {
                let status = match case.expect {
                    Expect::BadGateway => 502,
                    _ => 504,
                };
                assert_eq!(self.status, status, "{name}: {self}");
                let body = self
                    .body
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{name}: the {status}'s body broke off: {e}"));
                let json: Value = serde_json::from_slice(body)
                    .unwrap_or_else(|e| panic!("{name}: the {status} is not JSON ({e}): {self}"));
                assert!(json["error"].is_string(), "{name}: no error code: {self}");
                for marker in [b"HOSTILE".as_slice(), b"SECRET"] {
                    assert!(
                        !contains(body, marker),
                        "{name}: bytes of the answer reached the browser: {self}"
                    );
                }
                assert!(
                    !self.headers.contains_key("x-hostile"),
                    "{name}: a header of the refused answer reached the browser: {self}"
                );
            }
            Expect::Answer(status, expected) => {
                assert_eq!(self.status, *status, "{name}: {self}");
                match &self.body {
                    Ok(body) => assert!(
                        body == expected,
                        "{name}: the body is not the one sent ({} bytes expected): {self}",
                        expected.len()
                    ),
                    Err(e) => panic!("{name}: the body broke off ({e}): {self}"),
                }
            }
            Expect::BrokenBody => {
                // The head comes through, or the connection ends before it could (the
                // failure met as the first piece of the body was read).
                assert!(
                    [200, 0].contains(&self.status),
                    "{name}: a 200 whose body fails, or no response at all: {self}"
                );
                assert!(
                    self.body.is_err(),
                    "{name}: the body ended clean where its read must fail: {self}"
                );
            }
        }
    }
}

/// A safety net for one case, beyond each case's own `within`.
const CASE_LIMIT: Duration = Duration::from_secs(60);

impl Hostile {
    /// A gateway with `/api` (`token = "user"`) and `/` (`token = "none"`) on the hostile
    /// upstream, `extra` appended to its configuration, and alice and bob logged in.
    async fn start(extra: &str) -> Hostile {
        let up = HostileUpstream::start().await;
        let gw = TestGateway::start_with(Setup {
            routes: format!(
                "[[route]]\npath = \"/api\"\nupstream = \"http://{a}\"\ntoken = \"user\"\n\n\
                 [[route]]\npath = \"/\"\nupstream = \"http://{a}\"\ntoken = \"none\"\n",
                a = up.addr
            ),
            extra: extra.into(),
            ..Setup::default()
        })
        .await;
        let (alice, bob) = tokio::join!(gw.logged_in("alice"), gw.logged_in("bob"));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(25))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let user = |name, browser: crate::support::Browser| User {
            name,
            cookie: format!(
                "tokengate={}",
                browser.cookie("tokengate").expect("session")
            ),
            identity: String::new(),
        };
        let mut h = Hostile {
            up,
            gw,
            client,
            alice: user("alice", alice),
            bob: user("bob", bob),
        };
        h.alice.identity = h.identity_of(&h.alice).await;
        h.bob.identity = h.identity_of(&h.bob).await;
        assert_ne!(
            h.alice.identity, h.bob.identity,
            "two users, two credentials"
        );
        h
    }

    async fn identity_of(&self, user: &User) -> String {
        let resp = self.me_request(user).await;
        assert_eq!(resp.status(), 200, "{}'s first request", user.name);
        let body = resp.text().await.expect("body");
        let auth = body
            .strip_prefix(&format!("sub={} auth=", user.name))
            .unwrap_or_else(|| panic!("{} is not named by the upstream: {body:?}", user.name));
        assert_eq!(auth.len(), 64, "a SHA-256: {body:?}");
        body
    }

    async fn me_request(&self, user: &User) -> reqwest::Response {
        self.client
            .get(self.gw.url("/api/me"))
            .header(COOKIE, &user.cookie)
            .header("x-csrf", "1")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}'s request failed: {e:?}", user.name))
    }

    /// `user` asks who they are: 200, and exactly their own identity.
    async fn me(&self, user: &User, after: &str) {
        let resp = self.me_request(user).await;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("after {after}: {}'s body broke off: {e:?}", user.name));
        assert_eq!(
            (status.as_u16(), lossy(&body)),
            (200, lossy(user.identity.as_bytes())),
            "after {after}: {} must get 200 and their own identity",
            user.name
        );
    }

    /// Both users, at once and interleaved, then in turn: each gets its own answer.
    async fn next_users_get_their_own_answers(&self, after: &str) {
        let users = [&self.alice, &self.bob];
        futures_util::future::join_all((0..8).map(|i| self.me(users[i % 2], after))).await;
        for i in 0..6 {
            self.me(users[(i + 1) % 2], after).await;
        }
    }

    /// Alice sends `case` (through `/api`, with `X-CSRF: 1`); what she got.
    async fn send(&self, case: &Case) -> Outcome {
        let started = Instant::now();
        let url = self.gw.url(&format!("/api/case/{}", case.name));
        let mut req = self
            .client
            .request(case.method.clone(), url)
            .header(COOKIE, &self.alice.cookie)
            .header("x-csrf", "1");
        if case.request_body > 0 {
            req = req.body(vec![b'x'; case.request_body]);
        }
        let sent = req.send().await;
        if case.then == Then::Reset {
            // The browser has the head (or never will): now the upstream resets.
            self.up.go.notify_one();
        }
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                return Outcome {
                    status: 0,
                    headers: HeaderMap::new(),
                    body: Err(format!("no response: {e:?}")),
                    took: started.elapsed(),
                }
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("{e:?}"));
        Outcome {
            status,
            headers,
            body,
            took: started.elapsed(),
        }
    }

    /// The whole check of one case: warm pool, the case, its expected outcome, the
    /// upstream's view, then both users on the pool.
    async fn check(&self, case: &Case) -> Outcome {
        self.me(&self.alice, &format!("{} (warming the pool)", case.name))
            .await;
        let got = self.send(case).await;
        got.assert_meets(case);
        if case.method == Method::POST {
            let path = format!("/api/case/{}", case.name);
            let posts = self.up.seen(&path);
            assert!(
                posts.len() == 1 && posts[0].method == "POST",
                "{}: the upstream must receive the POST exactly once: {posts:?}",
                case.name
            );
        }
        self.next_users_get_their_own_answers(case.name).await;
        got
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".into())
}

/// Runs every case (a failing one does not hide the next) and fails naming each that
/// failed.
async fn run_cases(h: &Hostile, cases: Vec<Case>) {
    let mut failed = Vec::new();
    for case in &cases {
        let run = tokio::time::timeout(CASE_LIMIT, h.check(case));
        match AssertUnwindSafe(run).catch_unwind().await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => failed.push(format!("{}: no outcome within {CASE_LIMIT:?}", case.name)),
            Err(panic) => failed.push(format!("{}: {}", case.name, panic_text(&*panic))),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

/// Issue 20, finding 3: CL beside `Transfer-Encoding: chunked` made a truncated 200.
#[tokio::test(flavor = "multi_thread")]
async fn a_response_with_content_length_and_chunked_is_502_never_a_truncated_200() {
    let h = Hostile::start("").await;
    run_cases(&h, content_length_beside_chunked()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_negative_huge_or_malformed_content_lengths_are_502() {
    let h = Hostile::start("").await;
    run_cases(&h, bad_content_lengths()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_response_heads_and_an_unrequested_101_are_502() {
    let h = Hostile::start("").await;
    run_cases(&h, malformed_heads()).await;
}

/// Issue 20, finding 5: `Transfer-Encoding: gzip` was delivered as identity, and an
/// HTTP/1.0 response with chunked coding was accepted.
#[tokio::test(flavor = "multi_thread")]
async fn transfer_codings_other_than_one_final_chunked_and_chunked_on_http10_are_502() {
    let h = Hostile::start("").await;
    run_cases(&h, bad_transfer_codings()).await;
}

/// Issue 20, finding 5: the 64 KiB response-head limit was really about 128 KiB.
#[tokio::test(flavor = "multi_thread")]
async fn the_response_head_limit_is_64_kib() {
    let h = Hostile::start("").await;
    run_cases(&h, head_sizes()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bare_lf_interim_answers_and_close_delimited_bodies_arrive_as_sent() {
    let h = Hostile::start("").await;
    run_cases(&h, tricky_but_valid()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_after_a_complete_answer_reach_nobody() {
    let h = Hostile::start("").await;
    run_cases(&h, bytes_after_a_complete_answer()).await;
    // The smuggled answer was never delivered: every answer a user got was checked to be
    // exactly their own, and the hostile ones exactly as sent.
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_breaks_off_fails_the_browsers_read_and_never_ends_clean() {
    let h = Hostile::start("").await;
    run_cases(&h, bodies_that_break_off()).await;
}

/// Issue 20, finding 5: no timeout while a body streams.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_stalls_fails_the_browsers_read_within_the_read_timeout() {
    let h = Hostile::start("[upstream]\nread_timeout = \"1s\"\n").await;
    run_cases(&h, stalled_body()).await;
}

/// Issue 20, finding 2: `Set-Cookie: tokengate=…; X=é` (not UTF-8) reached the browser.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_set_cookies_for_gateway_names_never_reach_the_browser_whatever_their_bytes() {
    let h = Hostile::start("").await;
    let case = gateway_set_cookies();
    let got = h.check(&case).await;
    let set: Vec<&[u8]> = got
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(
        set,
        [b"app=1".as_slice()],
        "only the application's own cookie reaches the browser: {got}"
    );
}

/// Issue 20, finding 5: `Proxy-Authenticate` passed.
#[tokio::test(flavor = "multi_thread")]
async fn hop_by_hop_and_proxy_authenticate_response_headers_never_reach_the_browser() {
    let h = Hostile::start("").await;
    let mut failed = Vec::new();
    for case in hop_by_hop_responses() {
        let run = async {
            let got = h.check(&case).await;
            for name in [
                "proxy-authenticate",
                "keep-alive",
                "connection",
                "x-hop",
                "trailer",
            ] {
                assert!(
                    !got.headers.contains_key(name),
                    "{}: {name} reached the browser: {got}",
                    case.name
                );
            }
            assert_eq!(
                got.headers.get("x-app").map(|v| v.as_bytes()),
                Some(b"kept".as_slice()),
                "{}: end-to-end headers pass: {got}",
                case.name
            );
        };
        if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
            failed.push(panic_text(&*panic));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Issue 20, finding 5: the response-timeout flag of a pooled connection was never reset,
/// so a healthy connection could fail its next request with 504.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_response_head_is_504_and_a_slow_but_timely_connection_is_reused() {
    let h = Hostile::start("[upstream]\nresponse_timeout = \"1s\"\n").await;
    let (slow, late) = response_timeouts();

    h.check(&slow).await;
    // From here one connection at a time: the upstream closes the idle ones, and one user
    // sends one request at a time.
    h.up.close_idle.send_modify(|generation| *generation += 1);
    wait_until(
        Duration::from_secs(10),
        "the upstream closed its idle connections",
        || async { h.up.open.load(Ordering::SeqCst) == 0 },
    )
    .await;
    let accepted = h.up.accepted();
    h.send(&slow).await.assert_meets(&slow);
    // The slow request's deadline passes while its connection idles in the pool (this
    // wait is the scenario, not a hope that something happened).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for round in 0..3 {
        h.me(&h.alice, &format!("slow-but-in-time, round {round}"))
            .await;
        h.send(&slow).await.assert_meets(&slow);
    }
    assert_eq!(
        h.up.accepted(),
        accepted + 1,
        "slow-but-in-time: the connection that answered in time serves every next request"
    );

    let started = Instant::now();
    let got = h.send(&late).await;
    got.assert_meets(&late);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{}: 504 before the timeout: {got}",
        late.name
    );
    // The late answer is written on a connection the gateway let go of: that connection
    // ends, and its answer reaches nobody.
    let conn =
        h.up.seen(&format!("/api/case/{}", late.name))
            .first()
            .map(|s| s.conn)
            .expect("the late request reached the upstream");
    wait_until(
        Duration::from_secs(10),
        "the timed-out upstream connection closed",
        || async { h.up.ended.lock().expect("ended").contains(&conn) },
    )
    .await;
    h.next_users_get_their_own_answers(late.name).await;
}

/// Raw, so the answer is read however the upload ends: head, then body pieces while the
/// answer is read.
async fn send_early_answered_upload(h: &Hostile, case: &Case) -> String {
    let conn = TcpStream::connect(h.gw.addr).await.expect("connect");
    let (mut reader, mut writer) = conn.into_split();
    let head = format!(
        "POST /api/case/{} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nX-CSRF: 1\r\n\
         Content-Length: {}\r\n\r\n",
        case.name, h.gw.addr, h.alice.cookie, case.request_body
    );
    writer.write_all(head.as_bytes()).await.expect("write head");
    let total = case.request_body;
    let sending = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = piece.len().min(total - sent);
            if writer.write_all(&piece[..n]).await.is_err() {
                return;
            }
            sent += n;
        }
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        // Until the upstream's answer, or the gateway's whole 502 (a JSON object).
        let whole_502 = |a: &[u8]| contains(a, b"upstream_unreachable") && a.ends_with(b"}");
        while !contains(&answer, b"too large") && !whole_502(&answer) {
            match reader.read(&mut buf).await {
                Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    })
    .await;
    sending.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
/// A lingering close lets the 413 through, always. A close with the upload unread is a
/// reset, which may reach the gateway while it still writes the upload: hyper's client
/// then reports the failed write, not the answer it had not read yet, and the browser
/// gets 502 (nginx answers the same there). Either way one answer, the POST sent once,
/// and the pool unharmed.
async fn an_upload_answered_413_before_it_is_read_reaches_the_browser_unless_a_reset_destroys_it() {
    let h = Hostile::start("").await;
    let mut failed = Vec::new();
    for case in early_answers_to_an_upload() {
        let run = async {
            h.me(&h.alice, &format!("{} (warming the pool)", case.name))
                .await;
            let answer = send_early_answered_upload(&h, &case).await;
            let reset = matches!(case.then, Then::Close);
            let destroyed = reset
                && answer.starts_with("HTTP/1.1 502")
                && answer.contains("upstream_unreachable");
            if !destroyed {
                assert!(
                    answer.starts_with("HTTP/1.1 413"),
                    "{}: the upstream's answer, not a 502: {answer:?}",
                    case.name
                );
                assert!(
                    answer.ends_with("too large"),
                    "{}: with its body: {answer:?}",
                    case.name
                );
            }
            assert_eq!(
                h.up.seen(&format!("/api/case/{}", case.name)).len(),
                1,
                "{}: the upstream received the POST once",
                case.name
            );
            h.next_users_get_their_own_answers(case.name).await;
        };
        if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
            failed.push(panic_text(&*panic));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Issue 20, finding 5: a POST could be sent twice when a reused connection failed after
/// the upstream began answering.
#[tokio::test(flavor = "multi_thread")]
async fn a_post_on_a_reused_connection_that_fails_is_never_sent_twice() {
    let h = Hostile::start("").await;
    let mut failed = Vec::new();
    for case in posts_that_fail() {
        let path = format!("/api/case/{}", case.name);
        let run = async {
            // `check` asserts the outcome, and that the upstream received the POST once.
            h.check(&case).await;
            let posts = h.up.seen(&path);
            let post = posts.first().expect("the POST reached the upstream");
            assert_eq!(
                post.body, 5,
                "{}: the upstream read the whole body",
                case.name
            );
            let reused =
                h.up.seen
                    .lock()
                    .expect("seen")
                    .iter()
                    .take_while(|s| s.path != path)
                    .any(|s| s.conn == post.conn);
            assert!(
                reused,
                "{}: the POST went out on a reused connection",
                case.name
            );
        };
        if let Err(panic) = AssertUnwindSafe(run).catch_unwind().await {
            failed.push(panic_text(&*panic));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_after_the_upstream_closed_its_idle_connections_is_served_on_a_fresh_one() {
    let h = Hostile::start("").await;
    h.next_users_get_their_own_answers("warming the pool").await;
    let accepted = h.up.accepted();
    // Every pooled connection is closed by the upstream while idle.
    h.up.close_idle.send_modify(|generation| *generation += 1);
    wait_until(
        Duration::from_secs(10),
        "the upstream closed its idle connections",
        || async { h.up.open.load(Ordering::SeqCst) == 0 },
    )
    .await;
    h.me(&h.alice, "idle connections closed").await;
    assert!(
        h.up.accepted() > accepted,
        "the GET was served on a fresh connection"
    );
    let last = h.up.seen("/api/me").last().map(|s| s.conn);
    assert!(
        last > Some(accepted),
        "on a connection opened after the close"
    );
    h.next_users_get_their_own_answers("idle connections closed")
        .await;
}
