//! Which engine runs what the harness starts, and how that engine recovers.

use std::time::Duration;

/// The engine under the run's own cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// Containers on the one Docker engine the harness talks to; the harness itself
    /// replaces what a fault killed.
    #[default]
    Docker,
    /// A Docker Swarm service: Swarm's orchestrator replaces what a fault killed, and
    /// how long it takes is part of what the run measures.
    Swarm,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Swarm => "swarm",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    pub engine: EngineKind,
    /// Swarm: the restart policy's delay before a failed task's replacement starts
    /// (Swarm's own default: 5 s).
    pub restart_delay: Duration,
}

/// Swarm's default restart delay, kept when the scenario gives none.
pub const SWARM_RESTART_DELAY: Duration = Duration::from_secs(5);

impl Default for ClusterPlan {
    fn default() -> Self {
        ClusterPlan {
            engine: EngineKind::Docker,
            restart_delay: SWARM_RESTART_DELAY,
        }
    }
}

impl ClusterPlan {
    /// One line for people: "swarm (restart delay 5s)".
    pub fn describe(&self) -> String {
        match self.engine {
            EngineKind::Docker => "docker".to_string(),
            EngineKind::Swarm => format!(
                "swarm (restart delay {})",
                humantime::format_duration(self.restart_delay)
            ),
        }
    }
}
