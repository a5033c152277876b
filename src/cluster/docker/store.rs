//! The store the harness starts, in the plan's topology: one container (`store`), or
//! members `store-<n>` (with Sentinels and a front for a replicated store, see
//! [`super::replicated`]; a Redis Cluster or a memcached pool, see [`super::sharded`]).
//!
//! Members are named like replicas: container `sessionstorm-<run>-store-<n>.<generation>`,
//! alias `store-<n>`, which a fresh member takes over when one is replaced.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{container_name, render, render_env, socket, DockerCluster, STORE_HOST};
use crate::cluster::engine::{ContainerSpec, EngineError};
use crate::cluster::ready::{wait_ready, Probe, Waiting};
use crate::plan::template::Values;
use crate::plan::topology::{self, Topology};
use crate::plan::{Persistence, StoreKind};

/// How often the harness asks while it waits on the store.
const POLL: Duration = Duration::from_millis(100);

impl DockerCluster {
    /// Starts the store as its topology has it, and waits until it serves.
    pub(super) async fn start_store(&self, deadline: Instant) -> Result<(), EngineError> {
        match self.plan.store.topology {
            Topology::Single => {
                self.create_store().await?;
                self.wait_store(deadline).await
            }
            Topology::Replicated { replicas } => self.start_replicated(replicas, deadline).await,
            Topology::Cluster => self.start_redis_cluster(deadline).await,
            Topology::MemcachedPool { nodes } => self.start_pool(nodes, deadline).await,
        }
    }

