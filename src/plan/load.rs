//! The session traffic: how many operations, arriving how, and the open model's rate
//! over time.

use std::time::Duration;

/// How late the open model may start an operation so that it shares a wake-up of
/// its load thread with those due after it, unless `[load] start_window` says
/// otherwise: at 40 000 operations a second twenty-one share one, and the thread uses
/// about a third of the CPU per request it would waking for each; at 4000 a second
/// none do (see [`crate::load::pacing::Schedule::wake_at`]).
pub const DEFAULT_START_WINDOW: Duration = Duration::from_micros(500);

/// The session traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub model: Model,
    /// Appends per session; each is followed by a read, so a session is
    /// `1 + 2 × appends_per_session` operations.
    pub appends_per_session: u32,
    /// Measured from the start of the load; intervals inside it are left out of the
    /// run's statistics (never out of the checks: a loss in warm-up is a loss).
    pub warmup: Duration,
    /// Stop after this many operations, if the duration has not ended first.
    pub operations: Option<u64>,
    pub request_timeout: Duration,
    /// How often an append whose outcome is unknown is sent again with the same op id.
    pub retries: u32,
    /// Reuse connections (HTTP/1.1 keep-alive).
    pub keep_alive: bool,
    /// Idle connections kept in the pool.
    pub max_idle_connections: usize,
    /// Whom the load trusts on `https://` URLs (`[load.tls]`).
    pub tls: super::TlsPlan,
    /// `[flow]`: sessions run as these HTTP steps instead of the session contract;
    /// `appends_per_session` then counts rounds of `flow.steps`.
    pub flow: Option<std::sync::Arc<crate::flow::Flow>>,
    /// Load threads (`[load] threads`): the sessions, the open model's schedule and
    /// the histograms are split between them, and merged when reported.
    pub threads: usize,
    /// Connections open at once per target and load thread (`[load]
    /// max_connections`); a request beyond them waits for one.
    pub max_connections: usize,
}

impl LoadPlan {
    pub fn ops_per_session(&self) -> u64 {
        match &self.flow {
            Some(flow) => flow.ops_per_session(self.appends_per_session),
            None => 1 + 2 * u64::from(self.appends_per_session),
        }
    }
}

/// How operations arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Operations arrive on a clock, whether or not earlier ones finished; new sessions
    /// arrive at `rate / ops_per_session`.
    Open {
        profile: RateProfile,
        /// Operations in flight at once; beyond it an operation is a missed start.
        max_in_flight: usize,
        /// About how long a session waits between two of its operations: the
        /// harness keeps `rate × session_interval` sessions live.
        session_interval: Duration,
        /// How late an operation may start so that it shares a wake-up of the load
        /// thread with the operations due after it (`[load] start_window`).
        start_window: Duration,
    },
    /// A fixed number of virtual users, each with one operation in flight.
    Closed { users: usize, think: Think },
}

impl Model {
    /// One line for people: "open, 200 ops/s" or "closed, 16 users".
    pub fn describe(&self) -> String {
        match self {
            Model::Open { profile, .. } if profile.stages.is_empty() => {
                format!("open, {} ops/s", profile.start)
            }
            Model::Open { profile, .. } => format!(
                "open, {} → {} ops/s in {} stages",
                profile.start,
                profile.stages.last().map_or(profile.start, |s| s.to),
                profile.stages.len()
            ),
            Model::Closed { users, .. } => format!("closed, {users} users"),
        }
    }
}

/// Pause of a closed-model user between two operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Think {
    Fixed(Duration),
    /// Exponentially distributed with this mean, drawn from the seeded RNG.
    Exponential(Duration),
}

/// One stage: ramp linearly from the previous rate to `to` over `over`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub to: f64,
    pub over: Duration,
}

/// Operations per second over time.
#[derive(Debug, Clone, PartialEq)]
pub struct RateProfile {
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl RateProfile {
    /// A constant rate.
    pub fn constant(rate: f64) -> Self {
        RateProfile {
            start: rate,
            stages: Vec::new(),
        }
    }

    /// The rate at `t`.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut begin = Duration::ZERO;
        for stage in &self.stages {
            let end = begin + stage.over;
            if t < end {
                let f = (t - begin).as_secs_f64() / stage.over.as_secs_f64();
                return from + (stage.to - from) * f;
            }
            from = stage.to;
            begin = end;
        }
        from
    }

    /// When operation `i` (counting from 0) is due, measured from the start of the
    /// load; `None` if the rate has dropped to zero for good before it.
    pub fn due(&self, i: u64) -> Option<Duration> {
        // Operation i is due when the cumulative count reaches i.
        let mut need = i as f64;
        let mut from = self.start;
        let mut begin = 0.0_f64;
        for stage in &self.stages {
            let len = stage.over.as_secs_f64();
            let slope = (stage.to - from) / len;
            let count = (from + stage.to) / 2.0 * len;
            if need < count {
                // Solve from*t + slope*t²/2 = need for t in [0, len).
                let t = if slope.abs() < 1e-12 {
                    need / from
                } else {
                    (-from + (from * from + 2.0 * slope * need).max(0.0).sqrt()) / slope
                };
                return Some(Duration::from_secs_f64(begin + t.clamp(0.0, len)));
            }
            need -= count;
            from = stage.to;
            begin += len;
        }
        (from > 0.0).then(|| Duration::from_secs_f64(begin + need / from))
    }
}
