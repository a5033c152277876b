//! Faults on a seeded schedule, their reverts, and what users saw of each.
//!
//! The whole timeline is drawn before the run starts ([`schedule`]), from the plan's
//! seed alone, so the same seed gives the same faults at the same offsets against the
//! same targets, and `sessionstorm plan` can show it without starting anything.
//! [`run`] follows it against a [`Cluster`]: every fault runs as its own task, so
//! entries run side by side and a slow replacement does not delay the next fault.
//!
//! Safety lives here too: a [`Guard`] knows which replicas are under a fault and
//! skips a fault that would leave fewer than `min_alive` healthy; every temporary
//! fault is reverted at its end or as soon as chaos stops, and a failed revert is
//! retried and reported loudly; a watchdog stops chaos when the Docker engine stops
//! answering (dead man's switch). [`measure_recovery`] then reads the load's
//! [`FailureTimeline`] to give each fault its error window as users saw it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Acted, Action, Cluster, EngineError, KillOutcome, Victim};
use crate::metrics::FailureTimeline;
use crate::plan::{AfterKill, Fault, Plan, Schedule, Target};

/// One fault of the timeline, with everything needed to apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Offset from the start of the load.
    pub at: Duration,
    /// Index of the `[[chaos]]` entry it comes from.
    pub entry: usize,
    pub fault: Fault,
    /// Whom it hits, drawn up front.
    pub victims: Vec<Victim>,
    /// How long a temporary fault lasts.
    pub duration: Option<Duration>,
    pub grace: Duration,
    pub after_kill: AfterKill,
}

impl fmt::Display for Scheduled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let victims: Vec<String> = self.victims.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{:>8.3}s  #{}  {:<10} {}",
            self.at.as_secs_f64(),
            self.entry,
            self.fault.name(),
            victims.join(", ")
        )?;
        match self.fault {
            Fault::Pause | Fault::Disconnect | Fault::Blackhole => {
                let d = self.duration.unwrap_or_default();
                write!(f, " for {}", humantime::format_duration(d))
            }
            Fault::Kill | Fault::Stop => {
                if self.fault == Fault::Stop {
                    write!(f, " (grace {})", humantime::format_duration(self.grace))?;
                }
                let then = match self.after_kill {
                    AfterKill::Replace => "replace",
                    AfterKill::Restart => "restart",
                    AfterKill::None => "leave down",
                };
                write!(f, ", then {then}")
            }
            Fault::Restart => write!(f, " (grace {})", humantime::format_duration(self.grace)),
        }
    }
}

