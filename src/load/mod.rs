//! Session-bearing load: the open and closed models, and the final sweep.
//!
//! - [`pacing`] says when each open-model operation is due.
//! - [`ops`] runs one operation of one session and checks its answer.
//! - [`shard`] runs many operations at once and records them lock-free.
//! - [`collector`] merges the shards' records per second and for the run.
//! - [`targets`] says where each request goes (the balancer, or a replica).
//!
//! In the open model one dispatcher task walks the schedule: every
//! `ops_per_session`-th operation starts a new session, the others take the session
//! that has waited longest for its next step. An operation with no idle session to
//! run on, or over the in-flight limit, is a *missed start*: counted, never delayed,
//! so the schedule (and the corrected latency measured against it) stays honest. In
//! the closed model each shard drives its share of the virtual users itself.

pub mod collector;
pub mod ops;
pub mod pacing;
pub mod shard;
pub mod targets;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use crate::metrics::{FailureTimeline, Live, Outcome, Recorder};
use crate::plan::{LoadPlan, Model};
use crate::report::hlog::HlogWriter;
use crate::session::{Anomaly, Op};
use collector::{Collected, Message, INTERVAL};
use ops::{Done, Job, LiveSession, Step};
use pacing::RateProfile;

/// How many times the sweep asks for a session before giving up on it.
const SWEEP_ATTEMPTS: u32 = 5;
/// How many sessions the sweep reads at once.
const SWEEP_CONCURRENCY: usize = 32;
/// Late operations kept waiting for a session or a slot; older ones are dropped
/// (they were counted as missed starts when they fell behind).
const MAX_BACKLOG: usize = 100_000;
/// How often late operations look for a free session or slot.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// What the load sends its requests to, and how.
#[derive(Debug)]
pub struct Driver {
    client: reqwest::Client,
    targets: Arc<targets::Targets>,
    plan: LoadPlan,
    /// Seeds the closed model's think times.
    seed: u64,
    /// Time zero of the run's timeline: anomaly times and fault times share it.
    start: Instant,
    live: Arc<Live>,
    /// When requests failed, for the error window of each fault.
    failures: Arc<FailureTimeline>,
    next_seq: AtomicU64,
    /// Operations started so far, against `plan.operations`.
    started: AtomicU64,
    /// Operations admitted and not yet settled.
    in_flight: AtomicUsize,
    /// Open model: sessions created (or being created) and not yet finished.
    live_sessions: AtomicUsize,
}

/// Everything the load found.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub collected: Collected,
    pub anomalies: Vec<Anomaly>,
    /// Every session created, for the sweep.
    pub sessions: Vec<LiveSession>,
}

/// Result of the final sweep.
#[derive(Debug, Default)]
pub struct Swept {
    pub recorder: Recorder,
    pub anomalies: Vec<Anomaly>,
    pub checked: u64,
    /// Sessions that never gave a usable answer: nothing can be said about them.
    pub unverified: u64,
}

/// Ticks at the end of each interval, counted from `start`. Late ticks fire in a
/// burst, so every interval is reported, in order.
fn interval_ticks(start: Instant) -> Interval {
    tokio::time::interval_at(start + INTERVAL, INTERVAL)
}

impl Driver {
    /// A driver sending its requests to `targets` (the balancer, or the replicas).
    pub fn new(
        targets: Arc<targets::Targets>,
        plan: &LoadPlan,
        seed: u64,
        start: Instant,
        live: Arc<Live>,
        failures: Arc<FailureTimeline>,
    ) -> Self {
        let mut client = reqwest::Client::builder()
            .timeout(plan.request_timeout)
            .pool_max_idle_per_host(plan.max_idle_connections)
            .tcp_nodelay(true)
            .http1_only();
        if !plan.keep_alive {
            client = client.pool_max_idle_per_host(0);
        }
        Driver {
            client: client.build().expect("a plain HTTP client builds"),
            targets,
            plan: plan.clone(),
            seed,
            start,
            live,
            failures,
            next_seq: AtomicU64::new(0),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            live_sessions: AtomicUsize::new(0),
        }
    }

    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether one more operation may start under `plan.operations`; counts it.
    fn may_start(&self) -> bool {
        let started = self.started.fetch_add(1, Ordering::Relaxed);
        self.plan.operations.is_none_or(|max| started < max)
    }

