//! A replicated store (`[store] topology = "replicated"`): member `store-0` starts as
//! the primary, `store-1..` replicate from it asynchronously, three Sentinels watch
//! them (down after 1 s, quorum 2), and HAProxy in TCP mode is `store`, the one
//! address the service is given: it sends connections to whichever member answers
//! `role:master` (`haproxy::render_store_front`).
//!
//! Members announce themselves by their alias (`replica-announce-ip store-<n>`) and
//! Sentinels resolve and announce host names, so a member's name means the same to
//! Redis, Sentinel and the harness, whatever address a fresh container gets.
//!
//! `store_lag` turns the replication link through the harness's delaying proxy
//! ([`DelayProxy`], on the run network's gateway): in each replica's network
//! namespace, its connections to the primary's address are sent to the proxy (DNAT),
//! and the primary drops its replicas' connections so they come back that way. The
//! replicas still believe they talk to the primary itself, so Sentinel finds nothing
//! to correct (it puts back, after `failover-timeout`, a replica told to follow any
//! other address). A primary that dies takes down what the link still held: the
//! proxy cuts its connections when the harness kills it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{socket, DockerCluster, STORE_HOST};
use crate::cluster::delay::DelayProxy;
use crate::cluster::engine::{ContainerSpec, EngineError};
use crate::cluster::haproxy;
use crate::cluster::netns;
use crate::cluster::netns::{Endpoint, Shaping};
use crate::cluster::upload::tar_of;
use crate::cluster::Victim;
use crate::plan::topology::{self, SENTINELS, SENTINEL_MASTER, SENTINEL_PORT};
use crate::plan::Fault;
use crate::store::info::Info;
use crate::store::resp::{self, Reply};

/// How long Sentinels wait for a silent primary before they call it down.
const DOWN_AFTER_MS: u32 = 1000;
/// The Sentinel configuration file, in the Sentinel's container (Sentinel rewrites it).
const SENTINEL_CONF: &str = "sentinel.conf";

impl DockerCluster {
    /// Starts the members, the Sentinels and the front, and waits until the front
    /// reaches the primary, every replica follows it and every Sentinel knows them all.
    pub(super) async fn start_replicated(
        &self,
        replicas: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        self.create_member(0, self.member_flags(0)).await?;
        self.wait_member(0, deadline).await?;
        if self
            .plan
            .chaos
            .iter()
            .any(|c| matches!(c.fault, Fault::StoreLag { .. }))
        {
            self.start_lag_proxy().await?;
        }
        for index in 1..=replicas {
            self.create_member(index, self.replica_flags(index, 0))
                .await?;
        }
        for index in 1..=replicas {
            self.wait_member(index, deadline).await?;
            self.wait_following(index, deadline).await?;
        }
        for index in 0..SENTINELS {
            self.create_sentinel(index).await?;
        }
        for index in 0..SENTINELS {
            self.wait_sentinel(index, replicas, deadline).await?;
        }
        self.create_front(replicas).await?;
        self.wait_store(deadline).await
    }

    /// A member's flags: the harness's, and its alias as the address it announces.
    /// A fresh replica is sent the primary's data at once, not after Redis's default
    /// five seconds of waiting for more replicas to share the transfer.
    fn member_flags(&self, index: usize) -> Vec<String> {
        let mut flags = self.redis_base();
        flags.extend(["--replica-announce-ip".into(), topology::member(index)]);
        flags.extend(["--repl-diskless-sync-delay".into(), "0".into()]);
        flags
    }

    /// A replica's flags: it follows `primary` from its start, so it is never a
    /// primary, not even for a moment.
    fn replica_flags(&self, index: usize, primary: usize) -> Vec<String> {
        let mut flags = self.member_flags(index);
        let port = self.plan.store.port.to_string();
        flags.extend(["--replicaof".into(), topology::member(primary), port]);
        flags
    }

    /// Starts the replication link's delaying proxy, in front of `store-0`.
    async fn start_lag_proxy(&self) -> Result<(), EngineError> {
        let gateway = self.engine.gateway(&self.network).await?;
        let primary = self.member_socket(0).await?;
        let proxy = DelayProxy::start(socket(&gateway, 0)?, primary, self.plan.seed)
            .await
            .map_err(|e| {
                EngineError::State(format!(
                    "cannot start the store_lag proxy on the run network's gateway {gateway}: {e}"
                ))
            })?;
        let _ = self.lag_proxy.set(proxy);
        Ok(())
    }

    /// Waits until replica `index` has loaded the primary's data and follows it.
    async fn wait_following(&self, index: usize, deadline: Instant) -> Result<(), EngineError> {
        loop {
            let addr = self.member_addr(index).await?;
            let info = resp::ask(&addr, &["INFO", "replication"]).await;
            let text = info.ok().and_then(|r| r.text()).unwrap_or_default();
            if text.contains("master_link_status:up") {
                return Ok(());
            }
            self.before(
                deadline,
                &format!("{} to follow the primary", topology::member(index)),
            )
            .await?;
        }
    }

