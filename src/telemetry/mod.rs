//! OpenTelemetry traces over OTLP/HTTP (`[telemetry]`): a span for each public request,
//! children for the session lookup, a refresh (and its call to the provider's token
//! endpoint) and each upstream exchange, and the W3C `traceparent` of the upstream
//! exchange sent upstream.
//!
//! Off (no `otlp_endpoint`), nothing here runs per request: the gateway holds no
//! [`Telemetry`], and each call site on the request path asks that `Option` before
//! anything else, the traced branch boxed so that no future grows for it — no span, no
//! context, no header touched. The refresh, which has no gateway at hand, looks for a
//! traced context instead (one thread-local read per refresh, not per request).
//!
//! On, the request's span travels as the current OpenTelemetry [`Context`], attached
//! while the request's future is polled ([`FutureExt::with_context`]), so a phase deep in
//! the request ([`child`], [`upstream`]) finds its parent without every function between
//! passing it on. The context also carries the tracer, so code that has no gateway (the
//! refresh) can open a child. A refresh runs as a task of its own: it is given the
//! context of the request that started it ([`within`]).
//!
//! Attributes are chosen so that no secret can reach a trace: the method, the path
//! without its query, the route's configured prefix, statuses, the upstream's and the
//! provider's host. Never a header value, a cookie, a token or a query string.

mod export;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, Method, StatusCode};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span,
};

pub use opentelemetry::context::FutureExt;
pub use opentelemetry::trace::SpanKind;

use crate::config::TelemetryConfig;

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// How long the exporter may take to hand its last spans over at shutdown.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// The span pipeline: the tracer the request path opens spans with, and the provider that
/// batches finished ones and exports them.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

/// The tracer, as a value of the request's context: found by [`child`] wherever the
/// context is current.
#[derive(Clone)]
struct Tracing(SdkTracer);

impl Telemetry {
    /// The pipeline `config` describes; `None` when it names no endpoint (no traces).
    ///
    /// Spans are exported in batches by the SDK's batch processor on a thread of its own,
    /// through an HTTP client with a runtime of its own ([`export`]): neither the export
    /// nor a collector that hangs can take time from the workers serving requests.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Arc<Telemetry>>, String> {
        let Some(url) = &config.traces_url else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url.as_str())
            .with_timeout(export::TIMEOUT)
            .with_http_client(export::ExportClient::new())
            .build()
            .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
        let mut batch = BatchConfigBuilder::default();
        if let Some(delay) = config.export_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch.build())
            .build();
        // Parent-based: a trace a trusted caller started keeps the caller's decision; the
        // ratio decides for the traces that start here.
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("tokengate");
        Ok(Some(Arc::new(Telemetry { provider, tracer })))
    }

    /// Sends the spans still waiting and stops the exporter (at shutdown, after the
    /// requests have drained). The exporter's thread is waited for off the runtime.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(SHUTDOWN_LIMIT));
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "traces: the last spans may be lost"),
            Err(e) => tracing::warn!(error = %e, "traces: the last spans may be lost"),
        }
    }

    /// The context of one public request, its server span current in it. `route` is the
    /// matched route's configured prefix, if any. The caller's `traceparent` (and
    /// `tracestate`) is the parent only when `trust_parent` — the peer is one of
    /// `server.trusted_proxies`; otherwise the trace starts here.
    pub fn request(
        &self,
        method: &Method,
        path: &str,
        route: Option<&str>,
        headers: &HeaderMap,
        trust_parent: bool,
    ) -> Context {
        let parent = match trust_parent {
            true => TraceContextPropagator::new().extract(&HeaderExtractor(headers)),
            false => Context::new(),
        };
        let method = method_name(method);
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.path", path.to_owned()),
        ];
        let name = match route {
            Some(route) => {
                attributes.push(KeyValue::new("http.route", route.to_owned()));
                format!("{method} {route}")
            }
            None => method.to_owned(),
        };
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        parent
            .with_span(span)
            .with_value(Tracing(self.tracer.clone()))
    }
}

/// Ends the request span of `cx` with the status the client gets (a 5xx is an error of
/// the server's, OpenTelemetry's HTTP conventions say; a 4xx is the client's).
pub fn finish_request(cx: &Context, status: StatusCode) {
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        span.set_status(Status::error(""));
    }
    span.end();
}

