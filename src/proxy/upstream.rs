//! Outbound HTTP: the pooled client that carries proxied requests, and the TLS set-up it
//! shares with the provider client.
//!
//! One hyper-util client keeps a keep-alive pool per upstream authority, so a proxied call
//! normally reuses a warm connection: no TCP or TLS handshake on the hot path.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::UpstreamConfig;

pub type Connector = HttpsConnector<HttpConnector>;

/// The client for proxied requests: bodies stream through as hyper `Incoming`.
pub type UpstreamClient = Client<Connector, Incoming>;

/// rustls client configuration on the ring provider with the Mozilla root set (from
/// `webpki-roots`: the same roots in every container image, no OpenSSL, no system store).
pub fn tls_client_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        // The ring provider supports the safe default versions; this arm is unreachable
        // in practice and falls back to the same configuration built the default way.
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                })
                .with_no_client_auth()
        })
}

/// An http-or-https connector with a connect timeout.
pub fn connector(connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    HttpsConnectorBuilder::new()
        .with_tls_config(tls_client_config())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

pub fn client(config: &UpstreamConfig) -> UpstreamClient {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(256)
        .build(connector(config.connect_timeout))
}