    /// Creates and starts Sentinel `index`, its configuration written into it.
    async fn create_sentinel(&self, index: usize) -> Result<(), EngineError> {
        let name = self.name(&topology::sentinel(index));
        let config = format!(
            "port {SENTINEL_PORT}\n\
             protected-mode no\n\
             sentinel resolve-hostnames yes\n\
             sentinel announce-hostnames yes\n\
             sentinel monitor {SENTINEL_MASTER} {} {} 2\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {SENTINEL_MASTER} 2000\n\
             sentinel parallel-syncs {SENTINEL_MASTER} 1\n",
            topology::member(0),
            self.plan.store.port
        );
        let mut labels = self.labels("store");
        labels.insert("sessionstorm.sentinel".into(), index.to_string());
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: self.plan.store.image.clone(),
                cmd: vec![format!("/{SENTINEL_CONF}"), "--sentinel".into()],
                labels,
                network: self.network.clone(),
                alias: topology::sentinel(index),
                ..Default::default()
            })
            .await?;
        self.engine
            .upload(&name, "/", tar_of(SENTINEL_CONF, &config))
            .await?;
        self.engine.start(&name).await
    }

    /// Sentinel `index`'s address on the run's network.
    async fn sentinel_addr(&self, index: usize) -> Result<String, EngineError> {
        let name = self.name(&topology::sentinel(index));
        let ip = self.engine.ip(&name, &self.network).await?;
        Ok(format!("{ip}:{SENTINEL_PORT}"))
    }

    /// Waits until Sentinel `index` knows every replica and the other Sentinels: a
    /// failover before that could find no replica to promote, or no quorum.
    async fn wait_sentinel(
        &self,
        index: usize,
        replicas: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        loop {
            if let Ok(addr) = self.sentinel_addr(index).await {
                let known = |what: &'static str| {
                    let addr = addr.clone();
                    async move {
                        match resp::ask(&addr, &["SENTINEL", what, SENTINEL_MASTER]).await {
                            Ok(Reply::Array(Some(items))) => items.len(),
                            _ => 0,
                        }
                    }
                };
                if known("replicas").await >= replicas && known("sentinels").await >= SENTINELS - 1
                {
                    return Ok(());
                }
            }
            self.before(
                deadline,
                &format!(
                    "{} to know the replicas and the other Sentinels",
                    topology::sentinel(index)
                ),
            )
            .await?;
        }
    }

    /// Creates and starts HAProxy in TCP mode as `store`, in front of the members.
    async fn create_front(&self, replicas: usize) -> Result<(), EngineError> {
        let name = self.name(STORE_HOST);
        let members: Vec<String> = (0..=replicas).map(topology::member).collect();
        let config = haproxy::render_store_front(&members, self.plan.store.port);
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: crate::images::BuiltIn::Haproxy.tag().to_string(),
                cmd: vec![
                    "-db".into(),
                    "-f".into(),
                    format!("{}/{}", haproxy::CONFIG_DIR, haproxy::CONFIG_FILE),
                ],
                labels: self.labels("store"),
                network: self.network.clone(),
                alias: STORE_HOST.into(),
                ..Default::default()
            })
            .await?;
        self.engine
            .upload(
                &name,
                haproxy::CONFIG_DIR,
                tar_of(haproxy::CONFIG_FILE, &config),
            )
            .await?;
        self.engine.start(&name).await
    }

    /// The member a quorum of the Sentinels names as primary: during a failover
    /// each learns of the new primary in its own time, and one alone may lag.
    pub(super) async fn sentinels_primary(&self) -> Result<usize, EngineError> {
        let mut named = Vec::new();
        let mut heard = Vec::new();
        for index in 0..SENTINELS {
            let Ok(addr) = self.sentinel_addr(index).await else {
                continue;
            };
            let asked = ["SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER];
            match resp::ask(&addr, &asked).await {
                Ok(Reply::Array(Some(items))) => {
                    let host = items.first().and_then(Reply::text).unwrap_or_default();
                    heard.push(format!("{} names {host:?}", topology::sentinel(index)));
                    named.extend(topology::member_index(&host));
                }
                other => heard.push(format!("{}: {other:?}", topology::sentinel(index))),
            }
        }
        let quorum = SENTINELS / 2 + 1;
        let agreed = (named.iter()).find(|m| named.iter().filter(|n| n == m).count() >= quorum);
        agreed.copied().ok_or_else(|| {
            EngineError::State(format!(
                "no {quorum} Sentinels agree on the store's primary: {}",
                heard.join("; ")
            ))
        })
    }

    /// SIGKILLs the primary the Sentinels name, then waits until they name another
    /// and the front reaches it; returns the member killed and what happened.
    pub(super) async fn sentinel_failover(
        &self,
        deadline: Instant,
    ) -> Result<(usize, String), EngineError> {
        let killed = self.sentinels_primary().await?;
        let began = Instant::now();
        self.engine.kill(&self.member_container(killed)).await?;
        if let Some(proxy) = self.lag_proxy.get() {
            proxy.cut();
        }
        let promoted = loop {
            match self.sentinels_primary().await {
                Ok(now) if now != killed => break now,
                _ => {
                    self.before(deadline, "the Sentinels to promote a replica")
                        .await?
                }
            }
        };
        let promoted_after = began.elapsed();
        let front = format!(
            "{}:{}",
            self.engine
                .ip(&self.name(STORE_HOST), &self.network)
                .await?,
            self.plan.store.port
        );
        loop {
            let answer = resp::ask(&front, &["INFO", "replication"]).await;
            let info = answer.ok().and_then(|r| r.text()).map(|t| Info::parse(&t));
            if info.is_some_and(|i| i.role == "master") {
                break;
            }
            self.before(deadline, "the store's front to reach the new primary")
                .await?;
        }
        Ok((
            killed,
            format!(
                "{} killed; {} promoted after {:.1} s, serving through `store` after {:.1} s",
                topology::member(killed),
                topology::member(promoted),
                promoted_after.as_secs_f64(),
                began.elapsed().as_secs_f64()
            ),
        ))
    }

    /// A fresh replica in member `index`'s place, following the primary now; ready
    /// once it holds the primary's data (a replica promoted before that would be an
    /// empty primary).
    pub(super) async fn replace_replica_member(
        &self,
        index: usize,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let primary = self.sentinels_primary().await?;
        let flags = self.replica_flags(index, primary);
        self.renew_member(index, flags, deadline).await?;
        self.wait_following(index, deadline).await
    }

    /// Turns the replication link from member `primary` to every other member
    /// through the delaying proxy, holding its stream back by `delay`, plus up to
    /// `jitter`.
    pub(super) async fn lag_replication(
        &self,
        primary: usize,
        delay: Duration,
        jitter: Duration,
    ) -> Result<(), EngineError> {
        let proxy = self.lag_proxy()?;
        let from = self.member_socket(primary).await?;
        proxy.set_upstream(from);
        proxy.set(delay, jitter);
        let members = self.member_generations.lock().expect("member lock").len();
        for index in (0..members).filter(|i| *i != primary) {
            let container = self.member_container(index);
            self.turn(&container, from, proxy.addr, true).await?;
            (self.redirected.lock().expect("redirect lock")).push((container, from));
        }
        // Replicas connected before come back through the proxy, from where they were.
        resp::ask(&from.to_string(), &["CLIENT", "KILL", "TYPE", "replica"])
            .await
            .map_err(|why| EngineError::State(format!("cannot turn the replicas' links: {why}")))?;
        Ok(())
    }

    /// Takes the replication link's turn back (from replicas still there) and the
    /// delay off; says what the proxy measured.
    pub(super) async fn unlag_replication(&self) -> Result<String, EngineError> {
        let proxy = self.lag_proxy()?;
        let turned = std::mem::take(&mut *self.redirected.lock().expect("redirect lock"));
        for (container, from) in turned {
            // A replica replaced meanwhile went with its rule.
            if self.engine.is_running(&container).await.unwrap_or(false) {
                self.turn(&container, from, proxy.addr, false).await?;
            }
        }
        Ok(proxy.clear().to_string())
    }

    fn lag_proxy(&self) -> Result<&DelayProxy, EngineError> {
        (self.lag_proxy.get())
            .ok_or_else(|| EngineError::State("no delaying proxy on the replication link".into()))
    }

    /// Sends (`on`) `container`'s connections to `from` to `to`, or stops that.
    async fn turn(
        &self,
        container: &str,
        from: SocketAddr,
        to: SocketAddr,
        on: bool,
    ) -> Result<(), EngineError> {
        let (helper, labels) = (self.next_helper(), self.labels("helper"));
        netns::redirect(&self.engine, &helper, labels, container, from, to, on).await
    }
}

