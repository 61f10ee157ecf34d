//! One refresh per session at a time (habit 9: single-flight with a re-check).
//!
//! The first request that finds its session's token due starts the refresh as a task of
//! its own; every other request of that session that arrives meanwhile waits on the same
//! task and shares its outcome, success or failure — a failed refresh is not retried by
//! each waiter. The task, not the request, owns the exchange: a browser that goes away
//! mid-refresh cannot drop a rotated refresh token on the floor. Before it calls the
//! provider the task re-reads the record from the store, so a refresh that someone else
//! already completed is not repeated.
//!
//! The flight is per session, whatever audience it refreshes: a session has one refresh
//! token, and redeeming it twice at once is exactly what rotation with replay detection
//! punishes. A request for another audience waits for the flight in progress, then
//! starts its own if its token is still due.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::HeaderValue;
use tokio::task::JoinError;

use crate::metrics::Counter;
use crate::oidc::grant_error::{Invalid, Refusal, Unavailable};
use crate::oidc::{GrantError, Provider, ProviderCell, TokenSet};
use crate::session::{
    bearer_header, unix_now, EndReason, LiveSession, Sessions, StoreError, StoreKey,
};
use crate::telemetry::SpanKind;

/// How a refresh ended, shared by every request that waited on it (hence `Clone`: the
/// causes that are not are behind an `Arc`).
///
/// Each message includes its cause's, so that a log line's `error = %e` reads whole; the
/// cause is also the error's `source()`, typed. No message carries a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The provider refused the refresh token, or the tokens ran out: the session has
    /// been ended.
    #[error("session ended: {0}")]
    Ended(#[source] EndCause),
    /// The session was already gone.
    #[error("session gone")]
    Gone,
    /// Provider not reachable or not discovered yet; session kept.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(#[source] Unavailable),
    /// The provider answered with something we refuse to use; session kept.
    #[error("provider answer refused: {0}")]
    ProviderInvalid(#[source] Invalid),
    /// The session store failed; session state unknown, nothing changed by us. (The
    /// store's message already says "session store unavailable".)
    #[error("{0}")]
    Store(#[source] Arc<StoreError>),
    /// Waited longer than the refresh may take.
    #[error("refresh did not finish in time")]
    Timeout,
    /// The refresh task panicked (or the runtime cancelled it): a fault of the gateway
    /// itself, neither the provider's nor the session's; session kept. The panic's own
    /// message went to the panic hook; this one does not repeat it.
    #[error("internal error: {}", task_failure(.0))]
    Internal(#[source] Arc<JoinError>),
}

/// Why a refresh ended its session.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EndCause {
    /// The provider refused the refresh token (its OAuth error code, or a bare status).
    #[error("refresh refused ({0})")]
    Refused(#[source] Refusal),
    /// The access token expired and the provider gave no refresh token to renew it.
    #[error("access token expired and no refresh token")]
    ExpiredWithoutRefreshToken,
}

impl EndCause {
    /// How the session's end is recorded.
    pub fn reason(&self) -> EndReason {
        match self {
            EndCause::Refused(_) => EndReason::RefreshRejected,
            EndCause::ExpiredWithoutRefreshToken => EndReason::TokensExpired,
        }
    }
}

fn task_failure(e: &JoinError) -> &'static str {
    if e.is_panic() {
        "the refresh task panicked"
    } else {
        "the refresh task was cancelled"
    }
}

impl From<StoreError> for RefreshError {
    fn from(e: StoreError) -> Self {
        RefreshError::Store(Arc::new(e))
    }
}

type Outcome = Result<Arc<LiveSession>, RefreshError>;
type InFlight = Shared<BoxFuture<'static, Outcome>>;
/// A refresh under way and the audience it refreshes.
type Flight = (Option<Arc<str>>, InFlight);

/// Refresh-token grants by outcome, for `/metrics`.
#[derive(Default)]
pub struct RefreshCounts {
    pub success: Counter,
    pub rejected: Counter,
    pub unavailable: Counter,
    pub invalid: Counter,
}

pub struct Refresher {
    sessions: Arc<Sessions>,
    provider: Arc<ProviderCell>,
    skew: Duration,
    /// Refreshes under way, by session. A std `Mutex`: held for a map lookup or insert,
    /// never across an await.
    /// Each with the audience it refreshes.
    in_flight: Arc<Mutex<HashMap<StoreKey, Flight>>>,
    wait_limit: Duration,
    pub counts: Arc<RefreshCounts>,
}

/// How many flights one request may wait through before giving up: its own, and one
/// started for another audience of the same session just before it.
const MAX_FLIGHTS: usize = 3;

impl Refresher {
    pub fn new(sessions: Arc<Sessions>, provider: Arc<ProviderCell>, skew: Duration) -> Self {
        Refresher {
            sessions,
            provider,
            skew,
            in_flight: Arc::default(),
            wait_limit: Duration::from_secs(30),
            counts: Arc::default(),
        }
    }

    /// For a reloaded configuration: the same refreshes in flight (one per session at a
    /// time holds across the reload) and counts, with the new `skew`.
    pub fn reconfigured(&self, skew: Duration) -> Refresher {
        Refresher {
            sessions: self.sessions.clone(),
            provider: self.provider.clone(),
            skew,
            in_flight: self.in_flight.clone(),
            wait_limit: self.wait_limit,
            counts: self.counts.clone(),
        }
    }

    /// The `Authorization` value for `resource` (`None`: the default audience), refreshing
    /// or fetching that token first when it is due or missing.
    pub async fn bearer(
        &self,
        mut live: Arc<LiveSession>,
        resource: Option<&Arc<str>>,
    ) -> Result<HeaderValue, RefreshError> {
        let wanted = resource.map(|r| &**r);
        for _ in 0..MAX_FLIGHTS {
            if let Some(b) = live.fresh_bearer(wanted, unix_now()) {
                return Ok(b.clone());
            }
            let (flight, ours) = self.join_or_start(live.key, resource.cloned());
            live = tokio::time::timeout(self.wait_limit, flight)
                .await
                .map_err(|_| RefreshError::Timeout)??;
            if ours {
                // A flight for this audience did what could be done: its token is as fresh
                // as it gets (still due only when there is no refresh token to renew it).
                if let Some(b) = live.bearer_for(wanted) {
                    return Ok(b.clone());
                }
            }
        }
        Err(RefreshError::ProviderInvalid(Invalid::NoTokenForAudience))
    }

    /// The flight of `key` under way, or a new one for `resource`; true when the flight
    /// is for `resource`.
    fn join_or_start(&self, key: StoreKey, resource: Option<Arc<str>>) -> (InFlight, bool) {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((for_resource, f)) = map.get(&key) {
            return (f.clone(), *for_resource == resource);
        }
        let job = Job {
            sessions: self.sessions.clone(),
            provider: self.provider.clone(),
            skew: self.skew,
            counts: self.counts.clone(),
            key,
            resource: resource.clone(),
        };
        let in_flight = self.in_flight.clone();
        // Traced (when traces are on) as a child of the request that starts the flight;
        // the requests that join it wait in their own spans.
        let trace = crate::telemetry::child_context("token refresh", SpanKind::Internal);
        let task = tokio::spawn(crate::telemetry::within(trace, async move {
            let outcome = job.run().await;
            // Provider refusals and outages are logged where they are decided; these two
            // would otherwise become a 503 without a word.
            if let Err(e @ (RefreshError::Store(_) | RefreshError::Timeout)) = &outcome {
                tracing::warn!(session = %key.short(), error = %e, "refresh failed; session kept");
            }
            // Leave the map only after the new record is in the cache: a request that no
            // longer finds the flight finds the fresh token instead.
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            outcome
        }));
        let in_flight = self.in_flight.clone();
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                // Not the provider's fault, nor the session's: the gateway's own. The task
                // did not get to leave the map; this flight does, or every later request
                // of the session would share its failure.
                let e = RefreshError::Internal(Arc::new(e));
                tracing::error!(session = %key.short(), error = %e, "refresh failed; session kept");
                in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
                Err(e)
            })
        }
        .boxed()
        .shared();
        map.insert(key, (resource, shared.clone()));
        (shared, true)
    }
}

