//! The validated, normalised run plan: what the engine runs.
//!
//! Plain data at the bottom of the crate. It is made once, by [`crate::validate`],
//! from the scenario file and the command line, and read by everything after:
//! cluster, load, chaos, gate and report. It imports none of those, nor the
//! validation that makes it; only its own vocabulary (the scenario text it keeps
//! for the report, the flow's steps, and the names of operations and anomalies gates
//! refer to).
//!
//! One file per part of a run:
//! - [`service`]: the replicas, the session store and the balancer;
//! - [`load`]: the traffic and the open model's rate profile;
//! - [`chaos`]: faults, targets and schedules;
//! - [`faults`]: the fault table, one entry per fault (its name, keys, revert,
//!   kernel needs and engines);
//! - [`gates`]: thresholds and `compare` tolerances, and the metrics they name;
//! - [`attach`]: a running stack to test instead of starting one;
//! - [`cluster`]: the engine under the run's own cluster (Docker or Swarm);
//! - [`tls`]: whom the HTTP clients trust on `https://` URLs;
//! - [`template`]: values with placeholders the engine fills in per container;
//! - [`topology`]: the store's shape (single, replicated, cluster, memcached pool);
//! - [`image`]: the images the harness builds itself.

use std::time::Duration;

use crate::scenario::Source;

pub mod attach;
pub mod chaos;
pub mod cluster;
pub mod faults;
pub mod gates;
pub mod image;
pub mod load;
mod render;
pub mod service;
pub mod template;
pub mod tls;
pub mod topology;

pub use attach::AttachPlan;
pub use chaos::{AfterKill, ChaosPlan, Fault, Peer, Schedule, Target};
pub use cluster::{ClusterPlan, EngineKind};
pub use faults::KernelFeature;
pub use gates::{Check, Cmp, Gates, Metric, Quantile, Tolerance};
pub use image::BuiltIn;
pub use load::{LoadPlan, Model, RateProfile, Stage, Think, DEFAULT_START_WINDOW};
pub use service::{
    BalancerKind, BalancerPlan, Persistence, Scheme, ServicePlan, StoreKind, StorePlan,
};
pub use tls::TlsPlan;

/// Everything a run needs to know, already checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    /// Seeds every random choice of the run (chaos targets), so a run can be replayed.
    pub seed: u64,
    /// How long load and chaos run.
    pub duration: Duration,
    pub service: ServicePlan,
    pub store: StorePlan,
    pub balancer: BalancerPlan,
    pub load: LoadPlan,
    /// Chaos skips a fault that would leave fewer healthy replicas than this.
    pub min_alive: usize,
    pub chaos: Vec<ChaosPlan>,
    /// Thresholds the run must meet, and tolerances for `compare`.
    pub gates: Gates,
    /// The scenario as written, kept for the report.
    pub source: Source,
    /// The command-line overrides applied to it, as typed (secrets masked).
    pub overrides: Vec<String>,
    /// Set when the run tests a stack that is already running: the harness starts
    /// none of it, and `service.replicas` is 0 until the matched containers are
    /// counted ([`crate::validate::attach::fit`]).
    pub attach: Option<AttachPlan>,
    /// The engine the harness starts the cluster on.
    pub cluster: ClusterPlan,
}

/// The longest duration a scenario may give: far beyond any run, and small enough
/// that adding it to a clock cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
