//! The `embedded` store, the default: one node, durable across restarts and crashes.
//!
//! redb keeps everything in one file of copy-on-write B-trees: a commit either happened in
//! full or not at all, so a `kill -9` leaves the last committed state, never a torn record.
//! Every write commits with `Durability::Immediate` (fsync before `put` returns), so a
//! session whose cookie reached the browser is on disk.
//!
//! redb calls block (file I/O, fsync, waiting for the single writer), so each runs on
//! Tokio's blocking pool, never on an async worker. Leases live in this process: the file
//! is locked by the one node that opened it, so no other process can contend.
//!
//! Tables:
//! - `records`: store key → `version | expires_at | sub index | sid index? | value`;
//! - `index`: `kind | hash | store key` → expires_at, so one range scan lists an index;
//! - `expiry`: `expires_at (big-endian) | store key` → (), the sweeper's queue in order;
//! - `once`: key → deadline in Unix milliseconds, the remember-once set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::local::{LocalLeases, OwnLeases};
use super::record::{IndexKey, StoreKey};
use super::store::{Change, Expect, Indexes, SessionStore, StoreError, Stored, Written};
use super::unix_now;

const RECORDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("records");
const INDEX: TableDefinition<[u8; 65], u64> = TableDefinition::new("index");
const EXPIRY: TableDefinition<[u8; 40], ()> = TableDefinition::new("expiry");
const ONCE: TableDefinition<[u8; 32], u64> = TableDefinition::new("once");

/// The file inside `session.path`.
const FILE: &str = "sessions.redb";
/// How often expired records leave the file. Reads never return them in between.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Why the store did not open; each names `session.path`, the key an operator fixes.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("session.path: {0} is in use by another process (the embedded store belongs to one node; run more instances on session.store = \"redis\")")]
    InUse(PathBuf),
    #[error("session.path: cannot open the embedded store at {0}: {1}")]
    Unreadable(PathBuf, String),
}

pub struct EmbeddedStore {
    db: Arc<Database>,
    leases: LocalLeases,
}

/// redb's own page cache. Its default (1 GiB) would let the process grow towards the size
/// of the file; hot sessions are already decrypted in the moka cache above the store, and
/// the operating system's page cache serves the rest of the file.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl EmbeddedStore {
    /// Opens (or creates) the store in the directory `dir`, recovering from an unclean
    /// stop if needed, and starts the sweeper on the current Tokio runtime, if any.
    /// Blocks while it opens.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, OpenError> {
        let file = dir.join(FILE);
        let unreadable =
            |e: &dyn std::fmt::Display| OpenError::Unreadable(file.clone(), e.to_string());
        std::fs::create_dir_all(dir).map_err(|e| unreadable(&e))?;
        let db = match redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(OpenError::InUse(file)),
            Err(e) => return Err(unreadable(&e)),
        };
        let init = || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(RECORDS)?;
            tx.open_table(INDEX)?;
            tx.open_table(EXPIRY)?;
            tx.open_table(ONCE)?;
            tx.commit()?;
            Ok(())
        };
        init().map_err(|e| unreadable(&e))?;
        let db = Arc::new(db);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // A weak handle: the sweeper ends once the store is dropped, so a restarted
            // gateway in the same process can open the file again.
            rt.spawn(sweep_forever(Arc::downgrade(&db)));
        }
        Ok(EmbeddedStore {
            db,
            leases: LocalLeases::default(),
        })
    }

    /// Removes expired records, their index entries and forgotten once-keys now; returns
    /// how many records left. The background sweeper calls this every minute.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        run(&self.db, |db| sweep(db, unix_now())).await
    }
}

async fn sweep_forever(db: Weak<Database>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(db) = db.upgrade() else { return };
        match run(&db, |db| sweep(db, unix_now())).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "expired sessions swept"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired sessions failed"),
        }
    }
}

/// Runs a redb operation on the blocking pool.
async fn run<T: Send + 'static>(
    db: &Arc<Database>,
    op: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, StoreError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || op(&db))
        .await
        .map_err(|e| StoreError::Unavailable(format!("embedded store task failed: {e}")))?
        .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))
}