    /// Admits one operation under the in-flight limit, if there is one.
    fn admit(&self, limit: Option<usize>) -> bool {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        if limit.is_some_and(|max| before >= max) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Runs the plan's load model until `stop` fires or `plan.operations` were
    /// started, then waits for the operations in flight.
    pub async fn run(
        self: &Arc<Self>,
        stop: &CancellationToken,
        hlog: Option<HlogWriter>,
    ) -> LoadOutcome {
        let shards = shard_count();
        let (to_collector, inbox) = mpsc::unbounded_channel();
        let (sources, dispatcher) = match &self.plan.model {
            Model::Open { .. } => (shards + 1, Some(shards)),
            Model::Closed { .. } => (shards, None),
        };
        let collector = tokio::spawn(collector::collect(
            inbox,
            sources,
            self.plan.warmup,
            hlog,
            Arc::clone(&self.live),
        ));

        let mut tasks = tokio::task::JoinSet::new();
        let mut outcome = LoadOutcome::default();
        match &self.plan.model {
            Model::Closed { users, think } => {
                for s in 0..shards {
                    let feed = shard::Feed::Closed {
                        users: (s..*users).step_by(shards).collect(),
                        think: *think,
                    };
                    tasks.spawn(shard::run(
                        Arc::clone(self),
                        s,
                        feed,
                        to_collector.clone(),
                        stop.clone(),
                    ));
                }
            }
            Model::Open {
                profile,
                max_in_flight,
                session_interval,
            } => {
                let (idle_tx, idle_rx) = mpsc::unbounded_channel();
                let mut jobs = Vec::new();
                for s in 0..shards {
                    let (tx, rx) = mpsc::unbounded_channel();
                    jobs.push(tx);
                    let feed = shard::Feed::Open {
                        jobs: rx,
                        idle: idle_tx.clone(),
                    };
                    tasks.spawn(shard::run(
                        Arc::clone(self),
                        s,
                        feed,
                        to_collector.clone(),
                        stop.clone(),
                    ));
                }
                drop(idle_tx);
                let idle = self
                    .dispatch(
                        (profile, *max_in_flight, *session_interval),
                        jobs,
                        idle_rx,
                        dispatcher.unwrap_or(shards),
                        to_collector.clone(),
                        stop,
                    )
                    .await;
                outcome.sessions.extend(idle);
            }
        }
        drop(to_collector);
        while let Some(result) = tasks.join_next().await {
            let result = result.expect("a load shard never panics");
            outcome.anomalies.extend(result.anomalies);
            outcome.sessions.extend(result.sessions);
        }
        outcome.collected = collector.await.expect("the collector never panics");
        outcome
    }

    /// The open model's dispatcher: walks the schedule, hands each due operation to a
    /// shard, counts missed starts. Returns the sessions still waiting for a step.
    async fn dispatch(
        self: &Arc<Self>,
        (profile, max_in_flight, session_interval): (&RateProfile, usize, Duration),
        jobs: Vec<mpsc::UnboundedSender<Job>>,
        mut idle_rx: mpsc::UnboundedReceiver<LiveSession>,
        source: usize,
        collector: mpsc::UnboundedSender<Message>,
        stop: &CancellationToken,
    ) -> Vec<LiveSession> {
        let mut lanes = Lanes {
            idle: VecDeque::new(),
            jobs,
            next_shard: 0,
        };
        // Due times of operations that could not start on time, oldest first.
        let mut backlog: VecDeque<Instant> = VecDeque::new();
        let mut recorder = Recorder::default();
        let mut ticks = interval_ticks(self.start);
        let mut retry = tokio::time::interval(BACKLOG_RETRY);
        let mut next_interval = 0;
        let mut i: u64 = 0;
        let mut next_due = profile.due(0).map(|d| self.start + d);
        let wanted = |due: Instant| {
            let rate = profile.rate_at(due - self.start);
            ((rate * session_interval.as_secs_f64()).ceil() as usize).max(1)
        };
        loop {
            while let Some(&due) = backlog.front() {
                if !self.try_start(&mut lanes, due, wanted(due), max_in_flight) {
                    break;
                }
                backlog.pop_front();
            }
            if next_due.is_none() && backlog.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                _ = ticks.tick() => {
                    Live::add(&self.live.missed_starts, recorder.missed_starts);
                    let _ = collector.send(Message::Interval { source, index: next_interval, recorder: recorder.take() });
                    next_interval += 1;
                }
                Some(session) = idle_rx.recv() => lanes.idle.push_back(session),
                _ = retry.tick(), if !backlog.is_empty() => {}
                () = sleep_until_some(next_due) => {
                    let due = next_due.expect("sleep_until_some only wakes for a due time");
                    i += 1;
                    next_due = profile.due(i).map(|d| self.start + d);
                    if !self.may_start() {
                        // The operation count is reached: run what is late, then end.
                        next_due = None;
                        continue;
                    }
                    while let Ok(session) = idle_rx.try_recv() {
                        lanes.idle.push_back(session);
                    }
                    let started = backlog.is_empty()
                        && self.try_start(&mut lanes, due, wanted(due), max_in_flight);
                    if !started {
                        recorder.missed_starts += 1;
                        backlog.push_back(due);
                        if backlog.len() > MAX_BACKLOG {
                            // Counted as missed already; too late to be worth running.
                            backlog.pop_front();
                        }
                    }
                }
            }
        }
        let Lanes { mut idle, jobs, .. } = lanes;
        // Let the shards finish what is in flight; they hand sessions back until then.
        drop(jobs);
        while let Some(session) = idle_rx.recv().await {
            idle.push_back(session);
        }
        Live::add(&self.live.missed_starts, recorder.missed_starts);
        let _ = collector.send(Message::Interval {
            source,
            index: next_interval,
            recorder: recorder.take(),
        });
        let _ = collector.send(Message::Done { source });
        idle.into()
    }

