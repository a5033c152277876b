//! `[store]`: the session store the harness starts, and its topology (one server, or
//! replicated, clustered and pooled members).

use toml::Spanned;

use super::Validator;
use crate::plan::template::Placeholder;
use crate::plan::topology::Topology;
use crate::plan::{BuiltIn, Persistence, StoreKind, StorePlan};
use crate::scenario;

const PERSISTENCE: &str = "\"none\", \"aof\"";
/// Redis's `maxmemory-policy` values.
const EVICTION: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];
const STORE_KINDS: &str = "\"redis\", \"tcp\", \"none\"";
/// A Redis Cluster node also listens on its port + 10000, for the other nodes.
const CLUSTER_PORT_MAX: i64 = 65535 - 10000;
const TOPOLOGIES: &str = "\"single\", \"replicated\", \"cluster\", \"memcached-pool\"";

impl Validator<'_> {
    /// `[store]`. Without `kind`, the built-in Redis (or no `image`) is `redis` and
    /// any other image is `tcp`; a memcached pool is `tcp`, replicated and clustered
    /// stores are Redis. A bad kind still yields a plan (Redis) so the other keys are
    /// checked too.
    pub(super) fn store(&mut self, raw: &scenario::Store) -> StorePlan {
        let topology = self.topology(raw);
        let pooled = matches!(topology, Topology::MemcachedPool { .. });
        let built_in = if pooled {
            BuiltIn::Memcached
        } else {
            BuiltIn::Redis
        };
        let image = raw
            .image
            .as_ref()
            .map_or(built_in.tag().to_string(), |s| s.get_ref().clone());
        let kind = match raw.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None if pooled => StoreKind::Tcp,
            None if topology != Topology::Single => StoreKind::Redis,
            None if BuiltIn::from_tag(&image) == Some(BuiltIn::Redis) => StoreKind::Redis,
            None => StoreKind::Tcp,
            Some((given, span))
                if topology != Topology::Single
                    && given != (if pooled { "tcp" } else { "redis" }) =>
            {
                self.problem(
                    span,
                    format!(
                        "`store.kind = {given:?}` does not fit `store.topology = \"{}\"`, whose members are {}; remove `store.kind`",
                        topology.name(),
                        if pooled { "memcached servers (kind \"tcp\")" } else { "Redis servers" }
                    ),
                );
                if pooled {
                    StoreKind::Tcp
                } else {
                    StoreKind::Redis
                }
            }
            Some(("redis", _)) => StoreKind::Redis,
            Some(("tcp", _)) => StoreKind::Tcp,
            Some(("none", _)) => StoreKind::None,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown store kind {other:?}; accepted values: {STORE_KINDS}"),
                );
                StoreKind::Redis
            }
        };
        if kind == StoreKind::None {
            // Everything else in `[store]` would configure a store that does not exist.
            let given = [
                ("image", raw.image.as_ref().map(Spanned::span)),
                ("command", raw.command.as_ref().map(Spanned::span)),
                ("entrypoint", raw.entrypoint.as_ref().map(Spanned::span)),
                ("port", raw.port.as_ref().map(Spanned::span)),
                ("persistence", raw.persistence.as_ref().map(Spanned::span)),
                ("env", raw.env.values().next().map(Spanned::span)),
            ];
            for (key, span) in given {
                if let Some(span) = span {
                    self.problem(
                        span,
                        format!("`store.{key}` configures a store, but `store.kind = \"none\"`: remove one of them"),
                    );
                }
            }
        }
        let allowed = [Placeholder::Store, Placeholder::StorePort];
        let command = self.templates(&raw.command, "store.command", &allowed);
        let entrypoint = self.templates(&raw.entrypoint, "store.entrypoint", &allowed);
        let env = self.env(&raw.env, "store.env", &allowed);
        let port = match &raw.port {
            Some(p) if topology == Topology::Cluster && *p.get_ref() > CLUSTER_PORT_MAX => {
                self.problem(
                    p.span(),
                    format!(
                        "`store.port = {}`: a Redis Cluster node also listens on its port + 10000 (the cluster bus), so the port is 1 to {CLUSTER_PORT_MAX} for `store.topology = \"cluster\"`",
                        p.get_ref()
                    ),
                );
                None
            }
            Some(p) => self.int_in(p, "store.port", 1, 65535).map(|p| p as u16),
            None if pooled => Some(11211),
            None => Some(6379),
        };
        let persistence = match raw.persistence.as_ref() {
            None => Persistence::None,
            Some(p) if kind != StoreKind::Redis && kind != StoreKind::None => {
                self.problem(
                    p.span(),
                    format!(
                        "`store.persistence` is a Redis setting (append-only file), but this store's kind is \"tcp\" (image {image:?}); remove it, or set `store.kind = \"redis\"` if the image is a Redis"
                    ),
                );
                Persistence::None
            }
            Some(p) => {
                match p.get_ref().as_str() {
                    "none" => Persistence::None,
                    "aof" => Persistence::Aof,
                    other => {
                        self.problem(
                        p.span(),
                        format!("unknown store persistence {other:?}; accepted values: {PERSISTENCE}"),
                    );
                        Persistence::None
                    }
                }
            }
        };
        let eviction = raw.eviction.as_ref().and_then(|e| {
            let policy = e.get_ref().as_str();
            if kind != StoreKind::Redis {
                self.problem(
                    e.span(),
                    "`store.eviction` is a Redis setting (maxmemory-policy), but this store is not a Redis; remove it, or set `store.kind = \"redis\"` if the image is one",
                );
                return None;
            }
            if !EVICTION.contains(&policy) {
                let accepted: Vec<String> = EVICTION.iter().map(|p| format!("{p:?}")).collect();
                self.problem(
                    e.span(),
                    format!("unknown store eviction {policy:?}; accepted values: {}", accepted.join(", ")),
                );
                return None;
            }
            Some(policy.to_string())
        });
        StorePlan {
            kind,
            image,
            command: command.unwrap_or_default(),
            entrypoint: entrypoint.unwrap_or_default(),
            env: env.unwrap_or_default(),
            port: port.unwrap_or(6379),
            persistence,
            eviction,
            topology,
        }
    }

    /// `topology`, with `replicas` (replicated) and `nodes` (memcached-pool), each
    /// refused where the topology has no use for it.
    fn topology(&mut self, raw: &scenario::Store) -> Topology {
        let named = raw
            .topology
            .as_ref()
            .map(|t| (t.get_ref().as_str(), t.span()));
        let topology = match named {
            None | Some(("single", _)) => Topology::Single,
            Some(("replicated", _)) => Topology::Replicated {
                replicas: self.count(&raw.replicas, "store.replicas", 1, 4, 2),
            },
            Some(("cluster", _)) => Topology::Cluster,
            Some(("memcached-pool", _)) => Topology::MemcachedPool {
                nodes: self.count(&raw.nodes, "store.nodes", 2, 8, 3),
            },
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown store topology {other:?}; accepted values: {TOPOLOGIES}"),
                );
                return Topology::Single;
            }
        };
        let misplaced = [
            (
                "replicas",
                "replicated",
                raw.replicas.as_ref().map(Spanned::span),
            ),
            (
                "nodes",
                "memcached-pool",
                raw.nodes.as_ref().map(Spanned::span),
            ),
        ];
        for (key, owner, span) in misplaced {
            if let Some(span) = span.filter(|_| topology.name() != owner) {
                self.problem(
                    span,
                    format!(
                        "`store.{key}` applies only to `store.topology = \"{owner}\"` (this store's topology is \"{}\")",
                        topology.name()
                    ),
                );
            }
        }
        if topology != Topology::Single {
            let harness_made = [
                ("command", raw.command.as_ref().map(Spanned::span)),
                ("entrypoint", raw.entrypoint.as_ref().map(Spanned::span)),
            ];
            for (key, span) in harness_made {
                if let Some(span) = span {
                    self.problem(
                        span,
                        format!(
                            "`store.{key}`: the harness starts the members of a \"{}\" store with its own command lines; remove it (`store.image` may still name another build of the same server)",
                            topology.name()
                        ),
                    );
                }
            }
        }
        topology
    }

    /// A count key within `min..=max`, `default` when absent (or wrong: the problem
    /// is recorded).
    fn count(
        &mut self,
        raw: &Option<Spanned<i64>>,
        key: &str,
        min: i64,
        max: i64,
        default: usize,
    ) -> usize {
        raw.as_ref()
            .and_then(|n| self.int_in(n, key, min, max))
            .map_or(default, |n| n as usize)
    }
}
