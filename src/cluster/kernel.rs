//! Whether the engine's kernel offers what a run's faults need, asked before
//! anything of the run starts: a fault the kernel cannot apply stops the run with
//! an infrastructure error naming the missing piece, never a silent no-op.
//!
//! Cgroup limits are what the engine says it supports (`docker info`); network
//! shaping is tried for real in a helper's network namespace of its own (nothing
//! else is touched), since only the kernel knows whether a module loads.

use std::collections::{BTreeSet, HashMap};

use super::engine::{Engine, EngineError};
use super::netns::{self, Shaping};
use super::{ROLE_LABEL, RUN_LABEL};
use crate::plan::{KernelFeature, Plan};

/// Every piece of the kernel the plan's faults need.
pub fn needs(plan: &Plan) -> BTreeSet<KernelFeature> {
    plan.chaos
        .iter()
        .flat_map(|c| c.fault.needs().iter().copied())
        .collect()
}

/// Checks each of `needs` on the engine; the error names what is missing and why.
pub async fn check(
    engine: &Engine,
    run_id: &str,
    needs: &BTreeSet<KernelFeature>,
) -> Result<(), EngineError> {
    if needs.is_empty() {
        return Ok(());
    }
    let info = engine.describe().await?;
    let mut missing = Vec::new();
    for (n, need) in needs.iter().enumerate() {
        let probe = match need {
            KernelFeature::CpuQuota => (info.cpu_cfs_quota != Some(true))
                .then(|| "the engine reports no CPU CFS quota support".to_string()),
            KernelFeature::MemoryLimit => (info.memory_limit != Some(true))
                .then(|| "the engine reports no memory limit support".to_string()),
            KernelFeature::Iptables => try_shaping(engine, run_id, n, Shaping::Blackhole).await,
            KernelFeature::IptablesStatistic => {
                try_shaping(engine, run_id, n, Shaping::Loss(50)).await
            }
            KernelFeature::Tbf => try_shaping(engine, run_id, n, Shaping::Rate(1_000_000)).await,
        };
        if let Some(why) = probe {
            missing.push(format!("- {}: {why}", need.describe()));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(EngineError::State(format!(
        "the engine's kernel lacks what this scenario's faults need; nothing was started:\n{}",
        missing.join("\n")
    )))
}

/// Applies `shaping` in a helper's own network namespace; why it failed, if it did.
async fn try_shaping(engine: &Engine, run_id: &str, n: usize, shaping: Shaping) -> Option<String> {
    let helper = format!("sessionstorm-{run_id}-probe-{n}");
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (ROLE_LABEL.to_string(), "helper".to_string()),
    ]);
    let tried = netns::shape(engine, &helper, labels, "none", shaping, true).await;
    tried.err().map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::overrides::Overrides;
    use crate::scenario::Source;

    #[test]
    fn a_plan_needs_what_its_faults_need_and_nothing_for_userspace_ones() {
        let text = r#"
name = "t"
duration = "10s"
[service]
replicas = 3
[load]
rate = 10
appends_per_session = 1
[[chaos]]
fault = "loss"
loss = "5%"
at = ["1s"]
[[chaos]]
fault = "cpu"
cpus = 0.5
at = ["2s"]
[[chaos]]
fault = "slow_store"
delay = "100ms"
at = ["3s"]
[[chaos]]
fault = "kill"
at = ["4s"]
"#;
        let source = Source {
            path: "t.toml".into(),
            text: text.into(),
        };
        let plan = crate::validate::build(&source, &Overrides::default()).unwrap();
        let needs: Vec<KernelFeature> = needs(&plan).into_iter().collect();
        assert_eq!(
            needs,
            [KernelFeature::IptablesStatistic, KernelFeature::CpuQuota]
        );
    }
}
