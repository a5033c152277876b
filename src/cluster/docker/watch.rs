//! The docker engine's side of the store's timeline ([`crate::store::watch`]): which
//! containers the harness asks, how, and where they answer. Each is looked up at its
//! address on the run's network (the host reaches a bridge network's containers) at
//! every question: a restarted container may come back at another address, and a
//! replaced member is a new container under the member's name.

use std::sync::Arc;

use super::store::member_now;
use super::{DockerCluster, STORE_HOST};
use crate::cluster::engine::Engine;
use crate::plan::topology::{self, Topology, SENTINELS, SENTINEL_PORT};
use crate::plan::StoreKind;
use crate::store::watch::{Locate, Member, Protocol, Roles, Watched};

impl DockerCluster {
    /// The store as the harness watches it: a single Redis as itself, every member of
    /// a topology (Redis members by `INFO`, memcached nodes by `stats`), and a
    /// replicated store's Sentinels; nothing for a single store of unknown kind.
    pub(super) fn watched(&self) -> Option<Watched> {
        let port = self.plan.store.port;
        let topology = self.plan.store.topology;
        let (protocol, roles) = match topology {
            Topology::Single if self.plan.store.kind == StoreKind::Redis => {
                let container = self.name(STORE_HOST);
                let locate = self.locate(port, move || container.clone());
                return Some(Watched::single(STORE_HOST, Protocol::Redis, locate));
            }
            Topology::Single => return None,
            Topology::Replicated { .. } => (Protocol::Redis, Roles::OnePrimary),
            Topology::Cluster => (Protocol::Redis, Roles::Sharded),
            Topology::MemcachedPool { .. } => (Protocol::Memcached, Roles::None),
        };
        let members = (0..topology.members())
            .map(|index| {
                let (run_id, generations) =
                    (self.run_id.clone(), Arc::clone(&self.member_generations));
                Member {
                    name: topology::member(index),
                    protocol,
                    locate: self.locate(port, move || member_now(&run_id, &generations, index)),
                }
            })
            .collect();
        let sentinels = match topology {
            Topology::Replicated { .. } => (0..SENTINELS)
                .map(|index| {
                    let container = self.name(&topology::sentinel(index));
                    let locate = self.locate(SENTINEL_PORT, move || container.clone());
                    (topology::sentinel(index), locate)
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Watched {
            store: STORE_HOST.to_string(),
            members,
            roles,
            sentinels,
        })
    }

    /// Finds the container `container` names now at its address on the run's
    /// network, `ip:port`.
    fn locate(&self, port: u16, container: impl Fn() -> String + Send + Sync + 'static) -> Locate {
        let (engine, network): (Engine, String) = (self.engine.clone(), self.network.clone());
        Box::new(move || {
            let (engine, network, name) = (engine.clone(), network.clone(), container());
            Box::pin(async move {
                let ip = engine.ip(&name, &network).await.ok()?;
                Some(format!("{ip}:{port}"))
            })
        })
    }
}
