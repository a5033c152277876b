//! `MODE=redis`: the correct, stateless mode. Every byte of session state lives in Redis, so
//! any replica can serve any session and a replica can die at any instant without loss.
//!
//! # Key layout
//!
//! For a session `ID` (a canonical UUID), all keys share the hash tag `{ID}` so they land in
//! one slot should the store ever be a Redis Cluster (Lua scripts need all their keys there):
//!
//! | key | type | content |
//! |---|---|---|
//! | `sess:{ID}` | hash | field `version`: number of applied ops. Its existence *is* the session's existence. |
//! | `sess:{ID}:items` | list | the items, in append order (absent while empty) |
//! | `sess:{ID}:ops` | set | op ids already applied (absent while empty) |
//!
//! All three carry the same TTL (`SESSION_TTL_SECS`), set at creation and refreshed by every
//! append, so they expire together.
//!
//! # Failure behaviour
//!
//! Writes are single Lua scripts, which Redis runs atomically: a replica killed mid-request
//! either got its script to Redis (fully applied) or did not (nothing applied), and the
//! client's retry with the same op id is then applied at most once. Every call is bounded by a
//! timeout so a dead or paused store yields a 503 quickly instead of piling up hung requests.
//! The connection is opened lazily, so the service starts (and reports 503 on `/healthz`)
//! while the store is still down, and recovers by itself when the store comes back.
//!
//! # Redis Cluster
//!
//! `SESSION_STORE=redis-cluster://node:6379,node:6379` names a Redis Cluster by some of its
//! nodes: the client learns the slot map from them and follows `MOVED` and `ASK` itself.
//! The hash tag puts a session's keys in one slot, so its scripts run on one primary.
//!
//! # Replication
//!
//! Redis replicates asynchronously: a write the primary acknowledged may not have reached
//! a replica when the primary dies, and a failover then loses it. With
//! `SESSION_STORE_WAIT=N` every write is followed by `WAIT N timeout` on the same
//! connection, and a write fewer than N replicas hold in time is answered 503: the client
//! was never told it happened, so a failover cannot lose an acknowledged write. (The
//! write may still be on the primary; the client's retry with the same op id applies it
//! once.)
//!
//! `MODE=write-behind` ([`super::write_behind`]) reuses this store for its synchronous calls
//! (create, ping), this key layout, and [`RedisStore::run_script`] for its own scripts.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, ScriptInvocation,
    Value,
};
use tokio::sync::OnceCell;

use super::{Session, Store, StoreError};
use crate::config::StoreWait;

/// Upper bound for one store call, including (re)connecting.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// `/healthz` must answer well within a typical probe interval.
const PING_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// KEYS: meta hash, items list, ops set. ARGV: op id, item, ttl seconds.
/// Returns `{found, version, items}`; `found` is 0 for an unknown session.
const APPEND_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {0, 0, {}}
end
if redis.call('SADD', KEYS[3], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'version', 1)
end
local ttl = tonumber(ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
local version = tonumber(redis.call('HGET', KEYS[1], 'version'))
return {1, version, redis.call('LRANGE', KEYS[2], 0, -1)}
"#;

/// KEYS: meta hash, items list. A script (rather than two reads) so version and items always
/// come from the same instant, even while appends run concurrently.
const READ_LUA: &str = r#"
local version = redis.call('HGET', KEYS[1], 'version')
if not version then
  return {0, 0, {}}
end
return {1, tonumber(version), redis.call('LRANGE', KEYS[2], 0, -1)}
"#;

/// KEYS: meta hash. ARGV: ttl seconds.
const CREATE_LUA: &str = r#"
redis.call('HSET', KEYS[1], 'version', 0)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"#;

pub(super) fn meta_key(id: &str) -> String {
    format!("sess:{{{id}}}")
}

pub(super) fn items_key(id: &str) -> String {
    format!("sess:{{{id}}}:items")
}

pub(super) fn ops_key(id: &str) -> String {
    format!("sess:{{{id}}}:ops")
}

/// The scheme of a Redis Cluster's `SESSION_STORE`.
pub const CLUSTER_SCHEME: &str = "redis-cluster://";

/// Where the store is: one server, or a Redis Cluster known by some of its nodes.
enum Target {
    Single(Client),
    Cluster(ClusterClient),
}

impl Target {
    /// Parses `url` (a `redis://` URL, or `redis-cluster://` and the nodes' `host:port`s)
    /// without connecting.
    fn open(url: &str) -> RedisResult<Target> {
        let Some(nodes) = url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Target::Single(Client::open(url)?));
        };
        let nodes: Vec<String> = (nodes.trim_end_matches('/').split(','))
            .map(|node| format!("redis://{}", node.trim()))
            .collect();
        // As with one server: no retries behind the caller's back, short timeouts, so a
        // primary that is gone fails this call and the next one finds its successor.
        let client = ClusterClientBuilder::new(nodes)
            .retries(0)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()?;
        Ok(Target::Cluster(client))
    }
}

