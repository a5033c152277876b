//! The faults of a run: what is hit, how, and when.

use std::time::Duration;

/// The smallest memory limit Docker accepts.
pub const MIN_MEMORY: u64 = 6 << 20;

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

/// A fault with its settings. What it is apart from them (its name, keys, whether
/// it is reverted, what it needs, where it runs) is its entry in the fault table,
/// [`super::faults`], which also holds `name`, `is_temporary` and `needs`.
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
    /// network namespace), without taking it off the network; with a `peer`, only
    /// its packets to and from that peer, so it still answers everyone else.
    Blackhole { peer: Option<Peer> },
    /// Throttle a replica to `millicores` thousandths of one core for `duration`
    /// (the cgroup's CFS quota, through the engine's update API).
    Cpu { millicores: u32 },
    /// Drop this share of the packets in and out of the container, each drawn at
    /// random (iptables `statistic --mode random` in its network namespace); with a
    /// `peer`, only among its packets to and from that peer.
    Loss { percent: u8, peer: Option<Peer> },
    /// Limit what the container sends to this many bits per second (a `tbf` qdisc on
    /// its interface).
    Bandwidth { bits_per_sec: u64 },
    /// Give a replica a memory limit (`bytes`, or its usage now plus a little when
    /// `None`) so that it runs out and the kernel's OOM killer kills it; what brings
    /// it back is `after_kill`'s. A replica that outlives `duration` gets its old
    /// limit back.
    Oom { bytes: Option<u64> },
    /// Hold the store's answers back by `delay_ms` plus up to `jitter_ms` (drawn from
    /// the seed) for `duration`, so every store call of the replicas takes that much
    /// longer while the balancer still sees them up. A userspace proxy in the harness
    /// on the replicas' path to the store: needs nothing from the kernel.
    SlowStore { delay_ms: u32, jitter_ms: u32 },
    /// Hold a replica's answers to the balancer (or the store's, to the replicas) back
    /// by `delay_ms` plus up to `jitter_ms`, through the same kind of proxy.
    Latency { delay_ms: u32, jitter_ms: u32 },
    /// Lower the store's `maxmemory` to `bytes` for `duration` (`CONFIG SET`, from the
    /// harness): under its eviction policy (`[store] eviction`) Redis then evicts
    /// keys, or refuses writes (`noeviction`).
    MemoryPressure { bytes: u64 },
    /// SIGKILL the store's current primary: Sentinel (or the cluster) promotes a
    /// replica; the fault's record holds how long until the store served writes
    /// again. What comes back is `after_kill`'s (by default a fresh replica of the
    /// new primary).
    Failover,
    /// Cut the store's primary off from its replicas and the Sentinels, not from the
    /// service, for `duration` (iptables in its network namespace): a second primary
    /// is promoted, and at the heal the old one's writes since the cut are discarded.
    StoreSplit,
    /// Delay the replication stream from the primary to its replicas by `delay_ms`
    /// plus up to `jitter_ms` for `duration` (the harness's delaying proxy on the
    /// replication link, as across zones).
    StoreLag { delay_ms: u32, jitter_ms: u32 },
}

impl Fault {
    /// The fault's own setting in words (`0.25 cpu`, `5% loss`), for the plan and the
    /// reports; `None` for faults that have none.
    pub fn params(self) -> Option<String> {
        match self {
            Fault::Cpu { millicores } => Some(format!("{:.3} cpu", f64::from(millicores) / 1000.0)),
            Fault::Blackhole { peer: Some(peer) } => {
                Some(format!("only its traffic with the {peer}"))
            }
            Fault::Loss {
                percent,
                peer: None,
            } => Some(format!("{percent}% of packets dropped")),
            Fault::Loss {
                percent,
                peer: Some(peer),
            } => Some(format!(
                "{percent}% of packets dropped, only its traffic with the {peer}"
            )),
            Fault::Bandwidth { bits_per_sec } => Some(format!("{} kbit/s", bits_per_sec / 1000)),
            Fault::Oom { bytes: Some(b) } => Some(format!("memory limit {} MiB", b >> 20)),
            Fault::Oom { bytes: None } => Some("memory limit: usage at injection + 4 MiB".into()),
            Fault::MemoryPressure { bytes } => Some(format!("maxmemory {} KiB", bytes >> 10)),
            Fault::SlowStore { .. } | Fault::Latency { .. } | Fault::StoreLag { .. } => {
                let (delay_ms, jitter_ms) = self.delay()?;
                let jitter = match jitter_ms {
                    0 => String::new(),
                    j => format!(" + up to {j} ms jitter"),
                };
                Some(format!("answers +{delay_ms} ms{jitter}"))
            }
            _ => None,
        }
    }

    /// The same delaying fault, holding back by `delay_ms` plus up to `jitter_ms`;
    /// any other fault as it is.
    pub fn with_delay(self, delay_ms: u32, jitter_ms: u32) -> Fault {
        match self {
            Fault::SlowStore { .. } => Fault::SlowStore {
                delay_ms,
                jitter_ms,
            },
            Fault::Latency { .. } => Fault::Latency {
                delay_ms,
                jitter_ms,
            },
            Fault::StoreLag { .. } => Fault::StoreLag {
                delay_ms,
                jitter_ms,
            },
            other => other,
        }
    }

    /// `blackhole` and `loss`: whom the fault cuts its victim off from, when not
    /// from everyone.
    pub fn peer(self) -> Option<Peer> {
        match self {
            Fault::Blackhole { peer } | Fault::Loss { peer, .. } => peer,
            _ => None,
        }
    }

    /// `latency` and `slow_store`: how long answers are held back, and up to how much
    /// more, in ms.
    pub fn delay(self) -> Option<(u32, u32)> {
        match self {
            Fault::SlowStore {
                delay_ms,
                jitter_ms,
            }
            | Fault::Latency {
                delay_ms,
                jitter_ms,
            }
            | Fault::StoreLag {
                delay_ms,
                jitter_ms,
            } => Some((delay_ms, jitter_ms)),
            _ => None,
        }
    }
}

/// Whom a network fault (`blackhole`, `loss`) cuts a replica off from, instead of
/// everyone: the replica still answers the balancer and its health checks, and only
/// its calls to the peer fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Every container of the run's store (whatever its topology: members,
    /// Sentinels, a proxy in front), and the harness's delaying proxy in front of it.
    Store,
}

impl Peer {
    /// Every peer, in the order messages list them.
    pub const ALL: [Peer; 1] = [Peer::Store];

    /// `peer = "…"` in a scenario.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Store => "store",
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
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
    /// Whichever member of the store is its primary when the fault starts.
    StorePrimary,
    /// A member of a store topology, `store-<n>`.
    StoreMember(usize),
    Balancer,
}

impl Target {
    /// Whether it names replicas of the service (not the store, its members or the
    /// balancer).
    pub fn is_replicas(self) -> bool {
        matches!(
            self,
            Target::RandomReplica | Target::Replica(_) | Target::Share(_)
        )
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::RandomReplica => f.write_str("random-replica"),
            Target::Replica(slot) => write!(f, "replica-{slot}"),
            Target::Share(pct) => write!(f, "{pct}%"),
            Target::Store => f.write_str("store"),
            Target::StorePrimary => f.write_str("store-primary"),
            Target::StoreMember(n) => f.write_str(&super::topology::member(*n)),
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
