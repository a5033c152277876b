//! The cluster as Docker containers: a network, a store, N replicas and HAProxy.
//!
//! The store may be any image (`kind = "redis"` or `"tcp"`) or absent (`"none"`), and
//! the balancer may be absent too (`balancer.kind = "direct"`): then every replica
//! publishes its port on 127.0.0.1 and the load's [`Targets`] learn the new port of
//! every replica this module replaces or restarts.
//!
//! Names follow one pattern so a person reading `docker ps` sees what is what:
//! `sessionstorm-<run>-store`, `sessionstorm-<run>-balancer` and
//! `sessionstorm-<run>-replica-<slot>.<generation>`, where the generation counts the
//! replacements of a slot. Replicas are found by the alias `replica-<slot>`, which a
//! replacement takes over, and report `replica-<slot>.<generation>` as `X-Served-By`,
//! so an anomaly names the very container that served it.
//!
//! This file starts the run's containers and waits for them; `faults` is what
//! chaos does to them.

mod faults;
mod redis_cluster;
mod replicated;
mod sharded;
mod store;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::delay::DelayProxy;
use super::engine::{published_host, ContainerSpec, Engine, EngineError, Removed};
use super::limits::Limits;
use super::netns::Endpoint;
use super::ready::{wait_ready, Probe, Waiting};
use super::upload::tar_of;
use super::{haproxy, Lifecycle, Victim};
use crate::plan::template::{Template, Values};
use crate::plan::{BalancerKind, Fault, Plan, Scheme, StoreKind, Target, TlsPlan};
use crate::target::Targets;

/// The store's host name on the run's network, what `{store}` stands for.
const STORE_HOST: &str = "store";

/// A running cluster (or one being started or torn down) for one run.
#[derive(Debug)]
pub struct DockerCluster {
    engine: Engine,
    run_id: String,
    network: String,
    plan: Plan,
    /// Current generation of each replica slot.
    generations: Mutex<Vec<u32>>,
    /// Client for health checks, separate from the load's so its pool is not shared.
    http: reqwest::Client,
    /// Cuts readiness waits short when the user interrupts the run.
    cancel: CancellationToken,
    /// The balancer's health URL on 127.0.0.1, known once started.
    balancer_health: Mutex<String>,
    /// Addresses of containers taken off the network, to come back at.
    addresses: Mutex<HashMap<String, String>>,
    /// Numbers the short-lived helper containers of `blackhole`, `loss` and `bandwidth`.
    helpers: std::sync::atomic::AtomicU32,
    /// The limits of containers under a `cpu` or `oom` fault, as they were before.
    kept: Mutex<HashMap<String, Limits>>,
    /// With a `slow_store` fault in the plan: the proxy replicas reach the store through.
    store_proxy: OnceLock<DelayProxy>,
    /// A store topology's members: the current generation of each (`store-<n>`);
    /// shared with the store watch, which finds each member's container anew.
    member_generations: Arc<Mutex<Vec<u32>>>,
    /// What `{store_nodes}` stands for.
    store_nodes: String,
    /// With a `store_lag` fault in the plan: the proxy replicas replicate through.
    lag_proxy: OnceLock<DelayProxy>,
    /// Containers cut off from some addresses (a member by `store_split`, a replica
    /// by a fault's `peer`), and those addresses as looked up when the fault started:
    /// the undoing deletes exactly those rules, wherever the peers are by then.
    cut_off: Mutex<HashMap<String, Vec<Endpoint>>>,
    /// Members whose link to the primary `store_lag` turned through its proxy, and
    /// the primary's address then.
    redirected: Mutex<Vec<(String, std::net::SocketAddr)>>,
    /// With a `latency` fault on replicas: per slot, the proxy the balancer reaches
    /// the replica through.
    replica_proxies: OnceLock<Vec<DelayProxy>>,
    /// Where the load sends requests, known once started; updated when a replica
    /// gets a new published port (direct balancing).
    targets: OnceLock<Arc<Targets>>,
}

