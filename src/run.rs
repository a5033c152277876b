//! One run, start to end: images → cluster → load and chaos → heal → sweep →
//! teardown → report → exit code.
//!
//! Teardown happens on every path once anything was created: success, failed
//! verdict, infrastructure error, Ctrl-C. The first interrupt stops load and chaos
//! and still checks and reports what was done; the second one skips straight to
//! teardown.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::chaos::{self, FaultRecord};
use crate::cluster::attached::AttachedCluster;
use crate::cluster::docker::{DockerCluster, Started};
use crate::cluster::engine::Engine;
use crate::cluster::hold::Journal;
use crate::cluster::swarm::SwarmCluster;
use crate::cluster::{Cluster, Lifecycle};
use crate::error::{Error, ExitCode, Result};
use crate::gate::{self, Evidence, Verdict};
use crate::images::{self, BuiltIn};
use crate::load::collector::{IntervalRow, Logs};
use crate::load::spill::{Spill, SPILL_FILE};
use crate::load::Driver;
use crate::metrics::{FailureTimeline, Live, Percentiles, Recorder};
use crate::plan::{EngineKind, Model, Plan};
use crate::progress;
use crate::reaper::Reaper;
use crate::report::csv::{EventsCsv, LatencyCsv};
use crate::report::hlog::HlogWriter;
use crate::report::{
    self, AnomalySummary, ClusterSummary, FaultSummary, LoadSummary, SessionCounts, Summary,
};
use crate::Shutdown;

/// The latency interval log's name in the run folder.
const HLOG_FILE: &str = "latency.hlog";

/// Runs `plan`, writing the report into the folder `out/<run id>`.
pub async fn execute(
    plan: &Plan,
    out: &Path,
    run_id: Option<String>,
    shutdown: &Shutdown,
) -> Result<ExitCode> {
    let started_at = chrono::Utc::now();
    let run_id = run_id.unwrap_or_else(|| {
        format!(
            "{}-{}-{:04x}",
            plan.name,
            started_at.format("%Y%m%d-%H%M%S"),
            rand::random::<u16>()
        )
    });
    // Made first, so an unwritable --out fails before any container exists.
    let dir = out.join(&run_id);
    std::fs::create_dir_all(out)
        .and_then(|()| std::fs::create_dir(&dir))
        .map_err(|e| {
            let fix = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "a run of that id exists; choose another --run-id"
            } else {
                "choose another folder with --out"
            };
            Error::Invalid(format!(
                "cannot create the report folder {}: {e}; {fix}",
                dir.display()
            ))
        })?;
    write_scenario(plan, &dir)?;
    say!(
        "sessionstorm {} · scenario {} · seed {} · run {run_id}",
        env!("CARGO_PKG_VERSION"),
        plan.name,
        plan.seed
    );

    let engine = Engine::connect().await.map_err(Error::infra)?;
    tracing::info!(run = %run_id, dir = %dir.display(), "connected to the Docker engine");
    crate::reaper::leftovers::report(&engine).await;
    // Attached, the stack runs already: only the harness's own helper may be needed.
    let mut tags = Vec::new();
    if plan.attach.is_none() {
        tags.push(plan.service.image.clone());
        if plan.store.kind != crate::plan::StoreKind::None {
            tags.push(plan.store.image.clone());
        }
        if plan.balancer.kind == crate::plan::BalancerKind::Haproxy {
            tags.push(BuiltIn::Haproxy.tag().to_string());
        }
        // The swarm engine's agent jobs run the harness's own binary.
        if plan.cluster.engine == EngineKind::Swarm {
            tags.push(BuiltIn::Reaper.tag().to_string());
        }
    }
    let needs = crate::cluster::kernel::needs(plan);
    use crate::plan::KernelFeature::{Iptables, IptablesStatistic, Tbf};
    if [Iptables, IptablesStatistic, Tbf]
        .iter()
        .any(|n| needs.contains(n))
    {
        tags.push(BuiltIn::Nettools.tag().to_string());
    }
    for tag in &tags {
        images::ensure(&engine, tag).await?;
        tracing::info!(image = %tag, "image present");
    }
    // Before anything of the run starts: a fault the kernel cannot apply is an
    // infrastructure error, never a silent no-op.
    crate::cluster::kernel::check(&engine, &run_id, &needs)
        .await
        .map_err(Error::infra)?;
    if shutdown.graceful.is_cancelled() {
        return Err(Error::Interrupted);
    }

    let identity = RunIdentity {
        id: run_id.clone(),
        started_at: started_at.to_rfc3339(),
    };
    // First, so that whatever the run makes from here on has someone to remove it.
    let reaper = Reaper::start(&engine, &run_id).await?;
    let journal = reaper.as_ref().map(Reaper::journal).unwrap_or_default();
    let outcome = engage(engine, plan, &dir, &identity, journal, shutdown).await;
    if let Some(reaper) = reaper {
        reaper.dismiss().await;
    }
    outcome
}

