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

use rustls_pki_types::CertificateDer;

use crate::config::{TlsIdentity, UpstreamConfig};

pub type Connector = HttpsConnector<HttpConnector>;

/// The body of a proxied request: the browser's, streamed through as hyper `Incoming`,
/// or none (a request sent again after a DPoP nonce challenge).
pub type UpstreamBody = http_body_util::Either<Incoming, http_body_util::Empty<bytes::Bytes>>;

/// The client for proxied requests.
pub type UpstreamClient = Client<Connector, UpstreamBody>;

/// rustls client configuration on the ring provider with the Mozilla root set (from
/// `webpki-roots`: the same roots in every container image, no OpenSSL, no system store),
/// plus `extra_roots`, presenting `identity` when one is given (mutual TLS).
pub fn tls_client_config(
    extra_roots: &[CertificateDer<'static>],
    identity: Option<&TlsIdentity>,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for cert in extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a trust root was refused: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
            .map_err(|e| format!("the client certificate was refused: {e}")),
    }
}

/// An http-or-https connector with a connect timeout.
pub fn connector(connect_timeout: Duration, tls: rustls::ClientConfig) -> Connector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
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
        .build(connector(
            config.connect_timeout,
            // The Mozilla roots alone cannot be refused.
            tls_client_config(&[], None).unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }),
        ))
}