/// Draws the fault timeline of a run: each entry's offsets from its schedule, and
/// its victims, from an RNG seeded by the plan's seed and the entry's index (so
/// adding an entry does not change the others). Only offsets strictly within the
/// run's duration are kept.
pub fn schedule(plan: &Plan) -> Vec<Scheduled> {
    let replicas = plan.service.replicas;
    let mut timeline = Vec::new();
    for (entry, chaos) in plan.chaos.iter().enumerate() {
        let mut rng =
            StdRng::seed_from_u64(plan.seed ^ (entry as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut offsets: Vec<(Duration, Option<usize>)> = Vec::new();
        match &chaos.schedule {
            Schedule::Every(every) => {
                let mut at = chaos.start_after + *every;
                while at < plan.duration {
                    offsets.push((at, None));
                    at += *every;
                }
            }
            Schedule::Poisson(mean) => {
                let mut at = chaos.start_after;
                loop {
                    // Exponential gap: -ln(1 - u) * mean, u uniform in [0, 1).
                    let u: f64 = rng.random();
                    at += mean.mul_f64(-(1.0 - u).ln());
                    if at >= plan.duration {
                        break;
                    }
                    offsets.push((at, None));
                }
            }
            Schedule::At(list) => {
                offsets.extend(
                    list.iter()
                        .filter(|at| **at < plan.duration)
                        .map(|at| (*at, None)),
                );
            }
            Schedule::Rolling(spacing) => {
                for slot in 0..replicas {
                    let at = chaos.start_after + *spacing * (slot as u32 + 1);
                    if at < plan.duration {
                        offsets.push((at, Some(slot)));
                    }
                }
            }
        }
        for (at, rolling_slot) in offsets {
            let victims = match (rolling_slot, chaos.target) {
                (Some(slot), _) => vec![Victim::Replica(slot)],
                (None, Target::RandomReplica) => {
                    vec![Victim::Replica(rng.random_range(0..replicas))]
                }
                (None, Target::Replica(slot)) => vec![Victim::Replica(slot)],
                (None, Target::Share(pct)) => {
                    let k = (replicas * pct as usize).div_ceil(100).clamp(1, replicas);
                    let mut slots = rand::seq::index::sample(&mut rng, replicas, k).into_vec();
                    slots.sort_unstable();
                    slots.into_iter().map(Victim::Replica).collect()
                }
                (None, Target::Store) => vec![Victim::Store],
                (None, Target::Balancer) => vec![Victim::Balancer],
            };
            timeline.push(Scheduled {
                at,
                entry,
                fault: chaos.fault,
                victims,
                duration: chaos.fault.is_temporary().then_some(chaos.duration),
                grace: chaos.grace,
                after_kill: chaos.after_kill,
            });
        }
    }
    timeline.sort_by_key(|s| (s.at, s.entry));
    timeline
}

/// The error window one fault caused, from the user's side: failed requests between
/// its injection and the next fault (or the end of the load), in 10 ms buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Offsets from the start of the load of the first and last failed bucket.
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
    /// `last - first + 10`: how long users saw errors.
    pub window_ms: u64,
    pub failed_requests: u64,
    /// From injection until the end of the last failed bucket: how long until users
    /// stopped seeing errors.
    pub recovery_ms: u64,
}

/// What happened when a fault was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Index of the `[[chaos]]` entry.
    pub entry: usize,
    pub fault: &'static str,
    /// The instances hit (or, when skipped, the planned targets), comma-separated.
    pub target: String,
    /// When the schedule said, and when it happened, from the start of the load.
    pub planned_ms: u64,
    pub injected_ms: u64,
    /// `injected`, `already_gone`, `skipped`, `failed` or `revert_failed`.
    pub outcome: &'static str,
    /// Why a fault was skipped.
    pub reason: Option<String>,
    /// The instance that took the slot over (kill or stop with `replace`).
    pub replacement: Option<String>,
    /// From injection until what was killed, stopped or restarted was healthy again.
    pub ready_after_ms: Option<u64>,
    /// When a temporary fault was reverted, from the start of the load.
    pub reverted_ms: Option<u64>,
    pub error: Option<String>,
    /// Filled in after the load by [`measure_recovery`]; none when no request failed.
    pub recovery: Option<Recovery>,
}

/// What chaos did over a run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub records: Vec<FaultRecord>,
    /// Set when the dead man's switch stopped chaos early: why.
    pub halted: Option<String>,
    /// Replica slots left down on purpose (`after_kill = "none"`).
    pub left_down: Vec<usize>,
}

/// Which targets are under a fault now; decides whether a fault may go ahead.
#[derive(Debug)]
pub struct Guard {
    replicas: usize,
    min_alive: usize,
    /// Under a fault right now.
    busy: BTreeSet<Victim>,
    /// Replica slots left down for good (`after_kill = "none"`).
    gone: BTreeSet<usize>,
}

impl Guard {
    pub fn new(replicas: usize, min_alive: usize) -> Self {
        Guard {
            replicas,
            min_alive,
            busy: BTreeSet::new(),
            gone: BTreeSet::new(),
        }
    }

    fn healthy(&self) -> usize {
        let down: BTreeSet<usize> = self
            .busy
            .iter()
            .filter_map(|v| match v {
                Victim::Replica(slot) => Some(*slot),
                _ => None,
            })
            .chain(self.gone.iter().copied())
            .collect();
        self.replicas - down.len()
    }

