//! The cluster under test: replicas, their session store and the balancer in front.
//!
//! [`Cluster`] is what chaos needs from a cluster, and nothing more, so chaos can be
//! tested against a fake. [`docker::DockerCluster`] is the real one: containers on a
//! private network created for the run, every object labelled with the run id so
//! the harness never touches anything it did not create. [`swarm::SwarmCluster`] runs
//! the replicas as a Docker Swarm service instead (`[cluster] engine = "swarm"`).

pub mod attached;
pub mod delay;
pub mod docker;
pub mod engine;
pub mod haproxy;
pub mod hold;
pub mod kernel;
pub mod limits;
pub mod netns;
pub mod ready;
pub mod swarm;
mod upload;

use std::future::Future;
use std::time::Duration;

pub use engine::{EngineError, KillOutcome};
pub use limits::{Ended, Limits};
pub use netns::Shaping;

use crate::plan::Peer;

/// Label carrying the run id on every container and network the harness creates.
pub const RUN_LABEL: &str = "sessionstorm.run";
/// Label saying what a container is for: `replica`, `store`, `balancer`, `helper`
/// or [`REAPER_ROLE`].
pub const ROLE_LABEL: &str = "sessionstorm.role";
/// The role of the run's reaper (`crate::reaper`): a run's teardown leaves it, and
/// it goes last.
pub const REAPER_ROLE: &str = "reaper";

/// The labels of an object the harness makes for run `run_id`, for `role`.
pub fn run_labels(run_id: &str, role: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (ROLE_LABEL.to_string(), role.to_string()),
    ])
}

/// What a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Victim {
    /// The replica in this slot (0 .. replicas), whatever its generation.
    Replica(usize),
    Store,
    /// Whichever member of the store is primary when the action is taken.
    StorePrimary,
    /// A member of a store topology, `store-<n>`.
    StoreMember(usize),
    Balancer,
}

impl Victim {
    /// The victim an action on `self` hit, given the instance it names: the store's
    /// primary is the member that was primary then.
    pub fn as_acted(self, instance: &str) -> Victim {
        match (self, crate::plan::topology::member_index(instance)) {
            (Victim::StorePrimary, Some(index)) => Victim::StoreMember(index),
            _ => self,
        }
    }
}

impl std::fmt::Display for Victim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Victim::Replica(slot) => write!(f, "replica-{slot}"),
            Victim::Store => f.write_str("store"),
            Victim::StorePrimary => f.write_str("store-primary"),
            Victim::StoreMember(n) => f.write_str(&crate::plan::topology::member(*n)),
            Victim::Balancer => f.write_str("balancer"),
        }
    }
}

/// One Docker-level action of a fault or of its revert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL.
    Kill,
    /// SIGTERM, SIGKILL after the grace period.
    Stop(Duration),
    /// Stop with a grace period and start the same container; waits until it is ready.
    Restart(Duration),
    /// Start the same (stopped) container again; waits until it is ready.
    StartAgain,
    /// A fresh container in a replica's slot; waits until it is ready.
    Replace,
    Pause,
    Unpause,
    /// Off the run's network.
    Disconnect,
    /// Back on the run's network, under its alias.
    Reconnect,
    /// Drop every packet in and out of the container (iptables in its namespace).
    BlackholeOn,
    /// Remove those rules again.
    BlackholeOff,
    /// Leave the container this many thousandths of one core (CFS quota).
    Throttle(u32),
    /// Give it the CPU limits it had before.
    Unthrottle,
    /// Start shaping its traffic (iptables or tc in its namespace).
    ShapeOn(Shaping),
    /// Undo that shaping.
    ShapeOff(Shaping),
    /// Shape only the container's traffic with a peer (its addresses looked up now,
    /// and kept for the undoing), so it still answers everyone else.
    ShapePeerOn(Shaping, Peer),
    /// Undo that shaping: delete exactly the rules it added.
    ShapePeerOff(Shaping, Peer),
    /// Give it a memory limit: these bytes, or its usage now plus a little.
    LimitMemory(Option<u64>),
    /// Give it the memory limit it had before.
    UnlimitMemory,
    /// Hold the store's answers back (the harness's delaying proxy): this many ms,
    /// plus up to `jitter_ms`.
    Delay {
        delay_ms: u32,
        jitter_ms: u32,
    },
    /// Pass the store's answers through at once again.
    Undelay,
    /// Set the store's `maxmemory` to these bytes (`CONFIG SET`, from the harness).
    StoreMemory(u64),
    /// Give the store back the `maxmemory` it had: none (0) for the harness's own,
    /// the value read before the fault for an attached one.
    StoreMemoryBack,
    /// SIGKILL the store's primary and wait until another member serves as primary.
    Failover,
    /// Cut a store member off from the other members and the Sentinels, not from
    /// the service (iptables in its network namespace).
    Isolate,
    /// Remove those rules again.
    Rejoin,
}

