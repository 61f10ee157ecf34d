//! The upstream connection pool: connections are reused, a connection the upstream closes
//! or a response abandoned half-way costs no later request, and idle connections are
//! closed after `upstream.pool_idle_timeout`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{wait_until, Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn sequential_requests_share_one_upstream_connection() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let before = gw.upstream.accepted.load(Ordering::SeqCst);
    for i in 0..20 {
        assert_eq!(b.api(&gw.url(&format!("/api/n{i}"))).await.0, 200);
    }
    let opened = gw.upstream.accepted.load(Ordering::SeqCst) - before;
    assert!(
        opened <= 1,
        "20 requests one after another opened {opened} upstream connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_to_the_same_upstream_share_its_connections() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    // `/api` (a user route) and `/` (a none route) lead to the same upstream.
    assert_eq!(b.api(&gw.url("/api/warm")).await.0, 200);
    let before = gw.upstream.accepted.load(Ordering::SeqCst);
    for i in 0..10 {
        let resp = reqwest::get(gw.url(&format!("/plain{i}")))
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(b.api(&gw.url(&format!("/api/n{i}"))).await.0, 200);
    }
    let opened = gw.upstream.accepted.load(Ordering::SeqCst) - before;
    assert_eq!(opened, 0, "the warm connection served both routes");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_closing_its_connections_costs_no_request() {
    let gw = TestGateway::start().await;
    let b = gw.logged_in("alice").await;
    let before = gw.upstream.accepted.load(Ordering::SeqCst);
    for i in 0..10 {
        // Every other answer says `Connection: close`, and the upstream then closes.
        let path = if i % 2 == 0 {
            "/api/close"
        } else {
            "/api/open"
        };
        let (status, seen) = b.api(&gw.url(path)).await;
        assert_eq!(status, 200, "request {i} to {path}: {seen}");
        assert_eq!(seen["token"]["valid"], true);
    }
    let opened = gw.upstream.accepted.load(Ordering::SeqCst) - before;
    assert!(
        (5..=6).contains(&opened),
        "a new connection after each close, no more: {opened}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_abandoned_half_way_does_not_poison_the_pool() {
    let gw = TestGateway::start().await;
    for round in 0..3 {
        // A client reads part of a large download and goes away.
        let mut conn = tokio::net::TcpStream::connect(gw.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /files/download?bytes=67108864 HTTP/1.1\r\nHost: {}\r\n\r\n",
            gw.addr
        );
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        while got < 256 * 1024 {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(n > 0, "round {round}: the download ended early");
            got += n;
        }
        drop(conn);
        // The next requests are answered whole, on a connection of their own.
        for i in 0..3 {
            let resp = reqwest::get(gw.url(&format!("/after{round}-{i}")))
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
            let seen: serde_json::Value = resp.json().await.expect("a whole JSON answer");
            assert_eq!(seen["path"], format!("/after{round}-{i}"));
        }
    }
    // The abandoned connections were closed, not parked: only the pool's idle one stays.
    wait_until(
        Duration::from_secs(10),
        "abandoned upstream connections closed",
        || async { gw.upstream.open.load(Ordering::SeqCst) <= 1 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_upstream_connections_close_after_the_pool_idle_timeout() {
    let gw = TestGateway::start_with(Setup {
        extra: "[upstream]\npool_idle_timeout = \"300ms\"\n".into(),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/idle")).await.expect("request");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    assert!(gw.upstream.accepted.load(Ordering::SeqCst) >= 1);
    wait_until(
        Duration::from_secs(5),
        "the idle upstream connection closed",
        || async { gw.upstream.open.load(Ordering::SeqCst) == 0 },
    )
    .await;
    // And the next request simply opens a new one.
    let resp = reqwest::get(gw.url("/again")).await.expect("request");
    assert_eq!(resp.status(), 200);
}

/// A bare HTTP/1.1 upstream: a `POST` is answered `202` at once and its body then read
/// and discarded without end (the connection stays open, busy with the upload); anything
/// else is answered `200 ok`, keep-alive.
async fn early_answering_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut head = Vec::new();
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    if head.starts_with(b"POST") {
                        let early = b"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nearly";
                        if conn.write_all(early).await.is_err() {
                            return;
                        }
                        while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                        return;
                    }
                    head.drain(..end + 4);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_still_carrying_an_upload_keeps_no_request_waiting() {
    let upstream = early_answering_upstream().await;
    let gw = TestGateway::start_with(Setup {
        routes: format!(
            "[[route]]\npath = \"/\"\nupstream = \"http://{upstream}\"\ntoken = \"none\"\n"
        ),
        extra: "[upstream]\nresponse_timeout = \"2s\"\n".into(),
        ..Setup::default()
    })
    .await;
    // The upstream answers before reading the body, and the client never sends the rest
    // of it: that upstream connection cannot take another request.
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\npartial",
        gw.addr
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut answer = String::new();
    while !answer.contains("early") {
        let n = conn.read(&mut buf).await.expect("read");
        assert!(n > 0, "no early answer: {answer}");
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    // Other requests go out on other connections, at once.
    for i in 0..5 {
        let resp = reqwest::get(gw.url(&format!("/next{i}")))
            .await
            .expect("request");
        assert_eq!(
            resp.status(),
            200,
            "request {i} waited on the stalled upload"
        );
    }
    drop(conn);
}

/// A bare HTTP/1.1 upstream with the answers hyper's client used to absorb for us, one per
/// path: `/silent-close` answers and closes without saying so; `/until-close` has no
/// length and ends its body by closing; `/chunked` is chunked with an extension and a
/// trailer; `/interim` sends `103 Early Hints` first; `/garbage` is not HTTP; `/echo`
/// answers with the body it was sent (by its `Content-Length`); `/refuse` answers `413`
/// without reading the body, then closes as a well-behaved server does (RFC 9112 §9.6:
/// its side first, then reading what still comes, so no reset destroys the answer). Everything else is `200 ok`, keep-alive. Counts
/// the connections it accepted.
async fn bare_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut head = Vec::new();
                loop {
                    let end = loop {
                        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end;
                        }
                        match conn.read(&mut buf).await {
                            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    };
                    let line = String::from_utf8_lossy(&head[..end]).into_owned();
                    head.drain(..end + 4);
                    let path = line.split(' ').nth(1).unwrap_or("/");
                    let echoed: Vec<u8>;
                    let (answer, close): (&[u8], bool) = match path {
                        "/echo" => {
                            let length = line
                                .lines()
                                .find_map(|l| {
                                    let (name, value) = l.split_once(':')?;
                                    name.eq_ignore_ascii_case("content-length")
                                        .then(|| value.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            while head.len() < length {
                                match conn.read(&mut buf).await {
                                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                                    _ => return,
                                }
                            }
                            let mut answer =
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n")
                                    .into_bytes();
                            answer.extend(head.drain(..length));
                            echoed = answer;
                            (&echoed, false)
                        }
                        "/refuse" => (
                            b"HTTP/1.1 413 Content Too Large\r\nconnection: close\r\n\
                              content-length: 7\r\n\r\nrefused",
                            true,
                        ),
                        "/silent-close" => {
                            (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true)
                        }
                        "/until-close" => (b"HTTP/1.1 200 OK\r\n\r\nall of it, then the end", true),
                        "/chunked" => (
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
                            false,
                        ),
                        "/interim" => (
                            b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n\
                              HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
                            false,
                        ),
                        "/garbage" => (b"SSH-2.0-nope\r\n\r\n", true),
                        _ => (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
                    };
                    if conn.write_all(answer).await.is_err() || close {
                        if path == "/refuse" {
                            let _ = conn.shutdown().await;
                            while let Ok(n) = conn.read(&mut buf).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

async fn bare_gateway() -> (TestGateway, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (upstream, accepted) = bare_upstream().await;
    let gw = TestGateway::start_with(Setup {
        routes: format!(
            "[[route]]\npath = \"/\"\nupstream = \"http://{upstream}\"\ntoken = \"none\"\n"
        ),
        ..Setup::default()
    })
    .await;
    (gw, accepted)
}

async fn get_text(gw: &TestGateway, path: &str) -> (u16, String) {
    let resp = reqwest::get(gw.url(path)).await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("a whole body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_closes_without_saying_so_costs_no_request() {
    let (gw, accepted) = bare_gateway().await;
    for i in 0..6 {
        // Each answer's connection is gone by the next request, unannounced.
        assert_eq!(
            get_text(&gw, "/silent-close").await,
            (200, "ok".into()),
            "request {i}"
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        6,
        "one connection per answer"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_framed_every_way_come_through_whole() {
    let (gw, accepted) = bare_gateway().await;
    assert_eq!(
        get_text(&gw, "/until-close").await,
        (200, "all of it, then the end".into())
    );
    let before = accepted.load(Ordering::SeqCst);
    for _ in 0..3 {
        let resp = reqwest::get(gw.url("/chunked")).await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "hello world");
        assert_eq!(get_text(&gw, "/interim").await, (200, "final".into()));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst) - before,
        1,
        "chunked and interim answers leave the connection reusable"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_answering_not_http_is_502_and_the_next_request_is_served() {
    let (gw, _) = bare_gateway().await;
    let (status, body) = get_text(&gw, "/garbage").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream"), "{body}");
    assert_eq!(get_text(&gw, "/fine").await, (200, "ok".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_of_known_length_arrive_whole_and_leave_the_connection_reusable() {
    let (gw, accepted) = bare_gateway().await;
    let client = reqwest::Client::new();
    // Small bodies go out with their head; a large one, in many pieces after it.
    let large: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let bodies = [b"{\"n\":1}".to_vec(), large, Vec::new(), b"last".to_vec()];
    for body in bodies {
        let mut request = client.post(gw.url("/echo")).body(body.clone());
        if body.len() > 1 << 20 {
            // A client may ask to hear `100 Continue` first; the body goes all the same.
            request = request.header("expect", "100-continue");
        }
        let resp = request.send().await.expect("request");
        assert_eq!(resp.status(), 200);
        let echoed = resp.bytes().await.expect("a whole body");
        assert!(
            echoed[..] == body[..],
            "{} bytes sent, {} echoed",
            body.len(),
            echoed.len()
        );
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "each upload leaves its connection ready for the next"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_refusing_an_upload_half_way_is_heard() {
    let (gw, _) = bare_gateway().await;
    // The client keeps sending: the upstream's answer, not the broken write, is what it
    // gets back.
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    const LEN: usize = 8 * 1024 * 1024;
    let head = format!(
        "POST /refuse HTTP/1.1\r\nHost: {}\r\nContent-Length: {LEN}\r\n\r\n",
        gw.addr
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let (mut reader, mut writer) = conn.into_split();
    let sending = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..LEN / piece.len() {
            if writer.write_all(&piece).await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !answer.ends_with(b"refused") {
        match reader.read(&mut buf).await {
            Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    sending.abort();
    assert_eq!(get_text(&gw, "/fine").await, (200, "ok".into()));
}