/// What [`DockerCluster::start`] reports.
#[derive(Debug, Clone)]
pub struct Started {
    /// Where the load goes, for people: the balancer's published port on
    /// 127.0.0.1, or (direct) every replica's.
    pub url: String,
    pub ready_after: Duration,
    /// Where the load goes, for the load: kept up to date as chaos replaces replicas.
    pub targets: Arc<Targets>,
}

impl DockerCluster {
    /// Prepares a cluster for `plan`; nothing is created until [`start`](Self::start).
    pub fn new(engine: Engine, run_id: &str, plan: &Plan, cancel: CancellationToken) -> Self {
        DockerCluster {
            engine,
            run_id: run_id.to_string(),
            network: format!("sessionstorm-{run_id}"),
            plan: plan.clone(),
            generations: Mutex::new(vec![0; plan.service.replicas]),
            // Probes reach only containers of the run, by address (see `Scheme::Https`).
            http: crate::tls::probe_client(
                &TlsPlan {
                    insecure: true,
                    ..TlsPlan::default()
                },
                Duration::from_secs(1),
            ),
            cancel,
            balancer_health: Mutex::new(String::new()),
            addresses: Mutex::new(HashMap::new()),
            helpers: Default::default(),
            kept: Mutex::new(HashMap::new()),
            store_proxy: OnceLock::new(),
            member_generations: Arc::new(Mutex::new(vec![0; plan.store.topology.members()])),
            store_nodes: crate::plan::topology::nodes(
                plan.store.topology,
                STORE_HOST,
                plan.store.port,
            ),
            lag_proxy: OnceLock::new(),
            cut_off: Mutex::new(HashMap::new()),
            redirected: Mutex::new(Vec::new()),
            replica_proxies: OnceLock::new(),
            targets: OnceLock::new(),
        }
    }

    pub(super) fn name(&self, what: &str) -> String {
        container_name(&self.run_id, what)
    }

    fn labels(&self, role: &str) -> HashMap<String, String> {
        super::run_labels(&self.run_id, role)
    }

    fn instance(slot: usize, generation: u32) -> String {
        format!("replica-{slot}.{generation}")
    }

    fn generation(&self, slot: usize) -> u32 {
        self.generations.lock().expect("generation lock")[slot]
    }

