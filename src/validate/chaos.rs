//! `[[chaos]]`: each entry's fault, target and schedule, and whether the entries fit
//! the rest of the run.

use std::time::Duration;

use toml::Spanned;

use super::fault::Named;
use super::Validator;
use crate::plan::faults;
use crate::plan::faults::Aim;
use crate::plan::topology::Topology;
use crate::plan::{
    AfterKill, BalancerKind, ChaosPlan, Fault, Peer, Schedule, StoreKind, StorePlan, Target,
};
use crate::scenario;

const TARGETS: &str =
    "\"random-replica\", \"replica-<slot>\" (from 0), a share like \"25%\", \"store\", \"store-primary\", \"store-<n>\" (a member, from 0), \"balancer\"";
const REPLICA_TARGETS: &str =
    "\"random-replica\", \"replica-<slot>\" (from 0), a share like \"25%\"";
const AFTER_KILL: &str = "\"replace\", \"restart\", \"none\"";
const SCHEDULE_KEYS: &str =
    "`every = \"5s\"`, `mean_interval = \"3s\"`, `at = [\"10s\", \"25s\"]` or `schedule = \"rolling\"`";
/// More faults than this from one chaos entry is a mistake (`every = "1ms"`), and
/// drawing its timeline would take the machine's memory.
pub const MAX_FAULTS_PER_ENTRY: usize = 10_000;