// === record layout

struct Record {
    version: u64,
    expires_at: u64,
    indexes: Indexes,
    value: Vec<u8>,
}

const HEAD: usize = 8 + 8 + 32 + 1;

fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + 32 + r.value.len());
    out.extend_from_slice(&r.version.to_be_bytes());
    out.extend_from_slice(&r.expires_at.to_be_bytes());
    out.extend_from_slice(index_hash(&r.indexes.sub));
    match &r.indexes.sid {
        Some(sid) => {
            out.push(1);
            out.extend_from_slice(index_hash(sid));
        }
        None => out.push(0),
    }
    out.extend_from_slice(&r.value);
    out
}

fn decode(bytes: &[u8]) -> Result<Record, redb::Error> {
    let corrupt = || redb::Error::Corrupted("session record too short".into());
    if bytes.len() < HEAD {
        return Err(corrupt());
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let hash_at = |at: usize| {
        let mut h = [0u8; 32];
        h.copy_from_slice(&bytes[at..at + 32]);
        h
    };
    let (sid, value_at) = match bytes[48] {
        1 if bytes.len() >= HEAD + 32 => (Some(IndexKey::Sid(hash_at(HEAD))), HEAD + 32),
        0 => (None, HEAD),
        _ => return Err(corrupt()),
    };
    Ok(Record {
        version: u64_at(0),
        expires_at: u64_at(8),
        indexes: Indexes {
            sub: IndexKey::Sub(hash_at(16)),
            sid,
        },
        value: bytes[value_at..].to_vec(),
    })
}

fn index_hash(k: &IndexKey) -> &[u8; 32] {
    match k {
        IndexKey::Sub(h) | IndexKey::Sid(h) => h,
    }
}

/// `kind | hash`: the prefix of every entry of one index.
fn index_prefix(k: &IndexKey) -> [u8; 33] {
    let mut out = [0u8; 33];
    out[0] = match k {
        IndexKey::Sub(_) => b's',
        IndexKey::Sid(_) => b'i',
    };
    out[1..].copy_from_slice(index_hash(k));
    out
}

fn index_entry(k: &IndexKey, key: &StoreKey) -> [u8; 65] {
    let mut out = [0u8; 65];
    out[..33].copy_from_slice(&index_prefix(k));
    out[33..].copy_from_slice(&key.0);
    out
}

fn expiry_entry(expires_at: u64, key: &StoreKey) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&expires_at.to_be_bytes());
    out[8..].copy_from_slice(&key.0);
    out
}

fn each_index(ix: &Indexes) -> impl Iterator<Item = &IndexKey> {
    std::iter::once(&ix.sub).chain(ix.sid.as_ref())
}

// === transactions

