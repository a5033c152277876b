//! Follows the fault timeline against a [`Cluster`]: every fault starts at its offset
//! as its own task, so entries run side by side and a slow replacement does not
//! delay the next fault; when chaos stops, no new fault starts and those under way
//! are reverted at once. A watchdog stops chaos when the Docker engine stops
//! answering (dead man's switch).
//!
//! This file is only about *when*: what a fault does is [`super::apply`], whether it
//! may go ahead is [`super::guard`].

use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::apply::apply;
use super::guard::Guard;
use super::record::{FaultRecord, Outcome};
use super::schedule::Scheduled;
use crate::cluster::Cluster;

/// How often the watchdog asks the engine whether it is alive, and how long it may
/// stay silent before chaos stops.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// Applies `timeline` to `cluster`, each fault at its offset from `start`, until the
/// timeline ends or `stop` fires. When `stop` fires no new fault starts and the
/// temporary faults under way are reverted at once; `run` returns only when every
/// fault it started is over. Calls `on_fault` after each fault, for progress.
pub async fn run<C: Cluster>(
    cluster: &C,
    min_alive: usize,
    timeline: &[Scheduled],
    start: Instant,
    stop: &CancellationToken,
    on_fault: &(dyn Fn(&FaultRecord) + Sync),
) -> Outcome {
    let guard = Mutex::new(Guard::new(cluster.replicas(), min_alive));
    // Stops the faults under way: the run's stop, or the dead man's switch.
    let halt = stop.child_token();
    let mut outcome = Outcome::default();
    let mut inflight = FuturesUnordered::new();
    let mut next = 0;
    let watchdog = watchdog(cluster);
    tokio::pin!(watchdog);
    let mut watching = true;
    loop {
        let launching = next < timeline.len() && !halt.is_cancelled();
        if !launching && inflight.is_empty() {
            break;
        }
        let due = timeline.get(next).map_or(start, |f| start + f.at);
        tokio::select! {
            biased;
            Some(record) = inflight.next(), if !inflight.is_empty() => {
                on_fault(&record);
                outcome.records.push(record);
            }
            () = halt.cancelled(), if launching => {}
            why = &mut watchdog, if watching => {
                watching = false;
                eprintln!("error: {why}; chaos stops: no new faults, reverting those under way");
                outcome.halted = Some(why);
                halt.cancel();
            }
            () = tokio::time::sleep_until(due), if launching => {
                inflight.push(apply(cluster, &guard, &timeline[next], start, &halt));
                next += 1;
            }
        }
    }
    outcome.records.sort_by_key(|r| (r.injected_ms, r.entry));
    drop(inflight);
    outcome.left_down = guard.lock().expect("guard lock").left_down();
    outcome
}