/// One refresh of one session's token for one audience.
struct Job {
    sessions: Arc<Sessions>,
    provider: Arc<ProviderCell>,
    skew: Duration,
    counts: Arc<RefreshCounts>,
    key: StoreKey,
    resource: Option<Arc<str>>,
}

impl Job {
    async fn run(&self) -> Outcome {
        let key = self.key;
        let resource = self.resource.as_deref();
        // Re-check under the flight: the store may hold a token someone refreshed already.
        let current = self.sessions.load(key).await?.ok_or(RefreshError::Gone)?;
        let now = unix_now();
        if current.fresh_bearer(resource, now).is_some() {
            return Ok(current);
        }
        // Across instances: one refresh per session under the store's lease; an instance
        // that finds it taken waits for the winner's tokens instead (token::lease).
        super::lease::exclusive(&self.sessions, key, resource, |current| {
            self.redeem(current)
        })
        .await
    }

    /// Redeems the refresh token of `current` (read under the lease) at the provider.
    async fn redeem(&self, current: Arc<LiveSession>) -> Outcome {
        let key = self.key;
        let resource = self.resource.as_deref();
        let now = unix_now();
        let Some(refresh_token) = current.record.refresh_token.clone() else {
            return self.without_refresh_token(current, now).await;
        };
        let provider = self
            .provider
            .discovered()
            .map_err(RefreshError::ProviderUnavailable)?;
        let call = crate::telemetry::provider_call("oidc token", provider.token_endpoint());
        let result = provider
            .refresh(refresh_token.secret(), resource, current.dpop.as_deref())
            .await;
        if let Some(call) = call {
            call.finish(result.as_ref().err().map(GrantError::kind));
        }
        let result = result.and_then(|tokens| check_answer(&current, tokens));
        match result {
            Ok(mut tokens) => {
                if resource.is_none() {
                    with_userinfo(&provider, &current, &mut tokens).await;
                }
                self.counts.success.inc();
                tracing::info!(session = %key.short(), resource, rotated = tokens.refresh_token.is_some(), "access token refreshed");
                let (resource, skew) = (self.resource.clone(), self.skew);
                // Fenced: the tokens go only over the record whose refresh token was
                // redeemed; if another instance refreshed meanwhile (our lease lapsed), its
                // tokens stay.
                let updated = self
                    .sessions
                    .update(key, |s| {
                        if s.refresh_token.as_ref() == Some(&refresh_token) {
                            crate::token::apply(s, resource.as_deref(), &tokens, now, skew);
                        }
                    })
                    .await?;
                updated.ok_or(RefreshError::Gone)
            }
            Err(GrantError::Rejected(refusal)) => {
                self.counts.rejected.inc();
                tracing::info!(session = %key.short(), error = %refusal, "refresh refused by the provider");
                let cause = EndCause::Refused(refusal);
                self.sessions.end(key, cause.reason()).await?;
                Err(RefreshError::Ended(cause))
            }
            Err(GrantError::Unavailable(why)) => {
                self.counts.unavailable.inc();
                tracing::warn!(session = %key.short(), error = %why, "refresh failed; session kept");
                Err(RefreshError::ProviderUnavailable(why))
            }
            Err(GrantError::Invalid(why)) => {
                self.counts.invalid.inc();
                tracing::warn!(session = %key.short(), error = %why, "refresh answer refused; session kept");
                Err(RefreshError::ProviderInvalid(why))
            }
        }
    }