/// Whether `url` names a store this mode can use (it does not connect).
pub fn check_url(url: &str) -> RedisResult<()> {
    Target::open(url).map(|_| ())
}

/// A connection to either kind of [`Target`]; scripts and commands run on both alike.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

pub struct RedisStore {
    target: Target,
    /// `WAIT` for replicas after every write, when asked ([`StoreWait`]).
    wait: Option<StoreWait>,
    /// Filled on first successful connect; the manager then reconnects by itself after a
    /// store restart. Lazy so that a store which is down at boot does not stop the service.
    conn: OnceCell<Connection>,
    ttl_secs: u64,
    append: Script,
    read: Script,
    create: Script,
}

impl RedisStore {
    /// Parses the URL but does not connect.
    pub fn new(url: &str, ttl_secs: u64, wait: Option<StoreWait>) -> RedisResult<Self> {
        Ok(RedisStore {
            target: Target::open(url)?,
            wait,
            conn: OnceCell::new(),
            ttl_secs,
            append: Script::new(APPEND_LUA),
            read: Script::new(READ_LUA),
            create: Script::new(CREATE_LUA),
        })
    }

    async fn connection(&self) -> RedisResult<Connection> {
        // The manager's default backoff (1 s, then 100 s capped at 60 s) would leave the service
        // answering 503 for a minute after a store blip. With no retries, a failed reconnect
        // just fails the current call, and the next call starts a fresh attempt, so recovery
        // happens on the first request after the store is back.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        self.conn
            .get_or_try_init(|| async {
                Ok(match &self.target {
                    Target::Single(client) => Connection::Single(
                        ConnectionManager::new_with_config(client.clone(), config).await?,
                    ),
                    Target::Cluster(client) => {
                        Connection::Cluster(client.get_async_connection().await?)
                    }
                })
            })
            .await
            .cloned()
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError(format!(
                "redis: no answer within {} ms",
                limit.as_millis()
            ))),
        }
    }

    /// Runs a prepared script invocation with this store's connection handling and timeout;
    /// a script that writes is then waited on ([`Self::replicated`]).
    pub(super) async fn run_script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
        writes: bool,
    ) -> Result<T, StoreError> {
        let wait = self.wait.filter(|_| writes);
        let limit =
            CALL_TIMEOUT + wait.map_or(Duration::ZERO, |w| Duration::from_millis(w.timeout_ms));
        let (value, acknowledged) = self
            .bounded(limit, async {
                let mut conn = self.connection().await?;
                let value = invocation.invoke_async(&mut conn).await?;
                let acknowledged = match wait {
                    Some(w) => Some(
                        redis::cmd("WAIT")
                            .arg(w.replicas)
                            .arg(w.timeout_ms)
                            .query_async::<u32>(&mut conn)
                            .await?,
                    ),
                    None => None,
                };
                Ok((value, acknowledged))
            })
            .await?;
        match (wait, acknowledged) {
            (Some(w), Some(n)) if n < w.replicas => Err(StoreError(format!(
                "redis: WAIT: {n} of {} replicas hold the write after {} ms",
                w.replicas, w.timeout_ms
            ))),
            _ => Ok(value),
        }
    }

    fn to_session(id: &str, (found, version, items): (i64, u64, Vec<String>)) -> Option<Session> {
        (found == 1).then(|| Session {
            session: id.to_owned(),
            version,
            items,
        })
    }
}

impl Store for RedisStore {
    async fn create(&self, id: &str) -> Result<Session, StoreError> {
        let mut invocation = self.create.key(meta_key(id));
        invocation.arg(self.ttl_secs);
        self.run_script::<i64>(&invocation, true).await?;
        Ok(Session::new(id))
    }

    async fn append(&self, id: &str, op: &str, item: &str) -> Result<Option<Session>, StoreError> {
        let mut invocation = self.append.key(meta_key(id));
        invocation
            .key(items_key(id))
            .key(ops_key(id))
            .arg(op)
            .arg(item)
            .arg(self.ttl_secs);
        let raw = self.run_script(&invocation, true).await?;
        Ok(Self::to_session(id, raw))
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let mut invocation = self.read.key(meta_key(id));
        invocation.key(items_key(id));
        let raw = self.run_script(&invocation, false).await?;
        Ok(Self::to_session(id, raw))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(PING_TIMEOUT, async {
            let mut conn = self.connection().await?;
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
    }
}
