//! `MODE=memcached`: sessions in a pool of memcached nodes, each session on one node chosen
//! by hashing its key, the way memcached clients spread keys (there is no replication:
//! memcached nodes do not know each other).
//!
//! This mode is correct while every node lives, and shows what a pool does when one does
//! not: the sessions hashed to a lost node are gone with it. A node that is down answers
//! nothing, so its sessions get 503s; one that comes back empty answers "not found", so
//! its sessions are lost (404), while every other node's sessions are untouched.
//!
//! # Which node
//!
//! Rendezvous hashing: a session lives on the node whose FNV-1a hash of `node + key` is
//! highest. Every replica computes the same answer from the same node list with no shared
//! state, and a node added or removed moves only its own share of the keys.
//!
//! # Atomic appends
//!
//! A session is one value, the JSON of its version, items and applied op ids. An append
//! reads it with `gets`, adds the item unless the op was applied, and writes it back with
//! `cas`: a concurrent append in between makes the `cas` fail and the append start again,
//! so the op-id check, the append and the version bump are one step, as the contract asks.
//!
//! The protocol is memcached's text protocol, spoken directly over TCP: a connection per
//! call is enough for a demo service, and keeps a node that comes back from being talked
//! to over a dead connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Session, Store, StoreError};

/// Upper bound for one call to a node, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an append retries a `cas` that lost to a concurrent append.
const CAS_ATTEMPTS: usize = 16;

/// A session as stored: the wire form plus the op ids already applied.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u64,
    items: Vec<String>,
    ops: Vec<String>,
}

impl Stored {
    fn session(&self, id: &str) -> Session {
        Session {
            session: id.to_owned(),
            version: self.version,
            items: self.items.clone(),
        }
    }
}

/// How a session's value is written.
#[derive(Debug, Clone, Copy)]
enum Write {
    /// Only if the key does not exist: a new session.
    Add,
    /// Only if the value is still the one `gets` read with this token.
    Cas(u64),
}

/// What a node did with a write.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    Stored,
    /// `add` of a key that exists, `cas` of a value changed since the `gets`.
    Raced,
    /// `cas` of a key that is gone.
    Gone,
}

pub struct MemcachedStore {
    /// `host:port` of every node, in the order given.
    nodes: Vec<String>,
    ttl_secs: u64,
}

/// The node list of a `memcached://host:port,host:port` URL, or why it is not one.
pub fn parse_nodes(url: &str) -> Result<Vec<String>, String> {
    let list = url
        .strip_prefix("memcached://")
        .ok_or("a memcached pool is written memcached://host:port,host:port")?;
    let nodes: Vec<String> = list
        .trim_end_matches('/')
        .split(',')
        .map(|n| n.trim().to_owned())
        .collect();
    for node in &nodes {
        let port = node
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
            return Err(format!("{node:?} is not host:port"));
        }
    }
    Ok(nodes)
}

/// FNV-1a, 64 bits: small, stable across builds and machines, and spread well enough to
/// pick a node.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl MemcachedStore {
    pub fn new(url: &str, ttl_secs: u64) -> Result<Self, String> {
        Ok(MemcachedStore {
            nodes: parse_nodes(url)?,
            ttl_secs,
        })
    }

    /// The node that holds `key` (rendezvous hashing).
    fn node_of(&self, key: &str) -> &str {
        self.nodes
            .iter()
            .max_by_key(|node| fnv1a(&[node.as_bytes(), b"/", key.as_bytes()]))
            .expect("a pool has at least one node")
    }

    fn key(id: &str) -> String {
        format!("sess:{id}")
    }

    /// Sends `request` to `node` and reads the answer up to its last line, within
    /// [`CALL_TIMEOUT`].
    async fn call(&self, node: &str, request: &[u8]) -> Result<Answer, StoreError> {
        let exchange = async {
            let mut stream = TcpStream::connect(node).await?;
            stream.write_all(request).await?;
            Answer::read(&mut BufReader::new(stream)).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(StoreError(format!("memcached {node}: {e}"))),
            Err(_) => Err(StoreError(format!(
                "memcached {node}: no answer within {} ms",
                CALL_TIMEOUT.as_millis()
            ))),
        }
    }

    /// The session's stored value and its cas token, `None` when the node has no such key.
    async fn load(&self, id: &str) -> Result<Option<(Stored, u64)>, StoreError> {
        let key = Self::key(id);
        let node = self.node_of(&key);
        let answer = self
            .call(node, format!("gets {key}\r\n").as_bytes())
            .await?;
        let Some((value, cas)) = answer.value else {
            return Ok(None);
        };
        let stored = serde_json::from_slice(&value)
            .map_err(|e| StoreError(format!("memcached {node}: {key} holds no session: {e}")))?;
        Ok(Some((stored, cas)))
    }

    /// Writes `stored` under the session's key, as `write` says.
    async fn store(&self, id: &str, write: Write, stored: &Stored) -> Result<Written, StoreError> {
        let key = Self::key(id);
        let node = self.node_of(&key);
        let value = serde_json::to_vec(stored).expect("a session serialises");
        let head = match write {
            Write::Add => format!("add {key} 0 {} {}\r\n", self.ttl_secs, value.len()),
            Write::Cas(token) => {
                format!("cas {key} 0 {} {} {token}\r\n", self.ttl_secs, value.len())
            }
        };
        let mut request = head.into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        let answer = self.call(node, &request).await?;
        match answer.status.as_str() {
            "STORED" => Ok(Written::Stored),
            "NOT_STORED" | "EXISTS" => Ok(Written::Raced),
            "NOT_FOUND" => Ok(Written::Gone),
            other => Err(StoreError(format!(
                "memcached {node}: {write:?} answered {other:?}"
            ))),
        }
    }
}