impl Validator<'_> {
    pub(super) fn chaos(
        &mut self,
        raw: &scenario::Chaos,
        replicas: usize,
        topology: Topology,
    ) -> Option<ChaosPlan> {
        let fault = match self.fault(raw) {
            Named::Fault(fault) => Some(fault),
            Named::Unknown => None,
            Named::WrongKeys => return None,
        };
        let name = fault.map_or("", Fault::name);
        let aim = fault.map_or(Aim::Any, |f| f.entry().aim);
        let target = match &raw.target {
            None => match aim {
                Aim::Any => Some(Target::RandomReplica),
                Aim::Store => Some(Target::Store),
                Aim::Primary => Some(Target::StorePrimary),
            },
            Some(t) => self.target(t, replicas, topology),
        };
        let span = raw.target.as_ref().map_or(0..0, |t| t.span());
        let on_member = matches!(target, Some(Target::StorePrimary | Target::StoreMember(_)));
        if matches!(fault, Some(Fault::Latency { .. }))
            && (target == Some(Target::Balancer) || on_member)
        {
            self.problem(
                span,
                format!(
                    "fault {name:?} on {} is not supported yet; target replicas or the store",
                    match target {
                        Some(Target::Balancer) => "the balancer".to_string(),
                        other => format!(
                            "a store member ({})",
                            other.map_or(String::new(), |t| t.to_string())
                        ),
                    }
                ),
            );
            return None;
        }
        if let (Some(peer), Some(t), Some(at)) =
            (fault.and_then(Fault::peer), target, raw.peer.as_ref())
        {
            if !t.is_replicas() {
                self.problem(
                    at.span(),
                    format!("`chaos.peer` cuts replicas off from the {peer}, and target \"{t}\" is no replica; accepted targets with `peer`: {REPLICA_TARGETS}"),
                );
                return None;
            }
        }
        let wanted = match aim {
            Aim::Any => None,
            Aim::Store => Some((Target::Store, "the store")),
            Aim::Primary => Some((Target::StorePrimary, "the store's primary")),
        };
        if let (Some((wanted, words)), Some(given)) = (wanted, target) {
            if given != wanted {
                self.problem(
                    span,
                    format!("fault {name:?} acts on {words} only: leave `target` out or set it to \"{wanted}\""),
                );
                return None;
            }
        }
        if target == Some(Target::Store) && topology != Topology::Single && aim != Aim::Store {
            let members = topology.members();
            let primary = if topology.has_primary() {
                "\"store-primary\" or "
            } else {
                ""
            };
            self.problem(
                span,
                format!(
                    "chaos target \"store\": a \"{}\" store has members; name one: {primary}\"store-0\" to \"store-{}\"",
                    topology.name(),
                    members - 1
                ),
            );
            return None;
        }
        let schedule = self.schedule(raw);
        let start_after = match &raw.start_after {
            Some(s) => self.duration(s, "chaos.start_after"),
            None => Some(Duration::ZERO),
        };
        let temporary = fault.is_some_and(Fault::is_temporary);
        let duration = match &raw.duration {
            Some(d) if !temporary => {
                if fault.is_some() {
                    self.problem(
                        d.span(),
                        format!(
                            "`chaos.duration` applies only to temporary faults ({})",
                            faults::names(|e| e.temporary)
                        ),
                    );
                }
                None
            }
            d => self.optional_duration(d, "chaos.duration", Duration::from_secs(3)),
        };
        // No grace is SIGKILL at once: a `restart` then brings a store back in a few
        // hundred milliseconds, as a supervisor restarting a crashed process does.
        let grace = match &raw.grace {
            Some(g) => self.duration(g, "chaos.grace"),
            None => Some(Duration::from_secs(2)),
        };
        let after_kill = match &raw.after_kill {
            None => Some(AfterKill::Replace),
            Some(a) if fault.is_some_and(|f| !f.entry().kills) => {
                self.problem(
                    a.span(),
                    format!(
                        "`chaos.after_kill` applies only to {}",
                        faults::names_and(|e| e.kills)
                    ),
                );
                None
            }
            Some(a) => {
                match a.get_ref().as_str() {
                    "replace" => Some(AfterKill::Replace),
                    "restart" => Some(AfterKill::Restart),
                    "none" => Some(AfterKill::None),
                    other => {
                        self.problem(
                        a.span(),
                        format!("unknown `chaos.after_kill` {other:?}; accepted values: {AFTER_KILL}"),
                    );
                        None
                    }
                }
            }
        };
        if let (Some(Schedule::Rolling(_)), Some(t)) = (&schedule, &target) {
            if *t != Target::RandomReplica {
                let span = raw.target.as_ref().map_or(0..0, |t| t.span());
                self.problem(
                    span,
                    "a rolling schedule goes through every replica itself; leave `target` out",
                );
                return None;
            }
        }
        Some(ChaosPlan {
            fault: fault?,
            target: target?,
            schedule: schedule?,
            start_after: start_after?,
            duration: duration?,
            grace: grace?,
            after_kill: after_kill?,
        })
    }

    fn target(
        &mut self,
        raw: &Spanned<String>,
        replicas: usize,
        topology: Topology,
    ) -> Option<Target> {
        let text = raw.get_ref().as_str();
        let bad = |v: &mut Self, why: String| {
            v.problem(raw.span(), why);
            None
        };
        match text {
            "random-replica" => Some(Target::RandomReplica),
            "store" => Some(Target::Store),
            "balancer" => Some(Target::Balancer),
            "store-primary" if topology.has_primary() => Some(Target::StorePrimary),
            "store-primary" => bad(
                self,
                format!(
                    "chaos target \"store-primary\": a \"{}\" store has no primary that fails over; set `store.topology` to \"replicated\" or \"cluster\"",
                    topology.name()
                ),
            ),
            _ => {
                if let Some(index) = text.strip_prefix("store-") {
                    let members = topology.members();
                    return match index.parse::<usize>() {
                        Ok(index) if index < members => Some(Target::StoreMember(index)),
                        _ if members == 0 => bad(
                            self,
                            format!("chaos target {text:?}: a single store has no members; target \"store\", or set `store.topology`"),
                        ),
                        _ => bad(
                            self,
                            format!(
                                "chaos target {text:?} names no member of the store; there are {members}: store-0 to store-{}",
                                members - 1
                            ),
                        ),
                    };
                }
                if let Some(slot) = text.strip_prefix("replica-") {
                    match slot.parse::<usize>() {
                        Ok(slot) if slot < replicas => Some(Target::Replica(slot)),
                        _ => bad(
                            self,
                            format!(
                                "chaos target {text:?} names no replica; there are {replicas}: replica-0 to replica-{}",
                                replicas.saturating_sub(1)
                            ),
                        ),
                    }
                } else if let Some(pct) = text.strip_suffix('%') {
                    match pct.trim().parse::<u8>() {
                        Ok(p) if (1..=100).contains(&p) => Some(Target::Share(p)),
                        _ => bad(
                            self,
                            format!("chaos target {text:?}: a share is 1% to 100%"),
                        ),
                    }
                } else {
                    bad(
                        self,
                        format!("unknown chaos target {text:?}; accepted values: {TARGETS}"),
                    )
                }
            }
        }
    }

    fn schedule(&mut self, raw: &scenario::Chaos) -> Option<Schedule> {
        let rolling = match &raw.schedule {
            None => false,
            Some(s) if s.get_ref() == "rolling" => true,
            Some(s) => {
                self.problem(
                    s.span(),
                    format!(
                        "unknown `chaos.schedule` {:?}; accepted values: \"rolling\" (or use {SCHEDULE_KEYS})",
                        s.get_ref()
                    ),
                );
                return None;
            }
        };
        let given = [
            raw.every.is_some() && !rolling,
            raw.mean_interval.is_some(),
            raw.at.is_some(),
            rolling,
        ];
        let span = raw.fault.span();
        match given.iter().filter(|g| **g).count() {
            0 => {
                self.problem(
                    span,
                    format!("this chaos entry has no schedule; add one of {SCHEDULE_KEYS}"),
                );
                return None;
            }
            1 => {}
            _ => {
                self.problem(
                    span,
                    format!(
                        "this chaos entry has more than one schedule; keep one of {SCHEDULE_KEYS}"
                    ),
                );
                return None;
            }
        }
        if rolling {
            let spacing =
                self.optional_duration(&raw.every, "chaos.every", Duration::from_secs(5))?;
            return Some(Schedule::Rolling(spacing));
        }
        if let Some(every) = &raw.every {
            return self
                .positive_duration(every, "chaos.every")
                .map(Schedule::Every);
        }
        if let Some(mean) = &raw.mean_interval {
            return self
                .positive_duration(mean, "chaos.mean_interval")
                .map(Schedule::Poisson);
        }
        let at = raw.at.as_ref()?;
        if at.get_ref().is_empty() {
            self.problem(
                at.span(),
                "`chaos.at` is empty; list offsets like [\"10s\", \"25s\"]",
            );
            return None;
        }
        let offsets: Vec<Option<Duration>> = at
            .get_ref()
            .iter()
            .map(|o| self.duration(o, "chaos.at"))
            .collect();
        let mut offsets: Vec<Duration> = offsets.into_iter().collect::<Option<_>>()?;
        offsets.sort();
        Some(Schedule::At(offsets))
    }

    /// Checks the entries against the rest of the run: a target that exists, and a
    /// schedule that does not draw an absurd number of faults in `duration`.
    pub(super) fn chaos_fits_the_run(
        &mut self,
        raw: &[scenario::Chaos],
        chaos: &[Option<ChaosPlan>],
        balancer: BalancerKind,
        store_plan: &StorePlan,
        duration: Option<Duration>,
    ) {
        let store = store_plan.kind;
        let has_store = store != StoreKind::None;
        for (raw_entry, entry) in raw.iter().zip(chaos) {
            let Some(entry) = entry else { continue };
            let span = || {
                raw_entry
                    .target
                    .as_ref()
                    .map_or(raw_entry.fault.span(), |t| t.span())
            };
            if entry.target == Target::Balancer && balancer == BalancerKind::Direct {
                self.problem(
                    span(),
                    "chaos target \"balancer\": with `balancer.kind = \"direct\"` there is no balancer; target replicas, or use kind \"haproxy\"",
                );
            }
            let needed = entry.fault.entry().topologies;
            let topology = store_plan.topology.name();
            if !needed.is_empty() && !needed.contains(&topology) {
                let needed: Vec<String> = needed.iter().map(|t| format!("{t:?}")).collect();
                self.problem(
                    raw_entry.fault.span(),
                    format!(
                        "fault {:?} needs `store.topology` {} (this store's is {topology:?})",
                        entry.fault.name(),
                        needed.join(" or ")
                    ),
                );
            }
            let on_replicas = entry.target.is_replicas();
            if matches!(entry.fault, Fault::Latency { .. })
                && on_replicas
                && balancer == BalancerKind::Direct
            {
                self.problem(
                    span(),
                    format!(
                        "fault {:?} on replicas sits between the balancer and them: it needs `balancer.kind = \"haproxy\"`",
                        entry.fault.name()
                    ),
                );
            }
            if entry.fault.entry().redis_only && store == StoreKind::Tcp {
                self.problem(
                    span(),
                    format!(
                        "fault {:?} sets the store through Redis's protocol, but this store's kind is \"tcp\"; set `store.kind = \"redis\"` if the image is a Redis",
                        entry.fault.name()
                    ),
                );
            }
            if entry.fault.peer() == Some(Peer::Store) && !has_store {
                let at = raw_entry
                    .peer
                    .as_ref()
                    .map_or(raw_entry.fault.span(), |p| p.span());
                self.problem(
                    at,
                    "`chaos.peer = \"store\"`: with `store.kind = \"none\"` there is no store to cut the replicas off from; configure a store, or leave `peer` out",
                );
            }
            if entry.target == Target::Store && !has_store {
                self.problem(
                    span(),
                    "chaos target \"store\": with `store.kind = \"none\"` there is no store; target replicas, or configure a store",
                );
            }
        }
        if let Some(total) = duration {
            for (raw_entry, entry) in raw.iter().zip(chaos) {
                let Some(entry) = entry else { continue };
                let window = total.saturating_sub(entry.start_after).as_secs_f64();
                let faults = match &entry.schedule {
                    Schedule::Every(d) | Schedule::Poisson(d) => window / d.as_secs_f64().max(1e-9),
                    Schedule::At(_) | Schedule::Rolling(_) => 0.0,
                };
                if faults > MAX_FAULTS_PER_ENTRY as f64 {
                    self.problem(
                        raw_entry.fault.span(),
                        format!(
                            "this chaos entry would inject about {faults:.0} faults in {}; at most {MAX_FAULTS_PER_ENTRY} per entry: space them further apart",
                            humantime::format_duration(total)
                        ),
                    );
                }
            }
        }
    }
}
