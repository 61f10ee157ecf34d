//! Building the gateway from its configuration, and serving it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

use crate::admin::metrics::Metrics;
use crate::config::Config;
use crate::crypto::cookie::{self, CookieNames};
use crate::crypto::KeyRing;
use crate::oidc::dpop::Nonces;
use crate::oidc::http_client::ProviderHttp;
use crate::oidc::ProviderCell;
use crate::proxy::headers::Forwarding;
use crate::proxy::pool::{Timeouts, Upstreams};
use crate::proxy::upstream;
use crate::route::{Route, RouteTable};
use crate::server::dispatch::RequestIds;
use crate::server::listener::{self, Limits};
use crate::server::Reject;
use crate::session::{LiveSession, SessionId, Sessions};
use crate::shutdown;
use crate::token::client_credentials::ClientTokens;
use crate::token::refresh::Refresher;

/// Everything a request may need, built once at start and shared by every connection.
pub struct Gateway {
    pub config: Config,
    pub routes: RouteTable,
    pub sessions: Arc<Sessions>,
    pub keys: Arc<KeyRing>,
    pub cookies: CookieNames,
    pub provider: Arc<ProviderCell>,
    pub provider_http: Arc<ProviderHttp>,
    pub refresher: Refresher,
    pub client_tokens: ClientTokens,
    pub upstream: Upstreams,
    pub metrics: Metrics,
    pub request_ids: RequestIds,
    /// The latest DPoP nonce of each upstream.
    pub upstream_nonces: Nonces,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    /// What upstreams are told of where a request came from (`public_url`,
    /// `server.trusted_proxies`).
    pub forwarding: Forwarding,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Gateway {
    /// The gateway for `workers` workers (each gets upstream pools of its own).
    pub fn new(config: Config, workers: usize) -> Result<Gateway, StartError> {
        let keys = Arc::new(KeyRing::new(&config.session.keys).ok_or_else(|| {
            StartError::Config("session.keys: at least one key is required".into())
        })?);
        let store = crate::session::open::store(&config.session).map_err(StartError::Config)?;
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, rc) in config.routes.iter().enumerate() {
            let route = Route::from_config(i, rc).ok_or_else(|| {
                StartError::Config(format!("route[{i}].upstream: not an absolute http(s) URL"))
            })?;
            routes.push(route);
        }
        let sessions = Arc::new(Sessions::new(
            store,
            keys.clone(),
            config.session.idle_timeout,
            config.session.absolute_timeout,
            config.session.cache_capacity,
        ));
        let provider: Arc<ProviderCell> = Arc::default();
        let refresher = Refresher::new(
            sessions.clone(),
            provider.clone(),
            config.tokens.refresh_before_expiry,
        );
        let origin = &config.server.public_origin;
        if !config.server.secure_cookies {
            tracing::warn!(public_url = %config.server.public_url, "public_url is plain http: cookies are not Secure; use this for local development only");
        }
        let (http1, http2) = upstream::upstream_connectors(&config.upstream)
            .map_err(|e| StartError::Config(format!("upstream.tls_ca: {e}")))?;
        let upstreams = Upstreams::new(
            &routes,
            &http1,
            &http2,
            Timeouts {
                idle: config.upstream.pool_idle_timeout,
                response: config.upstream.response_timeout,
                read: config.upstream.read_timeout,
            },
            workers,
        );
        Ok(Gateway {
            routes: RouteTable::new(routes),
            sessions,
            keys,
            cookies: CookieNames::new(config.server.secure_cookies),
            provider: provider.clone(),
            provider_http: Arc::new(ProviderHttp::new(
                config.upstream.connect_timeout,
                config.oidc.timeout,
                upstream::tls_client_config(
                    &config.oidc.tls.extra_roots,
                    config.oidc.tls.identity.as_deref(),
                )
                .map_err(|e| StartError::Config(format!("oidc.tls_client_cert: {e}")))?,
            )),
            refresher,
            client_tokens: ClientTokens::new(provider.clone(), config.tokens.refresh_before_expiry),
            upstream: upstreams,
            metrics: Metrics::new(config.routes.iter().map(|r| r.path.as_str()), workers),
            request_ids: RequestIds::default(),
            upstream_nonces: Nonces::default(),
            redirect_uri: format!("{origin}/bff/callback"),
            post_logout_redirect_uri: format!("{origin}/"),
            forwarding: Forwarding::new(
                &config.server.public_url,
                config.server.trusted_proxies.clone(),
            ),
            config,
        })
    }