    /// Creates the network, the store, the replicas and the balancer, and waits until
    /// the store, every replica and the balancer are ready.
    pub async fn start(&self) -> Result<Started, EngineError> {
        if let Some(port) = self.plan.balancer.port {
            // Before anything is created: a taken port is the user's to fix.
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(port_in_use(port));
            }
        }
        let began = Instant::now();
        let deadline = began + self.plan.service.ready_timeout;
        self.engine
            .create_network(&self.network, self.labels("network"))
            .await?;
        if self.plan.store.kind != StoreKind::None {
            // Ready before the replicas start: many services give up at once when
            // their store does not answer.
            self.start_store(deadline).await?;
            let slow_store = self.plan.chaos.iter().any(|c| {
                matches!(c.fault, Fault::SlowStore { .. })
                    || matches!(c.fault, Fault::Latency { .. }) && c.target == Target::Store
            });
            if slow_store {
                self.start_store_proxy().await?;
            }
        }
        for slot in 0..self.plan.service.replicas {
            self.create_replica(slot, 0).await?;
        }
        let slow_replicas = self
            .plan
            .chaos
            .iter()
            .any(|c| matches!(c.fault, Fault::Latency { .. }) && c.target.is_replicas());
        if slow_replicas && self.plan.balancer.kind == BalancerKind::Haproxy {
            self.start_replica_proxies().await?;
        }
        let balancer = match self.plan.balancer.kind {
            BalancerKind::Haproxy => Some(self.start_balancer().await?),
            BalancerKind::Direct => None,
        };
        for slot in 0..self.plan.service.replicas {
            self.wait_replica(slot, 0, deadline).await?;
        }
        let (url, targets) = match balancer {
            Some(url) => {
                let health = format!("{url}{}", self.plan.service.health_path);
                *self.balancer_health.lock().expect("balancer lock") = health.clone();
                self.wait_url(&self.name("balancer"), &health, deadline)
                    .await?;
                (url.clone(), Targets::one(&url))
            }
            None => {
                let mut bases = Vec::new();
                for slot in 0..self.plan.service.replicas {
                    bases.push(self.replica_base(slot).await?);
                }
                let targets = Targets::direct(&bases, self.plan.balancer.sticky);
                (format!("none (direct to {})", targets.describe()), targets)
            }
        };
        let targets = Arc::clone(self.targets.get_or_init(|| Arc::new(targets)));
        Ok(Started {
            url,
            ready_after: began.elapsed(),
            targets,
        })
    }

    /// Creates and starts HAProxy in front of the replicas; returns its URL.
    async fn start_balancer(&self) -> Result<String, EngineError> {
        let aliases: Vec<String> = (0..self.plan.service.replicas)
            .map(|slot| format!("replica-{slot}"))
            .collect();
        let config = haproxy::render(&haproxy::Config {
            replicas: &aliases,
            port: self.plan.service.port,
            health_path: &self.plan.service.health_path,
            sticky: self.plan.balancer.sticky,
            tls: self.plan.service.scheme == Scheme::Https,
            via: &self
                .replica_proxies
                .get()
                .map(|proxies| {
                    proxies
                        .iter()
                        .map(|p| p.addr.to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
            tasks: None,
        });
        self.run_balancer(&config).await
    }

    /// Creates and starts HAProxy with `config` on the run's network, published on
    /// 127.0.0.1 (on the engine's host when remote: [`published_host`]); returns its URL.
    pub(super) async fn run_balancer(&self, config: &str) -> Result<String, EngineError> {
        let balancer = self.name("balancer");
        // A port chosen here rather than by Docker, so a balancer restarted by a
        // fault keeps its address and the load finds it again.
        let host_port = match self.plan.balancer.port {
            Some(port) => port,
            None => free_port().map_err(|e| {
                EngineError::State(format!("cannot find a free port on 127.0.0.1: {e}"))
            })?,
        };
        self.engine
            .create(&ContainerSpec {
                name: balancer.clone(),
                image: crate::images::BuiltIn::Haproxy.tag().to_string(),
                cmd: vec![
                    "-db".into(),
                    "-f".into(),
                    format!("{}/{}", haproxy::CONFIG_DIR, haproxy::CONFIG_FILE),
                ],
                labels: self.labels("balancer"),
                network: self.network.clone(),
                alias: "balancer".into(),
                publish: Some(haproxy::LISTEN_PORT),
                host_port: Some(host_port),
                ..Default::default()
            })
            .await?;
        self.engine
            .upload(
                &balancer,
                haproxy::CONFIG_DIR,
                tar_of(haproxy::CONFIG_FILE, config),
            )
            .await?;
        self.engine.start(&balancer).await.map_err(|e| {
            // Taken between our check and Docker's bind.
            let text = e.to_string();
            if text.contains("already allocated") || text.contains("address already in use") {
                port_in_use(host_port)
            } else {
                e
            }
        })?;
        let port = self
            .engine
            .published_port(&balancer, haproxy::LISTEN_PORT)
            .await?;
        Ok(format!("http://{}:{port}", published_host()))
    }

    /// Starts the delaying proxy of `slow_store` on the run network's gateway, in
    /// front of the store; replicas made from now on reach the store through it.
    async fn start_store_proxy(&self) -> Result<(), EngineError> {
        let gateway = self.engine.gateway(&self.network).await?;
        let store = self.engine.ip(&self.name("store"), &self.network).await?;
        let proxy = DelayProxy::start(
            socket(&gateway, 0)?,
            socket(&store, self.plan.store.port)?,
            self.plan.seed,
        )
        .await
        .map_err(|e| {
            EngineError::State(format!(
                "cannot start the slow_store proxy on the run network's gateway {gateway}: {e}"
            ))
        })?;
        let _ = self.store_proxy.set(proxy);
        Ok(())
    }

    /// Starts a delaying proxy per replica slot on the run network's gateway, in
    /// front of the replica: the balancer reaches each replica through its proxy.
    async fn start_replica_proxies(&self) -> Result<(), EngineError> {
        let gateway = self.engine.gateway(&self.network).await?;
        let mut proxies = Vec::new();
        for slot in 0..self.plan.service.replicas {
            let ip = self
                .engine
                .ip(&self.name(&Self::instance(slot, 0)), &self.network)
                .await?;
            let proxy = DelayProxy::start(
                socket(&gateway, 0)?,
                socket(&ip, self.plan.service.port)?,
                self.plan.seed ^ slot as u64,
            )
            .await
            .map_err(|e| {
                EngineError::State(format!(
                    "cannot start the latency proxy of replica-{slot} on {gateway}: {e}"
                ))
            })?;
            proxies.push(proxy);
        }
        let _ = self.replica_proxies.set(proxies);
        Ok(())
    }

    /// The delaying proxy in front of `victim`.
    fn proxy_of(&self, victim: Victim) -> Result<&DelayProxy, EngineError> {
        let proxy = match victim {
            Victim::Store => self.store_proxy.get(),
            Victim::Replica(slot) => self.replica_proxies.get().and_then(|p| p.get(slot)),
            Victim::StoreMember(_) | Victim::StorePrimary | Victim::Balancer => None,
        };
        proxy.ok_or_else(|| {
            EngineError::State(format!("no delaying proxy in front of the {victim}"))
        })
    }

    async fn create_replica(&self, slot: usize, generation: u32) -> Result<(), EngineError> {
        let service = &self.plan.service;
        let instance = Self::instance(slot, generation);
        let proxied = self
            .store_proxy
            .get()
            .map(|p| (p.addr.ip().to_string(), p.addr.port()));
        let (store, store_port) = proxied
            .as_ref()
            .map_or((STORE_HOST, self.plan.store.port), |(ip, port)| {
                (ip.as_str(), *port)
            });
        let values = Values {
            store,
            store_port,
            store_nodes: &self.store_nodes,
            replica: Some((slot, &instance)),
        };
        let mut env = render_env(&service.env, &values);
        // What the harness sets, unless the scenario sets it itself.
        for (key, value) in [
            ("PORT", service.port.to_string()),
            ("INSTANCE_ID", instance.clone()),
        ] {
            if !service.env.contains_key(key) {
                env.push(format!("{key}={value}"));
            }
        }
        let name = self.name(&instance);
        let mut labels = self.labels("replica");
        labels.insert("sessionstorm.slot".into(), slot.to_string());
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: service.image.clone(),
                cmd: render(&service.command, &values),
                entrypoint: render(&service.entrypoint, &values),
                env,
                labels,
                network: self.network.clone(),
                alias: format!("replica-{slot}"),
                // Direct balancing: the load reaches each replica on 127.0.0.1.
                publish: (self.plan.balancer.kind == BalancerKind::Direct).then_some(service.port),
                ..Default::default()
            })
            .await?;
        self.engine.start(&name).await
    }

    /// The replica's published base URL (direct balancing), on 127.0.0.1 for a
    /// local engine.
    async fn replica_base(&self, slot: usize) -> Result<String, EngineError> {
        let name = self.name(&Self::instance(slot, self.generation(slot)));
        let port = self
            .engine
            .published_port(&name, self.plan.service.port)
            .await?;
        Ok(format!(
            "{}://{}:{port}",
            self.plan.service.scheme.as_str(),
            published_host()
        ))
    }

    /// Tells the load where a replica answers now: a replacement, or a restarted
    /// container, is published on a new port.
    async fn retarget(&self, slot: usize) -> Result<(), EngineError> {
        if self.plan.balancer.kind != BalancerKind::Direct {
            return Ok(());
        }
        let base = self.replica_base(slot).await?;
        if let Some(targets) = self.targets.get() {
            targets.set(slot, &base);
        }
        Ok(())
    }

    /// Waits until the replica answers its health check on its own address.
    async fn wait_replica(
        &self,
        slot: usize,
        generation: u32,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let name = self.name(&Self::instance(slot, generation));
        let ip = self.engine.ip(&name, &self.network).await?;
        let url = format!(
            "{}://{ip}:{}{}",
            self.plan.service.scheme.as_str(),
            self.plan.service.port,
            self.plan.service.health_path
        );
        self.wait_url(&name, &url, deadline).await
    }

    /// Waits until `url` answers 200 while `container` runs: a container that
    /// stops fails the wait at once, with its last log lines.
    pub(super) async fn wait_url(
        &self,
        container: &str,
        url: &str,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        let probes = [
            Probe::Alive(container.to_string()),
            Probe::Http(url.to_string()),
        ];
        let waiting = Waiting {
            subject: format!("container {container}"),
            deadline,
            cancel: &self.cancel,
            late: format!("{container} was not ready in time"),
            advice: "Raise `service.ready_timeout` if the service is slow to start.".into(),
        };
        wait_ready(&self.engine, &self.http, &probes, &waiting).await
    }

    /// Waits until every replica is healthy again, as after chaos stops, except the
    /// slots chaos left down on purpose (`after_kill = "none"`).
    pub async fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> Result<Duration, EngineError> {
        let began = Instant::now();
        let deadline = began + timeout;
        for slot in (0..self.plan.service.replicas).filter(|s| !left_down.contains(s)) {
            self.wait_replica(slot, self.generation(slot), deadline)
                .await?;
        }
        Ok(began.elapsed())
    }

    /// Removes everything labelled with this run, whatever state it is in, but its
    /// reaper, which goes last.
    pub async fn teardown(&self) -> Result<Removed, EngineError> {
        self.engine.remove_run(&self.run_id).await
    }
}