/// What an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acted {
    /// The container acted on (for `Replace`, the new one), e.g. `replica-2.1`.
    pub instance: String,
    /// `AlreadyGone` when the container had already stopped or disappeared.
    pub outcome: KillOutcome,
    /// For actions that wait for readiness: from the action until the health check passed.
    pub ready_after: Option<Duration>,
    /// What the action set, when the fault did not say (`LimitMemory(None)`: the limit).
    pub detail: Option<String>,
}

impl Acted {
    /// `instance` acted on, nothing else to say.
    pub fn on(instance: String) -> Self {
        Acted {
            instance,
            outcome: KillOutcome::Killed,
            ready_after: None,
            detail: None,
        }
    }
}

/// What chaos needs from a cluster, and nothing more, so it can be tested against a fake.
pub trait Cluster: Sync {
    fn replicas(&self) -> usize;

    /// Applies one action to one victim.
    fn act(
        &self,
        action: Action,
        victim: Victim,
    ) -> impl Future<Output = Result<Acted, EngineError>> + Send;

    /// How the victim's container ended, or `None` while it runs: an `oom` fault
    /// watches it to tell the kernel's kill from anything else.
    fn ended(
        &self,
        victim: Victim,
    ) -> impl Future<Output = Result<Option<Ended>, EngineError>> + Send;

    /// Whether the engine still answers: chaos stops when it does not (dead man's switch).
    fn ping(&self) -> impl Future<Output = Result<(), EngineError>> + Send;
}

/// What a run needs from a cluster besides chaos: have it up (started, or found
/// running), wait until it has healed after chaos, and remove what the harness made.
pub trait Lifecycle: Cluster {
    fn start(&self) -> impl Future<Output = Result<docker::Started, EngineError>> + Send;

    /// Waits until every replica serves again, except the slots chaos left down on
    /// purpose (`after_kill = "none"`); says how long it took.
    fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> impl Future<Output = Result<Duration, EngineError>> + Send;

    /// Removes every object labelled with the run, whatever state it is in, but the
    /// run's reaper (`crate::reaper`), which goes last.
    fn teardown(&self) -> impl Future<Output = Result<engine::Removed, EngineError>> + Send;

    /// What an orchestrator did with the replicas (where each task ran, its states,
    /// replacements per slot), for the report; `None` where the harness itself
    /// places and replaces containers.
    fn scheduling(&self) -> Option<swarm::facts::Scheduling> {
        None
    }

    /// What the harness asks of the store while the load runs
    /// ([`crate::store::watch`]): each member, how to ask it and how to find its
    /// address, and a replicated store's Sentinels, where the harness can reach them
    /// (its own store, or the one `[attach] store` names); `None` elsewhere (no
    /// store, a store of unknown kind, an overlay network the host cannot reach, an
    /// attached stack's store left unnamed).
    fn store_watch(&self) -> Option<crate::store::watch::Watched> {
        None
    }
}
