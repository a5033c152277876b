//! What the harness starts: the replicas, their session store and the balancer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::template::Template;
use super::topology::Topology;

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub image: String,
    pub replicas: usize,
    /// The port the service listens on inside its container.
    pub port: u16,
    /// What the replicas speak on `port`: HTTPS replicas are reached over TLS by the
    /// balancer, the readiness probes and (with `direct`) the load.
    pub scheme: Scheme,
    /// Answers 200 when a replica can serve; used for readiness and by the balancer.
    pub health_path: String,
    /// How long a replica may take to become healthy before the run gives up.
    pub ready_timeout: Duration,
    /// Arguments for the image's entry point; empty keeps the image's own.
    pub command: Vec<Template>,
    /// Replaces the image's entry point when not empty.
    pub entrypoint: Vec<Template>,
    /// Environment of every replica: what the harness sets, then the scenario's, which
    /// wins.
    pub env: BTreeMap<String, Template>,
}

/// What the replicas speak on their port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scheme {
    #[default]
    Http,
    /// TLS only. Certificates are not verified on the way to replicas the harness
    /// started: it reaches them by container address or alias, which no test
    /// certificate names, on a network of its own.
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StorePlan {
    pub kind: StoreKind,
    pub image: String,
    /// Arguments for the image's entry point; for Redis, the harness's defaults when
    /// empty (plus the persistence flags in any case).
    pub command: Vec<Template>,
    pub entrypoint: Vec<Template>,
    pub env: BTreeMap<String, Template>,
    /// The port the store listens on inside its container.
    pub port: u16,
    pub persistence: Persistence,
    /// Redis's `maxmemory-policy` (`[store] eviction`), when the scenario sets one:
    /// what the store does once a `memory_pressure` fault lowers its `maxmemory`.
    pub eviction: Option<String>,
    /// One server, or several members (`[store] topology`).
    pub topology: Topology,
}

impl StorePlan {
    /// One line for people: "sessionstorm/redis:latest (redis, port 6379, no persistence)".
    pub fn describe(&self) -> String {
        let persistence = match self.persistence {
            Persistence::None => "no persistence",
            Persistence::Aof => "AOF, fsync always, on a volume",
        };
        if self.topology != Topology::Single {
            let eviction =
                (self.eviction.as_ref()).map_or(String::new(), |p| format!(", eviction {p}"));
            return format!(
                "{} {} (port {}, {persistence}{eviction})",
                self.image,
                self.topology.describe(),
                self.port
            );
        }
        match self.kind {
            StoreKind::None => "none".to_string(),
            StoreKind::Redis => {
                let eviction =
                    (self.eviction.as_ref()).map_or(String::new(), |p| format!(", eviction {p}"));
                format!(
                    "{} (redis, port {}, {persistence}{eviction})",
                    self.image, self.port
                )
            }
            StoreKind::Tcp => format!("{} (port {})", self.image, self.port),
        }
    }
}

/// What the store is, as far as the harness needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Ready when it answers PING; may have AOF persistence.
    Redis,
    /// Any other store: ready when its port accepts TCP connections.
    Tcp,
    /// No store container (a service with cookie-only sessions, say).
    None,
}

/// How the session store keeps its data across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// In memory only: a restarted store is empty.
    None,
    /// Append-only file with `appendfsync always`, on a volume of the run.
    Aof,
}

#[derive(Debug, Clone, Default)]
pub struct BalancerPlan {
    pub kind: BalancerKind,
    /// HAProxy: pin each session to the replica that created it with a cookie.
    /// Direct: a session stays on its replica until a request to it fails.
    pub sticky: bool,
    /// HAProxy: the port on 127.0.0.1 it is published on, when the scenario fixes
    /// one (to open the service in a browser during the run); else a free one.
    pub port: Option<u16>,
}

impl BalancerPlan {
    /// One line for people: "haproxy (sticky cookie)".
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            BalancerKind::Haproxy => "haproxy",
            BalancerKind::Direct => "direct",
        };
        let sticky = match (self.sticky, self.kind) {
            (false, _) => "",
            (true, BalancerKind::Haproxy) => " (sticky cookie)",
            (true, BalancerKind::Direct) => " (sticky)",
        };
        format!("{kind}{sticky}")
    }
}

/// What spreads the load over the replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BalancerKind {
    /// An HAProxy container, the only published port.
    #[default]
    Haproxy,
    /// No balancer: every replica publishes its port on 127.0.0.1 and the load
    /// spreads requests over them itself, so failure windows show raw.
    Direct,
}
