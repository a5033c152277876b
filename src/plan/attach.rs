//! Attach mode's plan: a stack that is already running, where it answers and which of
//! its containers are the replicas.

/// The labels Docker Compose (v1 and v2 alike) puts on every container of a project.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";
/// The label Swarm puts on every task's container: its service's name. With the
/// swarm engine, attach names the service with it.
pub const SWARM_SERVICE: &str = "com.docker.swarm.service.name";
/// Set on the containers of `docker compose run`: one-off commands, never replicas.
pub const COMPOSE_ONEOFF: &str = "com.docker.compose.oneoff";

/// A running stack to test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachPlan {
    /// Where the load goes: the stack's entry point (its proxy, usually).
    pub url: String,
    /// Labels a container must carry, all of them, to count as a replica.
    pub labels: Vec<(String, String)>,
    /// The stack's Redis as `host:port` (`[attach] store`), where the harness reaches
    /// it: it asks it `INFO` during the run, and `memory_pressure` sets its
    /// `maxmemory`. `None`: the stack's store is not the harness's to see.
    pub store: Option<String>,
    /// A Sentinel of that store as `host:port` (`[attach] sentinel`): the harness
    /// listens to its lines (`PSUBSCRIBE *`, nothing else) during the run.
    pub sentinel: Option<String>,
}

impl AttachPlan {
    /// The Swarm service the selector names (`com.docker.swarm.service.name=NAME`).
    pub fn swarm_service(&self) -> Option<&str> {
        (self.labels.iter())
            .find(|(k, _)| k == SWARM_SERVICE)
            .map(|(_, v)| v.as_str())
    }

    /// The selector in words, `app.role=replica, com.docker.compose.service=app`.
    pub fn selector(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.join(", ")
    }
}
