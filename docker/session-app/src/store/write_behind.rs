//! `MODE=write-behind`: appends are acknowledged from a process-local cache and written to
//! Redis asynchronously, every `FLUSH_INTERVAL_MS` (default 1000).
//!
//! This mode is wrong on purpose, more subtly than `memory`. Sessions are created in Redis
//! synchronously, so when a replica dies its sessions survive and another replica serves them:
//! nothing is ever *lost* as a whole session. But every append acknowledged since the last
//! flush exists only in the dead replica's cache, so a SIGKILL silently loses up to one flush
//! interval of acknowledged writes: the session comes back older than the client was told.
//! The harness must report that as lost writes, not lost sessions.
//!
//! The cache is per replica and is never re-read from Redis once filled, so this mode only
//! looks correct while a balancer keeps each session on one replica (sticky cookie). Without
//! stickiness, replicas serve diverging copies of a session.
//!
//! # Calls
//!
//! - `create`: written through to Redis (the same script and layout as `MODE=redis`), then
//!   cached as a clean entry.
//! - `append`: loads the session into the cache if needed (version, items *and* the applied
//!   op ids, so the op-id check works against the cached state), applies the op unless it was
//!   already applied, queues it as pending, and answers at once. Nothing reaches Redis here.
//! - `get`: from the cache, else from Redis (and cached).
//! - `ping`: PING Redis, like `MODE=redis`.
//!
//! # Flushing
//!
//! The cache keeps, per session, the ops applied since the last successful flush, in order.
//! A flush sends each session's pending ops to Redis in one Lua script ([`FLUSH_LUA`]) that
//! replays them through the same op-id check as `MODE=redis`'s append (`SADD` to the ops
//! set, and only if new, `RPUSH` the item and bump the version), then refreshes the TTL. So a
//! flush is idempotent: one that is retried after a failure, or whose reply was lost, or that
//! was interrupted by shutdown and sent again, applies every op exactly once. Writes from other
//! replicas (no stickiness) are merged rather than overwritten.
//!
//! Pending ops are removed from the cache only after Redis confirmed them, and only the ones
//! that were sent (appends that arrive during a flush wait for the next one). A failed call
//! stops the round; everything not yet confirmed stays pending for the next tick. If the
//! session no longer exists in Redis (expired, or the store lost its data), the script
//! writes nothing and the session is dropped from the cache, so this replica then answers 404
//! like every other one instead of serving a session the store no longer has.
//!
//! The flusher runs inside the server future ([`crate::build_and_serve`]), not as a detached
//! task: when that future is dropped (a killed process, an aborted test task) flushing stops
//! with it. After a graceful shutdown (SIGTERM) the server flushes once more before returning,
//! so a clean stop loses nothing; only a kill loses the last interval.
//!
//! Cached sessions do not expire locally (like `MODE=memory`); the Redis TTL is refreshed
//! whenever a session's pending ops are flushed.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::{RedisResult, Script};
use tokio::time::MissedTickBehavior;

use super::redis::{items_key, meta_key, ops_key, RedisStore};
use super::{Session, Store, StoreError};
use crate::config::StoreWait;

/// KEYS: meta hash, items list, ops set. Returns `{found, version, items, ops}`; `found` is 0
/// for an unknown session. One script so all four come from the same instant.
const LOAD_LUA: &str = r#"
local version = redis.call('HGET', KEYS[1], 'version')
if not version then
  return {0, 0, {}, {}}
end
return {1, tonumber(version), redis.call('LRANGE', KEYS[2], 0, -1), redis.call('SMEMBERS', KEYS[3])}
"#;

/// KEYS: meta hash, items list, ops set. ARGV: ttl seconds, then op id and item pairs in the
/// order they were acknowledged. Returns -1 if the session does not exist (nothing written),
/// else the number of ops that were new to Redis.
pub const FLUSH_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
local applied = 0
for i = 2, #ARGV, 2 do
  if redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    applied = applied + 1
  end
end
if applied > 0 then
  redis.call('HINCRBY', KEYS[1], 'version', applied)
end
local ttl = tonumber(ARGV[1])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return applied
"#;

struct Entry {
    session: Session,
    applied_ops: HashSet<String>,
    /// `(op, item)` applied here but not yet confirmed by Redis, oldest first. The session is
    /// dirty exactly when this is non-empty.
    pending: Vec<(String, String)>,
}

impl Entry {
    fn loaded(id: &str, version: u64, items: Vec<String>, ops: Vec<String>) -> Self {
        Entry {
            session: Session {
                session: id.to_owned(),
                version,
                items,
            },
            applied_ops: ops.into_iter().collect(),
            pending: Vec::new(),
        }
    }
}

/// What one flush round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Sessions whose pending ops Redis confirmed.
    pub flushed: usize,
    /// Sessions dropped from the cache because Redis no longer has them, with their pending ops.
    pub vanished: usize,
}

pub struct WriteBehindStore {
    redis: RedisStore,
    ttl_secs: u64,
    interval: Duration,
    cache: Mutex<HashMap<String, Entry>>,
    /// Held for a whole flush round: the periodic flusher and the final flush at shutdown never
    /// overlap, which is what makes "drop the first n pending ops once confirmed" sound.
    flushing: tokio::sync::Mutex<()>,
    load: Script,
    flush: Script,
}

