//! The cluster as a Docker Swarm service: the same scenario on an orchestrator, whose
//! own recovery is part of what the run measures.
//!
//! - an **attachable overlay network** `sessionstorm-<run>`, labelled with the run;
//! - the **store**: a plain container on that network (alias `store`), on this node,
//!   made by the same code as the docker engine's ([`DockerCluster`]);
//! - the **replicas**: ONE service `sessionstorm-<run>-replicas` with `replicas = N`,
//!   `endpoint_mode = dnsrr` and the scenario's restart delay ([`spec`]);
//! - the **balancer**: HAProxy as a plain container on the overlay, on the manager,
//!   published on 127.0.0.1 (on the manager's host address when `DOCKER_HOST` is
//!   `tcp://HOST:PORT`; no routing mesh, which needs IPVS), its servers a
//!   `server-template` over `tasks.<service>` resolved by Docker's DNS.
//!
//! The swarm may have several nodes. Images are named by id and there is no
//! registry: a node without one cannot start its task, and the run stops naming the
//! node and the image. The host cannot reach overlay addresses, so a task is
//! *serving* when it is RUNNING for Swarm and the balancer's health checks pass on
//! its address (HAProxy's statistics, [`stats`]), read from the manager's view of
//! the overlay (every node's tasks). Faults go through a one-shot job on the
//! task's node ([`agent`]): the manager API cannot kill one task. A killed task is
//! never restarted in place: Swarm fails it and, after the restart delay, starts a
//! new task in its slot; `Replace` waits for that task to serve, and the time from
//! the kill is the fault's `ready_after`. A watcher reads the task list while the
//! run goes, for the report's scheduling facts ([`facts`]).
//!
//! Every service, container and network carries the run's labels, so teardown,
//! `cleanup` and the reaper find them (services first: `Engine::remove_run`).
//!
//! This file makes the run's objects and acts on the tasks; `serving` says when a
//! task serves, `jobs` runs the agent's jobs on the nodes.

pub mod agent;
pub mod facts;
mod jobs;
mod serving;
pub mod spec;
pub mod stats;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bollard::models::{LocalNodeState, Task, TaskState};
use tokio_util::sync::CancellationToken;

use self::agent::AgentAction;
use self::facts::{Observed, Scheduling};
use super::docker::{DockerCluster, Started};
use super::engine::{Engine, EngineError, Removed};
use super::hold::{Hold, Journal, Note};
use super::{haproxy, Acted, Action, Cluster, Ended, KillOutcome, Lifecycle, Victim};
use crate::images::BuiltIn;
use crate::plan::cluster::SWARM_RESTART_DELAY;
use crate::plan::template::Values;
use crate::plan::{Plan, StoreKind};
use crate::target::Targets;

/// How often the watcher reads the task list for the scheduling facts.
const WATCH: Duration = Duration::from_millis(250);

/// A task's container and where it runs.
#[derive(Debug, Clone)]
struct Located {
    task: String,
    /// `<service>.<slot>.<task id>`, what the replica reports as `X-Served-By`.
    name: String,
    node: String,
    container: String,
}

/// A Swarm service of replicas, its store and its balancer, for one run.
#[derive(Debug)]
pub struct SwarmCluster {
    /// Makes the store and the balancer, containers on the overlay network.
    docker: DockerCluster,
    engine: Engine,
    run_id: String,
    plan: Plan,
    cancel: CancellationToken,
    /// The replicas' service name.
    service: String,
    network: String,
    /// Reads the balancer's statistics.
    http: reqwest::Client,
    /// The balancer's statistics as CSV, known once started.
    stats_url: OnceLock<String>,
    /// The harness's own image, by id, for the agent's jobs.
    agent_image: OnceLock<String>,
    /// Per slot: the task a fault killed, and when, until its replacement serves.
    killed: Mutex<HashMap<usize, (String, Instant)>>,
    /// Per slot: the container a `pause` froze, to thaw the same one.
    paused: Mutex<HashMap<usize, Located>>,
    /// Numbers the agent's jobs.
    jobs: AtomicU32,
    facts: Arc<Mutex<Scheduling>>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Attached to a running service (`--attach URL`): its URL. The harness then
    /// makes nothing but its agent's jobs, and acts only on that service's tasks.
    attached: Option<String>,
    /// Where a pause is noted for the reaper before it holds a container.
    journal: Journal,
}

