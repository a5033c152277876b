//! The cluster under test: replicas, their session store and the balancer in front.
//!
//! [`Cluster`] is what chaos needs from a cluster, and nothing more, so chaos can be
//! tested against a fake. [`docker::DockerCluster`] is the real one: containers on a
//! private network created for the run, every object labelled with the run id so
//! the harness never touches anything it did not create.

pub mod docker;
pub mod engine;
pub mod haproxy;

use std::future::Future;
use std::time::Duration;

pub use engine::{EngineError, KillOutcome};

/// Label carrying the run id on every container and network the harness creates.
pub const RUN_LABEL: &str = "sessionstorm.run";
/// Label saying what a container is for: `replica`, `store` or `balancer`.
pub const ROLE_LABEL: &str = "sessionstorm.role";

/// A replica taken down by a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    pub instance: String,
    pub outcome: KillOutcome,
}

/// A replica put back in a slot after a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub instance: String,
    /// From asking for the replacement until it answered its health check.
    pub ready_after: Duration,
}

/// The faults a cluster can suffer, by replica slot (0 .. replicas).
pub trait Cluster: Sync {
    fn replicas(&self) -> usize;

    /// SIGKILLs the replica in `slot`.
    fn kill(&self, slot: usize) -> impl Future<Output = Result<Killed, EngineError>> + Send;

    /// Puts a fresh replica in `slot` and waits until it is healthy.
    fn replace(&self, slot: usize) -> impl Future<Output = Result<Replaced, EngineError>> + Send;
}