impl WriteBehindStore {
    /// Parses the URL but does not connect. `interval` is clamped to at least 1 ms; `wait`
    /// is [`RedisStore`]'s, for the creates and the flushes.
    pub fn new(
        url: &str,
        ttl_secs: u64,
        interval: Duration,
        wait: Option<StoreWait>,
    ) -> RedisResult<Self> {
        Ok(WriteBehindStore {
            redis: RedisStore::new(url, ttl_secs, wait)?,
            ttl_secs,
            interval: interval.max(Duration::from_millis(1)),
            cache: Mutex::new(HashMap::new()),
            flushing: tokio::sync::Mutex::new(()),
            load: Script::new(LOAD_LUA),
            flush: Script::new(FLUSH_LUA),
        })
    }

    /// Poisoning only means another request panicked mid-update; every update here is a
    /// handful of infallible steps, so the map is still consistent and we keep serving.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the session from Redis into the cache unless it is cached already, and runs `f`
    /// on the cached entry. `Ok(None)` if neither the cache nor Redis knows the session.
    async fn with_entry<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Entry) -> T,
    ) -> Result<Option<T>, StoreError> {
        if let Some(entry) = self.lock().get_mut(id) {
            return Ok(Some(f(entry)));
        }
        let (found, version, items, ops): (i64, u64, Vec<String>, Vec<String>) = self
            .redis
            .run_script(
                self.load
                    .key(meta_key(id))
                    .key(items_key(id))
                    .key(ops_key(id)),
                false,
            )
            .await?;
        if found != 1 {
            return Ok(None);
        }
        let mut cache = self.lock();
        // A concurrent request may have loaded (and already changed) it meanwhile: keep that.
        let entry = cache
            .entry(id.to_owned())
            .or_insert_with(|| Entry::loaded(id, version, items, ops));
        Ok(Some(f(entry)))
    }

    /// Number of sessions with acknowledged ops not yet confirmed by Redis.
    pub fn dirty_sessions(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| !e.pending.is_empty())
            .count()
    }

    /// One flush round: sends every dirty session's pending ops to Redis, one script call per
    /// session. Stops at the first failed call; what was not confirmed stays pending.
    pub async fn flush(&self) -> Result<FlushReport, StoreError> {
        let _round = self.flushing.lock().await;
        let batch: Vec<(String, Vec<(String, String)>)> = self
            .lock()
            .iter()
            .filter(|(_, e)| !e.pending.is_empty())
            .map(|(id, e)| (id.clone(), e.pending.clone()))
            .collect();

        let mut report = FlushReport::default();
        for (id, ops) in batch {
            let mut call = self.flush.key(meta_key(&id));
            call.key(items_key(&id))
                .key(ops_key(&id))
                .arg(self.ttl_secs);
            for (op, item) in &ops {
                call.arg(op).arg(item);
            }
            let applied: i64 = self.redis.run_script(&call, true).await?;
            let mut cache = self.lock();
            if applied < 0 {
                cache.remove(&id);
                report.vanished += 1;
            } else if let Some(entry) = cache.get_mut(&id) {
                // Only this round removes pending ops and new ones are pushed at the end, so
                // the first `ops.len()` are exactly the ones Redis just confirmed.
                entry.pending.drain(..ops.len());
                report.flushed += 1;
            }
        }
        Ok(report)
    }

    /// Flushes every interval, forever; meant to run alongside the server and be dropped with
    /// it. Logs when flushing starts failing and when it recovers, not on every failed tick.
    pub async fn flush_periodically(self: Arc<Self>) -> Infallible {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate, and there is nothing to flush yet
        let mut failing = false;
        loop {
            ticks.tick().await;
            match self.flush().await {
                Ok(report) => {
                    if failing {
                        eprintln!("session-app: write-behind flush recovered");
                        failing = false;
                    }
                    if report.vanished > 0 {
                        eprintln!(
                            "session-app: write-behind flush: {} session(s) no longer in the store, \
                             their unflushed writes are dropped",
                            report.vanished
                        );
                    }
                }
                Err(e) => {
                    if !failing {
                        eprintln!(
                            "session-app: write-behind flush failed ({e}); {} dirty session(s) \
                             kept, retrying every {} ms",
                            self.dirty_sessions(),
                            self.interval.as_millis()
                        );
                        failing = true;
                    }
                }
            }
        }
    }
}

impl Store for WriteBehindStore {
    async fn create(&self, id: &str) -> Result<Session, StoreError> {
        let session = self.redis.create(id).await?;
        self.lock()
            .insert(id.to_owned(), Entry::loaded(id, 0, Vec::new(), Vec::new()));
        Ok(session)
    }

    async fn append(&self, id: &str, op: &str, item: &str) -> Result<Option<Session>, StoreError> {
        self.with_entry(id, |entry| {
            if entry.applied_ops.insert(op.to_owned()) {
                entry.session.items.push(item.to_owned());
                entry.session.version += 1;
                entry.pending.push((op.to_owned(), item.to_owned()));
            }
            entry.session.clone()
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        self.with_entry(id, |entry| entry.session.clone()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.redis.ping().await
    }
}