/// A running Swarm service to attach to: how many tasks it asks for, and its
/// restart delay.
pub async fn discover(engine: &Engine, service: &str) -> Result<(usize, Duration), EngineError> {
    let found = engine.service(service).await?;
    let spec = found.spec.unwrap_or_default();
    let replicas = (spec.mode.and_then(|m| m.replicated))
        .and_then(|r| r.replicas)
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            EngineError::State(format!(
                "the Swarm service {service} is not replicated with at least one task (a global \
                 service or a job has no slots to fault); attach to a replicated one"
            ))
        })?;
    let delay = (spec.task_template.and_then(|t| t.restart_policy))
        .and_then(|p| p.delay)
        .map_or(SWARM_RESTART_DELAY, |ns| {
            Duration::from_nanos(ns.max(0) as u64)
        });
    Ok((replicas as usize, delay))
}

impl SwarmCluster {
    /// Prepares a cluster for `plan`; nothing is created until `start`.
    pub fn new(engine: Engine, run_id: &str, plan: &Plan, cancel: CancellationToken) -> Self {
        let service = format!("sessionstorm-{run_id}-replicas");
        SwarmCluster {
            docker: DockerCluster::new(engine.clone(), run_id, plan, cancel.clone()),
            engine,
            run_id: run_id.to_string(),
            plan: plan.clone(),
            cancel,
            network: format!("sessionstorm-{run_id}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("a plain HTTP client builds"),
            stats_url: OnceLock::new(),
            agent_image: OnceLock::new(),
            killed: Mutex::new(HashMap::new()),
            paused: Mutex::new(HashMap::new()),
            jobs: AtomicU32::new(0),
            facts: Arc::new(Mutex::new(Scheduling {
                engine: "swarm".into(),
                service: service.clone(),
                restart_delay_ms: plan.cluster.restart_delay.as_millis() as u64,
                ..Default::default()
            })),
            watcher: Mutex::new(None),
            attached: None,
            journal: Journal::default(),
            service,
        }
    }

    /// The same engine on a service someone else runs (see [`discover`]), whose
    /// load goes to `url`: nothing is created, only its tasks are acted on.
    pub fn attached_to(mut self, service: &str, restart_delay: Duration, url: &str) -> Self {
        self.service = service.to_string();
        self.attached = Some(url.to_string());
        let facts = Scheduling {
            engine: "swarm".into(),
            service: service.to_string(),
            restart_delay_ms: restart_delay.as_millis() as u64,
            ..Default::default()
        };
        *self.facts.lock().expect("facts lock") = facts;
        self
    }

    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    fn labels(&self, role: &str) -> HashMap<String, String> {
        super::run_labels(&self.run_id, role)
    }

    /// Creates the overlay network, the store, the replicas' service and the
    /// balancer, and waits until every slot's task serves through the balancer.
    async fn start(&self) -> Result<Started, EngineError> {
        let began = Instant::now();
        let deadline = began + self.plan.service.ready_timeout;
        let local = self.require_manager().await?;
        if let Some(url) = &self.attached {
            let agent_image = self.image_id(BuiltIn::Reaper.tag()).await?;
            let _ = self.agent_image.set(agent_image);
            self.check_nodes(&local).await?;
            self.watch();
            for slot in 0..self.plan.service.replicas {
                self.wait_serving(slot, None, deadline).await?;
            }
            return Ok(Started {
                url: url.clone(),
                ready_after: began.elapsed(),
                targets: Arc::new(Targets::one(url)),
            });
        }
        self.create_network().await?;
        if self.plan.store.kind != StoreKind::None {
            self.docker.create_store().await?;
        }
        let image = self.image_id(&self.plan.service.image).await?;
        let agent_image = self.image_id(BuiltIn::Reaper.tag()).await?;
        let _ = self.agent_image.set(agent_image);
        self.check_nodes(&local).await?;
        self.create_replicas(&image).await?;
        let config = haproxy::render(&haproxy::Config {
            replicas: &[],
            port: self.plan.service.port,
            health_path: &self.plan.service.health_path,
            sticky: false,
            tls: self.plan.service.scheme == crate::plan::Scheme::Https,
            via: &[],
            tasks: Some((&self.service, self.plan.service.replicas)),
        });
        let url = self.docker.run_balancer(&config).await?;
        let _ = self
            .stats_url
            .set(format!("{url}{};csv", haproxy::STATS_PATH));
        self.watch();
        for slot in 0..self.plan.service.replicas {
            self.wait_serving(slot, None, deadline).await?;
        }
        let health = format!("{url}{}", self.plan.service.health_path);
        self.docker
            .wait_url(&self.docker.name("balancer"), &health, deadline)
            .await?;
        Ok(Started {
            url: url.clone(),
            ready_after: began.elapsed(),
            targets: Arc::new(Targets::one(&url)),
        })
    }

    /// This engine must manage a swarm: the services are created through it. Its
    /// node's id.
    async fn require_manager(&self) -> Result<String, EngineError> {
        let swarm = self.engine.swarm_state().await?;
        if swarm.local_node_state == Some(LocalNodeState::ACTIVE)
            && swarm.control_available == Some(true)
        {
            return Ok(swarm.node_id.unwrap_or_default());
        }
        Err(EngineError::State(format!(
            "the swarm engine needs this Docker engine to be a swarm manager, and it is not \
             (swarm state: {}); make it one with `docker swarm init --advertise-addr 127.0.0.1` \
             (undo with `docker swarm leave --force`), or run with `--engine docker`",
            swarm
                .local_node_state
                .map_or_else(|| "unknown".to_string(), |s| s.to_string())
        )))
    }

    /// The attachable overlay network of the run: tasks, the store and the balancer
    /// meet on it.
    async fn create_network(&self) -> Result<(), EngineError> {
        self.engine
            .create_overlay_network(&self.network, self.labels("network"))
            .await
    }

    /// The id of a local image: a service naming its image by id runs the node's
    /// copy and never asks a registry, which there is none of here.
    async fn image_id(&self, tag: &str) -> Result<String, EngineError> {
        let missing = || {
            EngineError::State(format!(
                "the image {tag} is not on the manager; the swarm engine runs images from the \
                 nodes' own stores (there is no registry): build it with `sessionstorm images build`"
            ))
        };
        let image = (self.engine.image(tag).await).map_err(|_| missing())?;
        image.and_then(|i| i.id).ok_or_else(missing)
    }

    async fn create_replicas(&self, image: &str) -> Result<(), EngineError> {
        let service = &self.plan.service;
        // All tasks share one spec: `{instance}` and INSTANCE_ID become Swarm's own
        // template for the task's name (validation refuses `{replica}`).
        let values = Values {
            store: "store",
            store_port: self.plan.store.port,
            store_nodes: &format!("store:{}", self.plan.store.port),
            replica: Some((0, spec::TASK_NAME)),
        };
        let render = |args: &[crate::plan::template::Template]| -> Vec<String> {
            args.iter().map(|a| a.render(&values)).collect()
        };
        let mut env: Vec<String> = (service.env.iter())
            .map(|(key, value)| format!("{key}={}", value.render(&values)))
            .collect();
        for (key, value) in [
            ("PORT", service.port.to_string()),
            ("INSTANCE_ID", spec::TASK_NAME.to_string()),
        ] {
            if !service.env.contains_key(key) {
                env.push(format!("{key}={value}"));
            }
        }
        let request = spec::replicas(&spec::Replicas {
            name: &self.service,
            image,
            replicas: service.replicas,
            entrypoint: render(&service.entrypoint),
            args: render(&service.command),
            env,
            labels: self.labels("replica"),
            network: &self.network,
            restart_delay: self.plan.cluster.restart_delay,
        });
        self.engine
            .create_service(request, "create service")
            .await
            .map(drop)
    }

    /// Starts the watcher that reads the task list for the report's scheduling facts.
    fn watch(&self) {
        let engine = self.engine.clone();
        let service = self.service.clone();
        let facts = Arc::clone(&self.facts);
        let handle = tokio::spawn(async move {
            loop {
                if let Ok(tasks) = engine.tasks(&service).await {
                    let seen: Vec<Observed> = tasks.iter().filter_map(observed).collect();
                    facts.lock().expect("facts lock").observe(&seen);
                }
                tokio::time::sleep(WATCH).await;
            }
        });
        *self.watcher.lock().expect("watcher lock") = Some(handle);
    }

    /// The running task of `slot`, other than `not`, with its container.
    async fn locate(&self, slot: usize, not: Option<&str>) -> Result<Option<Located>, EngineError> {
        let tasks = self.engine.tasks(&self.service).await?;
        Ok(self.running(&tasks, slot, not))
    }

    /// When the task's container ended, by the engine's clock, as an instant of
    /// ours: the kill itself, not the end of the job that did it, starts the time
    /// until a new task serves. A container on another node is not seen by this
    /// engine: the manager's time of the task's end is taken then. `None` when
    /// neither says yet.
    async fn finished_at(&self, task: &Located) -> Option<Instant> {
        let finished = match self.engine.inspect(&task.container).await {
            Ok(info) => info.state?.finished_at?,
            Err(_) => {
                let tasks = self.engine.tasks(&self.service).await.ok()?;
                let found = tasks.iter().find(|t| t.id.as_deref() == Some(&task.task))?;
                let status = found.status.as_ref()?;
                if status.state == Some(TaskState::RUNNING) {
                    return None;
                }
                status.timestamp.clone()?
            }
        };
        let at = chrono::DateTime::parse_from_rfc3339(&finished).ok()?;
        let ago = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
            .to_std()
            .ok()?;
        Instant::now().checked_sub(ago)
    }

    /// Every replica slot serves again, but the ones chaos left down.
    async fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> Result<Duration, EngineError> {
        let began = Instant::now();
        for slot in (0..self.plan.service.replicas).filter(|s| !left_down.contains(s)) {
            self.wait_serving(slot, None, began + timeout).await?;
        }
        Ok(began.elapsed())
    }
}

/// A task as the scheduling facts keep it.
fn observed(task: &Task) -> Option<Observed> {
    let status = task.status.as_ref()?;
    Some(Observed {
        id: task.id.clone()?,
        slot: (task.slot? as usize).saturating_sub(1),
        node: task.node_id.clone().unwrap_or_default(),
        created_at: task.created_at.clone().unwrap_or_default(),
        state: status.state?.to_string(),
        at: status.timestamp.clone().unwrap_or_default(),
        error: status.err.clone().filter(|e| !e.is_empty()),
    })
}

impl Lifecycle for SwarmCluster {
    async fn start(&self) -> Result<Started, EngineError> {
        SwarmCluster::start(self).await
    }