/// Has the cluster (made, or found running and matched) and runs on it.
async fn engage(
    engine: Engine,
    plan: &Plan,
    dir: &Path,
    identity: &RunIdentity,
    journal: Journal,
    shutdown: &Shutdown,
) -> Result<ExitCode> {
    let run_id = &identity.id;
    if shutdown.graceful.is_cancelled() {
        return Err(Error::Interrupted);
    }
    let Some(attach) = &plan.attach else {
        if plan.cluster.engine == EngineKind::Swarm {
            let cluster = SwarmCluster::new(engine, run_id, plan, shutdown.graceful.clone());
            return conclude(&cluster, plan, dir, identity, shutdown).await;
        }
        let cluster = DockerCluster::new(engine, run_id, plan, shutdown.graceful.clone());
        return conclude(&cluster, plan, dir, identity, shutdown).await;
    };
    if let Some(service) = attach
        .swarm_service()
        .filter(|_| plan.cluster.engine == EngineKind::Swarm)
    {
        let (replicas, delay) = crate::cluster::swarm::discover(&engine, service)
            .await
            .map_err(Error::infra)?;
        let plan = fit_attached(plan, replicas)?;
        say!(
            "attach: Swarm service {service}, {replicas} replicas, restart delay {}",
            humantime::format_duration(delay)
        );
        let cluster = SwarmCluster::new(engine, run_id, &plan, shutdown.graceful.clone())
            .attached_to(service, delay, &attach.url)
            .with_journal(journal);
        return conclude(&cluster, &plan, dir, identity, shutdown).await;
    }
    let cluster =
        AttachedCluster::discover(engine, run_id, plan, attach, shutdown.graceful.clone())
            .await?
            .with_journal(journal);
    let plan = fit_attached(plan, cluster.replicas())?;
    let members: Vec<String> = (cluster.members().iter())
        .map(|m| format!("{} (restart policy {})", m.name, m.restart_policy))
        .collect();
    say!(
        "attach: {} containers match {}: {}",
        members.len(),
        attach.selector(),
        members.join(", ")
    );
    conclude(&cluster, &plan, dir, identity, shutdown).await
}

/// The plan for the `replicas` an attached run found, or why it does not fit them.
fn fit_attached(plan: &Plan, replicas: usize) -> Result<Plan> {
    crate::validate::attach::fit(plan, replicas).map_err(|problems| {
        let path = plan.source.path.display();
        let lines: Vec<String> = problems.lines().map(|p| format!("{path}: {p}")).collect();
        Error::Invalid(lines.join("\n"))
    })
}

