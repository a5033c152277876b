//! The agent: one action on one container, run by a Swarm job on the node where the
//! container is (`sessionstorm agent kill <container>`, hidden from the help).
//!
//! Swarm's manager API cannot kill one task (moby issue 24121): only the engine of
//! the task's node can. So the swarm engine starts a one-shot job constrained to
//! that node, with the node's engine socket, running the harness's own binary
//! (image `sessionstorm/reaper`, the same binary with another entry point). The same
//! path runs whether the task is on this node or on another one.

use std::time::Duration;

use crate::cluster::engine::{Engine, EngineError};

/// What the agent does to its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentAction {
    /// SIGKILL: the task fails and Swarm replaces it.
    Kill,
    /// SIGTERM, SIGKILL after the grace period.
    Stop,
    /// Freeze its processes (the task stays running for Swarm).
    Pause,
    Unpause,
}

impl AgentAction {
    /// Its name on the agent's command line.
    pub fn arg(self) -> &'static str {
        match self {
            AgentAction::Kill => "kill",
            AgentAction::Stop => "stop",
            AgentAction::Pause => "pause",
            AgentAction::Unpause => "unpause",
        }
    }
}

/// The agent's command line inside its job, after the binary's path.
pub fn command(binary: &str, action: AgentAction, container: &str, grace: Duration) -> Vec<String> {
    vec![
        binary.to_string(),
        "agent".into(),
        action.arg().into(),
        container.to_string(),
        "--grace-ms".into(),
        grace.as_millis().to_string(),
    ]
}

/// Runs the agent: the action on `container` through the local engine; says what
/// it did on its output, which the job's log keeps.
pub async fn run(action: AgentAction, container: &str, grace: Duration) -> Result<(), EngineError> {
    let engine = Engine::connect().await?;
    let outcome = match action {
        AgentAction::Kill => engine.kill(container).await?.name(),
        AgentAction::Stop => engine.stop(container, grace).await?.name(),
        AgentAction::Pause => engine.pause(container).await.map(|()| "paused")?,
        AgentAction::Unpause => engine.unpause(container).await.map(|()| "unpaused")?,
    };
    println!("{} {container}: {outcome}", action.arg());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_names_the_action_the_container_and_the_grace() {
        assert_eq!(
            command(
                "/sessionstorm",
                AgentAction::Stop,
                "abc",
                Duration::from_secs(2)
            ),
            [
                "/sessionstorm",
                "agent",
                "stop",
                "abc",
                "--grace-ms",
                "2000"
            ]
        );
    }
}