    async fn wait_healthy(
        &self,
        timeout: Duration,
        left_down: &[usize],
    ) -> Result<Duration, EngineError> {
        SwarmCluster::wait_healthy(self, timeout, left_down).await
    }

    async fn teardown(&self) -> Result<Removed, EngineError> {
        if let Some(watcher) = self.watcher.lock().expect("watcher lock").take() {
            watcher.abort();
        }
        // A pause still holding a task (a second Ctrl-C) is undone: attached, the
        // container is not the harness's to leave frozen.
        let paused: Vec<Located> = (self.paused.lock().expect("paused lock").drain())
            .map(|(_, task)| task)
            .collect();
        for task in paused {
            self.agent(AgentAction::Unpause, &task, Duration::ZERO)
                .await?;
            let hold = Hold::Paused {
                container: task.container,
            };
            self.journal.note(&Note::Release(hold)).await;
        }
        self.engine.remove_run(&self.run_id).await
    }

    fn scheduling(&self) -> Option<Scheduling> {
        Some(self.facts.lock().expect("facts lock").clone())
    }
}

impl Cluster for SwarmCluster {
    fn replicas(&self) -> usize {
        self.plan.service.replicas
    }

    async fn act(&self, action: Action, victim: Victim) -> Result<Acted, EngineError> {
        let Victim::Replica(slot) = victim else {
            return Err(EngineError::State(format!(
                "the swarm engine faults the replicas' tasks only, not the {victim}"
            )));
        };
        let gone = || Acted {
            outcome: KillOutcome::AlreadyGone,
            ..Acted::on(format!("replica-{slot}"))
        };
        let on_node = |task: &Located, took: Duration| {
            let facts = self.facts.lock().expect("facts lock");
            let node = facts.nodes.get(&task.node).unwrap_or(&task.node);
            format!("agent job on node {node}, {:.1}s", took.as_secs_f64())
        };
        match action {
            Action::Kill | Action::Stop(_) => {
                let Some(task) = self.locate(slot, None).await? else {
                    return Ok(gone());
                };
                let (what, grace) = match action {
                    Action::Stop(grace) => (AgentAction::Stop, grace),
                    _ => (AgentAction::Kill, Duration::ZERO),
                };
                let took = self.agent(what, &task, grace).await?;
                let killed_at = self.finished_at(&task).await.unwrap_or_else(Instant::now);
                self.killed
                    .lock()
                    .expect("killed lock")
                    .insert(slot, (task.task.clone(), killed_at));
                let mut acted = Acted::on(task.name.clone());
                acted.detail = Some(on_node(&task, took));
                Ok(acted)
            }
            Action::Replace => {
                let killed = self.killed.lock().expect("killed lock").remove(&slot);
                let (old, since) = killed.map_or((None, Instant::now()), |(t, at)| (Some(t), at));
                let deadline =
                    since + self.plan.cluster.restart_delay + self.plan.service.ready_timeout;
                let name = self.wait_serving(slot, old.as_deref(), deadline).await?;
                Ok(Acted {
                    ready_after: Some(since.elapsed()),
                    ..Acted::on(name)
                })
            }
            Action::Pause => {
                let Some(task) = self.locate(slot, None).await? else {
                    return Ok(gone());
                };
                let hold = Hold::Paused {
                    container: task.container.clone(),
                };
                self.journal.note(&Note::Hold(hold)).await;
                let took = self
                    .agent(AgentAction::Pause, &task, Duration::ZERO)
                    .await?;
                self.paused
                    .lock()
                    .expect("paused lock")
                    .insert(slot, task.clone());
                let mut acted = Acted::on(task.name.clone());
                acted.detail = Some(on_node(&task, took));
                Ok(acted)
            }
            Action::Unpause => {
                let paused = self.paused.lock().expect("paused lock").remove(&slot);
                let Some(task) = paused else {
                    return Ok(gone());
                };
                self.agent(AgentAction::Unpause, &task, Duration::ZERO)
                    .await?;
                let hold = Hold::Paused {
                    container: task.container.clone(),
                };
                self.journal.note(&Note::Release(hold)).await;
                Ok(Acted::on(task.name))
            }
            other => Err(EngineError::State(format!(
                "{other:?} cannot run on the swarm engine (validation refuses it)"
            ))),
        }
    }

    async fn ended(&self, _victim: Victim) -> Result<Option<Ended>, EngineError> {
        // `oom` is refused on this engine: nothing watches how a task ended.
        Ok(None)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.engine.ping().await
    }
}
