//! When a task serves: Swarm runs it and the balancer's health checks pass on its
//! address, which the harness reads from the manager's verbose view of the overlay
//! and HAProxy's statistics, since the host cannot reach overlay addresses. A node
//! lacking the replicas' image stops the wait naming that node.

use std::time::Instant;

use bollard::models::{Task, TaskState};

use super::{stats, Located, SwarmCluster};
use crate::cluster::engine::EngineError;
use crate::cluster::ready::Waiting;

/// The backend of the replicas in the balancer's configuration.
const BACKEND: &str = "replicas";

impl SwarmCluster {
    /// Among `tasks`, the running one of `slot` other than `not`.
    pub(super) fn running(
        &self,
        tasks: &[Task],
        slot: usize,
        not: Option<&str>,
    ) -> Option<Located> {
        tasks.iter().find_map(|task| {
            let status = task.status.as_ref()?;
            let id = task.id.clone()?;
            let running = task.slot == Some(slot as i64 + 1)
                && task.desired_state == Some(TaskState::RUNNING)
                && status.state == Some(TaskState::RUNNING)
                && not != Some(id.as_str());
            running.then(|| Located {
                name: format!("{}.{}.{id}", self.service, slot + 1),
                task: id,
                node: task.node_id.clone().unwrap_or_default(),
                container: (status.container_status.as_ref())
                    .and_then(|c| c.container_id.clone())
                    .unwrap_or_default(),
            })
        })
    }

    /// A node lacks an image a task needs: there is no registry, so Swarm cannot
    /// pull it, and the run stops saying which node and image.
    pub(super) fn missing_image(&self, tag: &str, node: &str, why: &str) -> EngineError {
        let host = (self
            .facts
            .lock()
            .expect("facts lock")
            .nodes
            .get(node)
            .cloned())
        .unwrap_or_else(|| node.to_string());
        EngineError::State(format!(
            "the image {tag} is not on node {host} (id {node}): Swarm could not start a task \
             there ({why}). There is no registry to pull it from: load it into every node that \
             runs tasks, e.g. `docker save {tag} | docker -H <node's engine> load`, or drain \
             the node (`docker node update --availability drain {host}`)"
        ))
    }

    /// The addresses the balancer's health checks pass on now.
    pub(super) async fn up_addresses(&self) -> Result<Vec<String>, String> {
        let url = self.stats_url.get().ok_or("the balancer is not started")?;
        let answer = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        let csv = answer.text().await.map_err(|e| e.to_string())?;
        let servers = stats::servers(&csv, BACKEND)?;
        Ok(servers
            .into_iter()
            .filter(|s| s.up)
            .filter_map(|s| s.ip)
            .collect())
    }

    /// Whether a running task serves: the balancer's health checks pass on its
    /// address; attached (the stack's own proxy, whose view the harness cannot
    /// read), the stack's URL answers its health path, which says the stack serves.
    pub(super) async fn serves(&self, task: &Located) -> Result<(), String> {
        if let Some(url) = &self.attached {
            let health = format!("{url}{}", self.plan.service.health_path);
            let answer = self.http.get(&health).send().await;
            return match answer {
                Ok(a) if a.status() == 200 => Ok(()),
                Ok(a) => Err(format!("{health} answered {}", a.status())),
                Err(e) => Err(format!("{health}: {e}")),
            };
        }
        let ip = self.address(task).await?;
        if self.up_addresses().await?.contains(&ip) {
            return Ok(());
        }
        Err(format!(
            "the balancer's health checks do not pass on {ip} ({})",
            task.name
        ))
    }

    /// The task's address on the run's network, as the manager sees the overlay
    /// (a verbose network inspection lists every node's tasks on it): the task's
    /// container may be on another node, whose engine the harness does not reach.
    pub(super) async fn address(&self, task: &Located) -> Result<String, String> {
        let tasks = (self
            .engine
            .overlay_tasks(&self.network, &self.service)
            .await)
            .map_err(|e| e.to_string())?;
        tasks
            .iter()
            .find(|t| t.get("Name").and_then(|n| n.as_str()) == Some(task.name.as_str()))
            .and_then(|t| t.get("EndpointIP")?.as_str())
            .filter(|ip| !ip.is_empty())
            .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
            .ok_or_else(|| format!("task {} has no address on {} yet", task.name, self.network))
    }

    /// Waits until a task of `slot` other than `not` is RUNNING and the balancer's
    /// health checks pass on its address; returns its name.
    pub(super) async fn wait_serving(
        &self,
        slot: usize,
        not: Option<&str>,
        deadline: Instant,
    ) -> Result<String, EngineError> {
        let waiting = Waiting {
            subject: format!("replica-{slot}"),
            deadline,
            cancel: &self.cancel,
            late: format!(
                "no task of {} in slot {} served in time",
                self.service,
                slot + 1
            ),
            advice: format!(
                "`docker service ps {}` shows what Swarm did; raise `service.ready_timeout` if \
                 the service is slow to start",
                self.service
            ),
        };
        loop {
            let tasks = self.engine.tasks(&self.service).await?;
            if let Some((node, why)) = image_refused(&tasks) {
                return Err(self.missing_image(&self.plan.service.image, &node, &why));
            }
            let why = match self.running(&tasks, slot, not) {
                None => "no task of the slot is running".to_string(),
                Some(task) => match self.serves(&task).await {
                    Ok(()) => return Ok(task.name),
                    Err(why) => why,
                },
            };
            waiting.again(why).await?;
        }
    }
}

/// What a node's engine says when a task's image is not in its store.
pub(super) const NO_SUCH_IMAGE: &str = "No such image";

/// A task Swarm could not start because its node lacks the image: its node and
/// Swarm's error.
fn image_refused(tasks: &[Task]) -> Option<(String, String)> {
    tasks.iter().find_map(|task| {
        let status = task.status.as_ref()?;
        let why = (status.err.as_ref()).filter(|e| e.contains(NO_SUCH_IMAGE))?;
        Some((task.node_id.clone().unwrap_or_default(), why.clone()))
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::{Task, TaskState, TaskStatus};

    use super::image_refused;

    fn task(node: &str, state: TaskState, err: Option<&str>) -> Task {
        Task {
            node_id: Some(node.into()),
            status: Some(TaskStatus {
                state: Some(state),
                err: err.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_task_refused_for_a_missing_image_names_its_node() {
        let tasks = [
            task("n1", TaskState::RUNNING, None),
            task("n2", TaskState::FAILED, Some("task: non-zero exit (137)")),
            task(
                "n3",
                TaskState::REJECTED,
                Some("No such image: sha256:0214"),
            ),
        ];
        assert_eq!(
            image_refused(&tasks),
            Some(("n3".into(), "No such image: sha256:0214".into()))
        );
        assert_eq!(image_refused(&tasks[..2]), None);
    }
}
