//! Where sessions live: Redis (correct: any replica serves any session) or a map in this
//! process (deliberately broken: a session lives and dies with the replica that made it).
//!
//! A session is a user name and a counter. An increment carries an op id (a hidden form
//! field, like a CSRF token); a resent form with the same op id counts once, so the
//! harness may retry an increment whose answer it never got.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

/// The store could not be reached or answered garbage: the request gets a 503.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

pub trait Store: Send + Sync {
    /// Creates a session for `user` with the counter at 0; returns its id.
    fn create(&self, user: &str) -> Result<String, StoreError>;
    /// The counter of session `id`, `None` if the session is unknown.
    fn count(&self, id: &str) -> Result<Option<u64>, StoreError>;
    /// Adds one for op `op` unless that op was applied before; the counter after it,
    /// `None` if the session is unknown.
    fn increment(&self, id: &str, op: &str) -> Result<Option<u64>, StoreError>;
    fn ping(&self) -> Result<(), StoreError>;
}

/// 128 random bits in hex, from the kernel: session ids must not be guessable.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("/dev/urandom is readable");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` could be one of ours; anything else is unknown without asking the store.
pub fn plausible_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sessions in a local map: the broken mode.
#[derive(Default)]
pub struct Memory {
    sessions: Mutex<HashMap<String, (u64, HashSet<String>)>>,
}

impl Store for Memory {
    fn create(&self, _user: &str) -> Result<String, StoreError> {
        let id = new_session_id();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.insert(id.clone(), (0, HashSet::new()));
        Ok(id)
    }

    fn count(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.get(id).map(|(count, _)| *count))
    }

    fn increment(&self, id: &str, op: &str) -> Result<Option<u64>, StoreError> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        Ok(sessions.get_mut(id).map(|(count, ops)| {
            if ops.insert(op.to_string()) {
                *count += 1;
            }
            *count
        }))
    }

    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Sessions in Redis: a hash per session and a set of applied op ids beside it, both
/// changed by one Lua script so a replica killed mid-request leaves no half-applied op.
pub struct Redis {
    client: redis::Client,
    /// Idle connections; a request takes one or opens a new one.
    pool: Mutex<Vec<redis::Connection>>,
    ttl_secs: u64,
}

const TIMEOUT: Duration = Duration::from_secs(1);

const INCREMENT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'count', 1) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], 'count'))
";

impl Redis {
    pub fn new(url: &str, ttl_secs: u64) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(err)?;
        Ok(Redis {
            client,
            pool: Mutex::new(Vec::new()),
            ttl_secs,
        })
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not pooled.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = self
                    .client
                    .get_connection_with_timeout(TIMEOUT)
                    .map_err(err)?;
                conn.set_read_timeout(Some(TIMEOUT)).map_err(err)?;
                conn.set_write_timeout(Some(TIMEOUT)).map_err(err)?;
                conn
            }
        };
        let result = f(&mut conn).map_err(err)?;
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
        Ok(result)
    }
}

fn key(id: &str) -> String {
    format!("counter:session:{id}")
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(e.to_string())
}

impl Store for Redis {
    fn create(&self, user: &str) -> Result<String, StoreError> {
        let id = new_session_id();
        self.with(|c| {
            redis::pipe()
                .atomic()
                .hset_multiple(key(&id), &[("user", user), ("count", "0")])
                .ignore()
                .expire(key(&id), self.ttl_secs as i64)
                .ignore()
                .query::<()>(c)
        })?;
        Ok(id)
    }

    fn count(&self, id: &str) -> Result<Option<u64>, StoreError> {
        self.with(|c| redis::cmd("HGET").arg(key(id)).arg("count").query(c))
    }

    fn increment(&self, id: &str, op: &str) -> Result<Option<u64>, StoreError> {
        let count: i64 = self.with(|c| {
            redis::Script::new(INCREMENT)
                .key(key(id))
                .key(format!("counter:ops:{id}"))
                .arg(op)
                .arg(self.ttl_secs)
                .invoke(c)
        })?;
        Ok(u64::try_from(count).ok())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_counts_each_op_once() {
        let store = Memory::default();
        let id = store.create("ann").unwrap();
        assert!(plausible_id(&id), "{id}");
        assert_eq!(store.count(&id).unwrap(), Some(0));
        assert_eq!(store.increment(&id, "a").unwrap(), Some(1));
        assert_eq!(store.increment(&id, "a").unwrap(), Some(1));
        assert_eq!(store.increment(&id, "b").unwrap(), Some(2));
        assert_eq!(store.increment("nope", "c").unwrap(), None);
        assert_eq!(store.count("nope").unwrap(), None);
    }
}
