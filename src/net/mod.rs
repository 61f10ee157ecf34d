//! Outbound HTTP: the connectors and TLS set-up shared by the upstream pools
//! ([`pool`]), the provider client (`oidc::http_client`) and the trace exporter,
//! and the read timeout of the bodies they stream ([`timeout`]).

pub mod pool;
pub mod timeout;

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls_pki_types::CertificateDer;

use crate::config::{TlsIdentity, UpstreamConfig};
use timeout::TimedBody;

pub type Connector = HttpsConnector<HttpConnector>;

/// The body of a proxied request: the browser's, streamed through as hyper `Incoming`
/// under `upstream.read_timeout`, or none (a request sent again after a DPoP nonce
/// challenge).
pub type UpstreamBody =
    http_body_util::Either<TimedBody<Incoming>, http_body_util::Empty<bytes::Bytes>>;

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

/// An http-or-https connector with a connect timeout, offering HTTP/1.1 and HTTP/2
/// over TLS (the provider client).
pub fn connector(connect_timeout: Duration, tls: rustls::ClientConfig) -> Connector {
    HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp(connect_timeout))
}

/// The connectors of the upstream pools, over TCP or TLS, trusting the Mozilla roots and
/// `upstream.tls_ca`: one offering HTTP/1.1 only, one HTTP/2 only (ALPN `h2` under TLS,
/// prior knowledge over TCP).
pub fn upstream_connectors(config: &UpstreamConfig) -> Result<(Connector, Connector), String> {
    let tls = tls_client_config(&config.extra_roots, None)?;
    let http1 = HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp(config.connect_timeout));
    let http2 = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .wrap_connector(tcp(config.connect_timeout));
    Ok((http1, http2))
}

fn tcp(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http
}