/// Drives the run on a cluster, tears down what the harness made and reports.
async fn conclude<C: Lifecycle>(
    cluster: &C,
    plan: &Plan,
    dir: &Path,
    identity: &RunIdentity,
    shutdown: &Shutdown,
) -> Result<ExitCode> {
    let run_id = &identity.id;
    // A panic must not skip the teardown: catch it, tear down, then let it go on.
    let outcome = tokio::select! {
        outcome = AssertUnwindSafe(drive(cluster, plan, dir, identity, shutdown)).catch_unwind() => outcome,
        () = shutdown.abort.cancelled() => Ok(Err(Error::Interrupted)),
    };
    // Read before teardown, which stops the orchestrator's watcher.
    let scheduling = cluster.scheduling();
    match cluster.teardown().await {
        Ok(removed) => say!("teardown: removed {}", removed.describe()),
        Err(err) => eprintln!(
            "warning: teardown failed ({err}); remove leftovers with `sessionstorm cleanup --run {run_id}`"
        ),
    }
    let (mut summary, anomalies, faults) =
        outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    summary.scheduling = scheduling;
    summary.gates = gate::evaluate(&plan.gates.checks, &summary);
    gate::apply(&mut summary.verdict, &summary.gates.clone());
    let all = report::FullLists {
        anomalies: &anomalies,
        faults: &faults,
    };
    let (path, warnings) = report::write_folder(&mut summary, all, dir).map_err(|e| {
        Error::infra(anyhow::anyhow!(
            "cannot write the report in {}: {e}",
            dir.display()
        ))
    })?;
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let text = summary.render_text();
    say!("{}", text.trim_end());
    // -q: the verdict line alone.
    if progress::is_quiet() {
        for line in text.lines().filter(|l| l.starts_with("verdict ")) {
            say_always!("{line}");
        }
    }
    say_always!("report {}", path.display());
    Ok(match summary.verdict.exit_code {
        0 => ExitCode::Passed,
        130 => ExitCode::Interrupted,
        _ => ExitCode::VerdictFailed,
    })
}

