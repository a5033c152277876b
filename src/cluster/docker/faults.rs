//! What chaos does to the harness's own containers: each [`Action`] on the
//! replica, store or balancer it names, and the wait until the victim serves again.

use std::time::{Duration, Instant};

use super::{socket, DockerCluster};
use crate::cluster::engine::EngineError;
use crate::cluster::limits::{self, Ended, Limits};
use crate::cluster::netns::{self, Shaping};
use crate::cluster::{Acted, Action, Cluster, Victim};

impl DockerCluster {
    /// The container a victim names now, its instance name and its network alias.
    fn container_of(&self, victim: Victim) -> (String, String, String) {
        match victim {
            Victim::Replica(slot) => {
                let instance = Self::instance(slot, self.generation(slot));
                (self.name(&instance), instance, format!("replica-{slot}"))
            }
            Victim::Store => (self.name("store"), "store".into(), "store".into()),
            Victim::StoreMember(index) => {
                let member = crate::plan::topology::member(index);
                (self.member_container(index), member.clone(), member)
            }
            Victim::StorePrimary => unreachable!("`act` names the primary's member first"),
            Victim::Balancer => (self.name("balancer"), "balancer".into(), "balancer".into()),
        }
    }

    /// Waits until the victim serves again: a replica's or the balancer's health
    /// check answers 200, the store answers PING (a cluster's member has rejoined).
    async fn wait_ready(&self, victim: Victim, deadline: Instant) -> Result<(), EngineError> {
        match victim {
            Victim::Replica(slot) => {
                self.wait_replica(slot, self.generation(slot), deadline)
                    .await
            }
            Victim::Balancer => {
                let url = self.balancer_health.lock().expect("balancer lock").clone();
                self.wait_url(&self.name("balancer"), &url, deadline).await
            }
            Victim::Store => self.wait_store(deadline).await,
            Victim::StoreMember(index) => self.wait_member_back(index, deadline).await,
            Victim::StorePrimary => unreachable!("`act` names the primary's member first"),
        }
    }

    /// Starts (`on`) or undoes `shaping` of the traffic of `container`.
    async fn shape(&self, container: &str, shaping: Shaping, on: bool) -> Result<(), EngineError> {
        let n = self
            .helpers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let helper = self.name(&format!("nettools-{n}"));
        netns::shape(
            &self.engine,
            &helper,
            self.labels("helper"),
            container,
            shaping,
            on,
        )
        .await
    }

    /// Keeps the container's limits before a fault changes them (the first ones, if a
    /// fault is already holding it), and returns them.
    async fn keep_limits(&self, container: &str) -> Result<Limits, EngineError> {
        if let Some(was) = self.kept.lock().expect("kept lock").get(container) {
            return Ok(*was);
        }
        let was = limits::current(&self.engine, container).await?;
        self.kept
            .lock()
            .expect("kept lock")
            .insert(container.to_string(), was);
        Ok(was)
    }

    /// Puts a fresh replica in `slot` and waits until it is healthy.
    async fn replace(&self, slot: usize, began: Instant) -> Result<String, EngineError> {
        let old = self.generation(slot);
        // The dead container keeps its alias until removed; remove it first so the
        // balancer's DNS look-ups find only the replacement.
        self.engine
            .remove(&self.name(&Self::instance(slot, old)))
            .await?;
        let generation = old + 1;
        self.create_replica(slot, generation).await?;
        self.generations.lock().expect("generation lock")[slot] = generation;
        self.wait_replica(slot, generation, began + self.plan.service.ready_timeout)
            .await?;
        Ok(Self::instance(slot, generation))
    }
}

impl DockerCluster {
    /// Sets the store's `maxmemory` (0: none) through Redis's protocol, at its address
    /// on the run's network; says what it set.
    async fn store_maxmemory(&self, container: &str, bytes: u64) -> Result<String, EngineError> {
        let ip = self.engine.ip(container, &self.network).await?;
        let addr = format!("{ip}:{}", self.plan.store.port);
        crate::store::resp::config_set(&addr, "maxmemory", &bytes.to_string())
            .await
            .map_err(|why| {
                EngineError::State(format!("cannot set the store's maxmemory: {why}"))
            })?;
        Ok(crate::store::resp::maxmemory_words(bytes))
    }
}

impl Cluster for DockerCluster {
    fn replicas(&self) -> usize {
        self.plan.service.replicas
    }

