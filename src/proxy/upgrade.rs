//! WebSocket (and any HTTP/1.1 `Upgrade`) tunnelling: once both sides have switched
//! protocols, bytes are copied both ways until either side closes — or, for a tunnel
//! opened with a user session's token, until that session ends.
//!
//! The session is looked at every [`WATCH_EVERY`] through the session cache, which every
//! end reaches: a logout or an admin or back-channel end on this instance removes the
//! entry, one on another instance arrives through the store's change feed, and a session
//! past its idle or absolute limit is ended by the look itself. A look does not count as
//! use: an open socket alone does not keep a session from going idle.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::session::{Sessions, StoreKey};

/// How often a tunnel checks that its session still lives: well inside the second
/// within which a tunnel must close after its session ends.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The session a tunnel depends on.
pub struct Watch {
    pub sessions: Arc<Sessions>,
    pub key: StoreKey,
}

pub async fn tunnel(client: OnUpgrade, upstream: OnUpgrade, watch: Option<Watch>) {
    let (client, upstream) = tokio::join!(client, upstream);
    let (Ok(client), Ok(upstream)) = (client, upstream) else {
        tracing::debug!("upgrade did not complete on both sides");
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let Some(watch) = watch else {
        if let Err(e) = copy.await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
        return;
    };
    tokio::select! {
        copied = copy => {
            if let Err(e) = copied {
                tracing::debug!(error = %e, "upgraded connection ended with an error");
            }
        }
        () = session_ends(&watch) => {
            // Both connections close as they drop: the browser sees its socket close.
            tracing::info!(session = %watch.key.short(), "session ended; tunnel closed");
        }
    }
}

/// Resolves once the session is gone. A store that cannot answer keeps the tunnel: an
/// outage is not an end.
async fn session_ends(watch: &Watch) {
    let mut every = tokio::time::interval(WATCH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Ok(None) = watch.sessions.peek(watch.key).await {
            return;
        }
    }
}
