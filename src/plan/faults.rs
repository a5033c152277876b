//! The fault table: one entry per fault, the one place its name is spelled and what
//! sets it apart from the others is written down.
//!
//! Before this table a fault's name and traits were repeated in validation (the
//! accepted names, the temporary ones, which keys go with which fault, what Swarm
//! refuses), and the copies drifted apart. Everything that is plain data about a
//! fault lives here; what needs more than data reads this table:
//! - its keys are parsed by `validate`'s parser for the entry's variant;
//! - its cluster actions and the revert of a temporary fault are
//!   `chaos::apply::{first_action, revert_action}` (actions belong to the engine,
//!   which this layer must not import);
//! - the engines apply those actions in their `Cluster::act`.
//!
//! The table's order is the README's, and a test keeps the README's list of faults
//! equal to it.

use super::chaos::Fault;

/// What a fault may be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// Replicas, the store or its members, the balancer.
    Any,
    /// The store as the service sees it (`store`), and nothing else.
    Store,
    /// The store's current primary (`store-primary`), and nothing else.
    Primary,
}

impl Aim {
    /// The target a fault takes when its entry names none.
    pub fn default_target(self) -> &'static str {
        match self {
            Aim::Any => "random-replica",
            Aim::Store => "store",
            Aim::Primary => "store-primary",
        }
    }
}

/// Whether an engine applies a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// Applied where the user names the store's address (`[attach] store`), and
    /// refused elsewhere: the harness then talks to the store itself, from where it
    /// runs, as it does to a store it started.
    StoreNamed,
    /// Refused, and why (said to the user as is).
    No(&'static str),
}

/// Everything about one fault that is plain data.
#[derive(Debug)]
pub struct FaultEntry {
    /// The fault's variant, its settings (if it has any) zero or none: validation's
    /// parser for the variant reads them from the keys.
    pub fault: Fault,
    /// `fault = "…"` in a scenario, and the fault's name in plans and reports.
    pub name: &'static str,
    /// The `[[chaos]]` keys only this fault (or its kin) takes, e.g. `cpus`.
    pub keys: &'static [&'static str],
    /// Lasts `duration` and is then reverted (`chaos::apply::revert_action`).
    pub temporary: bool,
    /// May leave its victim dead, which `after_kill` then brings back.
    pub kills: bool,
    /// What the engine's kernel must offer (one entry per piece), probed before a
    /// run starts; empty for faults that need only the engine.
    pub needs: &'static [KernelFeature],
    /// What it may be aimed at: anything, or only the store (then its default target).
    pub aim: Aim,
    /// The store topologies it needs (`[store] topology`), by name; empty: any.
    pub topologies: &'static [&'static str],
    /// Holds its victims while it lasts: no other fault hits them meanwhile. Not a
    /// fault on a path beside its victim (`store_lag`, on the replication link
    /// from the primary), which a failover of that primary must cross.
    pub exclusive: bool,
    /// The store must be a Redis (the harness sets it through Redis's protocol).
    pub redis_only: bool,
    /// The swarm engine (the docker engine applies every fault).
    pub swarm: Support,
    /// A running stack the harness attached to.
    pub attached: Support,
}

/// Most of what the swarm engine cannot do, for the entries it fits.
const SWARM_AGENT_LACKS: &str = "it works inside the container's own network namespace or cgroup on its node, which the swarm engine's agent does not do yet";
/// Why the delaying proxy's faults need the harness's own cluster.
const NOT_THE_HARNESS_PATH: &str = "the delaying proxy needs the harness's own cluster: an attached stack's paths to its store and replicas are not the harness's to change";

/// What an entry says unless it says otherwise: a fault that is over at once, takes
/// no keys, needs nothing from the kernel and runs on every engine. Every entry
/// sets its own `fault` and `name`.
const PLAIN: FaultEntry = FaultEntry {
    fault: Fault::Kill,
    name: "",
    keys: &[],
    temporary: false,
    kills: false,
    needs: &[],
    aim: Aim::Any,
    topologies: &[],
    exclusive: true,
    redis_only: false,
    swarm: Support::Yes,
    attached: Support::Yes,
};

/// Why the faults on a store's members need the harness's own store.
const STORE_MEMBERS: &str =
    "it acts on the members of a store topology the harness starts itself (`[store] topology`)";

/// Why a fault with a `peer` (`blackhole`, `loss`) needs the harness's own cluster;
/// the swarm engine refuses those faults whole (`SWARM_AGENT_LACKS`).
pub const PEER_NEEDS_THE_RUNS_STORE: &str = "the peer's addresses are those of the store containers the harness started for the run, and an attached stack's store is not one of them";

/// Why the faults the harness applies by talking to the store need its own network.
const NOT_THE_HARNESS_NETWORK: &str = "the harness talks to the store only on a bridge network of its own run, which the host reaches";

