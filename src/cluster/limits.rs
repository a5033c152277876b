//! The `cpu` and `oom` faults' mechanism, shared by the harness-made and the
//! attached cluster: a container's cgroup limits changed through the engine's update
//! API, what they were kept as [`Limits`] to put back (plain data), and how a
//! container ended (`State.OOMKilled`), so an OOM kill is told from a harness kill.

use bollard::models::ContainerUpdateBody;

use super::engine::{Engine, EngineError};
use crate::plan::chaos::MIN_MEMORY;

/// The CFS period the harness sets with a quota, in microseconds (Docker's default).
const CPU_PERIOD: i64 = 100_000;
/// The headroom above the usage at injection of an `oom` fault given no limit.
const HEADROOM: u64 = 4 << 20;

/// A container's CPU and memory limits as the engine reports them (0: none), to be
/// put back when a fault ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub memory: i64,
    pub memory_swap: i64,
}

/// How a container that stopped running ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The kernel's OOM killer killed it (Docker's `State.OOMKilled`).
    pub oom_killed: bool,
    pub exit_code: i64,
}

/// The container's limits now.
pub(super) async fn current(engine: &Engine, container: &str) -> Result<Limits, EngineError> {
    let host = engine
        .inspect(container)
        .await?
        .host_config
        .unwrap_or_default();
    Ok(Limits {
        nano_cpus: host.nano_cpus.unwrap_or(0),
        cpu_quota: host.cpu_quota.unwrap_or(0),
        cpu_period: host.cpu_period.unwrap_or(0),
        memory: host.memory.unwrap_or(0),
        memory_swap: host.memory_swap.unwrap_or(0),
    })
}

/// Leaves the container `millicores` thousandths of one core. A container made with
/// `--cpus` (NanoCpus) is throttled through that setting, since Docker refuses a
/// quota beside it.
pub(super) async fn throttle(
    engine: &Engine,
    container: &str,
    was: Limits,
    millicores: u32,
) -> Result<(), EngineError> {
    let body = if was.nano_cpus > 0 {
        ContainerUpdateBody {
            nano_cpus: Some(i64::from(millicores) * 1_000_000),
            ..Default::default()
        }
    } else {
        ContainerUpdateBody {
            cpu_period: Some(CPU_PERIOD),
            cpu_quota: Some(i64::from(millicores) * CPU_PERIOD / 1000),
            ..Default::default()
        }
    };
    engine.update(container, "throttle the CPU of", body).await
}

/// Gives the container a memory limit (and no swap beyond it): `bytes`, or its usage
/// now plus a little. Returns the limit set, in bytes.
pub(super) async fn limit_memory(
    engine: &Engine,
    container: &str,
    bytes: Option<u64>,
) -> Result<u64, EngineError> {
    let limit = match bytes {
        Some(b) => b,
        None => (engine.memory_usage(container).await? + HEADROOM).max(MIN_MEMORY),
    };
    let body = ContainerUpdateBody {
        memory: Some(limit as i64),
        memory_swap: Some(limit as i64),
        ..Default::default()
    };
    engine
        .update(container, "limit the memory of", body)
        .await?;
    Ok(limit)
}

/// The largest limit, what the kernel itself reads as "no limit" (the page-aligned
/// `i64::MAX` a cgroup v1 reports when unlimited). The update API refuses -1 and
/// takes 0 as "leave as it is", so an unlimited container gets this back.
pub const UNLIMITED: i64 = 0x7FFF_FFFF_FFFF_F000;

/// Puts back the CPU limits a `cpu` fault changed; a quota that was none becomes
/// none again (-1, which the update API takes for the CFS quota).
pub(super) async fn restore_cpu(
    engine: &Engine,
    container: &str,
    was: Limits,
) -> Result<(), EngineError> {
    let body = if was.nano_cpus > 0 {
        ContainerUpdateBody {
            nano_cpus: Some(was.nano_cpus),
            ..Default::default()
        }
    } else {
        ContainerUpdateBody {
            cpu_quota: Some(if was.cpu_quota > 0 { was.cpu_quota } else { -1 }),
            cpu_period: Some(if was.cpu_period > 0 {
                was.cpu_period
            } else {
                CPU_PERIOD
            }),
            ..Default::default()
        }
    };
    engine
        .update(container, "restore the CPU limits of", body)
        .await
}

/// Puts back the memory limit an `oom` fault changed ([`UNLIMITED`] for none).
pub(super) async fn restore_memory(
    engine: &Engine,
    container: &str,
    was: Limits,
) -> Result<(), EngineError> {
    let or_unlimited = |v: i64| if v > 0 { v } else { UNLIMITED };
    let body = ContainerUpdateBody {
        memory: Some(or_unlimited(was.memory)),
        memory_swap: Some(or_unlimited(was.memory_swap)),
        ..Default::default()
    };
    engine
        .update(container, "restore the memory limit of", body)
        .await
}

/// How the container ended, or `None` while it runs.
pub(super) async fn ended(engine: &Engine, container: &str) -> Result<Option<Ended>, EngineError> {
    let state = engine.inspect(container).await?.state.unwrap_or_default();
    if state.running == Some(true) {
        return Ok(None);
    }
    Ok(Some(Ended {
        oom_killed: state.oom_killed == Some(true),
        exit_code: state.exit_code.unwrap_or(-1),
    }))
}