/// Everything between an empty engine (or a stack found running) and a verdict.
async fn drive<C: Lifecycle>(
    cluster: &C,
    plan: &Plan,
    dir: &Path,
    run: &RunIdentity,
    shutdown: &Shutdown,
) -> Result<(Summary, Vec<crate::session::Anomaly>, Vec<FaultRecord>)> {
    let started = match cluster.start().await {
        Ok(started) => started,
        Err(_) if shutdown.graceful.is_cancelled() => return Err(Error::Interrupted),
        Err(err) => {
            return Err(Error::infra(
                anyhow::Error::new(err).context("the cluster did not come up"),
            ))
        }
    };
    match &plan.attach {
        Some(_) => say!(
            "stack ready in {:.1}s: {} replicas, load at {}",
            started.ready_after.as_secs_f64(),
            plan.service.replicas,
            started.url
        ),
        None => say!(
            "cluster ready in {:.1}s: {} replicas of {} ({}), store {}, balancer {}",
            started.ready_after.as_secs_f64(),
            plan.service.replicas,
            plan.service.image,
            plan.service.scheme.as_str(),
            plan.store.describe(),
            started.url
        ),
    }
    let timeline = chaos::schedule(plan);
    say!(
        "load: {} for {}; chaos: {} faults planned (min_alive {})",
        plan.load.model.describe(),
        humantime::format_duration(plan.duration),
        timeline.len(),
        plan.min_alive
    );

    let live = Arc::new(Live::default());
    let start = Instant::now();
    // Covers the sweep too, which runs after the planned duration.
    let failures = Arc::new(FailureTimeline::new(
        plan.duration * 2 + Duration::from_secs(600),
    ));
    let driver = Arc::new(Driver::new(
        Arc::clone(&started.targets),
        &plan.load,
        plan.seed,
        start,
        Arc::clone(&live),
        Arc::clone(&failures),
    ));
    // Written now, rewritten as the run goes and replaced at the end, so a run
    // that dies still leaves a recent summary (marked running) beside its
    // scenario and latency log.
    let mut checkpoint = Checkpoint::spawn(
        summarize(plan, run, &started, Found::nothing_yet()),
        dir,
        Arc::clone(&live),
        start,
        plan.duration,
    );
    let hlog_path = dir.join(HLOG_FILE);
    let hlog = HlogWriter::create(
        &hlog_path,
        std::time::SystemTime::now(),
        &format!(
            "sessionstorm run of scenario {} with seed {}",
            plan.name, plan.seed
        ),
    )
    .map_err(cannot_write(&hlog_path))?;
    let latency_path = dir.join("latency.csv");
    let mut latency_csv = LatencyCsv::create(&latency_path).map_err(cannot_write(&latency_path))?;
    let logs = Logs {
        hlog: Some(hlog),
        rows: Some(Box::new(move |row| latency_csv.write(row))),
    };
    let events_path = dir.join("events.csv");
    let mut events_csv = EventsCsv::create(&events_path).map_err(cannot_write(&events_path))?;
    events_csv
        .ready(
            plan.service.replicas,
            started.ready_after.as_millis() as u64,
        )
        .map_err(cannot_write(&events_path))?;
    let events_csv = std::sync::Mutex::new(Some(events_csv));
    let spill_path = dir.join(SPILL_FILE);
    let spill = Spill::create(&spill_path).map_err(cannot_write(&spill_path))?;
    let stop = shutdown.graceful.child_token();
    let last_fault = progress::LastFault::default();
    let progress = tokio::spawn(progress::show(
        progress::Mode::detect(),
        Arc::clone(&live),
        start,
        plan.duration,
        plan.service.replicas,
        Arc::clone(&last_fault),
        stop.clone(),
    ));
    let on_fault = |record: &FaultRecord| {
        Live::add(&live.faults, 1);
        if let Ok(mut last) = last_fault.lock() {
            *last = Some(format!(
                "{} {} at {:.1}s: {}",
                record.fault,
                record.target,
                record.injected_ms as f64 / 1000.0,
                record.outcome
            ));
        }
        print_fault(record);
        // The first failure stops the file (and says so once); the run goes on.
        if let Ok(mut csv) = events_csv.lock() {
            if let Some(Err(err)) = csv.as_mut().map(|w| w.fault(record)) {
                eprintln!("warning: events.csv stopped early: {err}");
                *csv = None;
            }
        }
    };
    // The load ends at the duration, or earlier when its operation count is reached;
    // either way chaos stops with it.
    let load = async {
        let outcome = driver.run(&stop, logs, spill).await;
        stop.cancel();
        outcome
    };
    let timer = async {
        tokio::select! {
            () = tokio::time::sleep(plan.duration) => stop.cancel(),
            () = stop.cancelled() => {}
        }
    };
    let (load, faults, ()) = tokio::join!(
        load,
        chaos::run(cluster, plan.min_alive, &timeline, start, &stop, &on_fault),
        timer,
    );
    let load_elapsed = start.elapsed();
    let _ = progress.await;
    let mut faults = faults;
    chaos::measure_recovery(&mut faults.records, &failures, load_elapsed);
    let interrupted = shutdown.graceful.is_cancelled();
    if interrupted {
        say!("interrupted: load and chaos stopped; checking what was done (Ctrl-C again to skip)");
    }
    if let Some(err) = &load.collected.hlog_error {
        eprintln!("warning: the latency log stopped early: {err}");
    }
    if let Some(err) = &load.collected.rows_error {
        eprintln!("warning: latency.csv stopped early: {err}");
    }

    let healed = match cluster
        .wait_healthy(plan.service.ready_timeout, &faults.left_down)
        .await
    {
        Ok(took) => Some(took),
        Err(err) => {
            eprintln!("warning: the cluster did not heal after chaos: {err}");
            None
        }
    };
    if let Some(err) = &load.sessions.error {
        eprintln!(
            "warning: {} sessions could not be spilled to {} ({err}): counted unverified",
            load.sessions.unwritten,
            spill_path.display()
        );
    }
    let created = load.sessions.count + load.sessions.unwritten;
    say!("final sweep of {created} sessions");
    let sweep_after = start.elapsed().saturating_sub(load_elapsed);
    let sweep_started = Instant::now();
    let swept = driver.sweep(&load.sessions).await;
    let sweep_took = sweep_started.elapsed();
    // Swept: every session's verdict is in the evidence now.
    let _ = load.sessions.remove();

    let mut totals = load.collected.totals;
    totals.merge(&swept.recorder);
    let mut anomalies = load.anomalies;
    anomalies.extend(swept.anomalies);
    let hits = chaos::HitTimeline::of(&faults.records);
    for anomaly in &mut anomalies {
        anomaly.nearest_fault = nearest_fault(&faults.records, &hits, anomaly.at);
    }
    let verdict = gate::judge(Evidence {
        anomalies: anomalies.len() as u64,
        unverified: swept.unverified,
        interrupted,
    });
    let all_anomalies = anomalies.clone();
    checkpoint.stop().await;
    let summary = summarize(
        plan,
        run,
        &started,
        Found {
            load_elapsed,
            verdict,
            healed,
            sessions: SessionCounts {
                created,
                checked: swept.checked,
                unverified: swept.unverified,
                expired: load.expired + swept.expired,
                sweep_after_ms: sweep_after.as_millis() as u64,
                sweep_ms: sweep_took.as_millis() as u64,
            },
            totals,
            anomalies,
            faults: faults.records.clone(),
            halted: faults.halted,
            intervals: load.collected.intervals,
            error_messages: driver.tls_failures(),
        },
    );
    Ok((summary, all_anomalies, faults.records))
}

