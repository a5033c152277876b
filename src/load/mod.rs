//! Session-bearing load: the open and closed models, and the final sweep.
//!
//! - [`pacing`] says when each open-model operation is due.
//! - [`ops`] runs one operation of one session and checks its answer; [`flow`] does
//!   the same for sessions described by a scenario's `[flow]`. Both take a
//!   [`session::LiveSession`] and hand it back in an [`exchange::Done`]: those types
//!   live in [`session`] and [`exchange`], so neither runner imports the other.
//!   What a flow's answer says (signs of loss, captures, reads checked against the
//!   session model) is `answers`, pure functions of one answer.
//! - [`shard`] runs many operations at once and records them lock-free.
//! - [`collector`] merges the shards' records per second and for the run.
//! - [`spill`] keeps finished sessions on disk until the final sweep reads them
//!   back, so memory stays flat however long the run.
//! - [`targets`] says where each request goes (the balancer, or a replica), and
//!   [`http`] sends it.
//!
//! The load runs on `[load] threads` threads, each a single-threaded runtime with
//! one [`shard`]: in the open model each walks its own share of the schedule
//! (operations `k`, `k + threads`, …) and keeps its own sessions; in the closed model
//! each drives its share of the virtual users. Each records into its own histograms,
//! which the [`collector`] merges per second (HDR `add`, lossless). A thread's
//! sessions, connections and timers never leave it, so no request crosses threads.

mod answers;
pub mod collector;
pub mod exchange;
pub mod flow;
pub mod headers;
pub mod http;
pub mod ops;
pub mod pacing;
pub mod series;
pub mod session;
pub mod shard;
pub mod spill;
pub mod targets;
pub mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;

use crate::metrics::{FailureTimeline, Live, Outcome, Recorder};
use crate::plan::{LoadPlan, Model};
use crate::session::{Anomaly, Op};
use crate::target::Targets;
use collector::{Collected, Sinks, INTERVAL};
use exchange::{Done, Job};
use session::{LiveSession, Step};

/// How many times the sweep asks for a session before giving up on it.
const SWEEP_ATTEMPTS: u32 = 5;
/// How many sessions the sweep reads at once.
const SWEEP_CONCURRENCY: usize = 32;
/// What the load sends its requests to, and how.
#[derive(Debug)]
pub struct Driver {
    http: http::Http,
    targets: targets::Router,
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
}

/// Everything the load found.
#[derive(Debug)]
pub struct LoadOutcome {
    pub collected: Collected,
    pub anomalies: Vec<Anomaly>,
    /// Sessions that expired by design (see [`crate::flow::Flow::idle_timeout`]).
    pub expired: u64,
    /// Every session created, on disk for the sweep.
    pub sessions: spill::Spilled,
}

