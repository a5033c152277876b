//! One operation as the shard hands it out and gets it back, and the rules every
//! operation runner reads answers by.
//!
//! A [`Job`] goes to an operation runner ([`super::ops`] for the built-in contract,
//! [`super::flow`] for a custom flow) and comes back as a [`Done`] holding everything
//! the shard must record. Who served an answer ([`failed_in`], [`replica`]) and the
//! pause between attempts ([`BACKOFF`]) are the same for both runners, so they live
//! here rather than in one runner that the other would have to import.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use smallvec::SmallVec;
use tokio::time::Instant;

use super::headers::Headers;
use super::session::{LiveSession, Step};
use crate::metrics::{ErrorKind, Outcome};
use crate::session::Anomaly;

/// An operation to run: the next step of `session`, or a new session.
#[derive(Debug)]
pub struct Job {
    pub session: Option<LiveSession>,
    /// When the schedule meant it to start; latency is corrected from here.
    pub intended: Instant,
    /// The closed-model user it belongs to.
    pub user: Option<usize>,
}

/// A finished operation and what it found.
#[derive(Debug)]
pub struct Done {
    /// The session, handed back (None when a create failed).
    pub session: Option<LiveSession>,
    pub user: Option<usize>,
    pub step: Step,
    pub outcome: Outcome,
    pub intended: Instant,
    pub sent: Instant,
    pub finished: Instant,
    /// Failed attempts, by kind, with the replica each was answered by or sent to
    /// when the answer names one.
    pub errors: Vec<(ErrorKind, Option<String>)>,
    /// `X-Served-By` of every answer: one, unless the operation was retried.
    pub served_by: SmallVec<[Arc<str>; 1]>,
    pub anomalies: Vec<Anomaly>,
    /// Sessions found lost after a pause longer than the app's idle timeout: expiry
    /// by design, not an anomaly.
    pub expired: u64,
    /// The run stopped before the operation's time came: nothing was sent.
    pub skipped: bool,
}

impl Done {
    /// An operation not yet run: failed until it succeeds.
    pub fn new(step: Step, intended: Instant, user: Option<usize>) -> Self {
        Done {
            session: None,
            user,
            step,
            outcome: Outcome::Error,
            intended,
            sent: intended,
            finished: intended,
            errors: Vec::new(),
            served_by: SmallVec::new(),
            anomalies: Vec::new(),
            expired: 0,
            skipped: false,
        }
    }
}

/// Pause after a failed attempt, multiplied by the attempt number.
pub(super) const BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// The replica a failed answer names: the one that answered (`X-Served-By`), or
/// the one the balancer had sent the request to when it made the error itself.
pub(super) fn failed_in(headers: &Headers) -> Option<&str> {
    headers
        .text("x-served-by")
        .or_else(|| headers.text(crate::target::SERVER_HEADER))
}

/// Names of replicas kept per load thread, at most this many (a service that puts
/// something new in `X-Served-By` on every answer gets a fresh copy each time).
const MAX_NAMES: usize = 1024;

thread_local! {
    static NAMES: RefCell<HashSet<Arc<str>>> = RefCell::new(HashSet::new());
}

/// `name` shared: the same few replicas answer millions of requests, and a copy of
/// the name for each would be an allocation per request.
pub(super) fn replica(name: &str) -> Arc<str> {
    NAMES.with_borrow_mut(|names| {
        if let Some(known) = names.get(name) {
            return Arc::clone(known);
        }
        let new: Arc<str> = name.into();
        if names.len() < MAX_NAMES {
            names.insert(Arc::clone(&new));
        }
        new
    })
}
