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
//!
//! Layout, in the order a run meets it:
//! - [`schedule`](mod@schedule): the seeded timeline, drawn from the plan alone;
//! - `run`: follows the timeline, one task per fault, with the watchdog;
//! - `guard`: `min_alive`, and which targets are under a fault now;
//! - `apply`: how each fault is applied to its victims, and reverted;
//! - `record`: what each fault did ([`FaultRecord`]), as reports show it;
//! - `recovery`: the error window users saw after each fault.

mod apply;
mod guard;
mod record;
mod recovery;
mod run;
mod schedule;

pub use apply::revert_action;
pub use guard::Guard;
pub use record::{FaultRecord, HitTimeline, Outcome, Recovery};
pub use recovery::measure_recovery;
pub use run::run;
pub use schedule::{schedule, Scheduled};

/// Plans for the unit tests of the files below.
#[cfg(test)]
mod test_plans {
    use crate::plan::Plan;
    use crate::scenario::overrides::Overrides;
    use crate::scenario::Source;
    use crate::validate::build;

    /// A plan of five replicas, with `chaos` as its `[[chaos]]` entries.
    pub(super) fn plan_with(seed: u64, duration: &str, chaos: &str) -> Plan {
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

    /// The tests' usual timeline: a kill every 4 s after 2 s, over 30 s.
    pub(super) fn plan(seed: u64) -> Plan {
        plan_with(
            seed,
            "30s",
            "[[chaos]]\nfault = \"kill\"\nevery = \"4s\"\nstart_after = \"2s\"\n",
        )
    }
}