/// A child of the current span, when a traced request (or refresh) is current: `None`
/// elsewhere. It ends when dropped.
pub fn child(name: &'static str, kind: SpanKind) -> Option<Span> {
    Context::map_current(|cx| {
        let Tracing(tracer) = cx.get::<Tracing>()?;
        Some(
            tracer
                .span_builder(name)
                .with_kind(kind)
                .start_with_context(tracer, cx),
        )
    })
}

/// `work` in an internal child span of the current one (when a traced request is
/// current), boxed: a caller that awaits this only when traces are on keeps its future
/// the size it was without them.
pub fn in_child<F: Future>(
    name: &'static str,
    work: F,
) -> Pin<Box<impl Future<Output = F::Output>>> {
    Box::pin(async move {
        // Made at the first poll, where the request's context is current; ends when
        // dropped, after the work.
        let _span = child(name, SpanKind::Internal);
        work.await
    })
}

/// As [`child`], as a context of its own, for work that runs elsewhere ([`within`]).
pub fn child_context(name: &'static str, kind: SpanKind) -> Option<Context> {
    Context::map_current(|cx| {
        let Tracing(tracer) = cx.get::<Tracing>()?;
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(tracer, cx);
        Some(cx.with_span(span))
    })
}

/// Runs `work` with `trace` current (a context from [`child_context`]), and ends its span
/// when the work is done; without a trace, just runs it.
pub async fn within<F: Future>(trace: Option<Context>, work: F) -> F::Output {
    match trace {
        None => work.await,
        Some(cx) => {
            let out = work.with_context(cx.clone()).await;
            cx.span().end();
            out
        }
    }
}

/// The span of one exchange with an upstream: a client child of the current span, whose
/// `traceparent` (and `tracestate`) the upstream gets. Whatever trace headers the
/// request carried are replaced: a browser's own never reach the upstream (a trusted
/// proxy's became our parent, and its trace goes on in ours).
pub struct Exchange(Context);

/// Opens the [`Exchange`] span for `req` to `host`:`port`, and sets the request's trace
/// context to it. `None` when no traced request is current.
pub fn upstream<B>(req: &mut http::Request<B>, host: &str, port: Option<u16>) -> Option<Exchange> {
    let method = method_name(req.method());
    let cx = Context::map_current(|cx| {
        let Tracing(tracer) = cx.get::<Tracing>()?;
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("server.address", host.to_owned()),
        ];
        if let Some(port) = port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, cx);
        Some(cx.with_span(span))
    })?;
    let headers = req.headers_mut();
    headers.remove(&TRACEPARENT);
    headers.remove(&TRACESTATE);
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    // The propagator writes an empty `tracestate` for a trace that has none: none it is.
    if headers.get(&TRACESTATE).is_some_and(|v| v.is_empty()) {
        headers.remove(&TRACESTATE);
    }
    Some(Exchange(cx))
}

impl Exchange {
    /// Ends the span: the upstream's status, or why there was none.
    pub fn finish(self, outcome: Result<StatusCode, &'static str>) {
        let span = self.0.span();
        match outcome {
            Ok(status) => {
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.is_server_error() {
                    span.set_status(Status::error(""));
                }
            }
            Err(why) => {
                span.set_attribute(KeyValue::new("error.type", why));
                span.set_status(Status::error(why));
            }
        }
        span.end();
    }
}

/// The span of one call to the provider: a client child of the current span (in a
/// context: small to hold across the call).
pub struct ProviderCall(Context);

/// Opens a [`ProviderCall`] span named `name` for a POST to `endpoint` (its host only is
/// kept). `None` when no traced request or refresh is current.
pub fn provider_call(name: &'static str, endpoint: &url::Url) -> Option<ProviderCall> {
    Context::map_current(|cx| {
        let Tracing(tracer) = cx.get::<Tracing>()?;
        let mut attributes = vec![KeyValue::new("http.request.method", "POST")];
        if let Some(host) = endpoint.host_str() {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = endpoint.port_or_known_default() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, cx);
        Some(ProviderCall(cx.with_span(span)))
    })
}

impl ProviderCall {
    /// Ends the span; `failure` is the kind of a failed call (never the provider's words).
    pub fn finish(self, failure: Option<&'static str>) {
        let span = self.0.span();
        if let Some(kind) = failure {
            span.set_attribute(KeyValue::new("error.type", kind));
            span.set_status(Status::error(kind));
        }
        span.end();
    }
}

/// The method as OpenTelemetry's HTTP conventions name it: one of the standard ones, or
/// `_OTHER` (an extension method is the client's word, of any length and number).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

#[cfg(test)]
mod tests;