/// What a node answered: its last line, and the one value a `gets` found.
struct Answer {
    status: String,
    value: Option<(Vec<u8>, u64)>,
}

impl Answer {
    /// Reads `VALUE <key> <flags> <bytes> <cas>` blocks until a line that ends the answer.
    async fn read(reader: &mut BufReader<TcpStream>) -> std::io::Result<Answer> {
        let mut value = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            let Some(header) = line.strip_prefix("VALUE ") else {
                return Ok(Answer {
                    status: line.to_owned(),
                    value,
                });
            };
            let fields: Vec<&str> = header.split(' ').collect();
            let bad = || std::io::Error::other(format!("a VALUE line of no known form: {line:?}"));
            let bytes: usize = fields.get(2).and_then(|b| b.parse().ok()).ok_or_else(bad)?;
            let cas: u64 = fields.get(3).and_then(|c| c.parse().ok()).ok_or_else(bad)?;
            let mut data = vec![0; bytes + 2];
            reader.read_exact(&mut data).await?;
            data.truncate(bytes);
            value = Some((data, cas));
        }
    }
}

impl Store for MemcachedStore {
    async fn create(&self, id: &str) -> Result<Session, StoreError> {
        match self.store(id, Write::Add, &Stored::default()).await? {
            Written::Stored => Ok(Session::new(id)),
            other => Err(StoreError(format!(
                "memcached: a new session's key was taken ({other:?})"
            ))),
        }
    }

    async fn append(&self, id: &str, op: &str, item: &str) -> Result<Option<Session>, StoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut stored, cas)) = self.load(id).await? else {
                return Ok(None);
            };
            if stored.ops.iter().any(|o| o == op) {
                return Ok(Some(stored.session(id)));
            }
            stored.ops.push(op.to_owned());
            stored.items.push(item.to_owned());
            stored.version += 1;
            match self.store(id, Write::Cas(cas), &stored).await? {
                Written::Stored => return Ok(Some(stored.session(id))),
                Written::Gone => return Ok(None),
                Written::Raced => {}
            }
        }
        Err(StoreError(format!(
            "memcached: {CAS_ATTEMPTS} concurrent appends in a row won over this one"
        )))
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.load(id).await?.map(|(stored, _)| stored.session(id)))
    }

    /// Healthy while any node answers: a pool with a node down still serves every
    /// session of the others, and a replica that said otherwise would be taken out of the
    /// balancer with all of them (as a cache client's health check, this is the usual
    /// choice).
    async fn ping(&self) -> Result<(), StoreError> {
        let mut why = Vec::new();
        for node in &self.nodes {
            match self.call(node, b"version\r\n").await {
                Ok(answer) if answer.status.starts_with("VERSION") => return Ok(()),
                Ok(answer) => why.push(format!("{node} answered {:?}", answer.status)),
                Err(e) => why.push(e.0),
            }
        }
        Err(StoreError(format!(
            "no memcached node answers: {}",
            why.join("; ")
        )))
    }
}