    /// The placeholders' values for the store's own containers.
    fn store_values(&self) -> Values<'_> {
        Values {
            store: STORE_HOST,
            store_port: self.plan.store.port,
            store_nodes: &self.store_nodes,
            replica: None,
        }
    }

    /// Creates and starts the single store, with the harness's Redis flags for a Redis.
    pub(in crate::cluster) async fn create_store(&self) -> Result<(), EngineError> {
        let store = &self.plan.store;
        let values = self.store_values();
        let mut cmd = render(&store.command, &values);
        let mut binds = Vec::new();
        if store.kind == StoreKind::Redis {
            if cmd.is_empty() {
                cmd = self.redis_base();
            }
            binds = self.redis_keeping(&mut cmd, "store-data").await?;
        }
        let name = self.name("store");
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: store.image.clone(),
                cmd,
                entrypoint: render(&store.entrypoint, &values),
                env: render_env(&store.env, &values),
                labels: self.labels("store"),
                network: self.network.clone(),
                alias: STORE_HOST.into(),
                binds,
                ..Default::default()
            })
            .await?;
        self.engine.start(&name).await
    }

    /// The harness's flags for a Redis it starts: on every address of the run's
    /// network, no snapshots, on the store's port.
    pub(super) fn redis_base(&self) -> Vec<String> {
        let mut cmd: Vec<String> = ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", ""]
            .map(String::from)
            .to_vec();
        cmd.extend(["--port".to_string(), self.plan.store.port.to_string()]);
        cmd
    }

    /// Adds the eviction policy and the persistence of the plan to a Redis's flags;
    /// returns the volume to mount for an append-only file, named `volume` in the run.
    pub(super) async fn redis_keeping(
        &self,
        cmd: &mut Vec<String>,
        volume: &str,
    ) -> Result<Vec<String>, EngineError> {
        let store = &self.plan.store;
        if let Some(policy) = &store.eviction {
            cmd.extend(["--maxmemory-policy".to_string(), policy.clone()]);
        }
        match store.persistence {
            Persistence::None => {
                cmd.extend(["--appendonly".into(), "no".into()]);
                Ok(Vec::new())
            }
            Persistence::Aof => {
                // Every acknowledged write is on disk before Redis answers, on a
                // volume of the run that outlives a restart of the container.
                let volume = self.name(volume);
                self.engine
                    .create_volume(&volume, self.labels("store-data"))
                    .await?;
                cmd.extend(
                    [
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "always",
                        "--dir",
                        "/data",
                    ]
                    .map(String::from),
                );
                Ok(vec![format!("{volume}:/data")])
            }
        }
    }

    /// The container member `index` is now.
    pub(super) fn member_container(&self, index: usize) -> String {
        member_now(&self.run_id, &self.member_generations, index)
    }

    /// Creates and starts member `index`, in its current generation, with `cmd` for
    /// the store's image and the plan's persistence (a Redis), under its alias.
    pub(super) async fn create_member(
        &self,
        index: usize,
        mut cmd: Vec<String>,
    ) -> Result<(), EngineError> {
        let store = &self.plan.store;
        let name = self.member_container(index);
        let generation = self.member_generations.lock().expect("member lock")[index];
        let binds = match store.kind {
            StoreKind::Redis => {
                let volume = format!("{}.{generation}-data", topology::member(index));
                self.redis_keeping(&mut cmd, &volume).await?
            }
            _ => Vec::new(),
        };
        let mut labels = self.labels("store");
        labels.insert("sessionstorm.member".into(), index.to_string());
        let values = self.store_values();
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: store.image.clone(),
                cmd,
                env: render_env(&store.env, &values),
                labels,
                network: self.network.clone(),
                alias: topology::member(index),
                binds,
                ..Default::default()
            })
            .await?;
        self.engine.start(&name).await
    }

    /// Member `index`'s address on the run's network.
    pub(super) async fn member_socket(&self, index: usize) -> Result<SocketAddr, EngineError> {
        let ip = self
            .engine
            .ip(&self.member_container(index), &self.network)
            .await?;
        socket(&ip, self.plan.store.port)
    }

    /// Member `index`'s address on the run's network, `ip:port`, for a question.
    pub(super) async fn member_addr(&self, index: usize) -> Result<String, EngineError> {
        Ok(self.member_socket(index).await?.to_string())
    }

    /// Takes member `index`'s container away and makes the next generation's, with
    /// `cmd`, and waits until it answers.
    pub(super) async fn renew_member(
        &self,
        index: usize,
        cmd: Vec<String>,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        // The dead container keeps its alias until removed.
        self.engine.remove(&self.member_container(index)).await?;
        self.member_generations.lock().expect("member lock")[index] += 1;
        self.create_member(index, cmd).await?;
        self.wait_member(index, deadline).await
    }

    /// Waits until member `index` answers: PING for a Redis, a connection otherwise.
    pub(super) async fn wait_member(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let name = self.member_container(index);
        self.wait_answers(&name, self.plan.store.port, deadline)
            .await
    }

    /// Waits until member `index`, started again, serves: it answers and, in a
    /// cluster, has rejoined it (a replica again with its primary's data).
    pub(super) async fn wait_member_back(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        self.wait_member(index, deadline).await?;
        match self.plan.store.topology {
            Topology::Cluster => self.wait_joined(index, deadline).await,
            _ => Ok(()),
        }
    }

    /// Waits until the single store answers on its address in the run's network,
    /// the way the replicas reach it.
    pub(super) async fn wait_store(&self, deadline: Instant) -> Result<(), EngineError> {
        self.wait_answers(&self.name("store"), self.plan.store.port, deadline)
            .await
    }

    /// Waits until the store container `name` answers at `port`: a Redis answers
    /// PING, any other store accepts a connection.
    pub(super) async fn wait_answers(
        &self,
        name: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let (container, network) = (name.to_string(), self.network.clone());
        let answers = match self.plan.store.kind {
            StoreKind::Redis => Probe::RedisPing {
                container,
                network,
                port,
            },
            _ => Probe::Tcp {
                container,
                network,
                port,
            },
        };
        let waiting = Waiting {
            subject: format!("the store {name}"),
            deadline,
            cancel: &self.cancel,
            late: format!("the store {name} was not ready in time on port {port}"),
            advice: "Check `store.port` and `store.command`, or raise `service.ready_timeout`"
                .into(),
        };
        let probes = [Probe::Alive(name.to_string()), answers];
        wait_ready(&self.engine, &self.http, &probes, &waiting).await
    }

    /// Sleeps a poll, or fails with what was awaited when `deadline` has passed or
    /// the user interrupted the run: the one way the store topologies' waits end.
    pub(super) async fn before(&self, deadline: Instant, awaited: &str) -> Result<(), EngineError> {
        if Instant::now() >= deadline || self.cancel.is_cancelled() {
            return Err(EngineError::State(format!(
                "the store was not ready in time: waited for {awaited}; raise `service.ready_timeout` if the machine is slow"
            )));
        }
        tokio::time::sleep(POLL).await;
        Ok(())
    }

    /// The member that is the store's primary now.
    pub(super) async fn primary(&self) -> Result<usize, EngineError> {
        match self.plan.store.topology {
            Topology::Replicated { .. } => self.sentinels_primary().await,
            Topology::Cluster => self.cluster_primary().await,
            other => Err(EngineError::State(format!(
                "a {} store has no primary",
                other.name()
            ))),
        }
    }

    /// A fresh member in place of member `index`, as its topology makes one.
    pub(super) async fn replace_member(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        match self.plan.store.topology {
            Topology::Replicated { .. } => self.replace_replica_member(index, deadline).await,
            Topology::Cluster => self.replace_cluster_member(index, deadline).await,
            Topology::MemcachedPool { .. } => self.replace_pool_node(index, deadline).await,
            Topology::Single => Err(EngineError::State("a single store has no members".into())),
        }
    }

    /// SIGKILLs the primary and waits until another member serves as primary;
    /// returns the member killed and what happened, in words.
    pub(super) async fn failover(&self, deadline: Instant) -> Result<(usize, String), EngineError> {
        match self.plan.store.topology {
            Topology::Replicated { .. } => self.sentinel_failover(deadline).await,
            Topology::Cluster => self.cluster_failover(deadline).await,
            other => Err(EngineError::State(format!(
                "a {} store has no primary to fail over",
                other.name()
            ))),
        }
    }
}

/// The container member `index` of run `run_id` is now, by its current generation
/// (of `generations`): `sessionstorm-<run>-store-1.2`.
pub(super) fn member_now(run_id: &str, generations: &Mutex<Vec<u32>>, index: usize) -> String {
    let generation = generations.lock().expect("member lock")[index];
    container_name(run_id, &format!("{}.{generation}", topology::member(index)))
}