    /// Starts the operation due at `due` if a session and an in-flight slot are free:
    /// a new session while fewer than `wanted` are live, else the longest idle one.
    fn try_start(
        &self,
        lanes: &mut Lanes,
        due: Instant,
        wanted: usize,
        max_in_flight: usize,
    ) -> bool {
        let session = if self.live_sessions.load(Ordering::Relaxed) < wanted {
            None
        } else if let Some(session) = lanes.idle.pop_front() {
            Some(session)
        } else {
            return false;
        };
        if !self.admit(Some(max_in_flight)) {
            if let Some(session) = session {
                lanes.idle.push_front(session);
            }
            return false;
        }
        if session.is_none() {
            self.live_sessions.fetch_add(1, Ordering::Relaxed);
        }
        let job = Job {
            session,
            intended: due,
            user: None,
        };
        lanes.next_shard = (lanes.next_shard + 1) % lanes.jobs.len();
        if let Err(mpsc::error::SendError(job)) = lanes.jobs[lanes.next_shard].send(job) {
            lanes.idle.extend(job.session);
        }
        true
    }

    /// Reads every session once more, after the cluster has healed, with bounded
    /// concurrency and retries; this is where indeterminate writes are settled.
    pub async fn sweep(&self, sessions: &mut [LiveSession]) -> Swept {
        let results: Vec<Done> = futures_util::stream::iter(sessions.iter_mut())
            .map(|session| async move {
                let mut done = Done::new(Step::Read, Instant::now(), None);
                self.sweep_one(session, &mut done).await;
                done.finished = Instant::now();
                done
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut swept = Swept::default();
        for done in results {
            swept.checked += 1;
            swept.unverified += u64::from(done.outcome == Outcome::Error);
            let took = done.finished - done.sent;
            swept.recorder.op(Op::Sweep, done.outcome, took, took);
            for kind in done.errors {
                swept.recorder.error(Op::Sweep, kind);
            }
            for instance in &done.served_by {
                swept.recorder.served(Some(instance));
            }
            swept.anomalies.extend(done.anomalies);
        }
        swept
    }
}

/// The dispatcher's view of the open model's sessions and shards.
struct Lanes {
    /// Sessions waiting for their next step, longest waiting first.
    idle: VecDeque<LiveSession>,
    jobs: Vec<mpsc::UnboundedSender<Job>>,
    next_shard: usize,
}

/// Sleeps until `due`, or forever when there is none.
async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Shards per run: enough to keep every core busy, few enough that their histograms
/// stay small.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
}
