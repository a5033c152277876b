//! The plan in words, as `sessionstorm plan` prints it: the cluster, the load, the
//! chaos entries, what the faults need from the engine's kernel and the seeded
//! fault timeline, so a run with the same seed and overrides can be read before it
//! starts. The needs and the timeline come from the layers that compute them
//! (`cluster::kernel`, `chaos::schedule`), which the plan may not import.

use std::fmt::Write as _;

use super::{EngineKind, KernelFeature, Plan, Schedule};

impl Plan {
    /// The resolved plan with the kernel features its faults `needs` and its fault
    /// `timeline` (not drawn for an attached run: its victims are counted when it
    /// starts).
    pub fn render<F: std::fmt::Display>(
        &self,
        needs: impl IntoIterator<Item = KernelFeature>,
        timeline: &[F],
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario {} · seed {}", self.name, self.seed);
        if let Some(attach) = &self.attach {
            let _ = writeln!(
                out,
                "attach   to {} · replicas: the containers labelled {}",
                attach.url,
                attach.selector()
            );
        } else {
            let _ = writeln!(
                out,
                "cluster  {} replicas of {} ({}) · store {} · balancer {}",
                self.service.replicas,
                self.service.image,
                self.service.scheme.as_str(),
                self.store.describe(),
                self.balancer.describe()
            );
            if self.cluster.engine != EngineKind::Docker {
                let _ = writeln!(out, "engine   {}", self.cluster.describe());
            }
        }
        let per_session = match &self.load.flow {
            Some(flow) => format!(
                "a flow of {} start steps then {} rounds of {} steps per session",
                flow.start.len(),
                self.load.appends_per_session,
                flow.steps.len()
            ),
            None => format!("{} appends per session", self.load.appends_per_session),
        };
        let _ = writeln!(
            out,
            "load     {}, {per_session}, for {}",
            self.load.model.describe(),
            humantime::format_duration(self.duration)
        );
        let _ = writeln!(out, "chaos    min_alive {}", self.min_alive);
        for (i, entry) in self.chaos.iter().enumerate() {
            let when = match &entry.schedule {
                Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
                Schedule::Poisson(d) => {
                    format!("random, mean interval {}", humantime::format_duration(*d))
                }
                Schedule::At(list) => {
                    let at: Vec<String> = list
                        .iter()
                        .map(|d| humantime::format_duration(*d).to_string())
                        .collect();
                    format!("at {}", at.join(", "))
                }
                Schedule::Rolling(d) => {
                    format!(
                        "rolling, one replica every {}",
                        humantime::format_duration(*d)
                    )
                }
            };
            let peer = entry
                .fault
                .peer()
                .map(|p| format!(" (only its traffic with the {p})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  #{i} {} {}{peer} {when}, after {}",
                entry.fault.name(),
                entry.target,
                humantime::format_duration(entry.start_after)
            );
        }
        let mut needs = needs.into_iter().peekable();
        if needs.peek().is_some() {
            // Checked on the engine when the run starts (exit 3 when missing).
            let _ = writeln!(
                out,
                "needs from the engine's kernel (checked before the run starts):"
            );
            for need in needs {
                let _ = writeln!(out, "  - {}", need.describe());
            }
        }
        if self.attach.is_some() {
            // Victims are drawn among the matched containers, counted when the run starts.
            let _ = writeln!(
                out,
                "timeline drawn when the run has counted the matched containers (same seed, same timeline)"
            );
            return out;
        }
        let _ = writeln!(
            out,
            "timeline ({} faults, offsets from the start of the load)",
            timeline.len()
        );
        for fault in timeline {
            let _ = writeln!(out, "  {fault}");
        }
        out
    }
}