/// How often summary.json is rewritten while the run goes: a run that dies leaves
/// one at most this old.
const CHECKPOINT: Duration = Duration::from_secs(5);

/// Rewrites summary.json, status `running`, every [`CHECKPOINT`] until stopped
/// (aborted when dropped).
struct Checkpoint(tokio::task::JoinHandle<()>);

impl Checkpoint {
    /// Writes `base` with the live counters now and then every [`CHECKPOINT`].
    fn spawn(
        base: Summary,
        dir: &Path,
        live: Arc<Live>,
        start: Instant,
        duration: Duration,
    ) -> Checkpoint {
        let dir = dir.to_path_buf();
        Checkpoint(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT);
            let mut warned = false;
            loop {
                tick.tick().await;
                let mut summary = base.clone();
                let elapsed = start.elapsed();
                summary.load_elapsed_s = elapsed.min(duration).as_secs_f64().round();
                summary.sessions.created = Live::get(&live.sessions);
                summary.verdict.reasons.push(format!(
                    "checkpoint {}s after the load started: {} operations, {} errors, \
                     {} anomalies, {} faults so far",
                    elapsed.as_secs(),
                    Live::get(&live.ops),
                    Live::get(&live.errors),
                    Live::get(&live.anomalies),
                    Live::get(&live.faults),
                ));
                if let Err(err) = summary.write_json(&dir) {
                    if !std::mem::replace(&mut warned, true) {
                        eprintln!("warning: cannot write the running summary.json: {err}");
                    }
                }
            }
        }))
    }

    /// Stops the rewrites, waiting for one under way, so the final summary replaces
    /// the last checkpoint and never the other way round.
    async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The error for a file of the run folder that cannot be made.
fn cannot_write(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::infra(anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Who the run is, for its report.
struct RunIdentity {
    id: String,
    started_at: String,
}

/// What a run found, as far as it got.
struct Found {
    load_elapsed: Duration,
    verdict: Verdict,
    healed: Option<Duration>,
    sessions: SessionCounts,
    totals: Recorder,
    anomalies: Vec<crate::session::Anomaly>,
    faults: Vec<FaultRecord>,
    halted: Option<String>,
    intervals: Vec<IntervalRow>,
    /// Why requests failed, where the kind does not say ([`Summary::error_messages`]).
    error_messages: BTreeMap<String, u64>,
}

impl Found {
    /// Nothing yet: the run is under way.
    fn nothing_yet() -> Self {
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
        }
    }
}

/// The run's summary from the plan and what was found.
fn summarize(plan: &Plan, run: &RunIdentity, started: &Started, mut found: Found) -> Summary {
    let (rate, users) = match &plan.load.model {
        Model::Open { profile, .. } => {
            let end = profile.stages.last().map_or(profile.start, |s| s.to);
            (Some([profile.start, end]), None)
        }
        Model::Closed { users, .. } => (None, Some(*users)),
    };
    Summary {
        schema_version: report::SCHEMA_VERSION,
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
            url: started.url.clone(),
            ready_ms: started.ready_after.as_millis() as u64,
            healed_ms: found.healed.map(|d| d.as_millis() as u64),
        },
        sessions: found.sessions,
        operations: report::operations(&found.totals),
        served_by: std::mem::take(&mut found.totals.served_by),
        errors_by: std::mem::take(&mut found.totals.errors_by),
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
    }
}