    /// No refresh token (the provider gave none): the default access token is used until
    /// it expires, and then the session is over. A token for another audience cannot be
    /// had at all.
    async fn without_refresh_token(&self, current: Arc<LiveSession>, now: u64) -> Outcome {
        if self.resource.is_some() {
            return Err(RefreshError::ProviderInvalid(
                Invalid::NoRefreshTokenForAudience,
            ));
        }
        if current
            .record
            .access_expires_at
            .is_some_and(|exp| now >= exp)
        {
            let cause = EndCause::ExpiredWithoutRefreshToken;
            self.sessions.end(self.key, cause.reason()).await?;
            return Err(RefreshError::Ended(cause));
        }
        Ok(current)
    }
}

/// Completes a refresh's claims from the userinfo endpoint (when `oidc.userinfo` is on).
/// If it cannot answer, the session keeps the claims it had, whole: a new ID token's
/// alone would drop what userinfo added, and the tokens are good either way.
async fn with_userinfo(provider: &Provider, current: &LiveSession, tokens: &mut TokenSet) {
    match provider
        .userinfo(&tokens.access_token, &current.record.sub)
        .await
    {
        Ok(userinfo) => tokens.userinfo = userinfo,
        Err(e) => {
            tracing::warn!(session = %current.key.short(), error = %e, "userinfo failed after a refresh; claims kept");
            tokens.id_claims = None;
        }
    }
}

/// Refuses an answer that cannot be stored: an access token a header cannot carry, or an
/// ID token about someone else (OpenID Connect Core §12.2: same `sub`).
fn check_answer(current: &LiveSession, tokens: TokenSet) -> Result<TokenSet, GrantError> {
    if bearer_header(&tokens.access_token).is_none() {
        return Err(Invalid::AccessTokenNotHeader.into());
    }
    if let Some(claims) = &tokens.id_claims {
        if claims.get("sub").and_then(|v| v.as_str()) != Some(current.record.sub.as_str()) {
            return Err(Invalid::IdTokenSubject.into());
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::respond::Reject;

    #[tokio::test]
    async fn a_panicked_refresh_is_an_internal_error_not_the_providers() {
        let join = tokio::spawn(async { panic!("a bug of ours") })
            .await
            .expect_err("the task panicked");
        let e = RefreshError::Internal(Arc::new(join));
        assert_eq!(e.to_string(), "internal error: the refresh task panicked");
        let source = std::error::Error::source(&e).expect("the JoinError");
        assert!(source.downcast_ref::<Arc<JoinError>>().is_some());
        let reject = Reject::from(e);
        assert_eq!(reject, Reject::Internal);
        assert_eq!(reject.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn the_cause_of_an_end_is_typed_and_recorded() {
        let e = RefreshError::Ended(EndCause::Refused(Refusal::Code(
            crate::oidc::grant_error::ErrorCode::InvalidGrant,
        )));
        assert_eq!(
            e.to_string(),
            "session ended: refresh refused (invalid_grant)"
        );
        assert!(matches!(
            EndCause::ExpiredWithoutRefreshToken.reason(),
            EndReason::TokensExpired
        ));
        assert_eq!(Reject::from(e), Reject::NoSession);
    }
}
