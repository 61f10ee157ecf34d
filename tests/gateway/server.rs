//! The listener: TLS with HTTP/2, request-head limits, slowloris, graceful shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{wait_until, Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_speaks_http2_and_http1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, signing_key.serialize_pem()).expect("write key");
    let gw = TestGateway::start_with(Setup {
        server_extra: format!(
            "tls = {{ cert = \"{}\", key = \"{}\" }}",
            cert_path.display(),
            key_path.display()
        ),
        public_scheme: "https",
        ..Setup::default()
    })
    .await;
    let root = reqwest::Certificate::from_pem(cert.pem().as_bytes()).expect("root");
    let url = format!("https://127.0.0.1:{}/public", gw.addr.port());

    let h2 = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .expect("client");
    let resp = h2.get(&url).send().await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let seen: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");

    let h1 = reqwest::Client::builder()
        .add_root_certificate(root)
        .http1_only()
        .build()
        .expect("client");
    let resp = h1.get(&url).send().await.expect("h1 request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_request_heads_get_431() {
    let gw = TestGateway::start().await;
    let client = reqwest::Client::new();
    let big = "x".repeat(20_000);
    let resp = client
        .get(gw.url("/x"))
        .header("x-big", big)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 431);
    let mut many = client.get(gw.url("/x"));
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "1");
    }
    assert_eq!(many.send().await.expect("request").status(), 431);
    // And the gateway still answers normal requests.
    assert_eq!(
        client
            .get(gw.url("/x"))
            .send()
            .await
            .expect("request")
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_trickling_its_request_head_is_cut_off() {
    let gw = TestGateway::start_with(Setup {
        server_extra: "header_read_timeout = \"1s\"".into(),
        ..Setup::default()
    })
    .await;
    let mut conn = raw_connection(gw.addr, b"GET / HTTP/1.1\r\nHost: x\r\n").await;
    let started = Instant::now();
    // A 408 may come first; the close is what counts.
    assert!(
        closes_within(&mut conn, Duration::from_secs(10)).await,
        "connection still open after 10 s"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the timeout"
    );
    // The listener's sweep runs every eighth of the timeout: the cut comes soon after.
    assert!(took < Duration::from_secs(3), "closed only after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_finishes_in_flight_requests_then_stops_listening() {
    let gw = TestGateway::start().await;
    let addr = gw.addr;
    let slow = tokio::spawn(reqwest::get(gw.url("/slow?ms=1500")));
    let upstream_seen = gw.upstream.seen.clone();
    wait_until(
        Duration::from_secs(10),
        "the slow request to reach the upstream",
        || {
            let seen = upstream_seen.clone();
            async move { seen.lock().expect("seen").iter().any(|s| s.path == "/slow") }
        },
    )
    .await;
    gw.stop().await;
    let resp = slow
        .await
        .expect("task")
        .expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_idle_keep_alive_connections_at_once() {
    // Neither limit ends the idle connection in this test's time: only the drain can.
    let gw = TestGateway::start_with(Setup {
        server_extra: "header_read_timeout = \"60s\"\nshutdown_grace = \"60s\"".into(),
        ..Setup::default()
    })
    .await;
    // A keep-alive connection that has had its answer and waits for the next request.
    let mut conn = raw_connection(gw.addr, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed before answering");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), gw.stop())
        .await
        .expect("the gateway stopped within 10 s, not after its 60 s grace");
    // (Reading on drains the rest of the first answer's body.)
    assert!(
        closes_within(&mut conn, Duration::from_secs(10)).await,
        "the idle connection is still open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopping took {:?}",
        started.elapsed()
    );
}

/// A plain TCP connection to `addr` that has sent `bytes`.
async fn raw_connection(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(bytes).await.expect("write");
    conn
}

/// True when the server closes `conn` within `limit`; whatever it sends first is read and
/// dropped.
async fn closes_within(conn: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// `server.workers = 2`: the binary serves its port from two workers, each with a socket
/// and runtime of its own. Requests over many connections all carry the session's token
/// whichever worker took them, as do the streams of one HTTP/2 connection; the kernel
/// hands both workers some connections, and SIGTERM stops both.
#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_the_port_and_the_sessions() {
    let mut gw = TestGateway::start_with(Setup {
        server_extra: "workers = 2".into(),
        process: true,
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let cookie = format!(
        "tokengate={}",
        b.cookie("tokengate").expect("session cookie")
    );
    // No connection reuse: every request is a new connection, for the kernel to place.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for i in 0..32 {
        let resp = client
            .get(gw.url(&format!("/api/worker-{i}")))
            .header("cookie", &cookie)
            .header("x-csrf", "1")
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200, "request {i}");
        let seen: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(seen["token"]["valid"], true, "request {i}: {seen}");
    }
    // Many requests in flight on one HTTP/2 connection (served by the worker that
    // accepted it): every one is answered, with the token.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2c client");
    let streams = (0..50).map(|i| {
        let (h2, cookie, url) = (h2.clone(), cookie.clone(), gw.url(&format!("/api/h2-{i}")));
        async move {
            let resp = h2
                .get(url)
                .header("cookie", cookie)
                .header("x-csrf", "1")
                .send()
                .await
                .expect("h2 request");
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status(), 200, "stream {i}");
            let seen: serde_json::Value = resp.json().await.expect("json");
            assert_eq!(seen["token"]["valid"], true, "stream {i}: {seen}");
        }
    });
    futures_util::future::join_all(streams).await;
    let metrics = gw.metrics_text().await;
    for worker in ["0", "1"] {
        let accepted: u64 = metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "tokengate_connections_accepted_total{{worker=\"{worker}\"}} "
                ))?
                .parse()
                .ok()
            })
            .unwrap_or_else(|| panic!("worker {worker}'s count in /metrics:\n{metrics}"));
        assert!(accepted > 0, "worker {worker} accepted none:\n{metrics}");
    }
    assert!(
        !metrics.contains("worker=\"2\""),
        "two workers, not more:\n{metrics}"
    );

    gw.stop_process().await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "the port is closed once the process has stopped"
    );
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}
