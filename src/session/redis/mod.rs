//! The `redis` store: many gateway instances on one Redis, standalone or Cluster.
//!
//! Key layout (the `{…}` hash tag puts everything of one session in one slot, so a Lua
//! script may touch it atomically on a Cluster):
//!
//! - `tg:{<store key hex>}:s` — hash: `v` version, `e` expires_at, `x` sealed value,
//!   `i` the index keys it is listed under; expires at `e` (`PEXPIREAT`);
//! - `tg:{<store key hex>}:l` — the refresh lease: the holder's id, with a time to live;
//! - `tg:i:s:<hash>` / `tg:i:i:<hash>` — sorted sets by `sub` / `sid`, members the store
//!   keys, scored by their expiry: members past their score are trimmed on every write
//!   and read, and the set itself expires with its last member, so nothing leaks;
//! - `tg:o:<hex>` — remember-once keys (`SET NX PX`);
//! - channel `tg:changes` — notices of writes and deletes (see `notices`).
//!
//! Index sets live in other slots than their sessions, so they are kept by separate
//! commands after the atomic write: a crash in between leaves at most a member that
//! `find` checks, drops, and that expires with its score anyway.

mod leases;
mod notices;

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisError, RedisFuture, Script, Value};
use tokio::sync::{broadcast, watch, OnceCell};

use super::record::{IndexKey, StoreKey};
use super::store::{Change, Expect, Indexes, SessionStore, StoreError, Stored, Written};
use super::unix_now;

/// Where the store lives: `session.redis_url` or `session.redis_cluster`.
#[derive(Clone, Debug)]
pub enum Target {
    Standalone(String),
    Cluster(Vec<String>),
}

/// A command waits this long for an answer; a Redis that is down fails fast, as 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

pub struct RedisStore {
    conn: Conn,
    /// Random per store handle: notices carry it so an instance ignores its own.
    instance: [u8; 16],
    changes: broadcast::Sender<Change>,
    /// True while the subscriber has a live subscription.
    subscribed: watch::Receiver<bool>,
    /// The subscriber task; aborted on drop, which closes `changes` for every reader.
    listener: tokio::task::JoinHandle<()>,
}

enum Conn {
    /// Reconnects by itself after a failure.
    Standalone(ConnectionManager),
    /// Connected on first use, so the gateway starts (not ready) while Redis is down; the
    /// cluster connection then follows slot moves and reconnects by itself.
    Cluster(Box<ClusterClient>, OnceCell<ClusterConnection>),
}

