//! Faults on a seeded schedule.
//!
//! The whole timeline is drawn before the run starts ([`schedule`]), from the plan's
//! seed alone, so the same seed gives the same faults at the same offsets against the
//! same slots, and the timeline can be shown without starting anything. [`run`] then
//! follows it against a [`Cluster`], one fault at a time.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::plan::{Fault, Plan, Target};

/// One fault of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// Offset from the start of the load.
    pub at: Duration,
    /// Index of the `[[chaos]]` entry it comes from.
    pub entry: usize,
    pub fault: Fault,
    pub slot: usize,
}

/// Draws the fault timeline of a run: each entry fires every `every` after
/// `start_after`, strictly within the run's duration, at a slot drawn from an RNG
/// seeded by the plan's seed and the entry's index.
pub fn schedule(plan: &Plan) -> Vec<Scheduled> {
    let mut timeline = Vec::new();
    for (entry, chaos) in plan.chaos.iter().enumerate() {
        let mut rng =
            StdRng::seed_from_u64(plan.seed ^ (entry as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut at = chaos.start_after + chaos.every;
        while at < plan.duration {
            let slot = match chaos.target {
                Target::RandomReplica => rng.random_range(0..plan.service.replicas),
            };
            timeline.push(Scheduled {
                at,
                entry,
                fault: chaos.fault,
                slot,
            });
            at += chaos.every;
        }
    }
    timeline.sort_by_key(|s| (s.at, s.entry));
    timeline
}

/// What happened when a fault was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultRecord {
    pub fault: &'static str,
    pub slot: usize,
    /// The instance that was hit.
    pub target: String,
    /// When the schedule said, and when it happened, from the start of the load.
    pub planned_ms: u64,
    pub injected_ms: u64,
    /// `killed`, `already_gone`, or `failed`.
    pub outcome: &'static str,
    /// The instance that took the slot over, and how long it took to become healthy.
    pub replacement: Option<String>,
    pub ready_after_ms: Option<u64>,
    pub error: Option<String>,
}

/// Applies `timeline` to `cluster`, each fault at its offset from `start`, until the
/// timeline ends or `stop` fires. Calls `on_fault` after each fault, for progress.
pub async fn run<C: Cluster>(
    cluster: &C,
    timeline: &[Scheduled],
    start: Instant,
    stop: &CancellationToken,
    on_fault: &(dyn Fn(&FaultRecord) + Sync),
) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for fault in timeline {
        tokio::select! {
            () = tokio::time::sleep_until(start + fault.at) => {}
            () = stop.cancelled() => break,
        }
        let record = apply(cluster, fault, start).await;
        on_fault(&record);
        records.push(record);
    }
    records
}

async fn apply<C: Cluster>(cluster: &C, fault: &Scheduled, start: Instant) -> FaultRecord {
    let injected = start.elapsed();
    let mut record = FaultRecord {
        fault: match fault.fault {
            Fault::Kill => "kill",
        },
        slot: fault.slot,
        target: format!("slot {}", fault.slot),
        planned_ms: fault.at.as_millis() as u64,
        injected_ms: injected.as_millis() as u64,
        outcome: "failed",
        replacement: None,
        ready_after_ms: None,
        error: None,
    };
    match cluster.kill(fault.slot).await {
        Ok(killed) => {
            record.target = killed.instance;
            record.outcome = killed.outcome.name();
        }
        Err(err) => {
            record.error = Some(err.to_string());
            return record;
        }
    }
    match cluster.replace(fault.slot).await {
        Ok(replaced) => {
            record.replacement = Some(replaced.instance);
            record.ready_after_ms = Some(replaced.ready_after.as_millis() as u64);
        }
        Err(err) => record.error = Some(format!("replacement failed: {err}")),
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{EngineError, KillOutcome, Killed, Replaced};
    use crate::plan::{build, Overrides};
    use crate::scenario::Source;
    use std::sync::Mutex;

    fn plan(seed: u64) -> Plan {
        let text = r#"
name = "t"
duration = "30s"
[service]
replicas = 5
[load]
rate = 10
appends_per_session = 1
[[chaos]]
fault = "kill"
every = "4s"
start_after = "2s"
"#;
        let source = Source {
            path: "t.toml".into(),
            text: text.into(),
        };
        build(
            &source,
            &Overrides {
                seed: Some(seed),
                duration: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn timeline_follows_every_and_start_after_within_duration() {
        let at: Vec<u64> = schedule(&plan(1)).iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [6, 10, 14, 18, 22, 26]);
    }

    #[test]
    fn same_seed_same_timeline_other_seed_other_slots() {
        assert_eq!(schedule(&plan(7)), schedule(&plan(7)));
        let slots = |seed| {
            schedule(&plan(seed))
                .iter()
                .map(|s| s.slot)
                .collect::<Vec<_>>()
        };
        assert_ne!(slots(7), slots(8));
        assert!(slots(7).iter().all(|s| *s < 5));
    }

    /// Records the slots it was asked to kill, and when.
    #[derive(Default)]
    struct Fake {
        kills: Mutex<Vec<(usize, Duration)>>,
        start: Mutex<Option<Instant>>,
    }

    impl Cluster for Fake {
        fn replicas(&self) -> usize {
            5
        }
        async fn kill(&self, slot: usize) -> Result<Killed, EngineError> {
            let start = self.start.lock().unwrap().unwrap();
            self.kills.lock().unwrap().push((slot, start.elapsed()));
            Ok(Killed {
                instance: format!("replica-{slot}.0"),
                outcome: KillOutcome::Killed,
            })
        }
        async fn replace(&self, slot: usize) -> Result<Replaced, EngineError> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Replaced {
                instance: format!("replica-{slot}.1"),
                ready_after: Duration::from_millis(300),
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_applies_each_fault_at_its_time_and_stops_when_told() {
        let plan = plan(3);
        let timeline = schedule(&plan);
        let fake = Fake::default();
        let start = Instant::now();
        *fake.start.lock().unwrap() = Some(start);
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(15)).await;
            stopper.cancel();
        });
        let records = run(&fake, &timeline, start, &stop, &|_| {}).await;
        let kills = fake.kills.lock().unwrap().clone();
        assert_eq!(kills.len(), 3, "faults at 6, 10 and 14 s only: {kills:?}");
        for ((slot, at), planned) in kills.iter().zip(&timeline) {
            assert_eq!(*slot, planned.slot);
            assert_eq!(*at, planned.at);
        }
        assert_eq!(
            records[0].replacement.as_deref(),
            Some(&*format!("replica-{}.1", timeline[0].slot))
        );
        assert_eq!(records[0].ready_after_ms, Some(300));
        assert_eq!(records[0].outcome, "killed");
    }
}