    /// The live session named by the request's session cookie, if any. Using it slides
    /// the idle limit.
    pub async fn session_from(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<LiveSession>>, Reject> {
        self.session_with(headers, true).await
    }

    /// As [`Gateway::session_from`]; with `slide` false the idle limit is not extended.
    pub async fn session_with(
        &self,
        headers: &HeaderMap,
        slide: bool,
    ) -> Result<Option<Arc<LiveSession>>, Reject> {
        self.session_named(cookie::find(headers, self.cookies.session()), slide)
            .await
    }

    /// The live session named by `cookie`, the request's session cookie as
    /// [`cookie::scan`] found it (a caller that needs the other cookies too reads the
    /// headers once).
    pub async fn session_named(
        &self,
        cookie: cookie::Lookup<'_>,
        slide: bool,
    ) -> Result<Option<Arc<LiveSession>>, Reject> {
        let cookie::Lookup::One(value) = cookie else {
            return Ok(None);
        };
        let Some(key) = SessionId::store_key_of(value) else {
            return Ok(None);
        };
        let found = if slide {
            self.sessions.get(key).await
        } else {
            self.sessions.peek(key).await
        };
        found.map_err(|e| {
            tracing::warn!(error = %e, "session lookup failed");
            Reject::StoreUnavailable
        })
    }
}

/// The public listening sockets for `workers` workers on `addr`: one each, all bound to
/// the same address with `SO_REUSEPORT`, so that the kernel spreads new connections over
/// them and no two workers wait on one socket.
pub fn bind_public(
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}

/// Serves the gateway until `shutdown` resolves, then drains: the public side on
/// `listeners`, one worker each, and the admin endpoints on `admin`. Provider discovery
/// runs in the background meanwhile.
///
/// A worker is a current-thread runtime serving its listener, with upstream pools of its
/// own: a request is accepted, authorised, sent upstream and answered on one thread, and
/// the workers share only the gateway (its session cache and stores, its keys). The first
/// listener is served on the caller's runtime, which also runs the admin listener,
/// discovery and the stores' background tasks; each other on a thread of its own. (On one
/// core, tokio's work-stealing scheduler with one worker served about 30 % fewer proxied
/// requests per second than the current-thread one, for the same instructions per
/// request: docs/benchmarks.md.)
pub async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let tls = match &config.server.tls {
        Some(files) => {
            Some(listener::tls_acceptor(&files.cert, &files.key).map_err(StartError::Config)?)
        }
        None => None,
    };
    let limits = Limits {
        header_read_timeout: config.server.header_read_timeout,
        max_header_bytes: config.server.max_header_bytes,
        max_headers: config.server.max_headers,
        shutdown_grace: config.server.shutdown_grace,
        max_connections: config.server.max_connections,
    };
    let gw = Arc::new(Gateway::new(config, listeners.len())?);
    let discovery = tokio::spawn(gw.provider.clone().discover_until_ready(
        gw.config.oidc.clone(),
        gw.redirect_uri.clone(),
        gw.provider_http.clone(),
    ));

    let (trigger, stop) = shutdown::channel();
    let part = Worker {
        gw: gw.clone(),
        tls,
        limits,
        stop: stop.clone(),
    };
    let mut listeners = listeners.into_iter();
    let first = listeners
        .next()
        .ok_or_else(|| StartError::Config("server.listen: no listener to serve".into()))?;
    let mut others = Vec::new();
    for (i, listener) in listeners.enumerate() {
        // The socket moves to the worker's own runtime, to be woken by that one's poller.
        others.push(part.clone().spawn_thread(i + 1, listener.into_std()?)?);
    }
    let public = tokio::spawn(part.serve(0, first));
    let admin = {
        let gw = gw.clone();
        let open = Arc::default();
        tokio::spawn(listener::run(
            admin,
            0,
            None,
            limits,
            stop,
            open,
            move |req, _| {
                let gw = gw.clone();
                async move { crate::admin::handle(&gw, req).await }
            },
        ))
    };
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    trigger.fire();
    discovery.abort();
    let _ = tokio::join!(public, admin);
    for finished in others {
        // Err: the worker's thread ended without a word (its runtime failed); either way
        // it is done.
        let _ = finished.await;
    }
    Ok(())
}

/// What every worker serves with: the gateway, TLS, the limits and the shutdown signal.
#[derive(Clone)]
struct Worker {
    gw: Arc<Gateway>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stop: shutdown::Shutdown,
}

impl Worker {
    /// Serves `listener` as worker `index` on the current runtime, until shutdown.
    fn serve(self, index: usize, listener: TcpListener) -> impl Future<Output = ()> + Send {
        let Worker {
            gw,
            tls,
            limits,
            stop,
        } = self;
        gw.metrics.add_runtime(tokio::runtime::Handle::current());
        let open = gw.metrics.connections.clone();
        listener::run(
            listener,
            index,
            tls,
            limits,
            stop,
            open,
            move |req, conn| crate::server::dispatch::handle(gw.clone(), req, conn),
        )
    }

    /// Worker `index` on a thread of its own with a current-thread runtime; the receiver
    /// resolves when it has drained and stopped.
    fn spawn_thread(
        self,
        index: usize,
        listener: std::net::TcpListener,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("tokengate-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => self.serve(index, listener).await,
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "worker cannot listen")
                        }
                    }
                });
                // Dropped here, after its runtime: the receiver learns the worker is done.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(finished)
    }
}
