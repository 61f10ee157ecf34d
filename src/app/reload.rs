//! Reloading the configuration on `SIGHUP`: the gateway being served, swapped whole for
//! new requests, and the provider's discovery across reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::serving::limits_of;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::server::listener::SharedLimits;

/// The configuration being served: every new request takes the gateway current when it
/// arrives and keeps it to its end, so a reload never changes a request under way.
pub(super) struct Current {
    pub(super) gateway: ArcSwap<Gateway>,
    limits: SharedLimits,
    /// The provider's discovery in the background (at start, and again after a reload).
    discovery: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Current {
    /// Serving `gateway` with `limits`, its provider not being discovered yet.
    pub(super) fn new(gateway: Arc<Gateway>, limits: SharedLimits) -> Current {
        Current {
            gateway: ArcSwap::new(gateway),
            limits,
            discovery: std::sync::Mutex::new(None),
        }
    }

    /// (Re)discovers the provider for `gw`'s `[oidc]`: the provider in use serves until the
    /// new one is ready; a discovery still retrying from before is dropped.
    pub(super) fn discover(&self, gw: &Gateway) {
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

    pub(super) fn stop_discovery(&self) {
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
pub(super) async fn reload_on_hangup(path: PathBuf, current: Arc<Current>) {
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
