//! A shard: one task that runs many operations at once and owns the recorder they
//! report to, so recording needs no lock. A run has one shard per load thread
//! (`[load] threads`), each on a single-threaded runtime of its own.
//!
//! In the open model a shard walks its own share of the schedule
//! ([`pacing::Schedule`]): it sleeps on its [`Alarm`] until the next due time (or
//! the last of a group due close together), then starts every operation due by then, each with its own due time, on the session of
//! its own that has waited longest for its next step (or a new one). An operation
//! with no idle session to run on, or over the in-flight limit, is a *missed start*:
//! counted, never delayed, so the schedule (and the corrected latency measured
//! against it) stays honest; it waits in a backlog and starts late, keeping its due
//! time. In the closed model a shard drives its own virtual users: when a user's
//! operation finishes, its next one is queued after the think time.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::collector::Message;
use super::exchange::{Done, Job};
use super::pacing::{self, Alarm};
use super::session::{LiveSession, Step};
use super::spill::Retire;
use super::Driver;
use crate::metrics::{Live, Recorder};
use crate::plan::Think;
use crate::session::Anomaly;

/// Where a shard's work comes from.
pub enum Feed {
    /// A share of the open model's schedule.
    Open(OpenShare),
    /// The shard's own virtual users, in ascending order (each user's think-time
    /// generator is found by a binary search).
    Closed { users: Vec<usize>, think: Think },
}

/// What one shard of the open model runs.
pub struct OpenShare {
    pub schedule: pacing::Schedule,
    /// The whole run's limit ([`Driver::admit`] counts across shards).
    pub max_in_flight: usize,
    pub session_interval: Duration,
    /// How many shards share the schedule: this one keeps its part of the live
    /// sessions.
    pub shards: usize,
    /// Whether to wake on a timerfd ([`Alarm::new`]); tokio's timer otherwise.
    pub precise: bool,
}

/// What a shard leaves behind: what it found. The sessions it finished went to the
/// spill ([`super::spill`]) in batches as they finished, the last with its last
/// interval.
#[derive(Debug, Default)]
pub struct ShardResult {
    pub anomalies: Vec<Anomaly>,
    pub expired: u64,
}

/// Pause before a closed-model user tries again after a failed create.
const RETRY_CREATE_AFTER: Duration = Duration::from_millis(50);
/// Late operations kept waiting for a session or a slot; older ones are dropped
/// (they were counted as missed starts when they fell behind).
const MAX_BACKLOG: usize = 100_000;
/// How often late operations look for a slot another shard may have freed.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// The state every shard keeps, whatever its feed.
struct Shard<F> {
    driver: Arc<Driver>,
    source: usize,
    collector: mpsc::UnboundedSender<Message>,
    retire: Retire,
    recorder: Recorder,
    result: ShardResult,
    /// The end of each interval, when the recorder goes to the collector.
    ticks: tokio::time::Interval,
    next_interval: u64,
    in_flight: FuturesUnordered<F>,
}

impl<F> Shard<F> {
    /// Sends the interval just ended to the collector.
    fn close_interval(&mut self) {
        self.retire.flush();
        Live::add(&self.driver.live.missed_starts, self.recorder.missed_starts);
        let _ = self.collector.send(Message::Interval {
            source: self.source,
            index: self.next_interval,
            recorder: Box::new(self.recorder.take()),
        });
        self.next_interval += 1;
    }

    fn finish(mut self) -> ShardResult {
        self.close_interval();
        let _ = self.collector.send(Message::Done {
            source: self.source,
        });
        self.result
    }
}

/// Runs one shard until its schedule ends or the run stops (open) or its users stop
/// (closed), and its operations in flight have finished; `operate` runs each
/// operation ([`Driver::run_job`] in a run, a stand-in in the pacing tests).
pub async fn run<O, F>(
    driver: Arc<Driver>,
    source: usize,
    feed: Feed,
    collector: mpsc::UnboundedSender<Message>,
    retire: Retire,
    stop: CancellationToken,
    operate: O,
) -> ShardResult
where
    O: Fn(Job) -> F,
    F: Future<Output = Done>,
{
    let shard = Shard {
        ticks: super::interval_ticks(driver.start),
        driver,
        source,
        collector,
        retire,
        recorder: Recorder::default(),
        result: ShardResult::default(),
        next_interval: 0,
        in_flight: FuturesUnordered::new(),
    };
    match feed {
        Feed::Open(share) => open(shard, share, &stop, operate).await,
        Feed::Closed { users, think } => closed(shard, users, think, &stop, operate).await,
    }
}