/// Every fault, in the README's order.
pub static FAULTS: [FaultEntry; 16] = [
    FaultEntry {
        fault: Fault::Kill,
        name: "kill",
        kills: true,
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Stop,
        name: "stop",
        kills: true,
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Restart,
        name: "restart",
        swarm: Support::No("Swarm never starts a task's container again: a stopped task is replaced by a new one, which is what `stop` measures"),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Pause,
        name: "pause",
        temporary: true,
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Disconnect,
        name: "disconnect",
        temporary: true,
        swarm: Support::No("a task's network endpoints belong to Swarm, which attaches them when it creates the task; the harness does not take them over"),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Blackhole { peer: None },
        name: "blackhole",
        keys: &["peer"],
        temporary: true,
        needs: &[KernelFeature::Iptables],
        swarm: Support::No(SWARM_AGENT_LACKS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Cpu { millicores: 0 },
        name: "cpu",
        keys: &["cpus"],
        temporary: true,
        needs: &[KernelFeature::CpuQuota],
        swarm: Support::No(SWARM_AGENT_LACKS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Loss {
            percent: 0,
            peer: None,
        },
        name: "loss",
        keys: &["loss", "peer"],
        temporary: true,
        needs: &[KernelFeature::IptablesStatistic],
        swarm: Support::No(SWARM_AGENT_LACKS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Bandwidth { bits_per_sec: 0 },
        name: "bandwidth",
        keys: &["rate"],
        temporary: true,
        needs: &[KernelFeature::Tbf],
        swarm: Support::No(SWARM_AGENT_LACKS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Oom { bytes: None },
        name: "oom",
        keys: &["memory"],
        temporary: true,
        kills: true,
        needs: &[KernelFeature::MemoryLimit],
        swarm: Support::No(SWARM_AGENT_LACKS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Latency {
            delay_ms: 0,
            jitter_ms: 0,
        },
        name: "latency",
        keys: &["delay", "jitter"],
        temporary: true,
        swarm: Support::No(SWARM_AGENT_LACKS),
        attached: Support::No(NOT_THE_HARNESS_PATH),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::SlowStore {
            delay_ms: 0,
            jitter_ms: 0,
        },
        name: "slow_store",
        keys: &["delay", "jitter"],
        temporary: true,
        aim: Aim::Store,
        topologies: &["single", "replicated"],
        swarm: Support::No(SWARM_AGENT_LACKS),
        attached: Support::No(NOT_THE_HARNESS_PATH),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::MemoryPressure { bytes: 0 },
        name: "memory_pressure",
        keys: &["memory"],
        temporary: true,
        aim: Aim::Store,
        topologies: &["single"],
        redis_only: true,
        swarm: Support::No(NOT_THE_HARNESS_NETWORK),
        attached: Support::StoreNamed,
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::Failover,
        name: "failover",
        kills: true,
        aim: Aim::Primary,
        topologies: &["replicated", "cluster"],
        swarm: Support::No(STORE_MEMBERS),
        attached: Support::No(STORE_MEMBERS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::StoreSplit,
        name: "store_split",
        temporary: true,
        needs: &[KernelFeature::Iptables],
        aim: Aim::Primary,
        topologies: &["replicated"],
        swarm: Support::No(STORE_MEMBERS),
        attached: Support::No(STORE_MEMBERS),
        ..PLAIN
    },
    FaultEntry {
        fault: Fault::StoreLag {
            delay_ms: 0,
            jitter_ms: 0,
        },
        name: "store_lag",
        keys: &["delay", "jitter"],
        temporary: true,
        needs: &[KernelFeature::Iptables],
        aim: Aim::Primary,
        topologies: &["replicated"],
        exclusive: false,
        swarm: Support::No(STORE_MEMBERS),
        attached: Support::No(STORE_MEMBERS),
        ..PLAIN
    },
];

impl Fault {
    /// This fault's entry in [`FAULTS`]: the one of the same variant.
    pub fn entry(self) -> &'static FaultEntry {
        let variant = std::mem::discriminant(&self);
        FAULTS
            .iter()
            .find(|entry| std::mem::discriminant(&entry.fault) == variant)
            .expect("a fault is made from its entry, so it has one")
    }

    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Faults that last `duration` and are then reverted.
    pub fn is_temporary(self) -> bool {
        self.entry().temporary
    }

    /// What the engine's kernel must offer for this fault, so a run that lacks it
    /// stops before anything starts.
    pub fn needs(self) -> &'static [KernelFeature] {
        self.entry().needs
    }
}

/// The entry named `name`, as a scenario spells it.
pub fn lookup(name: &str) -> Option<&'static FaultEntry> {
    FAULTS.iter().find(|entry| entry.name == name)
}

/// The names of the faults `which` picks, quoted and joined by commas, for the
/// accepted values of a message: `"kill", "stop"`.
pub fn names(which: impl Fn(&FaultEntry) -> bool) -> String {
    quoted(which).join(", ")
}

/// The names of the faults `which` picks, quoted, the last two joined by "and":
/// `"kill", "stop" and "oom"`.
pub fn names_and(which: impl Fn(&FaultEntry) -> bool) -> String {
    let mut names = quoted(which);
    match names.pop() {
        Some(last) if !names.is_empty() => format!("{} and {last}", names.join(", ")),
        last => last.unwrap_or_default(),
    }
}

/// What an engine refuses, one sentence per reason: `"latency" and "slow_store"
/// cannot run on an attached stack (why)`.
pub fn refusals(engine: &str, support: impl Fn(&FaultEntry) -> Support) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for entry in &FAULTS {
        if let Support::No(why) = support(entry) {
            if !reasons.contains(&why) {
                reasons.push(why);
            }
        }
    }
    let sentences: Vec<String> = reasons
        .iter()
        .map(|why| {
            let names = names_and(|e| support(e) == Support::No(why));
            format!("{names} cannot run {engine} ({why})")
        })
        .collect();
    sentences.join("; ")
}

fn quoted(which: impl Fn(&FaultEntry) -> bool) -> Vec<String> {
    FAULTS
        .iter()
        .filter(|entry| which(entry))
        .map(|entry| format!("{:?}", entry.name))
        .collect()
}

/// A piece of the engine's kernel that a fault relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KernelFeature {
    /// netfilter in a container's network namespace (iptables through nf_tables).
    Iptables,
    /// iptables' `statistic` match (xt_statistic), for random drops.
    IptablesStatistic,
    /// The `tbf` queueing discipline (sch_tbf).
    Tbf,
    /// The CFS bandwidth controller (cgroup `cpu` quota).
    CpuQuota,
    /// The cgroup memory controller with limits.
    MemoryLimit,
}

impl KernelFeature {
    pub fn describe(self) -> &'static str {
        match self {
            KernelFeature::Iptables => {
                "netfilter (iptables/nf_tables) in container network namespaces"
            }
            KernelFeature::IptablesStatistic => {
                "iptables' statistic match (kernel module xt_statistic)"
            }
            KernelFeature::Tbf => "the tbf queueing discipline (kernel module sch_tbf)",
            KernelFeature::CpuQuota => {
                "CPU quotas (the CFS bandwidth controller of the cgroup cpu controller)"
            }
            KernelFeature::MemoryLimit => "memory limits (the cgroup memory controller)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_and_name_has_one_entry() {
        for entry in &FAULTS {
            assert!(std::ptr::eq(entry.fault.entry(), entry), "{}", entry.name);
        }
        let mut names: Vec<&str> = FAULTS.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAULTS.len(), "a name is spelled twice");
    }

    #[test]
    fn lists_read_as_messages_say_them() {
        assert_eq!(
            names(|e| e.swarm == Support::Yes),
            r#""kill", "stop", "pause""#
        );
        assert_eq!(
            names_and(|e| e.kills),
            r#""kill", "stop", "oom" and "failover""#
        );
        assert_eq!(
            names_and(|e| e.keys.contains(&"jitter")),
            r#""latency", "slow_store" and "store_lag""#
        );
        assert_eq!(names_and(|e| e.keys.contains(&"cpus")), r#""cpu""#);
        assert_eq!(
            refusals("on an attached stack", |e| e.attached),
            format!(
                r#""latency" and "slow_store" cannot run on an attached stack ({NOT_THE_HARNESS_PATH}); "failover", "store_split" and "store_lag" cannot run on an attached stack ({STORE_MEMBERS})"#
            )
        );
        assert_eq!(
            names(|e| e.attached == Support::StoreNamed),
            r#""memory_pressure""#
        );
        assert_eq!(
            lookup("oom").map(|e| e.fault),
            Some(Fault::Oom { bytes: None })
        );
        assert!(lookup("meteor").is_none());
    }

    /// The README's `[[chaos]] fault` row lists the accepted names in the table's
    /// order, and its `[[chaos]] duration` row the temporary faults.
    #[test]
    fn the_readme_lists_the_faults_of_the_table() {
        let readme = include_str!("../../README.md");
        // The quoted words of a column of the `[[chaos]] KEY` row.
        let said = |key: &str, column: usize, quote: char| -> Vec<&'static str> {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `[[chaos]] {key}` |")))
                .unwrap_or_else(|| panic!("the README has no `[[chaos]] {key}` row"));
            let cell = row.split('|').nth(column).unwrap_or_default();
            cell.split(quote).skip(1).step_by(2).collect()
        };
        let names: Vec<&str> = FAULTS.iter().map(|e| e.name).collect();
        assert_eq!(said("fault", 2, '"'), names);
        let mut temporary: Vec<&str> = FAULTS
            .iter()
            .filter(|e| e.temporary)
            .map(|e| e.name)
            .collect();
        let mut lasting = said("duration", 4, '`');
        temporary.sort_unstable();
        lasting.sort_unstable();
        assert_eq!(lasting, temporary);
    }
}