/// A connection for one call: either kind, as one `ConnectionLike`.
#[derive(Clone)]
enum Live {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Live {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Live::Standalone(c) => c.req_packed_command(cmd),
            Live::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Live::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Live::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Live::Standalone(c) => c.get_db(),
            Live::Cluster(c) => c.get_db(),
        }
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Sets the store up without waiting for Redis: connections are made on first use and
    /// remade after failures. Must run inside a Tokio runtime (it starts the subscriber).
    pub fn open(target: &Target) -> Result<RedisStore, String> {
        let bad_url = |url: &str, e: RedisError| format!("redis URL {url:?} is not usable: {e}");
        let (conn, subscribe_to) = match target {
            Target::Standalone(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| bad_url(url, e))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(|e| bad_url(url, e))?;
                (Conn::Standalone(manager), vec![client])
            }
            Target::Cluster(urls) => {
                let cluster = ClusterClient::builder(urls.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2)
                    .build()
                    .map_err(|e| format!("redis cluster nodes are not usable: {e}"))?;
                let clients = urls
                    .iter()
                    .map(|u| redis::Client::open(u.as_str()).map_err(|e| bad_url(u, e)))
                    .collect::<Result<Vec<_>, _>>()?;
                (Conn::Cluster(Box::new(cluster), OnceCell::new()), clients)
            }
        };
        let instance = crate::crypto::random_bytes::<16>();
        let (changes, _) = broadcast::channel(1024);
        let (live, subscribed) = watch::channel(false);
        let listener = tokio::spawn(notices::listen(
            subscribe_to,
            instance,
            changes.clone(),
            live,
        ));
        Ok(RedisStore {
            conn,
            instance,
            changes,
            subscribed,
            listener,
        })
    }

    /// Waits up to `limit` for the change notices to be subscribed; false if they are not.
    /// Notices sent before that are not received (at start nothing is cached yet).
    pub async fn wait_subscribed(&self, limit: Duration) -> bool {
        let mut rx = self.subscribed.clone();
        tokio::time::timeout(limit, rx.wait_for(|live| *live))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    async fn live(&self) -> Result<Live, StoreError> {
        match &self.conn {
            Conn::Standalone(m) => Ok(Live::Standalone(m.clone())),
            Conn::Cluster(client, cell) => cell
                .get_or_try_init(|| client.get_async_connection())
                .await
                .map(|c| Live::Cluster(c.clone()))
                .map_err(unavailable),
        }
    }

    /// Tells the other instances that `key` changed. A lost notice is not an error of the
    /// write (it happened); readers resynchronise on `Change::Lost`.
    async fn announce(&self, conn: &mut Live, key: &StoreKey) {
        let mut msg = Vec::with_capacity(48);
        msg.extend_from_slice(&self.instance);
        msg.extend_from_slice(&key.0);
        let sent: Result<(), RedisError> = redis::cmd("PUBLISH")
            .arg(notices::CHANNEL)
            .arg(msg)
            .query_async(conn)
            .await;
        if let Err(e) = sent {
            tracing::warn!(session = %key.short(), error = %e, "change notice not sent");
        }
    }

    /// Lists `key` under `indexes` until `expires_at`, and trims what expired.
    async fn list(
        conn: &mut Live,
        key: &StoreKey,
        indexes: &[String],
        expires_at: u64,
    ) -> Result<(), RedisError> {
        let member = key.hex();
        for ik in indexes {
            redis::pipe()
                .zadd(ik, &member, expires_at)
                .zrembyscore(ik, "-inf", unix_now())
                // The set lives as long as its longest-lived member: NX gives a new set
                // its deadline, GT only ever moves it later.
                .cmd("EXPIREAT")
                .arg(ik)
                .arg(expires_at)
                .arg("NX")
                .cmd("EXPIREAT")
                .arg(ik)
                .arg(expires_at)
                .arg("GT")
                .exec_async(conn)
                .await?;
        }
        Ok(())
    }

    async fn unlist(conn: &mut Live, key: &StoreKey, indexes: &[String]) -> Result<(), RedisError> {
        let member = key.hex();
        for ik in indexes {
            redis::cmd("ZREM")
                .arg(ik)
                .arg(&member)
                .exec_async(conn)
                .await?;
        }
        Ok(())
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

fn session_key(key: &StoreKey) -> String {
    format!("tg:{{{}}}:s", key.hex())
}

fn lease_key(key: &StoreKey) -> String {
    format!("tg:{{{}}}:l", key.hex())
}

fn index_key(ik: &IndexKey) -> String {
    let (kind, hash) = match ik {
        IndexKey::Sub(h) => ('s', h),
        IndexKey::Sid(h) => ('i', h),
    };
    format!("tg:i:{kind}:{}", StoreKey(*hash).hex())
}

fn index_keys(ix: &Indexes) -> Vec<String> {
    std::iter::once(&ix.sub)
        .chain(ix.sid.as_ref())
        .map(index_key)
        .collect()
}

/// The index keys a record stored in its `i` field, space-separated.
fn parse_index_field(field: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(field)
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compare-and-set write of a session hash. ARGV: expected version ("" = absent), value,
/// expires_at, index field, now. Returns {new version, old index field}, or {0, ""} when
/// the expectation does not hold.
const PUT: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'e', 'i')
local live = cur[1] and tonumber(cur[2]) > tonumber(ARGV[5])
local ver
if ARGV[1] == '' then
  if live then return {0, ''} end
  ver = 1
else
  if (not live) or cur[1] ~= ARGV[1] then return {0, ''} end
  ver = tonumber(cur[1]) + 1
end
redis.call('HSET', KEYS[1], 'v', ver, 'e', ARGV[3], 'x', ARGV[2], 'i', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[3]) * 1000)
return {ver, cur[3] or ''}
";

/// Deletes a session hash. Returns {expires_at, index field}, or {0, ""} if absent.
const DELETE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'e', 'i')
if not cur[1] then return {0, ''} end
redis.call('DEL', KEYS[1])
return {tonumber(cur[1]), cur[2] or ''}
";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Stored>, StoreError> {
        let mut conn = self.live().await?;
        let (version, expires_at, value): (Option<u64>, Option<u64>, Option<Vec<u8>>) =
            redis::cmd("HMGET")
                .arg(session_key(key))
                .arg(&["v", "e", "x"])
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
        Ok(match (version, expires_at, value) {
            (Some(version), Some(expires_at), Some(value)) if expires_at > unix_now() => {
                Some(Stored {
                    value,
                    version,
                    expires_at,
                })
            }
            _ => None,
        })
    }

    async fn put(
        &self,
        key: &StoreKey,
        value: Vec<u8>,
        expires_at: u64,
        indexes: &Indexes,
        expect: Expect,
    ) -> Result<Written, StoreError> {
        let mut conn = self.live().await?;
        let expected = match expect {
            Expect::Absent => String::new(),
            Expect::Version(v) => v.to_string(),
        };
        let new_indexes = index_keys(indexes);
        let (version, old): (u64, Vec<u8>) = Script::new(PUT)
            .key(session_key(key))
            .arg(expected)
            .arg(value)
            .arg(expires_at)
            .arg(new_indexes.join(" "))
            .arg(unix_now())
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if version == 0 {
            return Ok(Written::Conflict);
        }
        let dropped: Vec<String> = parse_index_field(&old)
            .into_iter()
            .filter(|ik| !new_indexes.contains(ik))
            .collect();
        Self::unlist(&mut conn, key, &dropped)
            .await
            .map_err(unavailable)?;
        Self::list(&mut conn, key, &new_indexes, expires_at)
            .await
            .map_err(unavailable)?;
        self.announce(&mut conn, key).await;
        Ok(Written::Ok(version))
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let mut conn = self.live().await?;
        let (expires_at, indexes): (u64, Vec<u8>) = Script::new(DELETE)
            .key(session_key(key))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if expires_at == 0 {
            return Ok(false);
        }
        Self::unlist(&mut conn, key, &parse_index_field(&indexes))
            .await
            .map_err(unavailable)?;
        self.announce(&mut conn, key).await;
        Ok(expires_at > unix_now())
    }

    async fn find(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let mut conn = self.live().await?;
        let ik = index_key(index);
        let now = unix_now();
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(&ik)
            .arg(format!("({now}"))
            .arg("+inf")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(&ik)
            .arg("-inf")
            .arg(now)
            .exec_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut live = Vec::with_capacity(members.len());
        for member in members {
            let Some(key) = StoreKey::from_hex(&member) else {
                continue;
            };
            // The member outlived its session only if a write stopped half-way: check,
            // and drop it.
            let exists: bool = redis::cmd("EXISTS")
                .arg(session_key(&key))
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if exists {
                live.push(key);
            } else {
                Self::unlist(&mut conn, &key, std::slice::from_ref(&ik))
                    .await
                    .map_err(unavailable)?;
            }
        }
        Ok(live)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.live().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn remember_once(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, StoreError> {
        let mut conn = self.live().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("tg:o:{}", StoreKey(*key).hex()))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(set.is_some())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }
}
