//! The client for calls to the OpenID Provider: discovery, JWKS, token, revocation.
//!
//! It follows no redirects (a provider endpoint that redirects is misconfigured, and
//! following would send client credentials wherever the redirect points), bounds the
//! whole exchange in time and the answer in size, and reports a 5xx answer as an error
//! of its own kind so the refresh logic can tell "provider down" from "grant refused".

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::proxy::upstream::{connector, Connector};

/// Largest provider answer read (discovery documents and JWKS are a few KiB).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProviderHttpError {
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider answered {0}")]
    ServerError(http::StatusCode),
    #[error("provider answer unreadable: {0}")]
    Body(String),
}

pub struct ProviderHttp {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl ProviderHttp {
    /// `tls` carries the roots to trust and, for mutual TLS, the client certificate.
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> ProviderHttp {
        ProviderHttp {
            client: Client::builder(TokioExecutor::new()).build(connector(connect_timeout, tls)),
            timeout,
        }
    }

    /// Sends one request and reads the whole (bounded) answer.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ProviderHttpError> {
        let request = request.map(|b| Full::new(Bytes::from(b)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ProviderHttpError::Unreachable(e.to_string()))?;
            let (parts, body) = response.into_parts();
            if parts.status.is_server_error() {
                return Err(ProviderHttpError::ServerError(parts.status));
            }
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| ProviderHttpError::Body(e.to_string()))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderHttpError::Timeout)?
    }
}

/// Lets the openidconnect crate send its requests through this client.
impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<http::Response<Vec<u8>>, ProviderHttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.send(request))
    }
}
