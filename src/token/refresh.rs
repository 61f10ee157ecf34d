//! One refresh per session at a time (habit 9: single-flight with a re-check).
//!
//! The first request that finds its session's token due starts the refresh as a task of
//! its own; every other request of that session that arrives meanwhile waits on the same
//! task and shares its outcome, success or failure. The task, not the request, owns the
//! exchange: a browser that goes away mid-refresh cannot drop a rotated refresh token on
//! the floor. Before it calls the provider the task re-reads the record from the store,
//! so a refresh that someone else already completed is not repeated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::oidc::{GrantError, ProviderCell};
use crate::session::{bearer_header, unix_now, LiveSession, Sessions, StoreKey};

/// How a refresh ended, shared by every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The provider refused the refresh token: the session has been ended.
    #[error("session ended: refresh refused by the provider ({0})")]
    Ended(String),
    /// The session was already gone.
    #[error("session gone")]
    Gone,
    /// Provider not reachable or not discovered yet; session kept.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The provider answered with something we refuse to use; session kept.
    #[error("provider answer refused: {0}")]
    ProviderInvalid(String),
    /// The session store failed; session state unknown, nothing changed by us.
    #[error("session store unavailable: {0}")]
    Store(String),
    /// Waited longer than the refresh may take.
    #[error("refresh did not finish in time")]
    Timeout,
}

type Outcome = Result<Arc<LiveSession>, RefreshError>;
type InFlight = Shared<BoxFuture<'static, Outcome>>;

pub struct Refresher {
    sessions: Arc<Sessions>,
    provider: Arc<ProviderCell>,
    skew: Duration,
    /// Refreshes under way, by session. A std `Mutex`: held for a map lookup or insert,
    /// never across an await.
    in_flight: Arc<Mutex<HashMap<StoreKey, InFlight>>>,
    wait_limit: Duration,
}

impl Refresher {
    pub fn new(sessions: Arc<Sessions>, provider: Arc<ProviderCell>, skew: Duration) -> Self {
        Refresher {
            sessions,
            provider,
            skew,
            in_flight: Arc::default(),
            wait_limit: Duration::from_secs(30),
        }
    }

    /// The session with an access token that is not due, refreshing it if it is.
    pub async fn fresh(&self, live: Arc<LiveSession>) -> Outcome {
        if !live.needs_refresh(unix_now()) {
            return Ok(live);
        }
        let flight = self.join_or_start(live.key);
        tokio::time::timeout(self.wait_limit, flight)
            .await
            .map_err(|_| RefreshError::Timeout)?
    }

    fn join_or_start(&self, key: StoreKey) -> InFlight {
        let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(&key) {
            return f.clone();
        }
        let sessions = self.sessions.clone();
        let provider = self.provider.clone();
        let skew = self.skew;
        let in_flight = self.in_flight.clone();
        let task = tokio::spawn(async move {
            let outcome = refresh(&sessions, &provider, key, skew).await;
            // Leave the map only after the new record is in the cache: a request that no
            // longer finds the flight finds the fresh token instead.
            in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            outcome
        });
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                Err(RefreshError::ProviderInvalid(format!(
                    "refresh task failed: {e}"
                )))
            })
        }
        .boxed()
        .shared();
        map.insert(key, shared.clone());
        shared
    }
}

async fn refresh(
    sessions: &Sessions,
    provider: &ProviderCell,
    key: StoreKey,
    skew: Duration,
) -> Outcome {
    let store_err = |e: crate::session::StoreError| RefreshError::Store(e.to_string());
    // Re-check under the flight: the store may hold a token someone refreshed already.
    let current = sessions
        .load(key)
        .await
        .map_err(store_err)?
        .ok_or(RefreshError::Gone)?;
    let now = unix_now();
    if !current.needs_refresh(now) {
        return Ok(current);
    }
    // Across instances: one refresh per session under the store's lease; an instance that
    // finds it taken waits for the winner's tokens instead (token::lease).
    super::lease::exclusive(sessions, key, |current| {
        redeem(sessions, provider, key, skew, current)
    })
    .await
}

/// Redeems the refresh token of `current` (read under the lease) at the provider.
async fn redeem(
    sessions: &Sessions,
    provider: &ProviderCell,
    key: StoreKey,
    skew: Duration,
    current: Arc<LiveSession>,
) -> Outcome {
    let store_err = |e: crate::session::StoreError| RefreshError::Store(e.to_string());
    let now = unix_now();
    let Some(refresh_token) = current.record.refresh_token.clone() else {
        // No refresh token (the provider gave none): the access token is used until it
        // expires, and then the session is over.
        if current
            .record
            .access_expires_at
            .is_some_and(|exp| now >= exp)
        {
            sessions.end(key).await.map_err(store_err)?;
            return Err(RefreshError::Ended(
                "access token expired and no refresh token".into(),
            ));
        }
        return Ok(current);
    };
    let provider = provider
        .get()
        .ok_or_else(|| RefreshError::ProviderUnavailable("provider not discovered yet".into()))?;
    match provider.refresh(&refresh_token).await {
        Ok(tokens) => {
            if bearer_header(&tokens.access_token).is_none() {
                return Err(RefreshError::ProviderInvalid(
                    "access token is not a valid header value".into(),
                ));
            }
            tracing::info!(session = %key.short(), rotated = tokens.refresh_token.is_some(), "access token refreshed");
            // Fenced: the tokens go only over the record whose refresh token we redeemed;
            // if another instance refreshed meanwhile (our lease lapsed), its tokens stay.
            let updated = sessions
                .update(key, |s| {
                    if s.refresh_token.as_ref() == Some(&refresh_token) {
                        crate::token::apply(s, &tokens, now, skew);
                    }
                })
                .await
                .map_err(store_err)?;
            updated.ok_or(RefreshError::Gone)
        }
        Err(GrantError::Rejected(code)) => {
            tracing::info!(session = %key.short(), error = %code, "refresh refused; session ended");
            sessions.end(key).await.map_err(store_err)?;
            Err(RefreshError::Ended(code))
        }
        Err(GrantError::Unavailable(m)) => {
            tracing::warn!(session = %key.short(), error = %m, "refresh failed; session kept");
            Err(RefreshError::ProviderUnavailable(m))
        }
        Err(GrantError::Invalid(m)) => {
            tracing::warn!(session = %key.short(), error = %m, "refresh answer refused; session kept");
            Err(RefreshError::ProviderInvalid(m))
        }
    }
}
