//! The refresh lease of a session (`tg:{<store key hex>}:l`): the holder's id, with a
//! time to live, taken, renewed and released by Lua scripts that check the holder.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::{lease_key, millis, unavailable, RedisStore};
use crate::session::record::StoreKey;
use crate::session::store::{Leases, StoreError};

/// ARGV: holder, ttl ms. Takes a free lease, or extends one's own.
const LEASE_ACQUIRE: &str = r"
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

const LEASE_RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

const LEASE_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

#[async_trait]
impl Leases for RedisStore {
    async fn lease_acquire(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.lease_call(LEASE_ACQUIRE, key, holder, Some(ttl)).await
    }

    async fn lease_renew(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.lease_call(LEASE_RENEW, key, holder, Some(ttl)).await
    }

    async fn lease_release(&self, key: &StoreKey, holder: &str) -> Result<bool, StoreError> {
        self.lease_call(LEASE_RELEASE, key, holder, None).await
    }
}

impl RedisStore {
    async fn lease_call(
        &self,
        script: &str,
        key: &StoreKey,
        holder: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.live().await?;
        let script = Script::new(script);
        let mut call = script.key(lease_key(key));
        call.arg(holder);
        if let Some(ttl) = ttl {
            call.arg(millis(ttl));
        }
        let done: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(done == 1)
    }
}
