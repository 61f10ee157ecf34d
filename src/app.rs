//! Building the gateway from its configuration, and serving it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use http::HeaderMap;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;

use crate::admin::metrics::Metrics;
use crate::bff::dbsc::Admit;
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
use crate::server::listener::{self, Limits, SharedLimits};
use crate::server::Reject;
use crate::session::{EndReason, LiveSession, SessionId, Sessions};
use crate::shutdown;
use crate::telemetry::Telemetry;
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
    pub request_ids: Arc<RequestIds>,
    /// The latest DPoP nonce of each upstream.
    pub upstream_nonces: Nonces,
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    /// What upstreams are told of where a request came from (`public_url`,
    /// `server.trusted_proxies`).
    pub forwarding: Forwarding,
    /// OpenTelemetry traces (`[telemetry]`); `None`: off, and no request does any work
    /// for them. Started once: a reload keeps the running exporter.
    pub telemetry: Option<Arc<Telemetry>>,
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
        Gateway::build(config, workers, None)
    }

    /// The gateway for a reloaded configuration. What outlives a configuration is carried
    /// over: the sessions (cache, store and its connections), the provider as discovered,
    /// the refreshes in flight, the counters. Everything the file describes is built anew:
    /// routes and their upstream pools, the key ring (handed to the sessions too), client
    /// credentials, forwarding trust. Requests under way keep the gateway they started
    /// with; the caller rediscovers the provider when `[oidc]` changed.
    pub fn reconfigure(&self, config: Config) -> Result<Gateway, StartError> {
        Gateway::build(config, self.upstream.workers(), Some(self))
    }

    fn build(
        config: Config,
        workers: usize,
        before: Option<&Gateway>,
    ) -> Result<Gateway, StartError> {
        let keys = Arc::new(KeyRing::new(&config.session.keys).ok_or_else(|| {
            StartError::Config("session.keys: at least one key is required".into())
        })?);
        let mut routes = Vec::with_capacity(config.routes.len());
        for (i, rc) in config.routes.iter().enumerate() {
            let route = Route::from_config(i, rc).ok_or_else(|| {
                StartError::Config(format!("route[{i}].upstream: not an absolute http(s) URL"))
            })?;
            routes.push(route);
        }
        let (http1, http2) = upstream::upstream_connectors(&config.upstream)
            .map_err(|e| StartError::Config(format!("upstream.tls_ca: {e}")))?;
        let provider_http = Arc::new(ProviderHttp::new(
            config.upstream.connect_timeout,
            config.oidc.timeout,
            upstream::tls_client_config(
                &config.oidc.tls.extra_roots,
                config.oidc.tls.identity.as_deref(),
            )
            .map_err(|e| StartError::Config(format!("oidc.tls_client_cert: {e}")))?,
        ));
        let skew = config.tokens.refresh_before_expiry;
        let route_prefixes = config.routes.iter().map(|r| r.path.as_str());
        let (sessions, provider, refresher, client_tokens, metrics, request_ids) = match before {
            None => {
                let store =
                    crate::session::open::store(&config.session).map_err(StartError::Config)?;
                let sessions = Arc::new(Sessions::new(
                    store,
                    keys.clone(),
                    config.session.idle_timeout,
                    config.session.absolute_timeout,
                    config.session.cache_capacity,
                ));
                let provider: Arc<ProviderCell> = Arc::default();
                (
                    sessions.clone(),
                    provider.clone(),
                    Refresher::new(sessions, provider.clone(), skew),
                    ClientTokens::new(provider, skew),
                    Metrics::new(route_prefixes, workers),
                    Arc::new(RequestIds::default()),
                )
            }
            Some(old) => {
                old.sessions.set_keys(keys.clone());
                (
                    old.sessions.clone(),
                    old.provider.clone(),
                    old.refresher.reconfigured(skew),
                    old.client_tokens.reconfigured(skew),
                    old.metrics.for_routes(route_prefixes),
                    old.request_ids.clone(),
                )
            }
        };
        let origin = &config.server.public_origin;
        if !config.server.secure_cookies && before.is_none() {
            tracing::warn!(public_url = %config.server.public_url, "public_url is plain http: cookies are not Secure; use this for local development only");
        }
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
            provider,
            provider_http,
            refresher,
            client_tokens,
            upstream: upstreams,
            metrics,
            request_ids,
            upstream_nonces: Nonces::default(),
            redirect_uri: format!("{origin}/bff/callback"),
            post_logout_redirect_uri: format!("{origin}/"),
            forwarding: Forwarding::new(
                &config.server.public_url,
                config.server.trusted_proxies.clone(),
            ),
            telemetry: match before {
                Some(old) => old.telemetry.clone(),
                None => Telemetry::start(&config.telemetry).map_err(StartError::Config)?,
            },
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
        let cookie = cookie::find(headers, self.cookies.session());
        self.session_named(headers, cookie, slide).await
    }

    /// The live session named by `cookie`, the request's session cookie as
    /// [`cookie::scan`] found it in `headers` (a caller that needs the other cookies too
    /// reads the headers once). A device-bound session counts only with its bound cookie
    /// (`bff::dbsc::admit`).
    pub async fn session_named(
        &self,
        headers: &HeaderMap,
        cookie: cookie::Lookup<'_>,
        slide: bool,
    ) -> Result<Option<Arc<LiveSession>>, Reject> {
        let cookie::Lookup::One(value) = cookie else {
            return Ok(None);
        };
        let Some(key) = SessionId::store_key_of(value) else {
            return Ok(None);
        };
        let found = match (&self.telemetry, slide) {
            (None, true) => self.sessions.get(key).await,
            (None, false) => self.sessions.peek(key).await,
            // Traced as a child of the request's span (boxed: the untraced lookup's
            // future stays the size it was).
            (Some(_), _) => {
                let lookup = async {
                    match slide {
                        true => self.sessions.get(key).await,
                        false => self.sessions.peek(key).await,
                    }
                };
                crate::telemetry::in_child("session lookup", lookup).await
            }
        };
        let found = found.map_err(|e| {
            tracing::warn!(error = %e, "session lookup failed");
            Reject::StoreUnavailable
        })?;
        let Some(live) = found else {
            return Ok(None);
        };
        match crate::bff::dbsc::admit(self, &live, headers, crate::session::unix_now()) {
            Admit::Yes => {}
            Admit::No => return Ok(None),
            Admit::End => {
                self.sessions
                    .end(key, EndReason::Unbound)
                    .await
                    .map_err(|_| Reject::StoreUnavailable)?;
                return Ok(None);
            }
        }
        // The access line's session tag (a no-op with the access log off).
        crate::server::access_log::saw_session(&key);
        Ok(Some(live))
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
    serve_reloading(config, None, listeners, admin, shutdown).await
}