async fn closed<O, F>(
    mut shard: Shard<F>,
    users: Vec<usize>,
    think: Think,
    stop: &CancellationToken,
    operate: O,
) -> ShardResult
where
    O: Fn(Job) -> F,
    F: Future<Output = Done>,
{
    let driver = Arc::clone(&shard.driver);
    // Each user's think times, in the order of `users` (ascending): found by a
    // binary search, cheaper than hashing the user on every operation.
    let mut rngs: Vec<StdRng> = users
        .iter()
        .map(|&user| {
            StdRng::seed_from_u64(driver.seed ^ (user as u64).wrapping_mul(0x2545_F491_4F6C_DD1D))
        })
        .collect();
    for &user in &users {
        if driver.may_start() {
            shard.in_flight.push(operate(Job {
                session: None,
                intended: Instant::now(),
                user: Some(user),
            }));
        }
    }
    while !shard.in_flight.is_empty() {
        tokio::select! {
            biased;
            _ = shard.ticks.tick() => shard.close_interval(),
            Some(done) = shard.in_flight.next() => {
                let user = done.user;
                let failed_create = done.step == Step::Create && done.session.is_none();
                let next = settle(&driver, &mut shard.recorder, &mut shard.result, &mut shard.retire, done);
                let Some(user) = user else { continue };
                if stop.is_cancelled() || !driver.may_start() {
                    if let Some(session) = next {
                        shard.retire.retire(session);
                    }
                    continue;
                }
                let pause = if failed_create {
                    RETRY_CREATE_AFTER
                } else {
                    let at = users.binary_search(&user).expect("every user has an RNG");
                    think_time(think, &mut rngs[at])
                };
                shard.in_flight.push(operate(
                    Job { session: next, intended: Instant::now() + pause, user: Some(user) },
                ));
            }
        }
    }
    shard.finish()
}

/// The open model's part of a shard: its sessions between their operations, and
/// the due times of operations that could not start on time.
struct Open {
    share: OpenShare,
    /// Sessions waiting for their next step, longest waiting first.
    idle: VecDeque<LiveSession>,
    /// Sessions of this shard created (or being created) and not yet finished.
    live: usize,
    /// Due times of operations that could not start on time, oldest first.
    backlog: VecDeque<Instant>,
    /// Whether the schedule may still make operations due.
    scheduling: bool,
}

async fn open<O, F>(
    mut shard: Shard<F>,
    share: OpenShare,
    stop: &CancellationToken,
    operate: O,
) -> ShardResult
where
    O: Fn(Job) -> F,
    F: Future<Output = Done>,
{
    let driver = Arc::clone(&shard.driver);
    let mut retry = tokio::time::interval(BACKLOG_RETRY);
    let mut alarm = Alarm::new(share.precise);
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    let mut open = Open {
        share,
        idle: VecDeque::new(),
        live: 0,
        backlog: VecDeque::new(),
        scheduling: true,
    };
    loop {
        open.start_due(&mut shard, Instant::now(), &operate);
        if !open.scheduling && open.backlog.is_empty() && shard.in_flight.is_empty() {
            break;
        }
        let next_due = open.share.schedule.wake_at().filter(|_| open.scheduling);
        let waiting = open.scheduling || !open.backlog.is_empty();
        tokio::select! {
            biased;
            () = &mut cancelled, if waiting => {
                // What a planned wake-up was holding was due before the stop: it
                // starts now, as it would have without the window. What is late is
                // dropped: it was counted when it fell behind.
                open.start_scheduled(&mut shard, Instant::now(), &operate);
                open.scheduling = false;
                open.backlog.clear();
            }
            _ = shard.ticks.tick() => shard.close_interval(),
            Some(done) = shard.in_flight.next(), if !shard.in_flight.is_empty() => {
                match settle(&driver, &mut shard.recorder, &mut shard.result, &mut shard.retire, done) {
                    Some(session) => open.idle.push_back(session),
                    None => open.live -= 1,
                }
            }
            () = alarm.until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {}
            _ = retry.tick(), if !open.backlog.is_empty() => {}
        }
    }
    for session in std::mem::take(&mut open.idle) {
        shard.retire.retire(session);
    }
    shard.finish()
}