/// Result of the final sweep.
#[derive(Debug, Default)]
pub struct Swept {
    pub recorder: Recorder,
    pub anomalies: Vec<Anomaly>,
    /// Sessions the sweep found expired by design, after their idle timeout.
    pub expired: u64,
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
        targets: Arc<Targets>,
        plan: &LoadPlan,
        seed: u64,
        start: Instant,
        live: Arc<Live>,
        failures: Arc<FailureTimeline>,
    ) -> Self {
        Driver {
            http: http::Http::new(
                plan.request_timeout,
                plan.keep_alive,
                plan.max_idle_connections,
                plan.tls.clone(),
            )
            .with_max_connections(plan.max_connections),
            targets: targets::Router::new(targets),
            plan: plan.clone(),
            seed,
            start,
            live,
            failures,
            next_seq: AtomicU64::new(0),
            started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Why TLS handshakes failed so far, with how often: for the report.
    pub fn tls_failures(&self) -> std::collections::BTreeMap<String, u64> {
        self.http.tls_failures()
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
    ///
    /// Each shard runs on a thread of its own with a single-threaded runtime: every
    /// request wakes the connection's readiness and the operation's task in turn, and
    /// on a multi-threaded runtime those wakeups cross threads (futex calls and
    /// context switches), which cost about an eighth more CPU per request, measured
    /// against the demo service on two cores. It also keeps the chaos and the
    /// reporting (the collector runs on the caller's runtime) off the load's
    /// threads, so they cannot delay a paced start.
    pub async fn run(
        self: &Arc<Self>,
        stop: &CancellationToken,
        sinks: Sinks,
        spill: spill::Spill,
    ) -> LoadOutcome {
        let operator = Arc::clone(self);
        // Shared, not cloned per operation: a token's clone and drop each take its
        // tree's lock.
        let stop_ops = Arc::new(stop.clone());
        // Boxed: an operation's future is about 2 KB, and the shard's set of futures
        // in flight moved it whole three times on the way into its task; a box is
        // one allocation and one move (callgrind, flat out: about 400 instructions
        // a request fewer).
        let operate =
            move |job| Box::pin(Arc::clone(&operator).run_job(job, Arc::clone(&stop_ops)));
        self.run_with(stop, (sinks, spill), true, operate).await
    }

    /// [`Driver::run`] with its threads and its operations chosen: `on_threads`
    /// runs each shard on a thread of its own, waking on a timerfd; otherwise the
    /// shards are tasks on the caller's runtime, waking on tokio's timer (the
    /// pacing tests pause that clock). `operate` runs one operation.
    async fn run_with<O, F>(
        self: &Arc<Self>,
        stop: &CancellationToken,
        (sinks, spill): (Sinks, spill::Spill),
        on_threads: bool,
        operate: O,
    ) -> LoadOutcome
    where
        O: Fn(Job) -> F + Clone + Send + 'static,
        F: Future<Output = Done> + Send + 'static,
    {
        let shards = self.plan.threads.max(1);
        let (to_collector, inbox) = mpsc::unbounded_channel();
        let collector = tokio::spawn(collector::collect(
            inbox,
            shards,
            self.plan.warmup,
            sinks,
            Arc::clone(&self.live),
        ));
        let mut results = Vec::with_capacity(shards);
        for s in 0..shards {
            let feed = match &self.plan.model {
                Model::Closed { users, think } => shard::Feed::Closed {
                    users: (s..*users).step_by(shards).collect(),
                    think: *think,
                },
                Model::Open {
                    profile,
                    max_in_flight,
                    session_interval,
                    start_window,
                } => shard::Feed::Open(shard::OpenShare {
                    schedule: pacing::Schedule::share(
                        profile.clone(),
                        self.start,
                        (s as u64, shards as u64),
                        *start_window,
                    ),
                    max_in_flight: *max_in_flight,
                    session_interval: *session_interval,
                    shards,
                    precise: on_threads,
                }),
            };
            let shard = shard::run(
                Arc::clone(self),
                s,
                feed,
                to_collector.clone(),
                spill.retire(),
                stop.clone(),
                operate.clone(),
            );
            let (done, result) = tokio::sync::oneshot::channel();
            if on_threads {
                std::thread::Builder::new()
                    .name(format!("sessionstorm-load-{s}"))
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("a single-threaded runtime builds");
                        let _ = done.send(runtime.block_on(shard));
                    })
                    .expect("the operating system starts a load thread");
            } else {
                tokio::spawn(async move {
                    let _ = done.send(shard.await);
                });
            }
            results.push(result);
        }
        drop(to_collector);
        let (mut anomalies, mut expired) = (Vec::new(), 0);
        for result in results {
            let result = result.await.expect("a load shard never panics");
            anomalies.extend(result.anomalies);
            expired += result.expired;
        }
        let collected = collector.await.expect("the collector never panics");
        // Every sender is gone now: the writer thread finishes what it was sent. A
        // blocking wait, but only for the last buffered records, once per run.
        LoadOutcome {
            collected,
            anomalies,
            expired,
            sessions: spill.finish(),
        }
    }

    /// Reads every session once more, after the cluster has healed, with bounded
    /// concurrency and retries; this is where indeterminate writes are settled.
    ///
    /// The sessions stream from the spill file and each result is folded in as it
    /// comes, so the sweep's memory is that of [`SWEEP_CONCURRENCY`] sessions
    /// however many there are. A session that cannot be read back (or was never
    /// written) is unverified.
    pub async fn sweep(&self, sessions: &spill::Spilled) -> Swept {
        let mut swept = Swept {
            checked: sessions.unwritten,
            unverified: sessions.unwritten,
            ..Swept::default()
        };
        let records: Box<dyn Iterator<Item = Option<LiveSession>> + Send> =
            match sessions.sessions() {
                Ok(records) => Box::new(records),
                Err(_) => {
                    swept.checked += sessions.count;
                    swept.unverified += sessions.count;
                    return swept;
                }
            };
        let mut results = futures_util::stream::iter(records)
            .map(|session| async move {
                let mut session = session?;
                let mut done = Done::new(Step::Read, Instant::now(), None);
                self.sweep_one(&mut session, &mut done).await;
                done.finished = Instant::now();
                Some(done)
            })
            .buffer_unordered(SWEEP_CONCURRENCY);
        while let Some(done) = results.next().await {
            swept.checked += 1;
            let Some(done) = done else {
                swept.unverified += 1;
                continue;
            };
            swept.unverified += u64::from(done.outcome == Outcome::Error);
            let took = done.finished - done.sent;
            swept.recorder.op(Op::Sweep, done.outcome, took, took);
            for instance in &done.served_by {
                swept.recorder.served(Some(instance));
            }
            for (kind, by) in &done.errors {
                swept.recorder.error(Op::Sweep, *kind, by.as_deref());
            }
            swept.anomalies.extend(done.anomalies);
            swept.expired += done.expired;
        }
        swept
    }
}