    /// Marks `victims` as under a fault, or says why the fault must be skipped.
    pub fn reserve(&mut self, victims: &[Victim]) -> Result<(), String> {
        for v in victims {
            if self.busy.contains(v) {
                return Err(format!("{v} is already under a fault"));
            }
            if matches!(v, Victim::Replica(slot) if self.gone.contains(slot)) {
                return Err(format!("{v} was left down by an earlier fault"));
            }
        }
        let hit = victims
            .iter()
            .filter(|v| matches!(v, Victim::Replica(_)))
            .count();
        let healthy = self.healthy();
        if hit > 0 && healthy.saturating_sub(hit) < self.min_alive {
            return Err(format!(
                "min_alive = {}: {healthy} replicas healthy, this fault would take down {hit}",
                self.min_alive
            ));
        }
        self.busy.extend(victims.iter().copied());
        Ok(())
    }

    /// The fault on `victims` is over; `left_down` replicas stay down for good.
    pub fn release(&mut self, victims: &[Victim], left_down: bool) {
        for v in victims {
            self.busy.remove(v);
            if let (true, Victim::Replica(slot)) = (left_down, v) {
                self.gone.insert(*slot);
            }
        }
    }
}

/// How often the watchdog asks the engine whether it is alive, and how long it may
/// stay silent before chaos stops.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
const SILENCE_LIMIT: Duration = Duration::from_secs(3);
/// Attempts for a revert before it is given up (and reported) as failed.
const REVERT_ATTEMPTS: u32 = 5;

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
    outcome.left_down = guard
        .lock()
        .expect("guard lock")
        .gone
        .iter()
        .copied()
        .collect();
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

async fn apply<C: Cluster>(
    cluster: &C,
    guard: &Mutex<Guard>,
    fault: &Scheduled,
    start: Instant,
    halt: &CancellationToken,
) -> FaultRecord {
    let injected = start.elapsed();
    let names: Vec<String> = fault.victims.iter().map(ToString::to_string).collect();
    let mut record = FaultRecord {
        entry: fault.entry,
        fault: fault.fault.name(),
        target: names.join(", "),
        planned_ms: fault.at.as_millis() as u64,
        injected_ms: injected.as_millis() as u64,
        outcome: "injected",
        reason: None,
        replacement: None,
        ready_after_ms: None,
        reverted_ms: None,
        error: None,
        recovery: None,
    };
    let reserved = guard.lock().expect("guard lock").reserve(&fault.victims);
    if let Err(reason) = reserved {
        record.outcome = "skipped";
        record.reason = Some(reason);
        return record;
    }

    // The first action, on every victim at once.
    let first = match fault.fault {
        Fault::Kill => Action::Kill,
        Fault::Stop => Action::Stop(fault.grace),
        Fault::Restart => Action::Restart(fault.grace),
        Fault::Pause => Action::Pause,
        Fault::Disconnect => Action::Disconnect,
        Fault::Blackhole => Action::BlackholeOn,
    };
    let results =
        futures_util::future::join_all(fault.victims.iter().map(|v| cluster.act(first, *v))).await;
    let mut hit = Vec::new();
    let mut instances = Vec::new();
    let mut errors = Vec::new();
    let mut ready = None::<Duration>;
    let mut all_gone = true;
    for (victim, result) in fault.victims.iter().zip(results) {
        match result {
            Ok(acted) => {
                instances.push(acted.instance);
                all_gone &= acted.outcome == KillOutcome::AlreadyGone;
                ready = max_ready(ready, acted.ready_after);
                hit.push(*victim);
            }
            Err(err) => errors.push(format!("{victim}: {err}")),
        }
    }
    if !instances.is_empty() {
        record.target = instances.join(", ");
    }
    if hit.is_empty() {
        record.outcome = "failed";
    } else if all_gone {
        record.outcome = "already_gone";
    }

    let mut left_down = false;
    match fault.fault {
        Fault::Kill | Fault::Stop => {
            let then = |v: &Victim| match (fault.after_kill, v) {
                (AfterKill::None, _) => None,
                (AfterKill::Replace, Victim::Replica(_)) => Some(Action::Replace),
                _ => Some(Action::StartAgain),
            };
            left_down = fault.after_kill == AfterKill::None;
            let results = futures_util::future::join_all(
                hit.iter()
                    .filter_map(|v| then(v).map(|a| (a, *v)))
                    .map(|(a, v)| cluster.act(a, v)),
            )
            .await;
            let mut replacements = Vec::new();
            for result in results {
                match result {
                    Ok(acted) => {
                        ready = max_ready(ready, acted.ready_after);
                        replacements.push(acted.instance);
                    }
                    Err(err) => errors.push(format!("coming back failed: {err}")),
                }
            }
            if fault.after_kill == AfterKill::Replace && !replacements.is_empty() {
                record.replacement = Some(replacements.join(", "));
            }
        }
        Fault::Restart => {}
        Fault::Pause | Fault::Disconnect | Fault::Blackhole => {
            let revert = match fault.fault {
                Fault::Pause => Action::Unpause,
                Fault::Disconnect => Action::Reconnect,
                _ => Action::BlackholeOff,
            };
            tokio::select! {
                () = tokio::time::sleep(fault.duration.unwrap_or_default()) => {}
                () = halt.cancelled() => {}
            }
            for victim in &hit {
                if let Err(err) = revert_with_retry(cluster, revert, *victim).await {
                    record.outcome = "revert_failed";
                    errors.push(err);
                }
            }
            record.reverted_ms = Some(start.elapsed().as_millis() as u64);
        }
    }
    record.ready_after_ms = ready.map(|d| d.as_millis() as u64);
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    guard
        .lock()
        .expect("guard lock")
        .release(&fault.victims, left_down);
    record
}

