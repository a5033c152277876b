//! `MODE=memory`: sessions live in this process only.
//!
//! This mode is wrong on purpose. It behaves perfectly while the replica lives, so it passes
//! any test that does not kill replicas; when the replica dies its sessions vanish and every
//! other replica answers 404 for them. It exists so the harness can prove it notices that.
//! Sessions never expire here: a load test is short and a replica's lifetime is shorter.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::{Session, Store, StoreError};

struct Entry {
    session: Session,
    applied_ops: HashSet<String>,
}

#[derive(Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Poisoning only means another request panicked mid-update; every update here is a
    /// handful of infallible steps, so the map is still consistent and we keep serving.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    async fn create(&self, id: &str) -> Result<Session, StoreError> {
        let session = Session::new(id);
        self.lock().insert(
            id.to_owned(),
            Entry {
                session: session.clone(),
                applied_ops: HashSet::new(),
            },
        );
        Ok(session)
    }

    async fn append(&self, id: &str, op: &str, item: &str) -> Result<Option<Session>, StoreError> {
        let mut sessions = self.lock();
        let Some(entry) = sessions.get_mut(id) else {
            return Ok(None);
        };
        if entry.applied_ops.insert(op.to_owned()) {
            entry.session.items.push(item.to_owned());
            entry.session.version += 1;
        }
        Ok(Some(entry.session.clone()))
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.lock().get(id).map(|e| e.session.clone()))
    }

    /// There is no store to lose, which is exactly why this mode looks healthy to a load
    /// balancer right up to the moment it loses everything.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