    async fn act(&self, action: Action, victim: Victim) -> Result<Acted, EngineError> {
        let began = Instant::now();
        let deadline = began + self.plan.service.ready_timeout;
        if action == Action::Failover {
            let (killed, detail) = self.failover(deadline).await?;
            let mut acted = Acted::on(crate::plan::topology::member(killed));
            acted.ready_after = Some(began.elapsed());
            acted.detail = Some(detail);
            return Ok(acted);
        }
        let victim = match victim {
            Victim::StorePrimary => Victim::StoreMember(self.primary().await?),
            other => other,
        };
        let (container, instance, alias) = self.container_of(victim);
        let mut acted = Acted::on(instance);
        match action {
            Action::Kill => acted.outcome = self.engine.kill(&container).await?,
            Action::Stop(grace) => acted.outcome = self.engine.stop(&container, grace).await?,
            Action::Restart(grace) => {
                self.engine.restart(&container, grace).await?;
                self.wait_ready(victim, deadline).await?;
                acted.ready_after = Some(began.elapsed());
            }
            Action::StartAgain => {
                self.engine.start(&container).await?;
                self.wait_ready(victim, deadline).await?;
                acted.ready_after = Some(began.elapsed());
            }
            Action::Replace => {
                match victim {
                    Victim::Replica(slot) => acted.instance = self.replace(slot, began).await?,
                    Victim::StoreMember(index) => self.replace_member(index, deadline).await?,
                    _ => {
                        return Err(EngineError::State(format!(
                            "only replicas and store members can be replaced, not the {victim}"
                        )))
                    }
                }
                acted.ready_after = Some(began.elapsed());
            }
            Action::Failover => unreachable!("answered above"),
            Action::Isolate => self.isolate(victim, true).await?,
            Action::Rejoin => self.isolate(victim, false).await?,
            Action::Pause => self.engine.pause(&container).await?,
            Action::Unpause => self.engine.unpause(&container).await?,
            Action::BlackholeOn => self.shape(&container, Shaping::Blackhole, true).await?,
            Action::BlackholeOff => self.shape(&container, Shaping::Blackhole, false).await?,
            Action::ShapeOn(shaping) => self.shape(&container, shaping, true).await?,
            Action::ShapeOff(shaping) => self.shape(&container, shaping, false).await?,
            Action::Throttle(millicores) => {
                let was = self.keep_limits(&container).await?;
                limits::throttle(&self.engine, &container, was, millicores).await?
            }
            Action::LimitMemory(bytes) => {
                self.keep_limits(&container).await?;
                let limit = limits::limit_memory(&self.engine, &container, bytes).await?;
                acted.detail = Some(format!("memory limit {:.1} MiB", limit as f64 / 1048576.0));
            }
            Action::Delay {
                delay_ms,
                jitter_ms,
            } => {
                let ms = |v: u32| Duration::from_millis(u64::from(v));
                match victim {
                    Victim::StoreMember(primary) => {
                        (self.lag_replication(primary, ms(delay_ms), ms(jitter_ms))).await?
                    }
                    _ => self.proxy_of(victim)?.set(ms(delay_ms), ms(jitter_ms)),
                }
            }
            Action::Undelay => {
                acted.detail = Some(match victim {
                    Victim::StoreMember(_) => self.unlag_replication().await?,
                    _ => self.proxy_of(victim)?.clear().to_string(),
                })
            }
            Action::StoreMemory(bytes) => {
                acted.detail = Some(self.store_maxmemory(&container, bytes).await?);
            }
            Action::StoreMemoryBack => {
                acted.detail = Some(self.store_maxmemory(&container, 0).await?);
            }
            Action::Unthrottle | Action::UnlimitMemory => {
                let was = self
                    .kept
                    .lock()
                    .expect("kept lock")
                    .get(&container)
                    .copied();
                if let Some(was) = was {
                    if action == Action::Unthrottle {
                        limits::restore_cpu(&self.engine, &container, was).await?;
                    } else {
                        limits::restore_memory(&self.engine, &container, was).await?;
                    }
                    self.kept.lock().expect("kept lock").remove(&container);
                }
            }
            Action::Disconnect => {
                if let Ok(ip) = self.engine.ip(&container, &self.network).await {
                    self.addresses
                        .lock()
                        .expect("address lock")
                        .insert(container.clone(), ip);
                }
                self.engine.disconnect(&self.network, &container).await?
            }
            Action::Reconnect => {
                let ip = self
                    .addresses
                    .lock()
                    .expect("address lock")
                    .get(&container)
                    .cloned();
                self.engine
                    .connect_network(
                        &self.network,
                        &container,
                        std::slice::from_ref(&alias),
                        ip.as_deref(),
                    )
                    .await?
            }
        }
        // Docker publishes a container that starts again, or comes back on the
        // network, on a port it picks anew.
        if let (
            Victim::Replica(slot),
            Action::Replace | Action::Restart(_) | Action::StartAgain | Action::Reconnect,
        ) = (victim, action)
        {
            self.retarget(slot).await?;
            // The latency proxy follows the replica to its new address.
            if let Some(proxy) = self.replica_proxies.get().and_then(|p| p.get(slot)) {
                let name = self.name(&Self::instance(slot, self.generation(slot)));
                let ip = self.engine.ip(&name, &self.network).await?;
                proxy.set_upstream(socket(&ip, self.plan.service.port)?);
            }
        }
        Ok(acted)
    }

    async fn ended(&self, victim: Victim) -> Result<Option<Ended>, EngineError> {
        let (container, _, _) = self.container_of(victim);
        limits::ended(&self.engine, &container).await
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.engine.ping().await
    }
}
