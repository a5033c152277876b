//! A thin wrapper around bollard: one method per Docker operation the harness uses,
//! each failing with an error that names the operation and the object. Every call
//! to the engine goes through here; the rest of the crate never sees a bollard
//! client, so what the harness asks of Docker is all in this folder, one file per
//! job: [`containers`], [`networks`], [`images`], [`swarm`] (services, tasks, nodes)
//! and [`labelled`] (finding and removing a run's objects by their labels).
//!
//! Bollard's own errors say what the HTTP call returned; ours say which container we
//! were killing. Outcomes that are normal during chaos (killing a container that is
//! already gone, removing one that was removed) are results here, not errors.

pub mod containers;
pub mod images;
pub mod labelled;
pub mod networks;
pub mod swarm;

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::SystemInfo;
use bollard::Docker;

pub use containers::ContainerSpec;
pub use labelled::{Labelled, Removed};

/// A failed Docker operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine ({host}): {reason}\n\
         Is it running and may this user use it? Check with `docker info`; \
         set DOCKER_HOST if the engine listens elsewhere."
    )]
    Unreachable { host: String, reason: String },
    #[error("Docker could not {action} {object}: {source}")]
    Call {
        action: &'static str,
        object: String,
        #[source]
        source: BollardError,
    },
    #[error("{0}")]
    State(String),
}

/// What a kill found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    /// The container had already stopped or been removed: an expected outcome in chaos.
    AlreadyGone,
}

impl KillOutcome {
    pub fn name(self) -> &'static str {
        match self {
            KillOutcome::Killed => "killed",
            KillOutcome::AlreadyGone => "already_gone",
        }
    }
}

/// A connected, version-negotiated Docker client.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
}

/// Where the engine's socket is mounted in the harness's own helper containers (the
/// reaper, the swarm engine's agent jobs), and where they connect, as `DOCKER_HOST`
/// is unset there.
pub const SOCKET_IN_CONTAINER: &str = "/var/run/docker.sock";

/// The engine's socket on this host, when the engine is reached through one: a
/// helper that talks to the engine needs it mounted. `None` for an engine over TCP.
pub fn host_socket() -> Option<String> {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host.strip_prefix("unix://").map(String::from),
        _ => Some(SOCKET_IN_CONTAINER.to_string()),
    }
}

/// The engine's host when it is reached over TCP (`DOCKER_HOST=tcp://HOST:PORT`):
/// its containers' published ports are on that machine, not on this one.
fn remote_host() -> Option<String> {
    tcp_host(&std::env::var("DOCKER_HOST").ok()?)
}

/// The host of a `tcp://HOST[:PORT][/…]` engine address; `None` for any other kind.
fn tcp_host(docker_host: &str) -> Option<String> {
    let rest = docker_host.strip_prefix("tcp://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => authority,
    };
    Some(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

/// Where the harness reaches a published port: the engine's own host over TCP,
/// 127.0.0.1 for an engine on this machine.
pub fn published_host() -> String {
    remote_host().unwrap_or_else(|| "127.0.0.1".to_string())
}

/// The address ports are published on: loopback on this machine (nothing else
/// reaches the run), every address of a remote engine's host (the harness is not
/// on its loopback).
fn publish_ip() -> &'static str {
    if remote_host().is_some() {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    }
}

/// How long connecting may take before we say the engine is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Docker takes grace periods in whole seconds.
fn grace_secs(grace: Duration) -> i32 {
    grace.as_secs_f64().ceil().min(3600.0) as i32
}

/// A list of Swarm objects, empty where this engine is no swarm manager (503): it
/// has no services nor configs then.
fn swarm_only<T>(
    answer: Result<Vec<T>, BollardError>,
    action: &'static str,
    label: &str,
) -> Result<Vec<T>, EngineError> {
    match answer {
        Ok(found) => Ok(found),
        Err(err) if is_status(&err, &[503]) => Ok(Vec::new()),
        Err(source) => Err(call_failed(action, label)(source)),
    }
}

/// The error of a failed call: what Docker could not do, to what.
fn call_failed(
    action: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(BollardError) -> EngineError {
    let object = object.into();
    move |source| EngineError::Call {
        action,
        object,
        source,
    }
}

fn is_status(err: &BollardError, codes: &[u16]) -> bool {
    matches!(err, BollardError::DockerResponseServerError { status_code, .. } if codes.contains(status_code))
}

impl Engine {
    /// Connects to the engine named by DOCKER_HOST (or the local socket) and agrees on
    /// an API version with it, since engines on different machines speak different ones.
    pub async fn connect() -> Result<Engine, EngineError> {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        let unreachable = |reason: String| EngineError::Unreachable {
            host: host.clone(),
            reason,
        };
        let docker = Docker::connect_with_defaults()
            .map_err(|e| unreachable(e.to_string()))?
            .with_timeout(Duration::from_secs(60));
        let negotiated = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let docker = docker.negotiate_version().await?;
            docker.ping().await?;
            Ok::<_, BollardError>(docker)
        })
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
        Ok(Engine { docker: negotiated })
    }

    /// Whether the engine answers at all.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(call_failed("answer a ping from", "the engine"))
    }

    /// What the engine says of itself (`docker info`): the cgroup features it
    /// supports, its swarm state.
    pub async fn describe(&self) -> Result<SystemInfo, EngineError> {
        self.info("describe").await
    }

    /// `docker info`, failing with `action` ("describe the engine").
    async fn info(&self, action: &'static str) -> Result<SystemInfo, EngineError> {
        (self.docker.info().await).map_err(call_failed(action, "the engine"))
    }
}

#[cfg(test)]
mod tests {
    use super::tcp_host;

    #[test]
    fn a_tcp_engine_is_reached_at_its_host_and_nothing_else_is_remote() {
        assert_eq!(
            tcp_host("tcp://10.231.5.2:2375").as_deref(),
            Some("10.231.5.2")
        );
        assert_eq!(tcp_host("tcp://node-1:2376/").as_deref(), Some("node-1"));
        assert_eq!(tcp_host("tcp://manager").as_deref(), Some("manager"));
        assert_eq!(tcp_host("tcp://[fd00::2]:2375").as_deref(), Some("fd00::2"));
        assert_eq!(tcp_host("unix:///var/run/docker.sock"), None);
        assert_eq!(tcp_host("ssh://me@host"), None);
    }
}
