//! What the upstream receives through a proxied route, and what the browser gets back.

use std::time::Duration;

use futures_util::stream;
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::support::{echoes, read_head, Setup, TestGateway};

#[tokio::test(flavor = "multi_thread")]
async fn user_route_carries_a_verified_bearer_token_and_no_gateway_cookie() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    browser.set_cookie("app", "1");
    let resp = browser
        .send(
            Method::GET,
            &gw.url("/api/hello?x=1"),
            &[
                ("x-csrf", "1"),
                ("authorization", "Bearer browser-chosen"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
                ("keep-alive", "timeout=5"),
            ],
            None,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["path"], "/api/hello");
    assert_eq!(seen["query"], "x=1");
    let token = &seen["token"];
    assert_eq!(token["valid"], true, "upstream could not verify: {token}");
    assert_eq!(token["claims"]["sub"], "alice");
    assert_eq!(token["claims"]["aud"], crate::support::op::API_AUDIENCE);

    let h = &seen["headers"];
    let cookies = h["cookie"].to_string();
    assert!(cookies.contains("app=1"), "other cookies pass: {cookies}");
    assert!(
        !cookies.contains("tokengate"),
        "gateway cookie leaked upstream: {cookies}"
    );
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert!(h.get(hop).is_none(), "{hop} reached the upstream");
    }
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_eq!(h["x-forwarded-host"][0], gw.addr.to_string());
    assert_eq!(
        h["host"][0],
        gw.upstream.addr.to_string(),
        "Host is the upstream's"
    );
    let auth = gw
        .upstream
        .last("/api/hello")
        .and_then(|s| s.token)
        .expect("token");
    assert_ne!(
        auth, "browser-chosen",
        "the browser's Authorization was replaced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn none_route_forwards_without_token_and_routes_by_segment() {
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    // `/apix` is not under `/api`: it goes to the `/` route, which adds no token.
    let resp = browser.send(Method::GET, &gw.url("/apix"), &[], None).await;
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["token"]["valid"], false);
    assert_eq!(seen["token"]["error"], "no token");
    assert!(!seen["headers"]["cookie"].to_string().contains("tokengate"));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_body_streams_through_to_the_upstream() {
    const MIB: usize = 1024 * 1024;
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    // 50 chunks of 1 MiB, produced as they are sent: never 50 MiB in memory here either.
    let chunks = stream::iter((0..50).map(|_| Ok::<_, std::io::Error>(vec![7u8; MIB])));
    let resp = reqwest::Client::new()
        .post(gw.url("/api/upload"))
        .header("cookie", format!("tokengate={cookie}"))
        .header("x-csrf", "1")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["body_bytes"], 50 * MIB as u64);
    assert_eq!(seen["token"]["valid"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_upstream_is_502_json() {
    // A port that was just free: nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let gw = TestGateway::start_with(Setup {
        routes: format!(
            "[[route]]\npath = \"/\"\nupstream = \"http://{dead}\"\ntoken = \"none\"\n"
        ),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/anything")).await.expect("request");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_unreachable");
    assert!(body["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_is_504_json() {
    let gw = TestGateway::start_with(Setup {
        extra: "[upstream]\nresponse_timeout = \"500ms\"\n".into(),
        ..Setup::default()
    })
    .await;
    let started = std::time::Instant::now();
    let resp = reqwest::get(gw.url("/slow?ms=3000"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    // Kept to within an eighth of the limit (the pool's sweep), well before the answer.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2500),
        "504 after {took:?}"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_timeout");
    // The overdue connection was closed, not handed to the next request.
    let resp = reqwest::get(gw.url("/after")).await.expect("request");
    assert_eq!(resp.status(), 200);
}

/// Connecting counts against `upstream.response_timeout` too: an upstream whose accept
/// queue is full (the kernel drops the SYN, so the connect hangs) is a 504 by that limit,
/// not a wait for `connect_timeout`.
#[tokio::test(flavor = "multi_thread")]
async fn a_connect_slower_than_the_response_timeout_is_504() {
    use socket2::{Domain, Socket, Type};
    let stuck = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    stuck.bind(&any.into()).expect("bind");
    stuck.listen(0).expect("listen");
    let addr = stuck
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("inet");
    // Never accepted: connections fill its queue until one no longer completes.
    let mut queued = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(conn)) => queued.push(conn),
            Ok(Err(e)) => panic!("connect: {e}"),
            Err(_) => break,
        }
        assert!(queued.len() < 64, "the accept queue never filled");
    }
    let gw = TestGateway::start_with(Setup {
        extra: "[upstream]\nresponse_timeout = \"500ms\"\nconnect_timeout = \"20s\"\n".into(),
        routes: format!(
            "[[route]]\npath = \"/stuck\"\nupstream = \"http://{addr}\"\ntoken = \"none\"\n\n\
             [[route]]\npath = \"/\"\nupstream = \"{{upstream}}\"\ntoken = \"none\"\n"
        ),
        ..Setup::default()
    })
    .await;
    let started = std::time::Instant::now();
    let resp = reqwest::get(gw.url("/stuck/x")).await.expect("request");
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_timeout");
    drop(queued);
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_requests_are_tunnelled() {
    let gw = TestGateway::start().await;
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        gw.addr
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut conn, b"ping through the tunnel").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_path_without_catch_all_route_is_404_json() {
    let gw = TestGateway::start_with(Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n".into(),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/nothing-here"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_response_streams_back_to_the_browser() {
    const BYTES: u64 = 50 * 1024 * 1024;
    let gw = TestGateway::start().await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut resp = reqwest::Client::new()
        .get(gw.url(&format!("/api/download?bytes={BYTES}")))
        .header("cookie", format!("tokengate={cookie}"))
        .header("x-csrf", "1")
        .send()
        .await
        .expect("download");
    assert_eq!(resp.status(), 200);
    // Counted chunk by chunk, as it arrives.
    let mut received: u64 = 0;
    while let Some(chunk) = resp.chunk().await.expect("body chunk") {
        received += chunk.len() as u64;
    }
    assert_eq!(received, BYTES);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_cannot_set_the_gateways_cookies() {
    let gw = TestGateway::start().await;
    let resp = reqwest::get(gw.url("/set-cookie")).await.expect("request");
    assert_eq!(resp.status(), 200);
    let set: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(set, vec!["app-pref=dark; Path=/"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_on_a_user_route_carries_the_token_and_not_the_cookie() {
    let gw = TestGateway::start_with(Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\nwebsocket = true\n".into(),
        ..Setup::default()
    })
    .await;
    let browser = gw.logged_in("alice").await;
    let cookie = browser.cookie("tokengate").expect("cookie");
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Cookie: tokengate={cookie}; app=1\r\nX-CSRF: 1\r\n\r\n",
        gw.addr
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    echoes(&mut conn, b"hello").await;

    let seen = gw
        .upstream
        .last("/api/ws")
        .expect("upstream saw the upgrade");
    let token = seen.token.expect("a bearer token on the upgrade request");
    let claims = gw.upstream.verify(&token).await.expect("token verifies");
    assert_eq!(claims["sub"], "alice");
    let cookies = seen
        .headers
        .get("cookie")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    assert_eq!(
        cookies, "app=1",
        "only the application's cookie goes upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_on_a_user_route_without_a_session_is_401() {
    let gw = TestGateway::start_with(Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\nwebsocket = true\n".into(),
        ..Setup::default()
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = format!(
        "GET /api/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         X-CSRF: 1\r\n\r\n",
        gw.addr
    );
    conn.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        gw.upstream.last("/api/ws").is_none(),
        "nothing reached the upstream"
    );
}

/// Routes with options: `/opt` (user-optional), `/strip` (prefix stripped onto a base
/// path), `/ro` (GET only), then the usual `/api` and `/`.
fn route_options() -> Setup {
    Setup {
        routes: "[[route]]\npath = \"/opt\"\nupstream = \"{upstream}\"\ntoken = \"user-optional\"\n\n\
                 [[route]]\npath = \"/strip\"\nupstream = \"{upstream}/base\"\ntoken = \"none\"\nstrip_prefix = true\n\n\
                 [[route]]\npath = \"/ro\"\nupstream = \"{upstream}\"\ntoken = \"none\"\nmethods = [\"GET\"]\n\n\
                 [[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                 [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
            .into(),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_optional_route_adds_a_token_only_with_a_session() {
    let gw = TestGateway::start_with(route_options()).await;
    let anonymous = crate::support::Browser::default();
    let resp = anonymous
        .send(Method::GET, &gw.url("/opt/x"), &[], None)
        .await;
    assert_eq!(resp.status(), 200, "forwarded without a session");
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["token"]["error"], "no token");

    let b = gw.logged_in("alice").await;
    let (status, seen) = b.api(&gw.url("/opt/x")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    assert_eq!(seen["token"]["claims"]["sub"], "alice");
    let no_csrf = b.send(Method::GET, &gw.url("/opt/x"), &[], None).await;
    assert_eq!(no_csrf.status(), 403, "with a session, CSRF rules apply");
}

#[tokio::test(flavor = "multi_thread")]
async fn strip_prefix_and_method_lists_shape_what_reaches_the_upstream() {
    let gw = TestGateway::start_with(route_options()).await;
    let client = reqwest::Client::new();
    let seen: Value = client
        .get(gw.url("/strip/a/b?q=1"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(seen["path"], "/base/a/b");
    assert_eq!(seen["query"], "q=1");

    assert_eq!(
        client
            .get(gw.url("/ro/x"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    let before = gw.upstream.seen.lock().expect("seen").len();
    let resp = client.post(gw.url("/ro/x")).send().await.expect("post");
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "method_not_allowed");
    assert_eq!(
        gw.upstream.seen.lock().expect("seen").len(),
        before,
        "a refused method never reaches the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_segments_cannot_walk_out_of_a_route() {
    let gw = TestGateway::start().await;
    for path in ["/api/../bff/user", "/x/%2e%2e/api/secret", "/x/./y"] {
        let mut conn = tokio::net::TcpStream::connect(gw.addr)
            .await
            .expect("connect");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nX-CSRF: 1\r\nConnection: close\r\n\r\n",
            gw.addr
        );
        conn.write_all(request.as_bytes()).await.expect("write");
        let head = read_head(&mut conn).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
    }
    assert!(gw.upstream.seen.lock().expect("seen").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_requests_get_the_public_host_as_x_forwarded_host() {
    let gw = TestGateway::start().await;
    // HTTP/2 has no Host header: the browser's host travels in `:authority`.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let resp = client
        .get(gw.url("/h2?x=1"))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    let h = &seen["headers"];
    assert_eq!(
        h["x-forwarded-host"][0],
        gw.addr.to_string(),
        "X-Forwarded-Host must be public_url's host: {h}"
    );
    assert_eq!(h["host"][0], gw.upstream.addr.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_split_cookie_headers_find_the_session_and_lose_the_gateways_cookie() {
    let gw = TestGateway::start().await;
    let cookie = gw
        .logged_in("alice")
        .await
        .cookie("tokengate")
        .expect("cookie");
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // Browsers send one `cookie` field per cookie over HTTP/2 (RFC 9113 §8.2.3).
    let resp = client
        .get(gw.url("/api/h2"))
        .header("cookie", "app=1")
        .header("cookie", format!("tokengate={cookie}"))
        .header("cookie", "theme=dark")
        .header("x-csrf", "1")
        .send()
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.expect("json");
    assert_eq!(seen["token"]["valid"], true, "{seen}");
    let cookies: Vec<String> = seen["headers"]["cookie"]
        .as_array()
        .expect("cookies reach the upstream")
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect();
    assert_eq!(cookies.join("; "), "app=1; theme=dark");
}

/// An HTTPS upstream with a certificate from the test CA, answering every request with
/// its path and HTTP version. Returns its address and the count of TLS connections it
/// accepted. With `h2`, it offers HTTP/2 by ALPN.
async fn tls_upstream(
    h2: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let p = crate::support::pki();
    let certs = CertificateDer::pem_file_iter(&p.server_cert)
        .expect("server certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_file(&p.server_key).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let mut config = config;
    if h2 {
        config.alpn_protocols = vec![b"h2".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = match req.version() {
                            http::Version::HTTP_2 => format!("tls h2 {}", req.uri().path()),
                            _ => format!("tls {}", req.uri().path()),
                        };
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_is_reached_through_upstream_tls_ca_and_refused_without_it() {
    let (addr, accepted) = tls_upstream(false).await;
    let route =
        format!("[[route]]\npath = \"/\"\nupstream = \"https://{addr}\"\ntoken = \"none\"\n");
    let gw = TestGateway::start_with(Setup {
        routes: route.clone(),
        extra: format!(
            "[upstream]\ntls_ca = \"{}\"\n",
            crate::support::pki().ca.display()
        ),
        ..Setup::default()
    })
    .await;
    for i in 0..5 {
        let resp = reqwest::get(gw.url(&format!("/secure/{i}")))
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), format!("tls /secure/{i}"));
    }
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one TLS connection, kept alive"
    );

    // Without the CA the upstream's certificate is not trusted: 502, nothing sent.
    let untrusting = TestGateway::start_with(Setup {
        routes: route,
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(untrusting.url("/secure/x"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "upstream_unreachable");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_h2c_upstream_carries_concurrent_requests_on_one_connection() {
    // `{upstream}` is the test upstream's http:// URL; `upstream_http2` makes it h2c.
    let gw = TestGateway::start_with(Setup {
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\
                 upstream_http2 = true\n"
            .into(),
        ..Setup::default()
    })
    .await;
    let upstream = &gw.upstream;
    let browser = gw.logged_in("alice").await;
    let calls = (0..8).map(|i| {
        let browser = &browser;
        let url = gw.url(&format!("/api/h2/{i}"));
        async move { browser.api_response(&url).await.status() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        upstream.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "eight requests at once share one HTTP/2 connection"
    );
    let seen = upstream.last("/api/h2/").expect("seen");
    let token = seen.token.expect("the bearer travels over HTTP/2 too");
    let claims = upstream.verify(&token).await.expect("a valid token");
    assert_eq!(claims["sub"], "alice");
    let cookie = seen.headers.get("cookie").map(|v| v.as_bytes().to_vec());
    assert!(
        cookie.is_none_or(|c| !c.windows(9).any(|w| w == b"tokengate")),
        "no gateway cookie over HTTP/2"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_speaks_http2_when_the_route_asks() {
    let (addr, accepted) = tls_upstream(true).await;
    let gw = TestGateway::start_with(Setup {
        routes: format!(
            "[[route]]\npath = \"/\"\nupstream = \"https://{addr}\"\ntoken = \"none\"\nupstream_http2 = true\n"
        ),
        extra: format!(
            "[upstream]\ntls_ca = \"{}\"\n",
            crate::support::pki().ca.display()
        ),
        ..Setup::default()
    })
    .await;
    for i in 0..3 {
        let resp = reqwest::get(gw.url(&format!("/two/{i}")))
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), format!("tls h2 /two/{i}"));
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}
