//! The agent's one-shot jobs: one action on one container, run on the task's node
//! (the manager API cannot kill a task), and the check at start that every other
//! node has the agent's image.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bollard::models::{NodeSpecAvailabilityEnum, NodeState, TaskState};

use super::agent::{self, AgentAction};
use super::serving::NO_SUCH_IMAGE;
use super::{spec, Located, SwarmCluster};
use crate::cluster::engine::{host_socket, EngineError, SOCKET_IN_CONTAINER};
use crate::cluster::ready::POLL;
use crate::images::BuiltIn;

/// How long an agent job may take, from its creation to its end.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the harness's binary sits in its image (`sessionstorm/reaper`).
const AGENT_BINARY: &str = "/sessionstorm";

impl SwarmCluster {
    /// Runs the agent on the task's node (a one-shot job) and waits until it is done.
    pub(super) async fn agent(
        &self,
        action: AgentAction,
        task: &Located,
        grace: Duration,
    ) -> Result<Duration, EngineError> {
        let command = agent::command(AGENT_BINARY, action, &task.container, grace);
        let what = format!("{} {}", action.arg(), task.name);
        self.job(&what, command, &task.node).await
    }

    /// Runs `command` in the agent's image as a one-shot job on `node`, with the
    /// node's engine socket, and waits until it is done; how long it took.
    pub(super) async fn job(
        &self,
        what: &str,
        command: Vec<String>,
        node: &str,
    ) -> Result<Duration, EngineError> {
        let began = Instant::now();
        let n = self.jobs.fetch_add(1, Ordering::Relaxed);
        let name = format!("sessionstorm-{}-agent-{n}", self.run_id);
        // A remote manager (DOCKER_HOST=tcp://…): its nodes' engines are on their
        // default socket.
        let socket = host_socket().unwrap_or_else(|| SOCKET_IN_CONTAINER.to_string());
        let image = self.agent_image.get().cloned().unwrap_or_default();
        let request = spec::job(&spec::Job {
            name: &name,
            image: &image,
            command,
            node,
            socket: &socket,
            socket_in_container: SOCKET_IN_CONTAINER,
            labels: self.labels("agent"),
        });
        self.engine
            .create_service(request, "create the agent job")
            .await?;
        let ended = self.job_end(&name, began + JOB_TIMEOUT).await;
        self.engine.remove_service(&name).await?;
        match ended {
            Ok(()) => Ok(began.elapsed()),
            Err(why) if why.contains(NO_SUCH_IMAGE) => {
                Err(self.missing_image(BuiltIn::Reaper.tag(), node, &why))
            }
            Err(why) => Err(EngineError::State(format!(
                "the agent job {name} ({what} on node {node}) failed: {why}"
            ))),
        }
    }

    /// Learns the nodes' names (for the scheduling facts and messages), and checks
    /// that the agent's image is on every other ready node: its faults run there,
    /// and a node without it would only say so at the first fault on it, mid-run.
    /// One job per node, at once; no job on a single node (the image is local).
    pub(super) async fn check_nodes(&self, local: &str) -> Result<(), EngineError> {
        let nodes = self.engine.nodes().await?;
        {
            let mut facts = self.facts.lock().expect("facts lock");
            for node in &nodes {
                let host = node.description.as_ref().and_then(|d| d.hostname.clone());
                if let (Some(id), Some(host)) = (node.id.clone(), host) {
                    facts.nodes.insert(id, host);
                }
            }
        }
        let others: Vec<String> = (nodes.into_iter())
            .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY))
            .filter(|n| {
                let availability = n.spec.as_ref().and_then(|s| s.availability);
                availability == Some(NodeSpecAvailabilityEnum::ACTIVE)
            })
            .filter_map(|n| n.id)
            .filter(|id| id != local)
            .collect();
        let command = vec![AGENT_BINARY.to_string(), "--version".to_string()];
        let checks = (others.iter()).map(|node| self.job("check its image", command.clone(), node));
        futures_util::future::try_join_all(checks).await.map(drop)
    }

    /// Waits until the job's task completed; why not, otherwise.
    pub(super) async fn job_end(&self, job: &str, deadline: Instant) -> Result<(), String> {
        loop {
            let tasks = self.engine.tasks(job).await.map_err(|e| e.to_string())?;
            if let Some(status) = tasks.first().and_then(|t| t.status.clone()) {
                match status.state {
                    Some(TaskState::COMPLETE) => return Ok(()),
                    Some(TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED) => {
                        return Err(status.err.or(status.message).unwrap_or_default())
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("not done within {JOB_TIMEOUT:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
