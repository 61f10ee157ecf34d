//! One refresh per session across instances: the in-process single-flight
//! (`token::refresh`) decides which request of this instance refreshes; the store's lease
//! decides which instance does. The loser does not call the provider: it polls the store
//! until the winner's tokens are there, and uses them.
//!
//! The lease is renewed while the provider call runs, so a slow provider does not hand
//! the refresh to a second instance; a holder that dies frees it after one time to live.
//! The write that follows is still fenced (see `refresh::redeem`): it applies only over the
//! record whose refresh token was redeemed, so a holder whose lease lapsed cannot
//! overwrite a newer refresh.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::refresh::RefreshError;
use crate::session::{unix_now, LiveSession, Sessions, StoreError, StoreKey};

/// How long a lease lasts unless renewed: longer than a provider call usually takes.
const LEASE_TTL: Duration = Duration::from_secs(10);
/// Renewed this often while the refresh runs: three chances before it would lapse.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How often a waiting instance looks for the winner's record.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How long a waiting instance waits for the winner (below the request's own limit).
const WAIT_LIMIT: Duration = Duration::from_secs(20);

type Outcome = Result<Arc<LiveSession>, RefreshError>;

fn store_err(e: StoreError) -> RefreshError {
    RefreshError::from(e)
}

/// Runs `refresh` on the current record of `key` while holding the session's lease, or
/// returns the record another instance refreshed meanwhile. `resource` names the token
/// that is due (`None`: the default audience).
pub async fn exclusive<F, Fut>(
    sessions: &Sessions,
    key: StoreKey,
    resource: Option<&str>,
    refresh: F,
) -> Outcome
where
    F: FnOnce(Arc<LiveSession>) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let holder = crate::crypto::random_token();
    let store = sessions.store();
    let deadline = Instant::now() + WAIT_LIMIT;
    while !store
        .lease_acquire(&key, &holder, LEASE_TTL)
        .await
        .map_err(store_err)?
    {
        // Another instance is refreshing: its tokens land in the store.
        let current = current(sessions, key).await?;
        if is_fresh(&current, resource) {
            return Ok(current);
        }
        if Instant::now() >= deadline {
            return Err(RefreshError::Timeout);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    let outcome = async {
        // Re-check under the lease: the last holder may have finished just now.
        let current = current(sessions, key).await?;
        if is_fresh(&current, resource) {
            return Ok(current);
        }
        renewing(sessions, key, &holder, refresh(current)).await
    }
    .await;
    if let Err(e) = store.lease_release(&key, &holder).await {
        // It lapses on its own after LEASE_TTL.
        tracing::warn!(session = %key.short(), error = %e, "refresh lease not released");
    }
    outcome
}

/// The record as the store has it now; `Gone` when the session is no more.
async fn current(sessions: &Sessions, key: StoreKey) -> Outcome {
    sessions
        .load(key)
        .await
        .map_err(store_err)?
        .ok_or(RefreshError::Gone)
}

/// True when the token for `resource` is not due (someone refreshed it).
fn is_fresh(live: &LiveSession, resource: Option<&str>) -> bool {
    live.fresh_bearer(resource, unix_now()).is_some()
}

/// Runs `work`, renewing the lease meanwhile.
async fn renewing<T>(
    sessions: &Sessions,
    key: StoreKey,
    holder: &str,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = tick.tick() => {
                match sessions.store().lease_renew(&key, holder, LEASE_TTL).await {
                    Ok(true) => {}
                    // The refresh goes on: its write is fenced by the refresh token.
                    Ok(false) => tracing::warn!(session = %key.short(), "refresh lease lapsed during the refresh"),
                    Err(e) => tracing::warn!(session = %key.short(), error = %e, "refresh lease not renewed"),
                }
            }
        }
    }
}