impl Open {
    /// Starts what is late, oldest first, then every operation due by `now`.
    fn start_due<O, F>(&mut self, shard: &mut Shard<F>, now: Instant, operate: &O)
    where
        O: Fn(Job) -> F,
    {
        while let Some(&due) = self.backlog.front() {
            if !self.try_start(shard, due, operate) {
                break;
            }
            self.backlog.pop_front();
        }
        // Operations that share a wake-up wait for it, even when the thread is awake
        // for an answer before it: started one by one, their answers would wake it
        // one by one.
        if self.share.schedule.wake_at().is_some_and(|wake| wake > now) {
            return;
        }
        self.start_scheduled(shard, now, operate);
    }

    /// Starts every scheduled operation due by `now`, or counts it as a missed
    /// start and keeps it for later.
    fn start_scheduled<O, F>(&mut self, shard: &mut Shard<F>, now: Instant, operate: &O)
    where
        O: Fn(Job) -> F,
    {
        while self.scheduling {
            let Some(due) = self.share.schedule.take_due(now) else {
                // Nothing due yet, or the rate profile has ended: then run what is
                // late, and end.
                self.scheduling = self.share.schedule.peek().is_some();
                return;
            };
            if !shard.driver.may_start() {
                // The operation count is reached: run what is late, then end.
                self.scheduling = false;
                return;
            }
            if self.backlog.is_empty() && self.try_start(shard, due, operate) {
                continue;
            }
            shard.recorder.missed_starts += 1;
            self.backlog.push_back(due);
            if self.backlog.len() > MAX_BACKLOG {
                // Counted as missed already; too late to be worth running.
                self.backlog.pop_front();
            }
        }
    }

    /// Starts the operation due at `due` if a session and an in-flight slot are free:
    /// a new session while this shard has fewer than its share of the live sessions
    /// the rate asks for, else its longest idle one.
    fn try_start<O, F>(&mut self, shard: &mut Shard<F>, due: Instant, operate: &O) -> bool
    where
        O: Fn(Job) -> F,
    {
        let rate = self.share.schedule.rate_at(due);
        let wanted = rate * self.share.session_interval.as_secs_f64() / self.share.shards as f64;
        let session = if self.live < (wanted.ceil() as usize).max(1) {
            None
        } else if let Some(session) = self.idle.pop_front() {
            Some(session)
        } else {
            return false;
        };
        if !shard.driver.admit(Some(self.share.max_in_flight)) {
            if let Some(session) = session {
                self.idle.push_front(session);
            }
            return false;
        }
        if session.is_none() {
            self.live += 1;
        }
        shard.in_flight.push(operate(Job {
            session,
            intended: due,
            user: None,
        }));
        true
    }
}

/// Records a finished operation; returns its session when it has steps left, `None`
/// when the session ended (finished, lost, or its create failed). A finished (or
/// lost) session is retired to the spill for the sweep.
fn settle(
    driver: &Driver,
    recorder: &mut Recorder,
    result: &mut ShardResult,
    retire: &mut Retire,
    done: Done,
) -> Option<LiveSession> {
    driver.in_flight.fetch_sub(1, Ordering::Relaxed);
    if !done.skipped {
        recorder.op(
            done.step.op(),
            done.outcome,
            done.finished - done.intended,
            done.finished - done.sent,
        );
    }
    for instance in &done.served_by {
        recorder.served(Some(instance));
    }
    for (kind, by) in &done.errors {
        recorder.error(done.step.op(), *kind, by.as_deref());
    }
    result.anomalies.extend(done.anomalies);
    result.expired += done.expired;
    match done.session {
        Some(session) if done.skipped || session.finished(driver.plan.appends_per_session) => {
            retire.retire(session);
            None
        }
        // A create that failed: the session it stood for never lived.
        None => None,
        next => next,
    }
}

fn think_time(think: Think, rng: &mut StdRng) -> Duration {
    match think {
        Think::Fixed(d) => d,
        Think::Exponential(mean) => {
            // Inverse transform: -ln(U) × mean, U in (0, 1].
            let u: f64 = 1.0 - rng.random::<f64>();
            mean.mul_f64(-u.ln())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_think_time_has_the_requested_mean() {
        let mut rng = StdRng::seed_from_u64(1);
        let mean = Duration::from_millis(100);
        let n = 20_000;
        let total: Duration = (0..n)
            .map(|_| think_time(Think::Exponential(mean), &mut rng))
            .sum();
        let avg = total / n;
        assert!(
            avg > Duration::from_millis(95) && avg < Duration::from_millis(105),
            "{avg:?}"
        );
        assert_eq!(
            think_time(Think::Fixed(mean), &mut rng),
            Duration::from_millis(100)
        );
    }
}