/// The open model's schedule on tokio's paused clock: the real shards,
/// with operations that take a chosen time instead of an HTTP exchange, so every
/// start can be compared with its due time to the nanosecond.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use std::time::Duration;

    use super::*;
    use crate::plan::{RateProfile, Stage};
    use crate::session::SessionModel;

    /// One started operation: when it was due and when it started, from the start.
    #[derive(Debug, Clone, Copy)]
    struct Start {
        due: Duration,
        sent: Duration,
        /// Whether it created a session.
        created: bool,
    }

    /// Runs the open model for `run_for` with operations that take `took` each,
    /// every operation on its own wake-up unless `window` lets some share one;
    /// returns what it found and every start, in order of due time.
    async fn paced(
        (profile, window): (RateProfile, Duration),
        max_in_flight: usize,
        session_interval: Duration,
        took: Duration,
        run_for: Duration,
        threads: usize,
    ) -> (LoadOutcome, Vec<Start>) {
        let plan = LoadPlan {
            model: Model::Open {
                profile,
                max_in_flight,
                session_interval,
                start_window: window,
            },
            appends_per_session: 1000,
            warmup: Duration::ZERO,
            operations: None,
            request_timeout: Duration::from_secs(5),
            retries: 0,
            keep_alive: true,
            max_idle_connections: 8,
            tls: Default::default(),
            flow: None,
            threads,
            max_connections: 8,
        };
        let start = Instant::now();
        let driver = Arc::new(Driver::new(
            Arc::new(Targets::one("http://127.0.0.1:9")),
            &plan,
            1,
            start,
            Arc::default(),
            Arc::new(FailureTimeline::new(Duration::from_secs(60))),
        ));
        let starts: Arc<Mutex<Vec<Start>>> = Arc::default();
        let seen = Arc::clone(&starts);
        let operate = move |job: Job| {
            let seen = Arc::clone(&seen);
            async move {
                let sent = Instant::now();
                seen.lock().unwrap().push(Start {
                    due: job.intended - start,
                    sent: sent - start,
                    created: job.session.is_none(),
                });
                tokio::time::sleep(took).await;
                let session = job.session.unwrap_or_else(|| {
                    LiveSession::new(
                        SessionModel::new(0, "s".into(), 1000),
                        ::http::HeaderValue::from_static("sid=s"),
                    )
                });
                let mut done = Done::new(Step::Read, job.intended, None);
                done.session = Some(session);
                done.outcome = Outcome::Ok;
                done.sent = sent;
                done.finished = Instant::now();
                done
            }
        };
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(run_for).await;
            stopper.cancel();
        });
        let dir = tempfile::tempdir().unwrap();
        let spill = spill::Spill::create(&dir.path().join(spill::SPILL_FILE)).unwrap();
        let outcome = driver
            .run_with(&stop, (Sinks::new(), spill), false, operate)
            .await;
        let mut starts = std::mem::take(&mut *starts.lock().unwrap());
        starts.sort_by_key(|s| s.due);
        (outcome, starts)
    }

    /// [`paced`] at a constant `rate`, every duration in milliseconds.
    async fn paced_constant(
        rate: f64,
        max_in_flight: usize,
        session_interval_ms: f64,
        took_ms: f64,
        run_for_ms: f64,
    ) -> (LoadOutcome, Vec<Start>) {
        let profile = RateProfile::constant(rate);
        let (interval, took, run_for) = (ms(session_interval_ms), ms(took_ms), ms(run_for_ms));
        let exact = (profile, Duration::ZERO);
        paced(exact, max_in_flight, interval, took, run_for, 1).await
    }

    /// How many operations started at their due time.
    fn on_time(starts: &[Start]) -> u64 {
        starts.iter().filter(|s| same(s.sent, s.due)).count() as u64
    }

    fn ms(ms: f64) -> Duration {
        Duration::from_secs_f64(ms / 1000.0)
    }

    /// Equal but for the float rounding of the schedule (well under a microsecond).
    fn same(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    fn ran(outcome: &LoadOutcome) -> u64 {
        outcome.collected.totals.count(Op::Read, Outcome::Ok)
    }

    #[tokio::test(start_paused = true)]
    async fn constant_rate_starts_every_operation_at_its_due_time() {
        // 200/s until just before 2 s: operations 0..400, due every 5 ms.
        let (outcome, starts) = paced_constant(200.0, 1000, 100.0, 10.0, 1997.5).await;
        assert_eq!(starts.len(), 400);
        for (i, start) in starts.iter().enumerate() {
            assert!(same(start.due, ms(5.0 * i as f64)), "{i}: {start:?}");
            assert!(same(start.sent, start.due), "{i} started late: {start:?}");
        }
        assert_eq!(outcome.collected.totals.missed_starts, 0);
        assert_eq!(ran(&outcome), 400);
        // The recorded harness lateness says so too (1 µs is the histogram's floor).
        assert_eq!(outcome.collected.totals.start_lateness.max(), 1);
        // Started on time, so corrected and uncorrected latency are the operation's.
        let all = outcome
            .collected
            .totals
            .latency_of(&[Op::Read], Outcome::Ok);
        assert_eq!(all.corrected.max(), all.uncorrected.max());
        assert!(all.corrected.equivalent(all.corrected.max(), 10_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_in_flight_limit_counts_missed_starts_and_the_schedule_keeps_going() {
        // 100/s for 2 s, 4 operations of 200 ms at once: 20/s can start on time.
        let (outcome, starts) = paced_constant(100.0, 4, 1000.0, 200.0, 1995.0).await;
        let totals = &outcome.collected.totals;
        // The first four start on time; from then on every due operation finds the
        // limit full or a backlog before it, and is counted the moment it is due.
        assert_eq!(on_time(&starts), 4);
        assert_eq!(totals.missed_starts, 200 - 4);
        let missed_per_second: Vec<u64> = outcome
            .collected
            .intervals
            .iter()
            .map(|row| row.missed_starts)
            .collect();
        assert_eq!(&missed_per_second[..2], [96, 100], "{missed_per_second:?}");
        // Late operations still ran, each keeping its place in the schedule: the
        // schedule did not slow down to wait for them.
        assert!(starts.len() > 4 && starts.len() < 200, "{}", starts.len());
        for (i, start) in starts.iter().enumerate() {
            assert!(same(start.due, ms(10.0 * i as f64)), "{i}: {start:?}");
        }
        let all = totals.latency_of(&[Op::Read], Outcome::Ok);
        assert!(all.uncorrected.equivalent(all.uncorrected.max(), 200_000));
        assert!(all.corrected.max() > 1_000_000, "{}", all.corrected.max());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_operations_on_too_few_sessions_are_missed_starts() {
        // rate × session_interval = 1 live session, each operation 50 ms: the session
        // is busy when the next four are due.
        let (outcome, starts) = paced_constant(100.0, 1000, 10.0, 50.0, 995.0).await;
        assert_eq!(on_time(&starts), 1);
        assert_eq!(outcome.collected.totals.missed_starts, 100 - 1);
        // One session, one operation at a time, back to back from the backlog.
        for pair in starts.windows(2) {
            assert!(same(pair[1].sent, pair[0].sent + ms(50.0)), "{pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn two_threads_share_the_schedule_and_their_histograms_add_up() {
        // 200/s for 2 s on two shards: operations 0, 2, 4, … on one, 1, 3, 5, … on
        // the other, every one on time; each shard keeps its half of the
        // 200 × 0.075 s = 15 live sessions, rounded up.
        let profile = RateProfile::constant(200.0);
        let exact = (profile, Duration::ZERO);
        let (outcome, starts) = paced(exact, 1000, ms(75.0), ms(10.0), ms(1997.5), 2).await;
        assert_eq!(starts.len(), 400);
        for (i, start) in starts.iter().enumerate() {
            assert!(same(start.due, ms(5.0 * i as f64)), "{i}: {start:?}");
            assert!(same(start.sent, start.due), "{i} started late: {start:?}");
        }
        let created = starts.iter().filter(|s| s.created).count();
        assert_eq!(created, 2 * 8, "each shard creates its 8 sessions");
        assert_eq!(outcome.sessions.count, 16);
        // Both shards' histograms are merged per second and for the run.
        let totals = &outcome.collected.totals;
        assert_eq!(ran(&outcome), 400);
        assert_eq!(totals.missed_starts, 0);
        let per_second: Vec<u64> = outcome
            .collected
            .intervals
            .iter()
            .map(|row| row.ops.get(&Op::Read).map_or(0, |op| op.ok))
            .collect();
        assert!(per_second.len() >= 2, "{per_second:?}");
        assert_eq!(per_second.iter().sum::<u64>(), 400, "{per_second:?}");
        let all = totals.latency_of(&[Op::Read], Outcome::Ok);
        assert_eq!(all.corrected.len(), 400);
    }

    #[tokio::test(start_paused = true)]
    async fn operations_close_together_share_a_wake_up_within_the_start_window() {
        // 1000/s, one every 1 ms, with a 5 ms window: six are due within 5 ms of
        // the first of them, so one wake-up at the sixth's due time starts all six;
        // the first is 5 ms late, the sixth on time.
        let window = (RateProfile::constant(1000.0), ms(5.0));
        let (outcome, starts) = paced(window, 1000, ms(100.0), ms(1.0), ms(1198.5), 1).await;
        assert_eq!(starts.len(), 1200);
        for (i, start) in starts.iter().enumerate() {
            assert!(same(start.due, ms(i as f64)), "{i}: {start:?}");
            let last_of_batch = ms((i / 6 * 6 + 5) as f64);
            assert!(same(start.sent, last_of_batch), "{i}: {start:?}");
        }
        assert_eq!(on_time(&starts), 200);
        let totals = &outcome.collected.totals;
        assert_eq!(totals.missed_starts, 0);
        // The lateness is recorded (in µs): the harness's own, up to the window.
        assert!(totals
            .start_lateness
            .equivalent(totals.start_lateness.max(), 5_000));
        assert_eq!(ran(&outcome), 1200);

        // Stopped within a group (tokio's clock stops the run at 1197 ms): those of
        // it due by the stop start at the stop, none lost or counted as missed.
        let window = (RateProfile::constant(1000.0), ms(5.0));
        let (outcome, starts) = paced(window, 1000, ms(100.0), ms(1.0), ms(1196.5), 1).await;
        assert_eq!(starts.len(), 1198);
        assert!(
            starts[1194..].iter().all(|s| s.sent >= ms(1196.5)),
            "{:?}",
            &starts[1194..]
        );
        assert_eq!(outcome.collected.totals.missed_starts, 0);

        // 500/s, one every 2 ms: three in a window of 5 ms, too few to share a
        // wake-up, so each starts at its own due time.
        let window = (RateProfile::constant(500.0), ms(5.0));
        let (_, starts) = paced(window, 1000, ms(100.0), ms(1.0), ms(999.0), 1).await;
        assert_eq!(starts.len(), 500);
        assert_eq!(on_time(&starts), 500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ramp_holds_the_rate_of_each_stage() {
        // 100 → 300/s over 2 s, then 300/s: 150, 250 and 300 operations due in the
        // first three seconds.
        let profile = RateProfile {
            start: 100.0,
            stages: vec![Stage {
                to: 300.0,
                over: Duration::from_secs(2),
            }],
        };
        let exact = (profile.clone(), Duration::ZERO);
        let (outcome, starts) = paced(exact, 1000, ms(100.0), ms(1.0), ms(2998.5), 1).await;
        let mut per_second = [0u64; 3];
        for (i, start) in starts.iter().enumerate() {
            assert!(same(start.due, profile.due(i as u64).unwrap()), "{i}");
            // tokio's clock fires on whole milliseconds: the lateness of the alarm the tests use.
            assert!(start.sent - start.due < ms(1.0), "{i}: {start:?}");
            per_second[start.due.as_secs() as usize] += 1;
        }
        assert_eq!(per_second, [150, 250, 300]);
        assert_eq!(outcome.collected.totals.missed_starts, 0);
        assert_eq!(ran(&outcome), 700);
    }
}