impl DockerCluster {
    /// Cuts (`on`) member `victim` off from the other members and the Sentinels, or
    /// undoes that; the service (through the front) still reaches it.
    pub(super) async fn isolate(&self, victim: Victim, on: bool) -> Result<(), EngineError> {
        let Victim::StoreMember(index) = victim else {
            return Err(EngineError::State(format!(
                "only a store member can be cut off from the others, not the {victim}"
            )));
        };
        let container = self.member_container(index);
        // The rules to delete are the ones added, whatever moved since.
        if on {
            let peers = self.peers_of(index).await?;
            self.shape_only(&container, Shaping::Blackhole, peers).await
        } else {
            self.unshape_only(&container, Shaping::Blackhole)
                .await
                .map(drop)
        }
    }

    /// The addresses of the other members and of the Sentinels.
    async fn peers_of(&self, index: usize) -> Result<Vec<Endpoint>, EngineError> {
        let members = self.member_generations.lock().expect("member lock").len();
        let mut peers = Vec::new();
        for other in (0..members).filter(|o| *o != index) {
            // A member that is down now has no address to cut.
            if let Ok(ip) = self
                .engine
                .ip(&self.member_container(other), &self.network)
                .await
            {
                peers.push(Endpoint::host(&ip)?);
            }
        }
        for sentinel in 0..SENTINELS {
            let name = self.name(&topology::sentinel(sentinel));
            peers.push(Endpoint::host(
                &self.engine.ip(&name, &self.network).await?,
            )?);
        }
        Ok(peers)
    }
}
