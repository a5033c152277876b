//! The cluster as Docker containers: a network, a store, N replicas and HAProxy.
//!
//! Names follow one pattern so a person reading `docker ps` sees what is what:
//! `sessionstorm-<run>-store`, `sessionstorm-<run>-balancer` and
//! `sessionstorm-<run>-replica-<slot>.<generation>`, where the generation counts the
//! replacements of a slot. Replicas are found by the alias `replica-<slot>`, which a
//! replacement takes over, and report `replica-<slot>.<generation>` as `X-Served-By`,
//! so an anomaly names the very container that served it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::engine::{ContainerSpec, Engine, EngineError, Removed};
use super::{haproxy, Cluster, Killed, Replaced, ROLE_LABEL, RUN_LABEL};
use crate::plan::Plan;

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(100);
/// Port of the session store inside its container.
const STORE_PORT: u16 = 6379;

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
}

/// What [`DockerCluster::start`] reports.
#[derive(Debug, Clone)]
pub struct Started {
    /// Where the load goes: the balancer's published port on 127.0.0.1.
    pub url: String,
    pub ready_after: Duration,
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
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("a plain HTTP client builds"),
            cancel,
        }
    }

    fn name(&self, what: &str) -> String {
        format!("sessionstorm-{}-{what}", self.run_id)
    }

    fn labels(&self, role: &str) -> HashMap<String, String> {
        HashMap::from([
            (RUN_LABEL.to_string(), self.run_id.clone()),
            (ROLE_LABEL.to_string(), role.to_string()),
        ])
    }

    fn instance(slot: usize, generation: u32) -> String {
        format!("replica-{slot}.{generation}")
    }

    fn generation(&self, slot: usize) -> u32 {
        self.generations.lock().expect("generation lock")[slot]
    }

    /// Creates the network, the store, the replicas and the balancer, and waits until
    /// every replica and the balancer answer their health check.
    pub async fn start(&self) -> Result<Started, EngineError> {
        let began = Instant::now();
        self.engine
            .create_network(&self.network, self.labels("network"))
            .await?;

        let store = self.name("store");
        self.engine
            .create(&ContainerSpec {
                name: store.clone(),
                image: self.plan.store.image.clone(),
                cmd: [
                    "--bind",
                    "0.0.0.0",
                    "--protected-mode",
                    "no",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
                .map(String::from)
                .to_vec(),
                labels: self.labels("store"),
                network: self.network.clone(),
                alias: "store".into(),
                ..Default::default()
            })
            .await?;
        self.engine.start(&store).await?;

        for slot in 0..self.plan.service.replicas {
            self.create_replica(slot, 0).await?;
        }

        let balancer = self.name("balancer");
        let aliases: Vec<String> = (0..self.plan.service.replicas)
            .map(|slot| format!("replica-{slot}"))
            .collect();
        let config = haproxy::render(&haproxy::Config {
            replicas: &aliases,
            port: self.plan.service.port,
            health_path: &self.plan.service.health_path,
        });
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
                ..Default::default()
            })
            .await?;
        self.engine
            .upload(
                &balancer,
                haproxy::CONFIG_DIR,
                tar_of(haproxy::CONFIG_FILE, &config),
            )
            .await?;
        self.engine.start(&balancer).await?;
        let port = self
            .engine
            .published_port(&balancer, haproxy::LISTEN_PORT)
            .await?;
        let url = format!("http://127.0.0.1:{port}");

        let deadline = began + self.plan.service.ready_timeout;
        for slot in 0..self.plan.service.replicas {
            self.wait_replica(slot, 0, deadline).await?;
        }
        self.wait_url(
            &balancer,
            &format!("{url}{}", self.plan.service.health_path),
            deadline,
        )
        .await?;
        Ok(Started {
            url,
            ready_after: began.elapsed(),
        })
    }

    async fn create_replica(&self, slot: usize, generation: u32) -> Result<(), EngineError> {
        let service = &self.plan.service;
        let mut env = vec![
            format!("SESSION_STORE=redis://store:{STORE_PORT}"),
            format!("PORT={}", service.port),
            format!("INSTANCE_ID={}", Self::instance(slot, generation)),
        ];
        env.extend(service.env.iter().map(|(k, v)| format!("{k}={v}")));
        let name = self.name(&Self::instance(slot, generation));
        let mut labels = self.labels("replica");
        labels.insert("sessionstorm.slot".into(), slot.to_string());
        self.engine
            .create(&ContainerSpec {
                name: name.clone(),
                image: service.image.clone(),
                env,
                labels,
                network: self.network.clone(),
                alias: format!("replica-{slot}"),
                ..Default::default()
            })
            .await?;
        self.engine.start(&name).await
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
            "http://{ip}:{}{}",
            self.plan.service.port, self.plan.service.health_path
        );
        self.wait_url(&name, &url, deadline).await
    }

    /// Polls `url` until it answers 200. Fails early, with the container's last log
    /// lines, if `container` stops: a replica that crashes at start would otherwise
    /// look like a slow one until the timeout.
    async fn wait_url(
        &self,
        container: &str,
        url: &str,
        deadline: Instant,
    ) -> Result<(), EngineError> {
        loop {
            let answer = self.http.get(url).send().await;
            if answer.as_ref().is_ok_and(|a| a.status() == 200) {
                return Ok(());
            }
            if !self.engine.is_running(container).await? {
                let logs = self.engine.logs_tail(container, 20).await;
                return Err(EngineError::State(format!(
                    "container {container} exited before it was ready; its last log lines:\n{logs}"
                )));
            }
            if self.cancel.is_cancelled() {
                return Err(EngineError::State(format!(
                    "stopped waiting for {container}: interrupted"
                )));
            }
            if Instant::now() >= deadline {
                let last = match answer {
                    Ok(a) => format!("status {}", a.status()),
                    Err(e) => e.to_string(),
                };
                return Err(EngineError::State(format!(
                    "{container} was not ready in time: {url} last answered {last}. \
                     Raise `service.ready_timeout` if the service is slow to start."
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every replica is healthy again, as after chaos stops.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<Duration, EngineError> {
        let began = Instant::now();
        let deadline = began + timeout;
        for slot in 0..self.plan.service.replicas {
            self.wait_replica(slot, self.generation(slot), deadline)
                .await?;
        }
        Ok(began.elapsed())
    }

    /// Removes everything labelled with this run, whatever state it is in.
    pub async fn teardown(&self) -> Result<Removed, EngineError> {
        self.engine
            .remove_labelled(&format!("{RUN_LABEL}={}", self.run_id), false)
            .await
    }
}

impl Cluster for DockerCluster {
    fn replicas(&self) -> usize {
        self.plan.service.replicas
    }

    async fn kill(&self, slot: usize) -> Result<Killed, EngineError> {
        let instance = Self::instance(slot, self.generation(slot));
        let outcome = self.engine.kill(&self.name(&instance)).await?;
        Ok(Killed { instance, outcome })
    }

    async fn replace(&self, slot: usize) -> Result<Replaced, EngineError> {
        let began = Instant::now();
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
        Ok(Replaced {
            instance: Self::instance(slot, generation),
            ready_after: began.elapsed(),
        })
    }
}

/// A tar archive holding one file, as Docker's upload API wants it.
fn tar_of(name: &str, content: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, content.as_bytes())
        .expect("writing to memory cannot fail");
    builder.into_inner().expect("writing to memory cannot fail")
}
