//! The gateway: everything a request may need, built once from the configuration (and
//! again on a reload), and the session lookup every handler shares.

use std::sync::Arc;

use http::HeaderMap;

use crate::config::Config;
use crate::crypto::cookie::{self, CookieNames};
use crate::crypto::KeyRing;
use crate::metrics::Metrics;
use crate::net as upstream;
use crate::net::pool::{Timeouts, Upstreams};
use crate::oidc::dpop::Nonces;
use crate::oidc::http_client::ProviderHttp;
use crate::oidc::ProviderCell;
use crate::route::{Route, RouteTable};
use crate::server::headers::Forwarding;
use crate::server::request::RequestIds;
use crate::server::Reject;
use crate::session::device::{self, Admit};
use crate::session::{EndReason, LiveSession, SessionId, Sessions};
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
        let keys = key_ring(&config)?;
        let routes = routes(&config)?;
        let (http1, http2) = upstream::upstream_connectors(&config.upstream)
            .map_err(|e| StartError::Config(format!("upstream.tls_ca: {e}")))?;
        let provider_http = provider_http(&config)?;
        let Lasting {
            sessions,
            provider,
            refresher,
            client_tokens,
            metrics,
            request_ids,
        } = Lasting::of(&config, &keys, workers, before)?;
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
    /// (`session::device::admit`).
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
        let now = crate::session::unix_now();
        match device::admit(
            &self.config.session,
            &self.cookies,
            &self.keys,
            &live,
            headers,
            now,
        ) {
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

/// The key ring of `session.keys`.
fn key_ring(config: &Config) -> Result<Arc<KeyRing>, StartError> {
    Ok(Arc::new(KeyRing::new(&config.session.keys).ok_or_else(
        || StartError::Config("session.keys: at least one key is required".into()),
    )?))
}

/// The routes of `[[route]]`, in their order.
fn routes(config: &Config) -> Result<Vec<Route>, StartError> {
    let mut routes = Vec::with_capacity(config.routes.len());
    for (i, rc) in config.routes.iter().enumerate() {
        let route = Route::from_config(i, rc).ok_or_else(|| {
            StartError::Config(format!("route[{i}].upstream: not an absolute http(s) URL"))
        })?;
        routes.push(route);
    }
    Ok(routes)
}

/// The HTTP client for the provider (`[oidc]`'s timeout and TLS).
fn provider_http(config: &Config) -> Result<Arc<ProviderHttp>, StartError> {
    Ok(Arc::new(ProviderHttp::new(
        config.upstream.connect_timeout,
        config.oidc.timeout,
        upstream::tls_client_config(
            &config.oidc.tls.extra_roots,
            config.oidc.tls.identity.as_deref(),
        )
        .map_err(|e| StartError::Config(format!("oidc.tls_client_cert: {e}")))?,
    )))
}

/// What outlives a configuration: opened at start, carried over by a reload (see
/// [`Gateway::reconfigure`]).
struct Lasting {
    sessions: Arc<Sessions>,
    provider: Arc<ProviderCell>,
    refresher: Refresher,
    client_tokens: ClientTokens,
    metrics: Metrics,
    request_ids: Arc<RequestIds>,
}

impl Lasting {
    /// Opened anew for `config` without a gateway `before`; else taken over from it, its
    /// sessions given the new `keys`.
    fn of(
        config: &Config,
        keys: &Arc<KeyRing>,
        workers: usize,
        before: Option<&Gateway>,
    ) -> Result<Lasting, StartError> {
        let skew = config.tokens.refresh_before_expiry;
        let route_prefixes = config.routes.iter().map(|r| r.path.as_str());
        Ok(match before {
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
                Lasting {
                    sessions: sessions.clone(),
                    provider: provider.clone(),
                    refresher: Refresher::new(sessions, provider.clone(), skew),
                    client_tokens: ClientTokens::new(provider, skew),
                    metrics: Metrics::new(route_prefixes, workers),
                    request_ids: Arc::new(RequestIds::default()),
                }
            }
            Some(old) => {
                old.sessions.set_keys(keys.clone());
                Lasting {
                    sessions: old.sessions.clone(),
                    provider: old.provider.clone(),
                    refresher: old.refresher.reconfigured(skew),
                    client_tokens: old.client_tokens.reconfigured(skew),
                    metrics: old.metrics.for_routes(route_prefixes),
                    request_ids: old.request_ids.clone(),
                }
            }
        })
    }
}
