//! Trust, propagation and parentage of the spans, on a pipeline that exports nowhere.

use super::*;
use opentelemetry::trace::{SpanContext, TraceFlags, TraceId};

/// A pipeline with `ratio` and no exporter: spans are made and decided, never sent.
fn telemetry(ratio: f64) -> Telemetry {
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .build();
    let tracer = provider.tracer("test");
    Telemetry { provider, tracer }
}

const BROWSER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn with_browser_trace() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", BROWSER_PARENT.parse().expect("value"));
    headers.insert("tracestate", "vendor=opaque".parse().expect("value"));
    headers
}

fn context_of(cx: &Context) -> SpanContext {
    cx.span().span_context().clone()
}

#[test]
fn a_traceparent_is_believed_only_when_trusted() {
    let t = telemetry(1.0);
    let headers = with_browser_trace();
    let untrusted = t.request(&Method::GET, "/api/x", Some("/api"), &headers, false);
    assert_ne!(context_of(&untrusted).trace_id().to_string(), BROWSER_TRACE);
    let trusted = t.request(&Method::GET, "/api/x", Some("/api"), &headers, true);
    assert_eq!(context_of(&trusted).trace_id().to_string(), BROWSER_TRACE);
}

#[test]
fn a_trusted_callers_sampling_decision_wins() {
    // Ratio 0 samples nothing that starts here; a sampled parent is followed still.
    let t = telemetry(0.0);
    let headers = with_browser_trace();
    assert!(!context_of(&t.request(&Method::GET, "/", None, &headers, false)).is_sampled());
    assert!(context_of(&t.request(&Method::GET, "/", None, &headers, true)).is_sampled());
    // And an unsampled parent is not recorded, whatever the ratio.
    let t = telemetry(1.0);
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            .parse()
            .expect("value"),
    );
    let cx = t.request(&Method::GET, "/", None, &headers, true);
    assert_eq!(context_of(&cx).trace_flags(), TraceFlags::default());
}

#[test]
fn the_upstream_gets_the_exchange_span_as_parent_and_never_the_browsers() {
    let t = telemetry(1.0);
    let cx = t.request(
        &Method::GET,
        "/api/x",
        Some("/api"),
        &with_browser_trace(),
        false,
    );
    let mut req = http::Request::get("/x").body(()).expect("request");
    *req.headers_mut() = with_browser_trace();
    let exchange = {
        let _attached = cx.clone().attach();
        upstream(&mut req, "127.0.0.1", Some(3000)).expect("a traced request")
    };
    let span = context_of(&exchange.0);
    let sent = req.headers()["traceparent"].to_str().expect("text");
    assert_eq!(
        sent,
        format!("00-{}-{}-01", span.trace_id(), span.span_id()),
        "the exchange span is the upstream's parent"
    );
    assert_eq!(span.trace_id(), context_of(&cx).trace_id());
    assert!(!sent.contains(BROWSER_TRACE));
    assert!(
        req.headers().get("tracestate").is_none(),
        "an untrusted browser's tracestate goes too"
    );
    exchange.finish(Ok(StatusCode::OK));
}

#[test]
fn nothing_is_traced_outside_a_traced_request() {
    let mut req = http::Request::get("/x").body(()).expect("request");
    *req.headers_mut() = with_browser_trace();
    assert!(upstream(&mut req, "127.0.0.1", None).is_none());
    assert_eq!(req.headers()["traceparent"], BROWSER_PARENT, "untouched");
    assert!(child("session lookup", SpanKind::Internal).is_none());
    assert!(child_context("token refresh", SpanKind::Internal).is_none());
    let endpoint = url::Url::parse("https://op.example/token").expect("url");
    assert!(provider_call("oidc token", &endpoint).is_none());
}

#[test]
fn children_share_the_requests_trace() {
    let t = telemetry(1.0);
    let cx = t.request(
        &Method::POST,
        "/api/x",
        Some("/api"),
        &HeaderMap::new(),
        false,
    );
    let trace = context_of(&cx).trace_id();
    assert_ne!(trace, TraceId::INVALID);
    let _attached = cx.clone().attach();
    let lookup = child("session lookup", SpanKind::Internal).expect("a child");
    use opentelemetry::trace::Span as _;
    assert_eq!(lookup.span_context().trace_id(), trace);
    let refresh = child_context("token refresh", SpanKind::Internal).expect("a child");
    assert_eq!(context_of(&refresh).trace_id(), trace);
    assert_eq!(
        method_name(&Method::from_bytes(b"BREW").expect("method")),
        "_OTHER"
    );
}

#[test]
fn a_trusted_callers_tracestate_goes_on_upstream() {
    let t = telemetry(1.0);
    let cx = t.request(
        &Method::GET,
        "/api/x",
        Some("/api"),
        &with_browser_trace(),
        true,
    );
    let mut req = http::Request::get("/x").body(()).expect("request");
    *req.headers_mut() = with_browser_trace();
    let _attached = cx.clone().attach();
    let exchange = upstream(&mut req, "127.0.0.1", Some(3000)).expect("a traced request");
    let (trace, _, _) = {
        let v = req.headers()["traceparent"].to_str().expect("text");
        let p: Vec<&str> = v.split('-').collect();
        (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
    };
    assert_eq!(trace, BROWSER_TRACE);
    assert_eq!(req.headers()["tracestate"], "vendor=opaque");
    assert_eq!(req.headers().get_all("traceparent").iter().count(), 1);
    exchange.finish(Err("timeout"));
}
