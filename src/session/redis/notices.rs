//! Change notices between instances: every write and delete is published on one channel
//! as `instance id (16 bytes) | store key (32 bytes)`; each instance's subscriber passes
//! on the keys other instances changed, so their caches drop stale copies.
//!
//! One plain `SUBSCRIBE` connection to one node is enough on a Cluster too: `PUBLISH`
//! reaches every node's subscribers. When that connection drops, the subscriber reports
//! `Change::Lost` (the cache cannot know what it missed, so it forgets everything),
//! reconnects with backoff — trying each configured node in turn — and resubscribes.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use crate::session::store::Change;
use crate::session::StoreKey;

pub const CHANNEL: &str = "tg:changes";

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Runs until the store is dropped (which aborts it). `live` tells whether a subscription
/// is in place right now.
pub async fn listen(
    nodes: Vec<redis::Client>,
    own: [u8; 16],
    out: broadcast::Sender<Change>,
    live: watch::Sender<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut warned = false;
    loop {
        for client in &nodes {
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = match tokio::time::timeout(super::CONNECT_TIMEOUT * 2, subscribed).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    if !warned {
                        tracing::warn!(error = %e, "redis change notices: cannot subscribe; retrying");
                        warned = true;
                    }
                    continue;
                }
                Err(_) => continue,
            };
            if warned {
                tracing::info!("redis change notices: subscribed again");
            }
            warned = false;
            backoff = BACKOFF_MIN;
            // Anything changed before this subscription may have been missed.
            let _ = out.send(Change::Lost);
            live.send_replace(true);
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                if let Some(key) = parse(msg.get_payload_bytes(), &own) {
                    // No receiver (nothing cached yet) is not an error.
                    let _ = out.send(Change::Key(key));
                }
            }
            live.send_replace(false);
            tracing::warn!("redis change notices: connection lost; cached sessions dropped");
            let _ = out.send(Change::Lost);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// The key of a notice from another instance; `None` for our own or a malformed one.
fn parse(payload: &[u8], own: &[u8; 16]) -> Option<StoreKey> {
    if payload.len() != 48 || &payload[..16] == own {
        return None;
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&payload[16..]);
    Some(StoreKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_malformed_notices_are_ignored() {
        let own = [1u8; 16];
        let mut other = vec![2u8; 16];
        other.extend_from_slice(&[9u8; 32]);
        assert_eq!(parse(&other, &own), Some(StoreKey([9; 32])));
        let mut mine = own.to_vec();
        mine.extend_from_slice(&[9u8; 32]);
        assert_eq!(parse(&mine, &own), None);
        assert_eq!(parse(&other[..40], &own), None);
    }
}
