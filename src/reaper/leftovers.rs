//! What runs that died left behind, as the next run reports it before it starts.
//!
//! A run is alive while its reaper runs: the reaper outlives its harness only for
//! the seconds it takes to clean up. So
//! labelled objects of a run with no live reaper are leftovers: of a run whose
//! reaper could not finish (its container stays, exited, and its log says why), of
//! a harness too old to have one, or of an engine the reaper could not reach.

use std::collections::BTreeMap;

use bollard::models::ContainerSummaryStateEnum;

use crate::cluster::engine::{Engine, EngineError};
use crate::cluster::{REAPER_ROLE, ROLE_LABEL, RUN_LABEL};

/// The objects one dead run left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadRun {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Swarm services (the swarm engine's).
    pub services: Vec<String>,
    /// The last lines its reaper wrote, when its container is still there.
    pub reaper_log: Option<String>,
}

/// Labelled objects by run id, dropping the runs that are alive.
pub async fn find(engine: &Engine) -> Result<BTreeMap<String, DeadRun>, EngineError> {
    let found = engine.labelled(RUN_LABEL).await?;
    let mut runs: BTreeMap<String, DeadRun> = BTreeMap::new();
    let mut alive = Vec::new();
    let mut reapers = Vec::new();
    for container in found.containers {
        let labels = container.labels.unwrap_or_default();
        let (Some(run), Some(name)) = (
            labels.get(RUN_LABEL),
            (container.names.unwrap_or_default().into_iter().next())
                .map(|n| n.trim_start_matches('/').to_string()),
        ) else {
            continue;
        };
        if labels.get(ROLE_LABEL).map(String::as_str) == Some(REAPER_ROLE) {
            // A reaper only created is of a harness that died starting it.
            if container.state == Some(ContainerSummaryStateEnum::RUNNING) {
                alive.push(run.clone());
            } else {
                reapers.push((run.clone(), name.clone()));
            }
        }
        runs.entry(run.clone()).or_default().containers.push(name);
    }
    for service in found.services {
        let spec = service.spec.unwrap_or_default();
        let run = spec.labels.and_then(|mut l| l.remove(RUN_LABEL));
        if let (Some(run), Some(name)) = (run, spec.name) {
            runs.entry(run).or_default().services.push(name);
        }
    }
    for network in found.networks {
        let run = network.labels.and_then(|mut l| l.remove(RUN_LABEL));
        if let (Some(run), Some(name)) = (run, network.name) {
            runs.entry(run).or_default().networks.push(name);
        }
    }
    for volume in found.volumes {
        if let Some(run) = volume.labels.get(RUN_LABEL) {
            runs.entry(run.clone())
                .or_default()
                .volumes
                .push(volume.name);
        }
    }
    for run in alive {
        runs.remove(&run);
    }
    for dead in runs.values_mut() {
        dead.services.sort();
        dead.containers.sort();
        dead.networks.sort();
        dead.volumes.sort();
    }
    for (run, name) in reapers {
        if let Some(dead) = runs.get_mut(&run) {
            dead.reaper_log = Some(engine.logs_tail(&name, 30).await);
        }
    }
    Ok(runs)
}

/// The warning about `dead` runs, with what each left and how to remove it.
pub fn describe(dead: &BTreeMap<String, DeadRun>) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "warning: {} earlier run{} did not clean up after {}selves (the harness died and \
         no reaper finished):\n",
        dead.len(),
        if dead.len() == 1 { "" } else { "s" },
        if dead.len() == 1 { "it" } else { "them" }
    );
    for (run, left) in dead {
        let _ = write!(out, "  run {run}:");
        for (kind, names) in [
            ("services", &left.services),
            ("containers", &left.containers),
            ("networks", &left.networks),
            ("volumes", &left.volumes),
        ] {
            if !names.is_empty() {
                let _ = write!(out, " {kind} {};", names.join(", "));
            }
        }
        out.pop();
        out.push('\n');
        if let Some(log) = &left.reaper_log {
            let _ = writeln!(out, "    its reaper's log:");
            for line in log.lines().filter(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "      {}", line.trim_end());
            }
        }
        let _ = writeln!(out, "    remove with `sessionstorm cleanup --run {run}`");
    }
    out
}

/// Prints the warning when earlier runs left anything; a failed look is a log line,
/// never a reason not to run.
pub async fn report(engine: &Engine) {
    match find(engine).await {
        Ok(dead) if !dead.is_empty() => eprint!("{}", describe(&dead)),
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot look for what earlier runs left"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_each_run_its_objects_its_reaper_log_and_the_fix() {
        let dead = BTreeMap::from([
            (
                "smoke-1".to_string(),
                DeadRun {
                    containers: vec!["sessionstorm-smoke-1-store".into()],
                    networks: vec!["sessionstorm-smoke-1".into()],
                    volumes: Vec::new(),
                    services: vec!["sessionstorm-smoke-1-replicas".into()],
                    reaper_log: Some("10:00:00.000 reaper: could not revert\n".into()),
                },
            ),
            (
                "smoke-2".to_string(),
                DeadRun {
                    volumes: vec!["v".into()],
                    ..Default::default()
                },
            ),
        ]);
        let text = describe(&dead);
        assert!(text.starts_with("warning: 2 earlier runs"), "{text}");
        assert!(
            text.contains(
                "  run smoke-1: services sessionstorm-smoke-1-replicas; containers sessionstorm-smoke-1-store; networks sessionstorm-smoke-1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("    its reaper's log:\n      10:00:00.000 reaper: could not revert\n"),
            "{text}"
        );
        assert!(text.contains("  run smoke-2: volumes v\n"), "{text}");
        assert!(
            text.contains("`sessionstorm cleanup --run smoke-2`"),
            "{text}"
        );
    }
}
