//! Tokens of the gateway itself (`token = "client"` routes): the client-credentials grant
//! (RFC 6749 §4.4), one cached token per audience, refreshed ahead of expiry.
//!
//! Reading a cached token takes a read lock and clones a header value. Fetching is
//! single-flight per audience: the first request that finds the token due takes the
//! slot's async mutex and fetches; the others queue on the mutex and, once inside,
//! find the new token. A failure is remembered for a moment so the queue does not turn
//! into one provider call per waiting request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::refresh::RefreshError;
use super::refresh_at;
use crate::metrics::Counter;
use crate::oidc::grant_error::Invalid;
use crate::oidc::{GrantError, ProviderCell};
use crate::session::{bearer_header, unix_now};

/// How long a failed fetch answers for the requests queued behind it.
const FAILURE_MEMORY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct ClientTokenCounts {
    pub fetched: Counter,
    pub failed: Counter,
}

pub struct ClientTokens {
    provider: Arc<ProviderCell>,
    skew: Duration,
    /// One slot per `(resource, scope)` of the `client` routes, made at start; the std
    /// `Mutex` guards only the map, never an await.
    slots: Mutex<HashMap<SlotKey, Arc<Slot>>>,
    pub counts: Arc<ClientTokenCounts>,
}

/// `(resource, scope)`.
type SlotKey = (Option<Arc<str>>, Option<Arc<str>>);

#[derive(Default)]
struct Slot {
    /// The token and when to fetch the next one. A std `RwLock`: read per request, written
    /// once per fetch, never held across an await.
    current: RwLock<Option<(HeaderValue, Option<u64>)>>,
    /// Held by the one request fetching a new token.
    fetch: tokio::sync::Mutex<Option<(Instant, RefreshError)>>,
}

impl Slot {
    fn fresh(&self, now: u64) -> Option<HeaderValue> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        match &*current {
            Some((bearer, due)) if due.is_none_or(|at| now < at) => Some(bearer.clone()),
            _ => None,
        }
    }
}

impl ClientTokens {
    pub fn new(provider: Arc<ProviderCell>, skew: Duration) -> ClientTokens {
        ClientTokens {
            provider,
            skew,
            slots: Mutex::default(),
            counts: Arc::default(),
        }
    }

    /// For a reloaded configuration: the same counts, tokens fetched anew as routes ask.
    pub fn reconfigured(&self, skew: Duration) -> ClientTokens {
        ClientTokens {
            counts: self.counts.clone(),
            ..ClientTokens::new(self.provider.clone(), skew)
        }
    }

    /// The gateway's own `Authorization` value for `resource` and `scope`.
    pub async fn bearer(
        &self,
        resource: Option<&Arc<str>>,
        scope: Option<&Arc<str>>,
    ) -> Result<HeaderValue, RefreshError> {
        let slot = self.slot(resource, scope);
        if let Some(b) = slot.fresh(unix_now()) {
            return Ok(b);
        }
        let mut last_failure = slot.fetch.lock().await;
        if let Some(b) = slot.fresh(unix_now()) {
            return Ok(b);
        }
        if let Some((at, e)) = &*last_failure {
            if at.elapsed() < FAILURE_MEMORY {
                return Err(e.clone());
            }
        }
        // Boxed: fetching is rare, and its future would otherwise make every proxied
        // request's future larger.
        match Box::pin(self.fetch(resource, scope)).await {
            Ok((bearer, due)) => {
                self.counts.fetched.inc();
                *slot.current.write().unwrap_or_else(|p| p.into_inner()) =
                    Some((bearer.clone(), due));
                *last_failure = None;
                Ok(bearer)
            }
            Err(e) => {
                self.counts.failed.inc();
                tracing::warn!(error = %e, resource = resource.map(|r| &**r), "client-credentials token not obtained");
                *last_failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    fn slot(&self, resource: Option<&Arc<str>>, scope: Option<&Arc<str>>) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((resource.cloned(), scope.cloned()))
            .or_default()
            .clone()
    }

    async fn fetch(
        &self,
        resource: Option<&Arc<str>>,
        scope: Option<&Arc<str>>,
    ) -> Result<(HeaderValue, Option<u64>), RefreshError> {
        let provider = self
            .provider
            .discovered()
            .map_err(RefreshError::ProviderUnavailable)?;
        let now = unix_now();
        let tokens = provider
            .client_credentials(scope.map(|s| &**s), resource.map(|r| &**r))
            .await
            .map_err(|e| match e {
                // A refused client grant ends no session; it is the gateway's own problem.
                GrantError::Rejected(refusal) => {
                    RefreshError::ProviderInvalid(Invalid::OwnGrantRefused(refusal))
                }
                GrantError::Invalid(why) => RefreshError::ProviderInvalid(why),
                GrantError::Unavailable(why) => RefreshError::ProviderUnavailable(why),
            })?;
        let bearer = bearer_header(&tokens.access_token)
            .ok_or(RefreshError::ProviderInvalid(Invalid::AccessTokenNotHeader))?;
        Ok((bearer, refresh_at(now, tokens.expires_in, self.skew)))
    }
}
