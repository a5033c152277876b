//! A session the load is driving, as it stands between two of its operations, and
//! the step it takes next.
//!
//! The built-in contract's operations ([`super::ops`]) and a custom flow's
//! ([`super::flow`]) both take a [`LiveSession`] and hand it back, and a flow session
//! carries its [`FlowState`] inside it; keeping both types here, apart from either
//! runner, lets the two runners share them without importing each other.

use http::header::HeaderValue;
use rand::rngs::StdRng;

use crate::flow::cookies::Jar;
use crate::session::{Op, SessionModel};

/// A session the load is driving, and where it is in its life.
#[derive(Debug)]
pub struct LiveSession {
    pub model: SessionModel,
    /// The `Cookie` header the session sends: every cookie its create answer set,
    /// so a sticky balancer's cookie travels with the service's own. Kept as a
    /// header value, checked once, since every request sends it.
    pub(super) cookie: HeaderValue,
    /// Steps done after the create: append 0, read, append 1, read, … (or the steps
    /// of a flow's rounds).
    pub(super) next: u32,
    pub(super) lost: bool,
    /// A custom flow's session: cookie jar, captures, writes (see [`super::flow`]).
    pub(super) flow: Option<Box<FlowState>>,
    /// The replica it sticks to, when the load spreads requests itself with `sticky`.
    pub(super) home: Option<usize>,
}

impl LiveSession {
    /// A session the service just created, identified by `cookie` from now on.
    pub fn new(model: SessionModel, cookie: HeaderValue) -> Self {
        LiveSession {
            model,
            cookie,
            next: 0,
            lost: false,
            flow: None,
            home: None,
        }
    }

    pub(super) fn with_flow(mut self, state: FlowState) -> Self {
        self.flow = Some(Box::new(state));
        self
    }

    /// No step is left, or the session was lost: only the sweep will look at it again.
    pub fn finished(&self, appends: u32) -> bool {
        let per_round = self.flow.as_ref().map_or(2, |f| f.steps_per_round());
        self.lost || self.next >= per_round * appends
    }

    pub(super) fn step(&self) -> Step {
        if self.next % 2 == 0 {
            Step::Append(self.next / 2)
        } else {
            Step::Read
        }
    }
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Append(u32),
    Read,
}

impl Step {
    pub fn op(self) -> Op {
        match self {
            Step::Create => Op::Create,
            Step::Append(_) => Op::Append,
            Step::Read => Op::Read,
        }
    }
}

/// What a flow session carries besides its [`SessionModel`].
#[derive(Debug)]
pub struct FlowState {
    pub(super) jar: Jar,
    /// Captured values, by slot ([`crate::flow::Flow::captures`]).
    pub(super) captures: Vec<Option<String>>,
    /// Writes sent so far: the next write's `k`.
    pub(super) writes: u32,
    pub(super) vu: u64,
    pub(super) seq: u64,
    /// Draws `{{uuid}}`s, seeded from the run's seed and the session.
    pub(super) rng: StdRng,
    /// Operations per round, for [`LiveSession::finished`].
    pub(super) steps_per_round: u32,
    /// A cookie the last exchange set to a new value: evidence, not a verdict (signed
    /// and encrypted cookies change on every save), named in a lost session's detail.
    pub(super) renewed: Option<String>,
    /// When the session's last request was sent, since the start of the load: the
    /// pause before the next one is what an idle timeout measures.
    pub(super) last_sent: std::time::Duration,
}

impl FlowState {
    /// Operations per round (the steps of `flow.steps`).
    pub fn steps_per_round(&self) -> u32 {
        self.steps_per_round
    }
}
