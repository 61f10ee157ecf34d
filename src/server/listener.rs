//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 on the same port (ALPN
//! under TLS, the connection preface otherwise), request-head limits, and a graceful stop.
//!
//! On shutdown the loop stops accepting at once, tells every open connection to finish
//! its in-flight requests and close, and waits for them at most `shutdown_grace`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::drain::Drain;
use super::head_timer::{HeadSweep, HeadTimer};
use crate::metrics::OpenConnections;
use crate::shutdown::Shutdown;

/// What the handler learns about the connection a request came on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// `remote`'s IP as a header value (`X-Forwarded-For`): formatted once per
    /// connection, not for every request on it; cloning it is a reference count.
    pub client_ip: HeaderValue,
    /// `remote`'s IP as an RFC 7239 node (`for=192.0.2.1`, `for="[2001:db8::1]"`), formatted
    /// once per connection like `client_ip`: formatting an address costs more than the
    /// rest of the forwarding headers together.
    pub forwarded_for: bytes::Bytes,
    pub tls: bool,
    /// The worker that accepted the connection: whose upstream pools its requests use.
    pub worker: usize,
}

impl ConnInfo {
    /// The connection from `remote`, accepted by `worker`.
    pub fn new(remote: SocketAddr, tls: bool, worker: usize) -> ConnInfo {
        let forwarded_for = match remote.ip() {
            std::net::IpAddr::V4(ip) => format!("for={ip}"),
            std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
        };
        ConnInfo {
            remote,
            client_ip: HeaderValue::try_from(remote.ip().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_for: forwarded_for.into(),
            tls,
            worker,
        }
    }
}

/// Limits on what a client may send before its request is handled.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub shutdown_grace: Duration,
    /// Connections open at once; one more is closed as it is accepted.
    pub max_connections: usize,
}

/// The limits a listener applies, replaced whole by a configuration reload: each new
/// connection takes the limits current when it is accepted.
pub type SharedLimits = Arc<arc_swap::ArcSwap<Limits>>;

/// One connection's server: its own timer for request heads (see [`super::head_timer`]).
fn builder(limits: &Limits, heads: HeadTimer) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(heads)
        // Slowloris: a client that trickles its request head is cut off.
        .header_read_timeout(limits.header_read_timeout)
        // Heads larger than this, or with more fields, get 431 from hyper.
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// Decrements the count when the connection's task ends, however it ends.
struct Counted(Arc<OpenConnections>);

impl Counted {
    fn new(open: Arc<OpenConnections>, worker: usize) -> Counted {
        open.opened(worker);
        Counted(open)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.closed();
    }
}

/// Serves `listener` until `shutdown` fires, then drains; `worker` is the worker whose
/// runtime this runs on (see `app::serve`).
pub async fn run<H, F, B>(
    listener: TcpListener,
    worker: usize,
    tls: Option<TlsAcceptor>,
    limits: SharedLimits,
    mut shutdown: Shutdown,
    open: Arc<OpenConnections>,
    handler: H,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    // Any body: the admin's, the public one (counted when the access log is on).
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The sweep's period follows the timeout at start; a reload's shorter timeout is cut
    // up to that period late.
    let heads = HeadSweep::new(limits.load().header_read_timeout);
    tokio::spawn(heads.run());
    let drain = Arc::new(Drain::default());
    while let Some((stream, remote)) = accept(&listener, &mut shutdown).await {
        let limits = **limits.load();
        if open.get() >= i64::try_from(limits.max_connections).unwrap_or(i64::MAX) {
            // Full: closed at once, before a byte is read (nginx does the same when its
            // worker_connections run out); the client may try again.
            open.refuse();
            tracing::debug!(%remote, "server.max_connections reached; connection closed");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let info = ConnInfo::new(remote, tls.is_some(), worker);
        let handler = handler.clone();
        // The handler's own future, mapped to hyper's `Result`: no `async` block around
        // it, which would be one more layer to build and move for every request.
        let service = service_fn(move |req| handler(req, info.clone()).map(Ok::<_, Infallible>));
        let builder = builder(&limits, heads.timer());
        let ticket = drain.admit();
        let tls = tls.clone();
        let handshake_limit = limits.header_read_timeout;
        let counted = Counted::new(open.clone(), worker);
        tokio::spawn(async move {
            let _counted = counted;
            let result = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    ticket.serve(conn.into_owned()).await
                }
                Some(acceptor) => {
                    let Some(stream) = handshake(acceptor, stream, handshake_limit, remote).await
                    else {
                        return;
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    ticket.serve(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let limits = **limits.load();
    tokio::select! {
        () = drain.start() => tracing::debug!("all connections drained"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "connections still open after the grace period; closing");
        }
    }
}

/// The next connection on `listener`; `None` once `shutdown` fires.
async fn accept(
    listener: &TcpListener,
    shutdown: &mut Shutdown,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => return Some(a),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = shutdown.wait() => return None,
        }
    }
}

/// The TLS handshake of a connection from `remote`, cut off after `limit`; `None` (and
/// logged) if it failed or took too long.
async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
    remote: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%remote, "TLS handshake timed out");
            None
        }
    }
}

/// A rustls acceptor for `server.tls`, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls.cert: {e}"))?;
    if certs.is_empty() {
        return Err("server.tls.cert: no certificate in the file".into());
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("server.tls.key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
