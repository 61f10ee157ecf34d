//! OpenTelemetry traces (`[telemetry]`), as a collector receives them: a test OTLP
//! receiver decodes what the gateway exports (support::otlp), and the test upstream shows
//! the `traceparent` it was sent.
//!
//! A proxied call is one trace: the request's server span, and under it the session
//! lookup, a refresh (with its call to the provider's token endpoint) and the upstream
//! exchange, whose span is the upstream's parent. A browser's own `traceparent` is
//! believed only from `server.trusted_proxies`; otherwise a new trace starts and the
//! browser's never reaches the upstream. No span attribute holds the cookie, a token or
//! the query string.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::Method;

use crate::support::otlp::{OtlpReceiver, Received, EXPORT_LIMIT};
use crate::support::{wait_until, Browser, OpOptions, Setup, TestGateway};

/// What a browser (or something pretending to be one) sends as its own trace context.
const BROWSER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const BROWSER_SPAN: &str = "b7ad6b7169203331";
const QUERY_SECRET: &str = "q-secret-7f3a";

fn browser_traceparent() -> String {
    format!("00-{BROWSER_TRACE}-{BROWSER_SPAN}-01")
}

/// `traceparent` as (trace ID, parent ID, flags).
fn parse_traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value:?}");
    assert_eq!(parts[0], "00", "traceparent {value:?}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

/// A GET of `path` on the gateway as the SPA makes it, with the browser's own trace
/// context; the status.
async fn call(gw: &TestGateway, b: &Browser, path: &str) -> u16 {
    let traceparent = browser_traceparent();
    let resp = b
        .send(
            Method::GET,
            &gw.url(path),
            &[
                ("x-csrf", "1"),
                ("traceparent", &traceparent),
                ("tracestate", "browser=chosen"),
            ],
            None,
        )
        .await;
    resp.status().as_u16()
}

/// Waits until the trace `id` holds a span of each name in `names`; returns its spans by
/// name.
async fn trace_with(
    receiver: &OtlpReceiver,
    id: &str,
    names: &[&str],
) -> HashMap<String, Received> {
    let deadline = Instant::now() + EXPORT_LIMIT;
    loop {
        let trace = receiver.trace(id);
        if names.iter().all(|n| trace.contains_key(*n)) {
            return trace;
        }
        assert!(
            Instant::now() < deadline,
            "trace {id} still lacks some of {names:?}; has {:?}",
            trace.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The trace the upstream was last sent for `path`, by its `traceparent`: (trace ID,
/// parent span ID).
fn upstream_traceparent(gw: &TestGateway, path: &str) -> (String, String) {
    let seen = gw.upstream.last(path).expect("the upstream saw the call");
    let all: Vec<_> = seen.headers.get_all("traceparent").iter().collect();
    assert_eq!(all.len(), 1, "one traceparent upstream: {all:?}");
    let (trace, parent, flags) = parse_traceparent(all[0].to_str().expect("text"));
    assert_eq!(flags, "01", "sampled");
    assert!(
        seen.headers
            .get("tracestate")
            .is_none_or(|v| !v.as_bytes().starts_with(b"browser=")),
        "the browser's tracestate is not forwarded from an untrusted peer"
    );
    (trace, parent)
}

/// Every attribute of every span received: none holds the cookie, a token the provider
/// issued, or the query string.
async fn assert_no_secrets(gw: &TestGateway, receiver: &OtlpReceiver, b: &Browser) {
    let cookie = b.cookie("tokengate").expect("the session cookie");
    let mut secrets = vec![cookie, QUERY_SECRET.to_owned()];
    for issued in gw.op.issued().await {
        for kind in ["access_token", "refresh_token", "id_token"] {
            if let Some(t) = issued[kind].as_str() {
                secrets.push(t.to_owned());
            }
        }
    }
    assert!(secrets.len() > 3, "the provider issued tokens: {secrets:?}");
    let spans = receiver.spans();
    assert!(!spans.is_empty());
    for span in &spans {
        for attribute in span.attributes() {
            for secret in &secrets {
                // Neither the whole value nor its end (a JWT's signature, an opaque
                // token's random part) may be there.
                let tail = &secret[secret.len().saturating_sub(16)..];
                assert!(
                    !attribute.contains(secret.as_str()) && !attribute.contains(tail),
                    "span {:?} attribute {attribute:?} holds a secret",
                    span.name()
                );
            }
            assert!(!attribute.contains('?'), "no query: {attribute:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxied_call_is_one_trace_with_parented_children() {
    let receiver = OtlpReceiver::start().await;
    let gw = TestGateway::start_with(Setup {
        // A 2-second token is due for a refresh after a second (at half its life).
        op: OpOptions {
            access_token_ttl: 2,
            ..OpOptions::default()
        },
        extra: receiver.telemetry_toml(),
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    let path = format!("/api/orders?filter={QUERY_SECRET}");

    // Calls until one of them refreshes the token (a second after login at most).
    wait_until(Duration::from_secs(20), "a call that refreshes", || {
        let (gw, b, path) = (&gw, &b, &path);
        async move {
            assert_eq!(call(gw, b, path).await, 200);
            gw.op.refresh_grants().await >= 1
        }
    })
    .await;
    // That last call is the upstream's last: its trace is the one to look at.
    let (trace_id, upstream_parent) = upstream_traceparent(&gw, "/api/orders");
    assert_ne!(
        trace_id, BROWSER_TRACE,
        "an untrusted browser's trace is not continued"
    );
    let trace = trace_with(
        &receiver,
        &trace_id,
        &[
            "GET /api",
            "session lookup",
            "token refresh",
            "oidc token",
            "GET",
        ],
    )
    .await;

    let server = &trace["GET /api"];
    assert_eq!(server.span.kind, 2, "server kind"); // SPAN_KIND_SERVER
    assert_eq!(
        server.parent_id(),
        "",
        "a root: the browser's traceparent is not its parent"
    );
    assert_eq!(server.service, "tokengate-test");
    assert_eq!(server.attr("http.request.method").as_deref(), Some("GET"));
    assert_eq!(server.attr("http.route").as_deref(), Some("/api"));
    assert_eq!(server.attr("url.path").as_deref(), Some("/api/orders"));
    assert_eq!(
        server.attr("http.response.status_code").as_deref(),
        Some("200")
    );

    let lookup = &trace["session lookup"];
    assert_eq!(lookup.parent_id(), server.span_id());
    assert_eq!(lookup.span.kind, 1, "internal kind"); // SPAN_KIND_INTERNAL

    let refresh = &trace["token refresh"];
    assert_eq!(refresh.parent_id(), server.span_id());
    let provider_call = &trace["oidc token"];
    assert_eq!(provider_call.parent_id(), refresh.span_id());
    assert_eq!(provider_call.span.kind, 3, "client kind"); // SPAN_KIND_CLIENT
    assert_eq!(
        provider_call.attr("server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        provider_call.attr("error.type"),
        None,
        "the grant succeeded"
    );

    let upstream = &trace["GET"];
    assert_eq!(upstream.parent_id(), server.span_id());
    assert_eq!(upstream.span.kind, 3, "client kind");
    assert_eq!(
        upstream.attr("server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        upstream.attr("server.port"),
        Some(gw.upstream.addr.port().to_string())
    );
    assert_eq!(
        upstream.attr("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        upstream_parent,
        upstream.span_id(),
        "the upstream's parent is the exchange span"
    );

    // The refresh and the provider call lie within the request, the upstream exchange
    // after the lookup.
    let within = |inner: &Received, outer: &Received| {
        inner.span.start_time_unix_nano >= outer.span.start_time_unix_nano
            && inner.span.end_time_unix_nano <= outer.span.end_time_unix_nano
    };
    assert!(within(refresh, server) && within(provider_call, refresh));
    assert!(within(upstream, server));
    assert!(upstream.span.start_time_unix_nano >= lookup.span.end_time_unix_nano);

    // The browser's trace went nowhere: not upstream, not into any span.
    let seen = gw.upstream.seen.lock().expect("seen").clone();
    for s in &seen {
        for v in s.headers.get_all("traceparent") {
            assert!(!v.to_str().unwrap_or("").contains(BROWSER_TRACE), "{v:?}");
        }
    }
    assert!(receiver
        .spans()
        .iter()
        .all(|s| s.trace_id() != BROWSER_TRACE));
    assert_no_secrets(&gw, &receiver, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxys_traceparent_is_the_parent() {
    let receiver = OtlpReceiver::start().await;
    let gw = TestGateway::start_with(Setup {
        server_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        extra: receiver.telemetry_toml(),
        ..Setup::default()
    })
    .await;
    let b = gw.logged_in("alice").await;
    assert_eq!(call(&gw, &b, "/api/items?x=1").await, 200);

    let (trace_id, upstream_parent) = {
        let seen = gw
            .upstream
            .last("/api/items")
            .expect("the upstream saw the call");
        let value = seen.headers["traceparent"]
            .to_str()
            .expect("text")
            .to_owned();
        let (trace, parent, _) = parse_traceparent(&value);
        (trace, parent)
    };
    assert_eq!(
        trace_id, BROWSER_TRACE,
        "the trusted caller's trace goes on"
    );
    let trace = trace_with(
        &receiver,
        BROWSER_TRACE,
        &["GET /api", "session lookup", "GET"],
    )
    .await;
    let server = &trace["GET /api"];
    assert_eq!(
        server.parent_id(),
        BROWSER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(trace["session lookup"].parent_id(), server.span_id());
    let upstream = &trace["GET"];
    assert_eq!(upstream.parent_id(), server.span_id());
    assert_eq!(
        upstream_parent,
        upstream.span_id(),
        "ours replaces the caller's upstream"
    );
    assert_ne!(upstream_parent, BROWSER_SPAN);
    assert!(
        !trace.contains_key("token refresh"),
        "a 5-minute token needs no refresh"
    );
    assert_no_secrets(&gw, &receiver, &b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_still_waiting_are_sent_at_shutdown() {
    let receiver = OtlpReceiver::start().await;
    let gw = TestGateway::start_with(Setup {
        // Never sent on schedule during this test: only the shutdown can send them.
        extra: receiver
            .telemetry_toml()
            .replace("export_delay = \"100ms\"", "export_delay = \"1h\""),
        ..Setup::default()
    })
    .await;
    let resp = reqwest::get(gw.url("/public/page?utm=1"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let (trace_id, _) = upstream_traceparent(&gw, "/public/page");
    assert!(
        receiver.spans().is_empty(),
        "nothing sent before the shutdown"
    );
    gw.stop().await;
    let trace = trace_with(&receiver, &trace_id, &["GET /", "GET"]).await;
    assert_eq!(
        trace["GET /"].attr("url.path").as_deref(),
        Some("/public/page")
    );
    assert_eq!(trace["GET /"].attr("http.route").as_deref(), Some("/"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_telemetry_only_a_trusted_proxys_trace_headers_pass() {
    let send = |gw: &TestGateway, path: &str| {
        reqwest::Client::new()
            .get(gw.url(path))
            .header("traceparent", browser_traceparent())
            .header("tracestate", "vendor=x")
            .send()
    };
    let gw = TestGateway::start().await;
    let plain = reqwest::get(gw.url("/public/a")).await.expect("request");
    assert_eq!(plain.status(), 200);
    let seen = gw.upstream.last("/public/a").expect("seen");
    assert!(seen.headers.get("traceparent").is_none(), "nothing added");
    assert_eq!(send(&gw, "/public/b").await.expect("request").status(), 200);
    let seen = gw.upstream.last("/public/b").expect("seen");
    assert!(
        seen.headers.get("traceparent").is_none(),
        "a client's is removed"
    );
    assert!(
        seen.headers.get("tracestate").is_none(),
        "a client's is removed"
    );

    let trusting = TestGateway::start_with(Setup {
        server_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Setup::default()
    })
    .await;
    assert_eq!(
        send(&trusting, "/public/c")
            .await
            .expect("request")
            .status(),
        200
    );
    let seen = trusting.upstream.last("/public/c").expect("seen");
    assert_eq!(seen.headers["traceparent"], browser_traceparent().as_str());
    assert_eq!(seen.headers["tracestate"], "vendor=x");
}