/// The last fault injected at or before `at`, in words.
fn nearest_fault(
    faults: &[FaultRecord],
    hits: &chaos::HitTimeline,
    at: Duration,
) -> Option<String> {
    let at_ms = at.as_millis() as u64;
    hits.last_before(at_ms).map(|i| &faults[i]).map(|f| {
        format!(
            "{} of {} at {:.1}s, {:.1}s before",
            f.fault,
            f.target,
            f.injected_ms as f64 / 1000.0,
            (at_ms - f.injected_ms) as f64 / 1000.0
        )
    })
}

fn print_fault(record: &FaultRecord) {
    let after = match (
        &record.replacement,
        record.ready_after_ms,
        record.reverted_ms,
    ) {
        (Some(new), Some(ms), _) => format!(" → {new} ready in {:.1}s", ms as f64 / 1000.0),
        (None, Some(ms), _) => format!(" → ready again in {:.1}s", ms as f64 / 1000.0),
        (_, _, Some(at)) => format!(" → reverted at {:.1}s", at as f64 / 1000.0),
        _ => String::new(),
    };
    let reason = record
        .reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let error = record
        .error
        .as_deref()
        .map(|e| format!(" (error: {e})"))
        .unwrap_or_default();
    let params = record
        .params
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    say!(
        "[{:>5.1}s] {} {}{params}: {}{reason}{after}{error}",
        record.injected_ms as f64 / 1000.0,
        record.fault,
        record.target,
        record.outcome
    );
}

/// The scenario file in the run folder.
pub const SCENARIO_FILE: &str = "scenario.toml";

/// Keeps the scenario as run beside the report, secrets masked: the file as written,
/// headed by the overrides the command line applied to it. Written before anything
/// starts, so a full disk or an unwritable folder stops the run with nothing to undo.
fn write_scenario(plan: &Plan, dir: &Path) -> Result<()> {
    use std::fmt::Write as _;
    let mut text = format!(
        "# scenario {} as run (secrets masked)\n",
        plan.source.path.display()
    );
    for setting in &plan.overrides {
        let _ = writeln!(text, "# override: {setting}");
    }
    text.push_str(&crate::secrets::mask_scenario(&plan.source.text));
    let path = dir.join(SCENARIO_FILE);
    std::fs::write(&path, text).map_err(|e| {
        let message = format!(
            "cannot write {}: {e}; free some space or choose another folder with --out",
            path.display()
        );
        // A full disk is the machine's problem; anything else is the folder given.
        if e.kind() == std::io::ErrorKind::StorageFull {
            Error::infra(anyhow::anyhow!(message))
        } else {
            Error::Invalid(message)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_checkpoint_rewrites_the_summary_every_5s_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let base = Summary::parse(include_str!("../tests/fixtures/summary.json")).unwrap();
        let live = Arc::new(Live::default());
        let read = || Summary::read(dir.path()).unwrap();
        let mut checkpoint = Checkpoint::spawn(
            base,
            dir.path(),
            Arc::clone(&live),
            Instant::now(),
            Duration::from_secs(60),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(read()
            .verdict
            .reasons
            .last()
            .unwrap()
            .starts_with("checkpoint 0s after"));
        Live::add(&live.ops, 42);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let summary = read();
        let reason = summary.verdict.reasons.last().unwrap();
        assert!(reason.starts_with("checkpoint 10s after"), "{reason}");
        assert!(reason.contains("42 operations"), "{reason}");
        assert_eq!(summary.load_elapsed_s, 10.0);
        checkpoint.stop().await;
        std::fs::remove_file(dir.path().join("summary.json")).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !dir.path().join("summary.json").exists(),
            "rewritten after stop"
        );
    }
}