fn max_ready(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Reverts a temporary fault, retrying with growing pauses; every failure is printed
/// on stderr at once, since a container left paused or cut off falsifies what follows.
async fn revert_with_retry<C: Cluster>(
    cluster: &C,
    action: Action,
    victim: Victim,
) -> Result<Acted, String> {
    let mut last: Option<EngineError> = None;
    for attempt in 1..=REVERT_ATTEMPTS {
        match cluster.act(action, victim).await {
            Ok(acted) => return Ok(acted),
            Err(err) => {
                eprintln!(
                    "error: REVERT FAILED: {action:?} {victim} (attempt {attempt}/{REVERT_ATTEMPTS}): {err}"
                );
                last = Some(err);
            }
        }
        tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt - 1)).await;
    }
    Err(format!(
        "revert {action:?} of {victim} failed {REVERT_ATTEMPTS} times: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Gives each injected fault its error window: the failed requests from its
/// injection until the next fault's (or `end`, the end of the load).
pub fn measure_recovery(records: &mut [FaultRecord], failures: &FailureTimeline, end: Duration) {
    records.sort_by_key(|r| (r.injected_ms, r.entry));
    let starts: Vec<u64> = records
        .iter()
        .filter(|r| !matches!(r.outcome, "skipped" | "failed"))
        .map(|r| r.injected_ms)
        .collect();
    let bucket = FailureTimeline::RESOLUTION.as_millis() as u64;
    for record in records.iter_mut() {
        if matches!(record.outcome, "skipped" | "failed") {
            continue;
        }
        let from = record.injected_ms;
        let to = starts
            .iter()
            .copied()
            .find(|s| *s > from)
            .map_or(end, Duration::from_millis);
        let failed = failures.failures_between(Duration::from_millis(from), to);
        let (Some(first), Some(last)) = (failed.first(), failed.last()) else {
            continue;
        };
        let first_ms = first.0.as_millis() as u64;
        let last_ms = last.0.as_millis() as u64;
        record.recovery = Some(Recovery {
            first_failure_ms: first_ms,
            last_failure_ms: last_ms,
            window_ms: last_ms - first_ms + bucket,
            failed_requests: failed.iter().map(|(_, n)| u64::from(*n)).sum(),
            recovery_ms: (last_ms + bucket).saturating_sub(from),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{build, Overrides};
    use crate::scenario::Source;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn plan_with(seed: u64, duration: &str, chaos: &str) -> Plan {
        let text = format!(
            r#"
name = "t"
duration = "{duration}"
min_alive = 1
[service]
replicas = 5
[load]
rate = 10
appends_per_session = 1
{chaos}
"#
        );
        let source = Source {
            path: "t.toml".into(),
            text,
        };
        build(
            &source,
            &Overrides {
                seed: Some(seed),
                ..Overrides::default()
            },
        )
        .unwrap()
    }

    fn plan(seed: u64) -> Plan {
        plan_with(
            seed,
            "30s",
            "[[chaos]]\nfault = \"kill\"\nevery = \"4s\"\nstart_after = \"2s\"\n",
        )
    }

    #[test]
    fn timeline_follows_every_and_start_after_within_duration() {
        let at: Vec<u64> = schedule(&plan(1)).iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [6, 10, 14, 18, 22, 26]);
    }

    #[test]
    fn same_seed_same_timeline_other_seed_other_victims() {
        assert_eq!(schedule(&plan(7)), schedule(&plan(7)));
        let victims = |seed| {
            schedule(&plan(seed))
                .iter()
                .map(|s| s.victims.clone())
                .collect::<Vec<_>>()
        };
        assert_ne!(victims(7), victims(8));
        assert!(victims(7)
            .iter()
            .flatten()
            .all(|v| matches!(v, Victim::Replica(s) if *s < 5)));
    }

    #[test]
    fn poisson_gaps_have_roughly_the_mean_and_follow_the_seed() {
        let chaos = "[[chaos]]\nfault = \"kill\"\nmean_interval = \"3s\"\n";
        let timeline = schedule(&plan_with(5, "3000s", chaos));
        // 1000 expected; a Poisson count has a standard deviation of about 32.
        assert!((850..1150).contains(&timeline.len()), "{}", timeline.len());
        let gaps: Vec<Duration> = timeline.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps.iter().any(|g| *g < Duration::from_secs(1)));
        assert!(gaps.iter().any(|g| *g > Duration::from_secs(6)));
        let again = schedule(&plan_with(5, "3000s", chaos));
        assert_eq!(timeline, again);
        assert_ne!(timeline, schedule(&plan_with(6, "3000s", chaos)));
    }

    #[test]
    fn fixed_timeline_keeps_offsets_within_the_run() {
        let chaos = "[[chaos]]\nfault = \"pause\"\ntarget = \"store\"\nat = [\"25s\", \"10s\", \"40s\"]\nduration = \"2s\"\n";
        let timeline = schedule(&plan_with(1, "30s", chaos));
        let at: Vec<u64> = timeline.iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [10, 25]);
        assert_eq!(timeline[0].victims, [Victim::Store]);
        assert_eq!(timeline[0].duration, Some(Duration::from_secs(2)));
    }

    #[test]
    fn rolling_goes_through_every_replica_once_in_order() {
        let chaos = "[[chaos]]\nfault = \"restart\"\nschedule = \"rolling\"\nevery = \"3s\"\nstart_after = \"1s\"\n";
        let timeline = schedule(&plan_with(1, "60s", chaos));
        let victims: Vec<Victim> = timeline.iter().flat_map(|s| s.victims.clone()).collect();
        assert_eq!(victims, (0..5).map(Victim::Replica).collect::<Vec<_>>());
        let at: Vec<u64> = timeline.iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [4, 7, 10, 13, 16]);
    }

    #[test]
    fn a_share_hits_distinct_replicas_rounded_up() {
        let chaos = "[[chaos]]\nfault = \"pause\"\ntarget = \"50%\"\nevery = \"1s\"\n";
        for fault in schedule(&plan_with(3, "20s", chaos)) {
            assert_eq!(fault.victims.len(), 3, "{fault}");
            let mut distinct = fault.victims.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
        }
    }

    #[test]
    fn several_entries_interleave_in_time_order() {
        let chaos = "[[chaos]]\nfault = \"kill\"\nevery = \"4s\"\n[[chaos]]\nfault = \"pause\"\ntarget = \"replica-2\"\nat = [\"5s\"]\n";
        let timeline = schedule(&plan_with(1, "10s", chaos));
        let entries: Vec<(u64, usize)> =
            timeline.iter().map(|s| (s.at.as_secs(), s.entry)).collect();
        assert_eq!(entries, [(4, 0), (5, 1), (8, 0)]);
    }

    /// Records every action with its time; replacements and restarts take 300 ms.
    struct Fake {
        actions: Mutex<Vec<(Action, Victim, Duration)>>,
        start: Instant,
        engine_dead: AtomicBool,
        reverts_fail: AtomicBool,
    }

    impl Fake {
        fn new(start: Instant) -> Self {
            Fake {
                actions: Mutex::new(Vec::new()),
                start,
                engine_dead: AtomicBool::new(false),
                reverts_fail: AtomicBool::new(false),
            }
        }

        fn actions(&self) -> Vec<(Action, Victim, Duration)> {
            self.actions.lock().unwrap().clone()
        }
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
                instance,
                outcome: KillOutcome::Killed,
                ready_after: waits.then(|| Duration::from_millis(300)),
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
        let plan = plan_with(1, "30s", chaos);
        let timeline = schedule(&plan);
        let start = Instant::now();
        let fake = Fake::new(start);
        let outcome = run(
            &fake,
            4,
            &timeline,
            start,
            &CancellationToken::new(),
            &|_| {},
        )
        .await;
        let outcomes: Vec<&str> = outcome.records.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["injected", "skipped", "injected"]);
        let reason = outcome.records[1].reason.as_deref().unwrap();
        assert!(reason.contains("min_alive = 4"), "{reason}");
        // The skipped fault touched nothing: two pauses, each undone.
        let actions = fake.actions();
        let count = |a: Action| actions.iter().filter(|x| x.0 == a).count();
        assert_eq!((count(Action::Pause), count(Action::Unpause)), (2, 2));
        assert_eq!(outcome.records[0].reverted_ms, Some(11_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replica_left_down_counts_against_min_alive() {
        let chaos = "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nafter_kill = \"none\"\n";
        let plan = plan_with(1, "20s", chaos);
        let start = Instant::now();
        let fake = Fake::new(start);
        let outcome = run(
            &fake,
            2,
            &schedule(&plan),
            start,
            &CancellationToken::new(),
            &|_| {},
        )
        .await;
        let kills = fake
            .actions()
            .iter()
            .filter(|a| a.0 == Action::Kill)
            .count();
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
    async fn a_failing_revert_is_retried_then_reported() {
        let chaos = "[[chaos]]\nfault = \"pause\"\ntarget = \"replica-3\"\nat = [\"1s\"]\nduration = \"1s\"\n";
        let plan = plan_with(1, "10s", chaos);
        let start = Instant::now();
        let fake = Fake::new(start);
        fake.reverts_fail.store(true, Ordering::Relaxed);
        let outcome = run(
            &fake,
            1,
            &schedule(&plan),
            start,
            &CancellationToken::new(),
            &|_| {},
        )
        .await;
        let unpauses = fake
            .actions()
            .iter()
            .filter(|a| a.0 == Action::Unpause)
            .count();
        assert_eq!(unpauses, REVERT_ATTEMPTS as usize);
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

    #[test]
    fn recovery_window_spans_the_failures_until_the_next_fault() {
        let failures = FailureTimeline::new(Duration::from_secs(30));
        for ms in [1_005, 1_200, 1_200, 1_790, 6_000] {
            failures.record(Duration::from_millis(ms));
        }
        let record = |injected_ms, outcome| FaultRecord {
            entry: 0,
            fault: "kill",
            target: "replica-0.0".into(),
            planned_ms: injected_ms,
            injected_ms,
            outcome,
            reason: None,
            replacement: None,
            ready_after_ms: None,
            reverted_ms: None,
            error: None,
            recovery: None,
        };
        let mut records = vec![
            record(1_000, "injected"),
            record(3_000, "skipped"),
            record(5_000, "injected"),
            record(8_000, "injected"),
        ];
        measure_recovery(&mut records, &failures, Duration::from_secs(10));
        assert_eq!(
            records[0].recovery,
            Some(Recovery {
                first_failure_ms: 1_000,
                last_failure_ms: 1_790,
                window_ms: 800,
                failed_requests: 4,
                recovery_ms: 800,
            })
        );
        assert_eq!(records[1].recovery, None, "skipped faults get no window");
        let second = records[2].recovery.as_ref().unwrap();
        assert_eq!((second.window_ms, second.failed_requests), (10, 1));
        assert_eq!(records[3].recovery, None, "no failure after 8 s");
    }
}
