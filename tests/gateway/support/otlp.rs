//! A test OTLP receiver: what a collector (the OpenTelemetry Collector, Jaeger, Tempo)
//! does with the gateway's traces, reduced to keeping them. A hyper server on a free
//! loopback port that accepts `POST /v1/traces` with an OTLP/HTTP protobuf body and
//! decodes it as an `ExportTraceServiceRequest` with the protocol's own generated types
//! (`opentelemetry-proto`), so a test sees exactly what went over the wire.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message;
use tokio::net::TcpListener;

/// One span as received, with the `service.name` of the resource it came under.
#[derive(Clone, Debug)]
pub struct Received {
    pub service: String,
    pub span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Received {
    pub fn name(&self) -> &str {
        &self.span.name
    }
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }
    /// Empty for a root span.
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
    /// The attribute `key` as text (numbers in decimal), if the span has it.
    pub fn attr(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(text)
    }
    /// Every attribute as `key=value`, for assertions that nothing secret is among them.
    pub fn attributes(&self) -> Vec<String> {
        self.span
            .attributes
            .iter()
            .map(|kv: &KeyValue| {
                format!(
                    "{}={}",
                    kv.key,
                    kv.value.as_ref().map(text).unwrap_or_default()
                )
            })
            .collect()
    }
}

pub struct OtlpReceiver {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let addr = listener.local_addr().expect("addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let spans = spans.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let spans = spans.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| receive(spans.clone(), req));
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            }
        });
        OtlpReceiver { addr, spans, task }
    }

    /// The `[telemetry]` table that sends a gateway's traces here, with a short batch
    /// delay so tests wait little.
    pub fn telemetry_toml(&self) -> String {
        format!(
            "[telemetry]\notlp_endpoint = \"http://{}\"\nservice_name = \"tokengate-test\"\n\
             export_delay = \"100ms\"\n",
            self.addr
        )
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("spans").clone()
    }

    /// The spans of trace `id`, by name.
    pub fn trace(&self, id: &str) -> HashMap<String, Received> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id() == id)
            .map(|s| (s.name().to_owned(), s))
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    spans: Arc<Mutex<Vec<Received>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = |status: StatusCode, body: Vec<u8>| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        Ok(resp)
    };
    let protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-protobuf");
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" || !protobuf {
        return answer(StatusCode::NOT_FOUND, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return answer(StatusCode::BAD_REQUEST, Vec::new());
    };
    let mut received = spans.lock().expect("spans");
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    answer(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a test waits for spans to arrive (the batch delay is 100 ms).
pub const EXPORT_LIMIT: Duration = Duration::from_secs(15);
