//! The fault timeline of a run, drawn before the run starts from the plan's seed.
//!
//! Drawing is pure (no clock, no cluster), so the same seed gives the same faults at
//! the same offsets against the same targets, `sessionstorm plan` can print it
//! without starting anything, and it is tested without Docker.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::Victim;
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
        if let Some(params) = self.fault.params() {
            write!(f, " ({params})")?;
        }
        match self.fault {
            fault if fault.is_temporary() => {
                let d = self.duration.unwrap_or_default();
                write!(f, " for {}", humantime::format_duration(d))?;
                if let Fault::Oom { .. } = fault {
                    write!(f, ", then {}", after_kill(self.after_kill))?;
                }
                Ok(())
            }
            Fault::Kill | Fault::Stop | Fault::Failover => {
                if self.fault == Fault::Stop {
                    write!(f, " (grace {})", humantime::format_duration(self.grace))?;
                }
                write!(f, ", then {}", after_kill(self.after_kill))
            }
            _ => write!(f, " (grace {})", humantime::format_duration(self.grace)),
        }
    }
}

/// What `after_kill` does, in words.
fn after_kill(after: AfterKill) -> &'static str {
    match after {
        AfterKill::Replace => "replace",
        AfterKill::Restart => "restart",
        AfterKill::None => "leave down",
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
                (None, Target::StorePrimary) => vec![Victim::StorePrimary],
                (None, Target::StoreMember(n)) => vec![Victim::StoreMember(n)],
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

#[cfg(test)]
mod tests {
    use super::super::test_plans::{plan, plan_with};
    use super::*;

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
}
