//! The OTLP exporter's HTTP client: hyper's, over the gateway's rustls connector
//! ([`crate::net::connector`]: Mozilla roots, no OpenSSL), instead of the
//! reqwest client the exporter would otherwise bring.
//!
//! The SDK's batch processor exports from a thread of its own, through a blocking
//! executor. This client gives that thread a current-thread tokio runtime of its own,
//! made at the first export: hyper runs there, on the exporter's thread, never on a
//! worker that serves requests, and never waits for one (at shutdown a worker waits for
//! the exporter, so the exporter must not need a worker).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};

use crate::net::{connector, tls_client_config, Connector};

/// Longest exchange with the collector, connection included (OTLP's default).
pub const TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read: a collector answers an `ExportTraceServiceResponse`, a few bytes.
const MAX_ANSWER: usize = 64 * 1024;

pub struct ExportClient {
    /// Made on the exporter's thread at its first export (see the module doc).
    io: OnceLock<Io>,
}

struct Io {
    /// `Option` only so that `Drop` can take it: see there.
    runtime: Option<tokio::runtime::Runtime>,
    client: Client<Connector, Full<Bytes>>,
}

impl ExportClient {
    pub fn new() -> ExportClient {
        ExportClient {
            io: OnceLock::new(),
        }
    }

    fn io(&self) -> Result<&Io, HttpError> {
        if let Some(io) = self.io.get() {
            return Ok(io);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let tls = tls_client_config(&[], None)?;
        // No connection is kept between exports: between two of them this runtime does not
        // run, so a kept connection would not notice the collector closing it, and the
        // next batch would be written into a closed socket. One connection per batch
        // (every few seconds at most) costs a handshake.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector(CONNECT_TIMEOUT, tls));
        Ok(self.io.get_or_init(|| Io {
            runtime: Some(runtime),
            client,
        }))
    }
}

impl std::fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExportClient")
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // A runtime dropped where blocking is not allowed panics; the exporter is dropped
        // on its own thread, but nothing here may rely on that.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let io = self.io()?;
        let runtime = io.runtime.as_ref().ok_or("the export runtime is gone")?;
        // A tokio runtime cannot be entered from inside another: only the batch
        // processor's thread may export through this client.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("OTLP export attempted on a tokio worker".into());
        }
        let exchange = async {
            let response = io.client.request(request.map(Full::new)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, exchange)
                .await
                .map_err(|_| HttpError::from("the collector did not answer in time"))?
        })
    }
}