/// [`serve`], and with `reload_from`, a configuration reload from that file on every
/// `SIGHUP` (see [`reload`]).
pub async fn serve_reloading(
    config: Config,
    reload_from: Option<PathBuf>,
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
    let limits: SharedLimits = Arc::new(ArcSwap::from_pointee(limits_of(&config)));
    let gw = Arc::new(Gateway::new(config, listeners.len())?);
    let forward_auth = bind_forward_auth(&gw.config).await?;
    let current = Arc::new(Current {
        gateway: ArcSwap::new(gw.clone()),
        limits: limits.clone(),
        discovery: std::sync::Mutex::new(None),
    });
    current.discover(&gw);
    let reloads = reload_from.map(|path| tokio::spawn(reload_on_hangup(path, current.clone())));

    let (trigger, stop) = shutdown::channel();
    let part = Worker {
        current: current.clone(),
        tls,
        limits: limits.clone(),
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
    // Forward auth on its own listener, never the public one: its answers carry tokens.
    let forward_auth = forward_auth.map(|listener| {
        let current = current.clone();
        tokio::spawn(listener::run(
            listener,
            0,
            None,
            limits.clone(),
            stop.clone(),
            Arc::default(),
            move |req, _| {
                let gw = current.gateway.load_full();
                async move { crate::forward_auth::handle(&gw, req).await }
            },
        ))
    });
    let admin = {
        let current = current.clone();
        let open = Arc::default();
        tokio::spawn(listener::run(
            admin,
            0,
            None,
            limits,
            stop,
            open,
            move |req, _| {
                let gw = current.gateway.load_full();
                async move { crate::admin::handle(&gw, req).await }
            },
        ))
    };
    drop(gw);
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    trigger.fire();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    current.stop_discovery();
    let _ = tokio::join!(public, admin);
    if let Some(forward_auth) = forward_auth {
        let _ = forward_auth.await;
    }
    for finished in others {
        // Err: the worker's thread ended without a word (its runtime failed); either way
        // it is done.
        let _ = finished.await;
    }
    // The spans of the last requests, before the process ends.
    let telemetry = current.gateway.load().telemetry.clone();
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    Ok(())
}

/// The forward-auth listener, when `[forward_auth]` is set. Bound here rather than by the
/// caller like the public and admin ones, so that every caller of [`serve`] (the binary,
/// the tests) gets it from the configuration alone.
async fn bind_forward_auth(config: &Config) -> Result<Option<TcpListener>, StartError> {
    let Some(fa) = &config.forward_auth else {
        return Ok(None);
    };
    let listener = TcpListener::bind(fa.listen).await.map_err(|e| {
        StartError::Config(format!(
            "forward_auth.listen: cannot listen on {}: {e}",
            fa.listen
        ))
    })?;
    tracing::info!(listen = %fa.listen, "forward auth listening");
    Ok(Some(listener))
}

fn limits_of(config: &Config) -> Limits {
    Limits {
        header_read_timeout: config.server.header_read_timeout,
        max_header_bytes: config.server.max_header_bytes,
        max_headers: config.server.max_headers,
        shutdown_grace: config.server.shutdown_grace,
        max_connections: config.server.max_connections,
    }
}

/// The configuration being served: every new request takes the gateway current when it
/// arrives and keeps it to its end, so a reload never changes a request under way.
struct Current {
    gateway: ArcSwap<Gateway>,
    limits: SharedLimits,
    /// The provider's discovery in the background (at start, and again after a reload).
    discovery: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Current {
    /// (Re)discovers the provider for `gw`'s `[oidc]`: the provider in use serves until the
    /// new one is ready; a discovery still retrying from before is dropped.
    fn discover(&self, gw: &Gateway) {
        let task = tokio::spawn(gw.provider.clone().discover_until_ready(
            gw.config.oidc.clone(),
            gw.redirect_uri.clone(),
            gw.provider_http.clone(),
        ));
        let mut slot = self.discovery.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = slot.replace(task) {
            before.abort();
        }
    }

    fn stop_discovery(&self) {
        if let Some(task) = self
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Reloads the configuration from `path` on every `SIGHUP`.
async fn reload_on_hangup(path: PathBuf, current: Arc<Current>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; configuration reload is off");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        reload(&path, &current);
    }
}

/// Reads the configuration file again and, if it is valid, serves it for new requests:
/// routes, upstreams, claim rules, the key ring, client credentials, limits, trust and
/// the log level change; sessions and open connections stay. A file with problems is
/// refused (each logged with its key path) and the running configuration stays. What a
/// running process cannot change (its listeners, its session store) keeps its running
/// value, and a warning says so.
fn reload(path: &Path, current: &Current) {
    let old = current.gateway.load_full();
    let mut config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            for problem in &e.problems {
                tracing::error!(%problem, "configuration reload refused");
            }
            old.metrics.reloads.refused.inc();
            tracing::error!(problems = e.problems.len(), file = %path.display(), "configuration reload refused; the running configuration stays");
            return;
        }
    };
    for key in keep_fixed(&old.config, &mut config) {
        tracing::warn!(key, "cannot change while running; restart to apply");
    }
    let limits = limits_of(&config);
    match old.reconfigure(config) {
        Ok(gw) => {
            let gw = Arc::new(gw);
            current.discover(&gw);
            current.limits.store(Arc::new(limits));
            // Without `log.level`, back to the level the process started with.
            let level = gw.config.log.level.as_deref().unwrap_or("");
            if let Err(e) = crate::logging::set_level(level) {
                tracing::warn!(error = %e, "log.level not applied");
            }
            current.gateway.store(gw.clone());
            gw.metrics.reloads.applied.inc();
            tracing::info!(file = %path.display(), routes = gw.config.routes.len(), "configuration reloaded");
        }
        Err(e) => {
            old.metrics.reloads.refused.inc();
            tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
        }
    }
}

/// Puts back into `new` what a running process cannot change, and names each key that
/// differed: the listeners (addresses, workers, TLS), the public URL (the cookies' names
/// and the redirect URI follow it) and the session store and its lifetimes.
fn keep_fixed(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $key:literal) => {
            if new.$($field).+ != running.$($field).+ {
                new.$($field).+ = running.$($field).+.clone();
                kept.push($key);
            }
        };
    }
    keep!(server.listen, "server.listen");
    keep!(server.admin_listen, "server.admin_listen");
    keep!(server.workers, "server.workers");
    keep!(server.tls, "server.tls");
    keep!(forward_auth, "forward_auth.listen");
    keep!(server.public_url, "server.public_url");
    keep!(server.public_origin, "server.public_url");
    keep!(server.secure_cookies, "server.public_url");
    keep!(session.store, "session.store");
    keep!(session.path, "session.path");
    keep!(session.redis_url, "session.redis_url");
    keep!(session.redis_cluster, "session.redis_cluster");
    keep!(session.idle_timeout, "session.idle_timeout");
    keep!(session.absolute_timeout, "session.absolute_timeout");
    keep!(session.cache_capacity, "session.cache_capacity");
    // The exporter started with the process keeps running (crate::telemetry).
    keep!(telemetry, "telemetry");
    kept.dedup();
    kept
}

/// What every worker serves with: the current gateway, TLS, the limits and the shutdown
/// signal.
#[derive(Clone)]
struct Worker {
    current: Arc<Current>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: SharedLimits,
    stop: shutdown::Shutdown,
}

impl Worker {
    /// Serves `listener` as worker `index` on the current runtime, until shutdown.
    fn serve(self, index: usize, listener: TcpListener) -> impl Future<Output = ()> + Send {
        let Worker {
            current,
            tls,
            limits,
            stop,
        } = self;
        let gw = current.gateway.load();
        gw.metrics.add_runtime(tokio::runtime::Handle::current());
        let open = gw.metrics.connections.clone();
        listener::run(
            listener,
            index,
            tls,
            limits,
            stop,
            open,
            move |req, conn| {
                crate::server::dispatch::handle(current.gateway.load_full(), req, conn)
            },
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
