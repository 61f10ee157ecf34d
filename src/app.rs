//! Building the gateway from its configuration, and serving it.

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;
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
    pub fn new(config: Config) -> Result<Gateway, StartError> {
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
            http1,
            http2,
            Timeouts {
                idle: config.upstream.pool_idle_timeout,
                response: config.upstream.response_timeout,
                read: config.upstream.read_timeout,
            },
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
            metrics: Metrics::new(config.routes.iter().map(|r| r.path.as_str())),
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

/// Serves the gateway on `listener` and its admin endpoints on `admin` until `shutdown`
/// resolves, then drains both. Provider discovery runs in the background meanwhile.
pub async fn serve(
    config: Config,
    listener: TcpListener,
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
    let gw = Arc::new(Gateway::new(config)?);
    let discovery = tokio::spawn(gw.provider.clone().discover_until_ready(
        gw.config.oidc.clone(),
        gw.redirect_uri.clone(),
        gw.provider_http.clone(),
    ));

    let (trigger, stop) = shutdown::channel();
    let public = {
        let gw = gw.clone();
        let open = gw.metrics.connections.clone();
        tokio::spawn(listener::run(
            listener,
            tls,
            limits,
            stop.clone(),
            open,
            move |req, conn| crate::server::dispatch::handle(gw.clone(), req, conn),
        ))
    };
    let admin = {
        let gw = gw.clone();
        let open = Arc::default();
        tokio::spawn(listener::run(
            admin,
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
    Ok(())
}