/// Removes `key`'s record and everything that points at it; the record, if there was one.
fn unlink(tx: &WriteTransaction, key: &StoreKey) -> Result<Option<Record>, redb::Error> {
    let mut records = tx.open_table(RECORDS)?;
    let Some(old) = records
        .remove(key.0)?
        .map(|g| decode(g.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    let mut index = tx.open_table(INDEX)?;
    for ik in each_index(&old.indexes) {
        index.remove(index_entry(ik, key))?;
    }
    tx.open_table(EXPIRY)?
        .remove(expiry_entry(old.expires_at, key))?;
    Ok(Some(old))
}

fn put(
    db: &Database,
    key: StoreKey,
    value: Vec<u8>,
    expires_at: u64,
    indexes: Indexes,
    expect: Expect,
) -> Result<Written, redb::Error> {
    let now = unix_now();
    let tx = db.begin_write()?;
    let current = tx
        .open_table(RECORDS)?
        .get(key.0)?
        .map(|g| decode(g.value()))
        .transpose()?
        .filter(|r| r.expires_at > now);
    let version = match (expect, &current) {
        (Expect::Absent, None) => 1,
        (Expect::Version(v), Some(r)) if r.version == v => v + 1,
        // Dropping the transaction aborts it: nothing was written.
        _ => return Ok(Written::Conflict),
    };
    unlink(&tx, &key)?;
    let record = Record {
        version,
        expires_at,
        indexes,
        value,
    };
    tx.open_table(RECORDS)?
        .insert(key.0, encode(&record).as_slice())?;
    let mut index = tx.open_table(INDEX)?;
    for ik in each_index(&record.indexes) {
        index.insert(index_entry(ik, &key), expires_at)?;
    }
    drop(index);
    tx.open_table(EXPIRY)?
        .insert(expiry_entry(expires_at, &key), ())?;
    tx.commit()?;
    Ok(Written::Ok(version))
}

fn sweep(db: &Database, now: u64) -> Result<usize, redb::Error> {
    // Bounded batches keep each write transaction (and the writer lock) short.
    const BATCH: usize = 1000;
    let mut removed = 0;
    loop {
        let tx = db.begin_write()?;
        let due: Vec<StoreKey> = {
            let expiry = tx.open_table(EXPIRY)?;
            let mut due = Vec::new();
            for entry in expiry.range(..=expiry_entry(now, &StoreKey([0xff; 32])))? {
                let (k, _) = entry?;
                let mut key = [0u8; 32];
                key.copy_from_slice(&k.value()[8..]);
                due.push(StoreKey(key));
                if due.len() == BATCH {
                    break;
                }
            }
            due
        };
        for key in &due {
            unlink(&tx, key)?;
        }
        let now_ms = unix_now_ms();
        tx.open_table(ONCE)?.retain(|_, until| until > now_ms)?;
        tx.commit()?;
        removed += due.len();
        if due.len() < BATCH {
            return Ok(removed);
        }
    }
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl OwnLeases for EmbeddedStore {
    fn leases(&self) -> &LocalLeases {
        &self.leases
    }
}

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn get(&self, key: &StoreKey) -> Result<Option<Stored>, StoreError> {
        let key = *key;
        run(&self.db, move |db| {
            let tx = db.begin_read()?;
            let found = tx.open_table(RECORDS)?.get(key.0)?;
            let Some(record) = found.map(|g| decode(g.value())).transpose()? else {
                return Ok(None);
            };
            Ok((record.expires_at > unix_now()).then_some(Stored {
                value: record.value,
                version: record.version,
                expires_at: record.expires_at,
            }))
        })
        .await
    }

    async fn put(
        &self,
        key: &StoreKey,
        value: Vec<u8>,
        expires_at: u64,
        indexes: &Indexes,
        expect: Expect,
    ) -> Result<Written, StoreError> {
        let (key, indexes) = (*key, indexes.clone());
        run(&self.db, move |db| {
            put(db, key, value, expires_at, indexes, expect)
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let key = *key;
        run(&self.db, move |db| {
            let tx = db.begin_write()?;
            let old = unlink(&tx, &key)?;
            tx.commit()?;
            Ok(old.is_some_and(|r| r.expires_at > unix_now()))
        })
        .await
    }

    async fn find(&self, index: &IndexKey) -> Result<Vec<StoreKey>, StoreError> {
        let prefix = index_prefix(index);
        run(&self.db, move |db| {
            let (mut low, mut high) = ([0u8; 65], [0xffu8; 65]);
            low[..33].copy_from_slice(&prefix);
            high[..33].copy_from_slice(&prefix);
            let now = unix_now();
            let tx = db.begin_read()?;
            let mut live = Vec::new();
            for entry in tx.open_table(INDEX)?.range(low..=high)? {
                let (k, expires_at) = entry?;
                if expires_at.value() > now {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&k.value()[33..]);
                    live.push(StoreKey(key));
                }
            }
            Ok(live)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        run(&self.db, |db| {
            db.begin_read()?.open_table(RECORDS)?;
            Ok(())
        })
        .await
    }

    /// Kept in the file: a restart does not forget what was seen.
    async fn remember_once(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, StoreError> {
        let key = *key;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        run(&self.db, move |db| {
            let now = unix_now_ms();
            let tx = db.begin_write()?;
            let mut once = tx.open_table(ONCE)?;
            if once.get(key)?.is_some_and(|until| until.value() > now) {
                return Ok(false);
            }
            once.insert(key, now.saturating_add(ttl_ms))?;
            drop(once);
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// One node owns the file: no other instance can change it.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
