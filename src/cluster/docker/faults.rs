//! What chaos does to the harness's own containers: each [`Action`] on the
//! replica, store or balancer it names, the wait until the victim serves again, and
//! where a fault's `peer` is (the run's containers of that role, looked up when the
//! fault starts).

use std::time::{Duration, Instant};

use super::{socket, DockerCluster};
use crate::cluster::engine::EngineError;
use crate::cluster::limits::{self, Ended, Limits};
use crate::cluster::netns::{self, Endpoint, Shaping};
use crate::cluster::{Acted, Action, Cluster, Victim, ROLE_LABEL, RUN_LABEL};
use crate::plan::Peer;

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

    /// The name of the next short-lived helper in a container's network namespace.
    pub(super) fn next_helper(&self) -> String {
        let n = self
            .helpers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.name(&format!("nettools-{n}"))
    }

    /// Starts (`on`) or undoes `shaping` of the traffic of `container`.
    async fn shape(&self, container: &str, shaping: Shaping, on: bool) -> Result<(), EngineError> {
        let (helper, labels) = (self.next_helper(), self.labels("helper"));
        netns::shape(&self.engine, &helper, labels, container, shaping, on).await
    }

    /// Starts `shaping` of `container`'s traffic with `endpoints` only (looked up by
    /// the caller now), and keeps them for the undoing.
    pub(super) async fn shape_only(
        &self,
        container: &str,
        shaping: Shaping,
        endpoints: Vec<Endpoint>,
    ) -> Result<(), EngineError> {
        self.shape_endpoints(container, shaping, &endpoints, true)
            .await?;
        (self.cut_off.lock().expect("cut_off lock")).insert(container.to_string(), endpoints);
        Ok(())
    }

    /// Starts (`on`) or undoes `shaping` of `container`'s traffic with `endpoints`.
    async fn shape_endpoints(
        &self,
        container: &str,
        shaping: Shaping,
        endpoints: &[Endpoint],
        on: bool,
    ) -> Result<(), EngineError> {
        let (helper, labels) = (self.next_helper(), self.labels("helper"));
        netns::shape_with(
            &self.engine,
            &helper,
            labels,
            container,
            shaping,
            endpoints,
            on,
        )
        .await
    }

    /// Undoes [`shape_only`](Self::shape_only): deletes the rules for the endpoints
    /// kept, wherever they are now, and returns them (none kept: the shaping never
    /// took hold, and there is nothing to undo).
    pub(super) async fn unshape_only(
        &self,
        container: &str,
        shaping: Shaping,
    ) -> Result<Vec<Endpoint>, EngineError> {
        let kept = (self.cut_off.lock().expect("cut_off lock"))
            .get(container)
            .cloned();
        let Some(endpoints) = kept else {
            return Ok(Vec::new());
        };
        self.shape_endpoints(container, shaping, &endpoints, false)
            .await?;
        (self.cut_off.lock().expect("cut_off lock")).remove(container);
        Ok(endpoints)
    }

    /// Where `peer` is on the run's network now. The store: every container of the
    /// run whose role is `store` (each member of a topology, and whatever fronts them)
    /// that has an address, and the delaying proxy the replicas reach it through
    /// when the plan has one.
    async fn endpoints_of(&self, peer: Peer) -> Result<Vec<Endpoint>, EngineError> {
        let role = match peer {
            Peer::Store => "store",
        };
        let labels = [
            format!("{RUN_LABEL}={}", self.run_id),
            format!("{ROLE_LABEL}={role}"),
        ];
        let mut endpoints: Vec<Endpoint> = (self.engine.containers_labelled(&labels).await?)
            .into_iter()
            .filter_map(|c| {
                c.network_settings?
                    .networks?
                    .remove(&self.network)?
                    .ip_address
            })
            .map(|ip| Endpoint::host(&ip))
            .collect::<Result<_, _>>()?;
        if let Some(proxy) = self.store_proxy.get() {
            endpoints.push(Endpoint {
                ip: proxy.addr.ip(),
                port: Some(proxy.addr.port()),
            });
        }
        if endpoints.is_empty() {
            return Err(EngineError::State(format!(
                "no container of the {peer} has an address on the run's network {} now: there is nothing to cut the replica off from",
                self.network
            )));
        }
        Ok(endpoints)
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
            Action::ShapePeerOn(shaping, peer) => {
                let endpoints = self.endpoints_of(peer).await?;
                self.shape_only(&container, shaping, endpoints).await?;
            }
            Action::ShapePeerOff(shaping, peer) => {
                let was: Vec<String> = (self.unshape_only(&container, shaping).await?)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if !was.is_empty() {
                    acted.detail = Some(format!("the {peer} was at {}", was.join(", ")));
                }
            }
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
