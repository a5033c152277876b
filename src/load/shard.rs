//! A shard: one task that runs many operations at once and owns the recorder they
//! report to, so recording needs no lock.
//!
//! In the open model a shard runs the jobs the dispatcher sends it and hands each
//! session back to the dispatcher between its operations. In the closed model a
//! shard drives its own virtual users: when a user's operation finishes, its next
//! one is queued after the think time.

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
use super::session::{LiveSession, Step};
use super::spill::Retire;
use super::Driver;
use crate::metrics::Recorder;
use crate::plan::Think;
use crate::session::Anomaly;

/// Where a shard's work comes from.
pub enum Feed {
    /// Jobs from the dispatcher; sessions go back to it between operations.
    Open {
        jobs: mpsc::UnboundedReceiver<Job>,
        idle: mpsc::UnboundedSender<LiveSession>,
    },
    /// The shard's own virtual users.
    Closed { users: Vec<usize>, think: Think },
}

/// What a shard leaves behind: what it found. The sessions it finished went to the
/// spill ([`super::spill`]) as they finished.
#[derive(Debug, Default)]
pub struct ShardResult {
    pub anomalies: Vec<Anomaly>,
    pub expired: u64,
}

/// Pause before a closed-model user tries again after a failed create.
const RETRY_CREATE_AFTER: Duration = Duration::from_millis(50);

/// Runs one shard until its feed ends (open) or its users stop (closed); `operate`
/// runs each operation ([`Driver::run_job`] in a run, a stand-in in the pacing tests).
pub async fn run<O, F>(
    driver: Arc<Driver>,
    source: usize,
    mut feed: Feed,
    collector: mpsc::UnboundedSender<Message>,
    retire: Retire,
    stop: CancellationToken,
    operate: O,
) -> ShardResult
where
    O: Fn(Job) -> F,
    F: Future<Output = Done>,
{
    let mut result = ShardResult::default();
    let mut recorder = Recorder::default();
    let mut ticks = super::interval_ticks(driver.start);
    let mut next_interval = 0;
    let mut in_flight = FuturesUnordered::new();
    let mut rngs = std::collections::HashMap::new();

    if let Feed::Closed { users, .. } = &feed {
        for &user in users {
            if driver.may_start() {
                let seed = driver.seed ^ (user as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
                rngs.insert(user, StdRng::seed_from_u64(seed));
                in_flight.push(operate(Job {
                    session: None,
                    intended: Instant::now(),
                    user: Some(user),
                }));
            }
        }
    }
    let mut feed_open = matches!(feed, Feed::Open { .. });

    loop {
        tokio::select! {
            biased;
            _ = ticks.tick() => {
                let _ = collector.send(Message::Interval { source, index: next_interval, recorder: Box::new(recorder.take()) });
                next_interval += 1;
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                let user = done.user;
                let failed_create = done.step == Step::Create && done.session.is_none();
                let next = settle(&driver, &mut recorder, &mut result, &retire, done);
                match &mut feed {
                    Feed::Open { idle, .. } => {
                        if let Some(session) = next {
                            // The dispatcher may have finished: then the sweep takes it.
                            if let Err(mpsc::error::SendError(session)) = idle.send(session) {
                                retire.retire(session);
                            }
                        }
                    }
                    Feed::Closed { think, .. } => {
                        let Some(user) = user else { continue };
                        if stop.is_cancelled() || !driver.may_start() {
                            if let Some(session) = next {
                                retire.retire(session);
                            }
                            continue;
                        }
                        let pause = if failed_create {
                            RETRY_CREATE_AFTER
                        } else {
                            think_time(*think, rngs.get_mut(&user).expect("every user has an RNG"))
                        };
                        in_flight.push(operate(
                            Job { session: next, intended: Instant::now() + pause, user: Some(user) },
                        ));
                    }
                }
            }
            job = next_job(&mut feed), if feed_open => match job {
                Some(job) => in_flight.push(operate(job)),
                None => feed_open = false,
            },
        }
        if !feed_open && in_flight.is_empty() {
            break;
        }
    }
    let _ = collector.send(Message::Interval {
        source,
        index: next_interval,
        recorder: Box::new(recorder.take()),
    });
    let _ = collector.send(Message::Done { source });
    result
}

async fn next_job(feed: &mut Feed) -> Option<Job> {
    match feed {
        Feed::Open { jobs, .. } => jobs.recv().await,
        Feed::Closed { .. } => std::future::pending().await,
    }
}

/// Records a finished operation; returns its session when it has steps left.
/// A finished (or lost) session is retired to the spill for the sweep.
fn settle(
    driver: &Driver,
    recorder: &mut Recorder,
    result: &mut ShardResult,
    retire: &Retire,
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
            driver.live_sessions.fetch_sub(1, Ordering::Relaxed);
            retire.retire(session);
            None
        }
        None => {
            // A create that failed: the session it stood for never lived.
            driver.live_sessions.fetch_sub(1, Ordering::Relaxed);
            None
        }
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