/// Resolves when the engine has not answered a ping for longer than `SILENCE_LIMIT`.
async fn watchdog<C: Cluster>(cluster: &C) -> String {
    let mut last_ok = Instant::now();
    loop {
        tokio::time::sleep(PING_EVERY).await;
        match tokio::time::timeout(PING_TIMEOUT, cluster.ping()).await {
            Ok(Ok(())) => last_ok = Instant::now(),
            Ok(Err(err)) if last_ok.elapsed() > SILENCE_LIMIT => {
                return format!("dead man's switch: the Docker engine stopped answering ({err})")
            }
            Err(_) if last_ok.elapsed() > SILENCE_LIMIT => {
                return format!(
                    "dead man's switch: the Docker engine did not answer a ping for {}s",
                    last_ok.elapsed().as_secs()
                )
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::apply::REVERT_ATTEMPTS;
    use super::super::schedule;
    use super::super::test_plans::{plan, plan_with};
    use super::*;
    use crate::cluster::{Acted, Action, Ended, EngineError, Victim};
    use crate::plan::Plan;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Records every action with its time; replacements and restarts take 300 ms.
    struct Fake {
        actions: Mutex<Vec<(Action, Victim, Duration)>>,
        start: Instant,
        engine_dead: AtomicBool,
        reverts_fail: AtomicBool,
        /// A victim given a memory limit dies of it this long after (`oom`).
        oom_after: Option<Duration>,
    }

    impl Fake {
        fn new(start: Instant) -> Self {
            Fake {
                actions: Mutex::new(Vec::new()),
                start,
                engine_dead: AtomicBool::new(false),
                reverts_fail: AtomicBool::new(false),
                oom_after: None,
            }
        }

        fn actions(&self) -> Vec<(Action, Victim, Duration)> {
            self.actions.lock().unwrap().clone()
        }

        /// How many times `action` was taken.
        fn count(&self, action: Action) -> usize {
            self.actions().iter().filter(|a| a.0 == action).count()
        }
    }

    /// Runs the whole timeline of `plan` against `fake`, from `fake`'s start, with
    /// nothing stopping it early.
    async fn run_through(fake: &Fake, min_alive: usize, plan: &Plan) -> Outcome {
        let timeline = schedule(plan);
        let never = CancellationToken::new();
        run(fake, min_alive, &timeline, fake.start, &never, &|_| {}).await
    }

    impl Cluster for Fake {
        fn replicas(&self) -> usize {
            5
        }
        async fn act(&self, action: Action, victim: Victim) -> Result<Acted, EngineError> {
            self.actions
                .lock()
                .unwrap()
                .push((action, victim, self.start.elapsed()));
            if action == Action::Unpause && self.reverts_fail.load(Ordering::Relaxed) {
                return Err(EngineError::State("unpause refused".into()));
            }
            let waits = matches!(
                action,
                Action::Replace | Action::Restart(_) | Action::StartAgain
            );
            if waits {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let instance = match (action, victim) {
                (Action::Replace, Victim::Replica(slot)) => format!("replica-{slot}.1"),
                (_, Victim::Replica(slot)) => format!("replica-{slot}.0"),
                (_, other) => other.to_string(),
            };
            Ok(Acted {
                ready_after: waits.then(|| Duration::from_millis(300)),
                ..Acted::on(instance)
            })
        }
        async fn ended(&self, victim: Victim) -> Result<Option<Ended>, EngineError> {
            let Some(after) = self.oom_after else {
                return Ok(None);
            };
            let limited = self.actions().into_iter().rev().find(|a| a.1 == victim);
            Ok(match limited {
                Some((Action::LimitMemory(_), _, at)) if self.start.elapsed() >= at + after => {
                    Some(Ended {
                        oom_killed: true,
                        exit_code: 137,
                    })
                }
                _ => None,
            })
        }
        async fn ping(&self) -> Result<(), EngineError> {
            if self.engine_dead.load(Ordering::Relaxed) {
                Err(EngineError::State("engine gone".into()))
            } else {
                Ok(())
            }
        }
    }

    fn stop_after(secs: u64) -> CancellationToken {
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stopper.cancel();
        });
        stop
    }

    #[tokio::test(start_paused = true)]
    async fn run_applies_each_fault_at_its_time_and_stops_when_told() {
        let plan = plan(3);
        let timeline = schedule(&plan);
        let start = Instant::now();
        let fake = Fake::new(start);
        let stop = stop_after(15);
        let outcome = run(&fake, 1, &timeline, start, &stop, &|_| {}).await;
        let kills: Vec<_> = fake
            .actions()
            .into_iter()
            .filter(|a| a.0 == Action::Kill)
            .collect();
        assert_eq!(kills.len(), 3, "faults at 6, 10 and 14 s only: {kills:?}");
        for ((_, victim, at), planned) in kills.iter().zip(&timeline) {
            assert_eq!(vec![*victim], planned.victims);
            assert_eq!(*at, planned.at);
        }
        let Victim::Replica(slot) = timeline[0].victims[0] else {
            panic!()
        };
        let records = &outcome.records;
        assert_eq!(
            records[0].replacement.as_deref(),
            Some(&*format!("replica-{slot}.1"))
        );
        assert_eq!(records[0].ready_after_ms, Some(300));
        assert_eq!(records[0].outcome, "injected");
        assert!(outcome.halted.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn min_alive_skips_a_fault_that_would_go_below_it_and_says_why() {
        // Of 5 replicas, 4 must stay healthy: one pause at a time, never two.
        let chaos = "[[chaos]]\nfault = \"pause\"\ntarget = \"replica-0\"\nat = [\"1s\"]\nduration = \"10s\"\n\
                     [[chaos]]\nfault = \"pause\"\ntarget = \"replica-1\"\nat = [\"2s\", \"20s\"]\nduration = \"10s\"\n";
        let fake = Fake::new(Instant::now());
        let outcome = run_through(&fake, 4, &plan_with(1, "30s", chaos)).await;
        let outcomes: Vec<&str> = outcome.records.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["injected", "skipped", "injected"]);
        let reason = outcome.records[1].reason.as_deref().unwrap();
        assert!(reason.contains("min_alive = 4"), "{reason}");
        // The skipped fault touched nothing: two pauses, each undone.
        let paused = (fake.count(Action::Pause), fake.count(Action::Unpause));
        assert_eq!(paused, (2, 2));
        assert_eq!(outcome.records[0].reverted_ms, Some(11_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_left_down_counts_against_min_alive() {
        let chaos = "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nafter_kill = \"none\"\n";
        let fake = Fake::new(Instant::now());
        let outcome = run_through(&fake, 2, &plan_with(1, "20s", chaos)).await;
        let kills = fake.count(Action::Kill);
        assert_eq!(kills, 3, "5 replicas, 2 must stay: {:?}", outcome.records);
        assert!(fake.actions().iter().all(|a| a.0 == Action::Kill));
        assert!(outcome.records.iter().any(|r| r.outcome == "skipped"));
        assert_eq!(outcome.left_down.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_reverts_a_temporary_fault_at_once() {
        let chaos = "[[chaos]]\nfault = \"disconnect\"\ntarget = \"store\"\nat = [\"2s\"]\nduration = \"60s\"\n";
        let plan = plan_with(1, "100s", chaos);
        let start = Instant::now();
        let fake = Fake::new(start);
        let stop = stop_after(5);
        let outcome = run(&fake, 1, &schedule(&plan), start, &stop, &|_| {}).await;
        let actions = fake.actions();
        assert_eq!(
            actions,
            [
                (Action::Disconnect, Victim::Store, Duration::from_secs(2)),
                (Action::Reconnect, Victim::Store, Duration::from_secs(5)),
            ]
        );
        assert_eq!(outcome.records[0].reverted_ms, Some(5000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cpu_fault_throttles_then_puts_the_limits_back() {
        let chaos = "[[chaos]]\nfault = \"cpu\"\ncpus = 0.25\ntarget = \"replica-1\"\nat = [\"1s\"]\nduration = \"2s\"\n";
        let fake = Fake::new(Instant::now());
        let outcome = run_through(&fake, 1, &plan_with(1, "10s", chaos)).await;
        let (one, at) = (Victim::Replica(1), Duration::from_secs);
        assert_eq!(
            fake.actions(),
            [
                (Action::Throttle(250), one, at(1)),
                (Action::Unthrottle, one, at(3))
            ]
        );
        let record = &outcome.records[0];
        assert_eq!(record.params.as_deref(), Some("0.250 cpu"));
        assert_eq!(
            (record.outcome, record.reverted_ms),
            ("injected", Some(3000))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_oom_kill_is_named_as_such_and_the_replica_replaced() {
        let chaos = "[[chaos]]\nfault = \"oom\"\nmemory = \"16MiB\"\ntarget = \"replica-2\"\nat = [\"1s\"]\nduration = \"5s\"\n";
        let fake = Fake {
            oom_after: Some(Duration::from_millis(1500)),
            ..Fake::new(Instant::now())
        };
        let outcome = run_through(&fake, 1, &plan_with(1, "10s", chaos)).await;
        let kinds: Vec<Action> = fake.actions().iter().map(|a| a.0).collect();
        // Killed by the kernel, not by the harness: no kill, no limit to put back.
        assert_eq!(
            kinds,
            [Action::LimitMemory(Some(16 << 20)), Action::Replace]
        );
        let record = &outcome.records[0];
        assert_eq!(record.outcome, "oom_killed");
        let ended = record.ended_ms.expect("when it died");
        assert!((2500..=2700).contains(&ended), "{ended}");
        assert_eq!(record.replacement.as_deref(), Some("replica-2.1"));
        assert_eq!(record.reverted_ms, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_outlives_an_oom_fault_gets_its_limit_back() {
        let chaos = "[[chaos]]\nfault = \"oom\"\ntarget = \"replica-0\"\nat = [\"1s\"]\nduration = \"2s\"\n";
        let fake = Fake::new(Instant::now());
        let outcome = run_through(&fake, 1, &plan_with(1, "10s", chaos)).await;
        let kinds: Vec<Action> = fake.actions().iter().map(|a| a.0).collect();
        assert_eq!(kinds, [Action::LimitMemory(None), Action::UnlimitMemory]);
        let record = &outcome.records[0];
        assert_eq!(record.outcome, "survived");
        assert!(record.reverted_ms.unwrap() >= 3000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_revert_is_retried_then_reported() {
        let chaos = "[[chaos]]\nfault = \"pause\"\ntarget = \"replica-3\"\nat = [\"1s\"]\nduration = \"1s\"\n";
        let fake = Fake::new(Instant::now());
        fake.reverts_fail.store(true, Ordering::Relaxed);
        let outcome = run_through(&fake, 1, &plan_with(1, "10s", chaos)).await;
        assert_eq!(fake.count(Action::Unpause), REVERT_ATTEMPTS as usize);
        let record = &outcome.records[0];
        assert_eq!(record.outcome, "revert_failed");
        assert!(record.error.as_deref().unwrap().contains("unpause refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn dead_mans_switch_stops_chaos_when_the_engine_goes_silent() {
        let chaos = "[[chaos]]\nfault = \"kill\"\nevery = \"2s\"\n";
        let plan = plan_with(1, "60s", chaos);
        let start = Instant::now();
        let fake = Fake::new(start);
        let killer = async {
            tokio::time::sleep(Duration::from_millis(6500)).await;
            fake.engine_dead.store(true, Ordering::Relaxed);
        };
        let timeline = schedule(&plan);
        let never = CancellationToken::new();
        let (outcome, ()) = tokio::join!(run(&fake, 1, &timeline, start, &never, &|_| {}), killer);
        let why = outcome.halted.expect("chaos halted");
        assert!(why.contains("dead man's switch"), "{why}");
        let last = fake.actions().last().unwrap().2;
        assert!(
            last < Duration::from_secs(12),
            "chaos went on until {last:?}"
        );
        assert!(outcome.records.len() < 29);
    }
}
