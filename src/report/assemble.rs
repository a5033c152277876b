//! The whole summary from the plan and what the run found: the one place that
//! knows which figure of the run goes where in summary.json, so the conductor
//! (`run.rs`) hands over its findings and never builds the report itself.

use std::collections::BTreeMap;
use std::time::Duration;

use super::aggregate::operations;
use super::folder::HLOG_FILE;
use super::{
    AnomalySummary, ClusterSummary, FaultSummary, LoadSummary, SessionCounts, Summary,
    SCHEMA_VERSION,
};
use crate::chaos::FaultRecord;
use crate::error::ExitCode;
use crate::gate::Verdict;
use crate::load::collector::IntervalRow;
use crate::metrics::{Percentiles, Recorder};
use crate::plan::{Model, Plan};
use crate::session::Anomaly;
use crate::store::timeline::StoreTimeline;

/// Who the run is, for its report.
#[derive(Debug, Clone)]
pub struct RunIdentity {
    pub id: String,
    pub started_at: String,
}

/// What a run found, as far as it got.
#[derive(Debug)]
pub struct Found {
    pub load_elapsed: Duration,
    pub verdict: Verdict,
    pub healed: Option<Duration>,
    pub sessions: SessionCounts,
    pub totals: Recorder,
    pub anomalies: Vec<Anomaly>,
    pub faults: Vec<FaultRecord>,
    pub halted: Option<String>,
    pub intervals: Vec<IntervalRow>,
    /// Why requests failed, where the kind does not say ([`Summary::error_messages`]).
    pub error_messages: BTreeMap<String, u64>,
    /// The store's timeline, where it was watched.
    pub store: Option<StoreTimeline>,
}

impl Found {
    /// Nothing yet: the run is under way.
    pub fn nothing_yet() -> Self {
        Found {
            load_elapsed: Duration::ZERO,
            verdict: Verdict {
                status: "running",
                reasons: vec![
                    "the run had not finished when this summary was written; a crash or a kill leaves it so"
                        .to_string(),
                ],
                exit_code: ExitCode::Infrastructure.code(),
            },
            healed: None,
            sessions: SessionCounts::default(),
            totals: Recorder::default(),
            anomalies: Vec::new(),
            faults: Vec::new(),
            halted: None,
            intervals: Vec::new(),
            error_messages: BTreeMap::new(),
            store: None,
        }
    }
}

impl Summary {
    /// The run's summary from the plan, the cluster it ran on (its URL, and how
    /// long it took to be ready) and what was found.
    pub fn assemble(
        plan: &Plan,
        run: &RunIdentity,
        (url, ready_after): (&str, Duration),
        mut found: Found,
    ) -> Summary {
        let (rate, users) = match &plan.load.model {
            Model::Open { profile, .. } => {
                let end = profile.stages.last().map_or(profile.start, |s| s.to);
                (Some([profile.start, end]), None)
            }
            Model::Closed { users, .. } => (None, Some(*users)),
        };
        Summary {
            schema_version: SCHEMA_VERSION,
            run_id: run.id.clone(),
            scenario: plan.name.clone(),
            description: plan.description.clone(),
            seed: plan.seed,
            started_at: run.started_at.clone(),
            duration_s: plan.duration.as_secs_f64(),
            load_elapsed_s: (found.load_elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            verdict: found.verdict,
            load: LoadSummary {
                model: if users.is_some() { "closed" } else { "open" },
                rate,
                users,
                ops_per_session: plan.load.ops_per_session(),
                warmup_s: plan.load.warmup.as_secs_f64(),
                missed_starts: found.totals.missed_starts,
                start_lateness_ms: Percentiles::of(&found.totals.start_lateness),
            },
            cluster: ClusterSummary {
                replicas: plan.service.replicas,
                url: url.to_string(),
                ready_ms: ready_after.as_millis() as u64,
                healed_ms: found.healed.map(|d| d.as_millis() as u64),
            },
            sessions: found.sessions,
            operations: operations(&found.totals),
            served_by: std::mem::take(&mut found.totals.served_by),
            errors_by: std::mem::take(&mut found.totals.errors_by),
            errors_without_replica: found.totals.errors_without_replica,
            error_messages: found.error_messages,
            faults: FaultSummary::of(&found.faults, found.halted, &found.anomalies),
            anomalies: AnomalySummary::of(found.anomalies),
            intervals: found.intervals,
            files: BTreeMap::from([("latency_log", HLOG_FILE.to_string())]),
            scenario_toml: crate::secrets::mask_scenario(&plan.source.text),
            gates: Vec::new(),
            tolerances: (plan.gates.tolerances.iter())
                .map(|(metric, t)| (metric.clone(), t.to_string()))
                .collect(),
            scheduling: None,
            store: found.store,
        }
    }
}
