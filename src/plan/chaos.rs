//! The faults of a run: what is hit, how, and when.

use std::time::Duration;

/// One chaos entry: a fault applied to a target on a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosPlan {
    pub fault: Fault,
    pub target: Target,
    pub schedule: Schedule,
    /// Quiet time at the start of the run before the first fault (periodic, Poisson
    /// and rolling schedules).
    pub start_after: Duration,
    /// How long a temporary fault lasts before it is reverted.
    pub duration: Duration,
    /// `stop` and `restart`: time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// What happens to the container after `kill` or `stop`.
    pub after_kill: AfterKill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGTERM, then SIGKILL after the grace period.
    Stop,
    /// Stop (with grace) and start the same container again.
    Restart,
    /// Freeze every process of the container for `duration`, then thaw it.
    Pause,
    /// Take the container off the run's network for `duration`, then reconnect it.
    Disconnect,
    /// Drop every packet to and from the container for `duration` (iptables in its
    /// network namespace), without taking it off the network.
    Blackhole,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Restart => "restart",
            Fault::Pause => "pause",
            Fault::Disconnect => "disconnect",
            Fault::Blackhole => "blackhole",
        }
    }

    /// Faults that last `duration` and are then reverted.
    pub fn is_temporary(self) -> bool {
        matches!(self, Fault::Pause | Fault::Disconnect | Fault::Blackhole)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One replica, drawn from the seeded RNG.
    RandomReplica,
    /// The replica in this slot.
    Replica(usize),
    /// This percentage of the replicas (rounded up, at least one), drawn at once.
    Share(u8),
    Store,
    Balancer,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::RandomReplica => f.write_str("random-replica"),
            Target::Replica(slot) => write!(f, "replica-{slot}"),
            Target::Share(pct) => write!(f, "{pct}%"),
            Target::Store => f.write_str("store"),
            Target::Balancer => f.write_str("balancer"),
        }
    }
}

/// When an entry's faults happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every so often, after `start_after`.
    Every(Duration),
    /// Exponential gaps with this mean (a Poisson process), drawn from the seed.
    Poisson(Duration),
    /// At these offsets from the start of the load.
    At(Vec<Duration>),
    /// Every replica once, slot by slot, this far apart.
    Rolling(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKill {
    /// A fresh container takes the slot (replicas); store and balancer are started again.
    Replace,
    /// The same container is started again.
    Restart,
    /// Nothing: the cluster shrinks.
    None,
}
