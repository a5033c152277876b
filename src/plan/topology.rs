//! The store's shape (`[store] topology`): one server, or the replicated, clustered and
//! pooled stores production runs, where sessions are really lost (a failover that drops
//! what the primary acknowledged, a lost cache node, split brain).
//!
//! Plain data: which members a topology has, what they are called and how the service
//! reaches them. The engine (`cluster::docker::store`) starts them.

/// Redis Cluster's shape here: three primaries, one replica each (the smallest cluster
/// that survives the loss of a primary).
pub const CLUSTER_PRIMARIES: usize = 3;
/// Sentinels watching a replicated store: three, so two make a quorum.
pub const SENTINELS: usize = 3;
/// The port Sentinels listen on.
pub const SENTINEL_PORT: u16 = 26379;
/// The name Sentinels know the replicated store's primary by.
pub const SENTINEL_MASTER: &str = "sessions";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Topology {
    /// One store container, `store`.
    #[default]
    Single,
    /// One primary (`store-0` at the start) and `replicas` replicas with asynchronous
    /// replication, three Sentinels, and HAProxy in TCP mode in front as `store`,
    /// sending connections to whichever member says `role:master`: the service's
    /// address for its store stays the same across failovers.
    Replicated { replicas: usize },
    /// Redis Cluster: `store-0..2` primaries, `store-3..5` their replicas.
    Cluster,
    /// `nodes` memcached servers, `store-0..`; the service hashes keys over them.
    MemcachedPool { nodes: usize },
}

impl Topology {
    /// As a scenario spells it.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Single => "single",
            Topology::Replicated { .. } => "replicated",
            Topology::Cluster => "cluster",
            Topology::MemcachedPool { .. } => "memcached-pool",
        }
    }

    /// The members that hold data, `store-0 ..`; none apart from the store itself
    /// for a single store.
    pub fn members(self) -> usize {
        match self {
            Topology::Single => 0,
            Topology::Replicated { replicas } => 1 + replicas,
            Topology::Cluster => 2 * CLUSTER_PRIMARIES,
            Topology::MemcachedPool { nodes } => nodes,
        }
    }

    /// Whether it has a primary that can fail over (targets `store-primary`).
    pub fn has_primary(self) -> bool {
        matches!(self, Topology::Replicated { .. } | Topology::Cluster)
    }

    /// One line for people: "replicated (a primary, 2 replicas, 3 Sentinels)".
    pub fn describe(self) -> String {
        match self {
            Topology::Single => "single".into(),
            Topology::Replicated { replicas } => format!(
                "replicated (a primary, {replicas} replica{}, {SENTINELS} Sentinels, HAProxy in front)",
                plural(replicas)
            ),
            Topology::Cluster => format!(
                "cluster ({CLUSTER_PRIMARIES} primaries with a replica each)"
            ),
            Topology::MemcachedPool { nodes } => {
                format!("memcached-pool ({nodes} node{})", plural(nodes))
            }
        }
    }
}

/// A member's name, as chaos targets it and as its alias on the run's network.
pub fn member(index: usize) -> String {
    format!("store-{index}")
}

/// The index of the member `name` names (`store-2`: 2).
pub fn member_index(name: &str) -> Option<usize> {
    name.strip_prefix("store-")?.parse().ok()
}

/// A Sentinel's name and alias.
pub fn sentinel(index: usize) -> String {
    format!("sentinel-{index}")
}

/// What `{store_nodes}` stands for: every data member's `host:port`, joined by
/// commas, or the single store's.
pub fn nodes(topology: Topology, host: &str, port: u16) -> String {
    match topology.members() {
        0 => format!("{host}:{port}"),
        n => (0..n)
            .map(|i| format!("{}:{port}", member(i)))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_their_addresses() {
        assert_eq!(nodes(Topology::Single, "store", 6379), "store:6379");
        assert_eq!(
            nodes(Topology::MemcachedPool { nodes: 3 }, "store", 11211),
            "store-0:11211,store-1:11211,store-2:11211"
        );
        assert_eq!(Topology::Cluster.members(), 6);
        assert_eq!(Topology::Replicated { replicas: 1 }.members(), 2);
        assert!(Topology::Cluster.has_primary());
        assert!(!Topology::MemcachedPool { nodes: 2 }.has_primary());
        assert_eq!(
            Topology::Replicated { replicas: 1 }.describe(),
            "replicated (a primary, 1 replica, 3 Sentinels, HAProxy in front)"
        );
    }
}
