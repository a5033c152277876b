//! `[cluster]`: the engine, and whether the rest of the scenario fits it.
//!
//! Swarm's orchestrator owns its tasks: it replaces a failed one itself, it gives all
//! tasks of a service one spec, and its tasks sit on an overlay network the harness
//! cannot reach from the host. What the scenario asks that Swarm cannot do is refused
//! here, naming the engine, before anything starts.

use super::Validator;
use crate::plan::attach::SWARM_SERVICE;
use crate::plan::cluster::SWARM_RESTART_DELAY;
use crate::plan::faults::{self, Support};
use crate::plan::template::{Placeholder, Template};
use crate::plan::{
    AfterKill, BalancerKind, BalancerPlan, ChaosPlan, ClusterPlan, EngineKind, Fault, ServicePlan,
};
use crate::scenario;

const ENGINES: &str = "\"docker\", \"swarm\"";

/// What the rest of the scenario says, for [`Validator::fits_the_engine`].
pub(super) struct Asked<'a> {
    pub attached: bool,
    /// The attach selector's labels, when attach mode is valid so far.
    pub attach_labels: Option<&'a [(String, String)]>,
    pub balancer: &'a BalancerPlan,
    pub service: Option<&'a ServicePlan>,
    pub raw_chaos: &'a [scenario::Chaos],
    pub chaos: &'a [Option<ChaosPlan>],
}

impl Validator<'_> {
    /// `[cluster]` (and `--engine`).
    pub(super) fn cluster(&mut self, raw: &scenario::Cluster) -> ClusterPlan {
        let engine = match raw
            .engine
            .as_ref()
            .map(|e| (e.get_ref().as_str(), e.span()))
        {
            None | Some(("docker", _)) => EngineKind::Docker,
            Some(("swarm", _)) => EngineKind::Swarm,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown cluster engine {other:?}; accepted values: {ENGINES}"),
                );
                EngineKind::Docker
            }
        };
        let restart_delay = match &raw.restart_delay {
            None => SWARM_RESTART_DELAY,
            Some(delay) if engine != EngineKind::Swarm => {
                self.problem(
                    delay.span(),
                    "`cluster.restart_delay` is Swarm's restart policy; it needs `cluster.engine = \"swarm\"` \
                     (on docker the harness replaces a killed replica at once)",
                );
                SWARM_RESTART_DELAY
            }
            Some(delay) => self
                .duration(delay, "cluster.restart_delay")
                .unwrap_or(SWARM_RESTART_DELAY),
        };
        ClusterPlan {
            engine,
            restart_delay,
        }
    }

    /// Refuses what the scenario asks that the engine cannot do.
    pub(super) fn fits_the_engine(
        &mut self,
        raw: &scenario::Cluster,
        cluster: &ClusterPlan,
        asked: Asked<'_>,
    ) {
        if cluster.engine != EngineKind::Swarm {
            return;
        }
        let at = raw.engine.as_ref().map_or(0..0, |e| e.span());
        if asked.attached {
            // Attached, the selector names the service, and only that.
            let names_one_service = asked
                .attach_labels
                .is_none_or(|labels| labels.len() == 1 && labels[0].0 == SWARM_SERVICE);
            if !names_one_service {
                self.problem(
                    at.clone(),
                    format!(
                        "attached to Docker Swarm, the selector names the service whose tasks are the replicas, and nothing else: `--selector {SWARM_SERVICE}=NAME`"
                    ),
                );
            }
            if let Some(delay) = &raw.restart_delay {
                self.problem(
                    delay.span(),
                    "`cluster.restart_delay` is not used when attached: the service's own restart policy applies",
                );
            }
        }
        if asked.balancer.kind == BalancerKind::Direct {
            self.problem(
                at.clone(),
                "the swarm engine needs `balancer.kind = \"haproxy\"`: its tasks are on an overlay network the host cannot reach, only the balancer is published",
            );
        }
        if asked.balancer.sticky {
            self.problem(
                at.clone(),
                "`balancer.sticky` is not available on the swarm engine: the balancer's servers follow Swarm's tasks, which have no fixed names to pin a cookie to",
            );
        }
        if let Some(service) = asked.service {
            let templates: Vec<(String, &Template)> = (service.command.iter())
                .map(|t| ("service.command".to_string(), t))
                .chain(
                    service
                        .entrypoint
                        .iter()
                        .map(|t| ("service.entrypoint".to_string(), t)),
                )
                .chain(
                    service
                        .env
                        .iter()
                        .map(|(k, t)| (format!("service.env.{k}"), t)),
                )
                .collect();
            for (key, template) in templates {
                if template.uses(Placeholder::Replica) {
                    self.problem(
                        at.clone(),
                        format!(
                            "`{key}` uses {{replica}}, which the swarm engine cannot fill in: all tasks of a Swarm service share one spec; use {{instance}} (the task's name)"
                        ),
                    );
                }
            }
        }
        for (raw_entry, entry) in asked.raw_chaos.iter().zip(asked.chaos) {
            let Some(entry) = entry else { continue };
            let fault = entry.fault.name();
            if let Support::No(why) = entry.fault.entry().swarm {
                self.problem(
                    raw_entry.fault.span(),
                    format!(
                        "fault {fault:?} cannot run on the swarm engine ({why}); it applies {} to tasks (use engine \"docker\" for the others)",
                        faults::names(|e| e.swarm == Support::Yes)
                    ),
                );
            }
            if !entry.target.is_replicas() {
                let span = raw_entry
                    .target
                    .as_ref()
                    .map_or(raw_entry.fault.span(), |t| t.span());
                self.problem(
                    span,
                    format!(
                        "chaos target \"{}\" cannot be hit on the swarm engine: faults act on the replicas' tasks only",
                        entry.target
                    ),
                );
            }
            if matches!(entry.fault, Fault::Kill | Fault::Stop)
                && entry.after_kill != AfterKill::Replace
            {
                let span = raw_entry
                    .after_kill
                    .as_ref()
                    .map_or(raw_entry.fault.span(), |a| a.span());
                self.problem(
                    span,
                    "on the swarm engine `chaos.after_kill` can only be \"replace\": Swarm's orchestrator always replaces a failed task (its delay is `cluster.restart_delay`)",
                );
            }
        }
    }
}
