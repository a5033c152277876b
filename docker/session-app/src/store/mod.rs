//! Session storage behind one small trait, one module per `MODE`.
//!
//! The HTTP handlers are generic over [`Store`], so a new mode is a new module plus one match
//! arm in [`crate::build_and_serve`]; the handlers and the contract they implement stay
//! untouched. The modes: [`redis`] (correct), [`memory`] (loses sessions with the replica),
//! [`write_behind`] (a local cache flushed to Redis every second: loses the last second of
//! acknowledged writes with the replica) and [`memcached`] (a pool of nodes: loses the
//! sessions of a lost node).
//! Static dispatch (a generic, not `dyn Store`) keeps the trait free of boxed futures.

use std::fmt;
use std::future::Future;

use serde::Serialize;

pub mod memcached;
pub mod memory;
pub mod redis;
pub mod write_behind;

/// A session exactly as the contract puts it on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub session: String,
    /// Number of distinct ops applied so far; always equals `items.len()`.
    pub version: u64,
    pub items: Vec<String>,
}

impl Session {
    pub fn new(id: &str) -> Self {
        Session {
            session: id.to_owned(),
            version: 0,
            items: Vec::new(),
        }
    }
}

/// The store could not answer; the handlers turn this into 503 so a client (or the harness)
/// can tell "the service is degraded" apart from "the session is gone" (404).
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Session ids reaching a store are always canonical (lowercase, hyphenated) UUIDs: the handlers
/// reject anything else as an unknown session, so stores may build keys from them verbatim.
pub trait Store: Send + Sync + 'static {
    /// Persists a fresh session (version 0, no items) under `id`.
    fn create(&self, id: &str) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// Appends `item` unless `op` was already applied to this session, and returns the state
    /// after the call either way. `Ok(None)` means the session does not exist.
    ///
    /// The op-id check, the append and the version bump must be one atomic step: a replica
    /// can die between any two instructions, and the client will then retry with the same op.
    fn append(
        &self,
        id: &str,
        op: &str,
        item: &str,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// `Ok(None)` means the session does not exist (never created, expired, or lost).
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Cheap reachability check for `/healthz`.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}