impl Lifecycle for DockerCluster {
    async fn start(&self) -> Result<Started, EngineError> {
        DockerCluster::start(self).await
    }

    async fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> Result<Duration, EngineError> {
        DockerCluster::wait_healthy(self, timeout, left_down).await
    }

    async fn teardown(&self) -> Result<Removed, EngineError> {
        DockerCluster::teardown(self).await
    }

    fn store_watch(&self) -> Option<crate::store::watch::Watched> {
        self.watched()
    }
}

/// The container of run `run_id` that is `what` (`store`, `replica-0.1`).
fn container_name(run_id: &str, what: &str) -> String {
    format!("sessionstorm-{run_id}-{what}")
}

/// Fills in the placeholders of a command line.
fn render(args: &[Template], values: &Values) -> Vec<String> {
    args.iter().map(|arg| arg.render(values)).collect()
}

/// Fills in the placeholders of an environment, as `KEY=value` entries.
fn render_env(env: &std::collections::BTreeMap<String, Template>, values: &Values) -> Vec<String> {
    env.iter()
        .map(|(key, value)| format!("{key}={}", value.render(values)))
        .collect()
}

/// `host:port` as a socket address.
fn socket(host: &str, port: u16) -> Result<std::net::SocketAddr, EngineError> {
    format!("{host}:{port}")
        .parse()
        .map_err(|e| EngineError::State(format!("cannot read the address {host}:{port}: {e}")))
}

fn port_in_use(port: u16) -> EngineError {
    EngineError::State(format!(
        "port {port} on 127.0.0.1 (`balancer.port`) is in use by another program; \
         stop it (`ss -ltnp 'sport = :{port}'` shows which), choose another port, or \
         leave `balancer.port` out and a free one is picked"
    ))
}

/// A TCP port on 127.0.0.1 that is free now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
