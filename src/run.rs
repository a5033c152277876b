//! One run, start to end: images → cluster → load and chaos → heal → sweep →
//! teardown → report → exit code.
//!
//! This file says what happens and in which order; `drive` is the middle of it,
//! read top to bottom. How each file of the run folder is written is
//! [`RunFolder`]'s, and how the summary is built [`Summary::assemble`]'s.
//!
//! Teardown happens on every path once anything was created: success, failed
//! verdict, infrastructure error, Ctrl-C. The first interrupt stops load and chaos
//! and still checks and reports what was done; the second one skips straight to
//! teardown.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::OptionFuture;
use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
use crate::load::{Driver, LoadOutcome, Swept};
use crate::metrics::{FailureTimeline, Live, Recorder};
use crate::plan::faults::Support;
use crate::plan::{EngineKind, Plan};
use crate::progress;
use crate::reaper::Reaper;
use crate::report::assemble::{Found, RunIdentity};
use crate::report::{FullLists, RunFolder, SessionCounts, Summary};
use crate::session::{Anomaly, AnomalyKind};
use crate::store::{
    self,
    timeline::{LagTrace, Recorded, StoreEventKind, StoreTimeline},
};

/// The two ways a user stops a run, fed by signals in `main` and by tests directly.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// First interrupt: stop load and chaos, then check, tear down and report.
    pub graceful: CancellationToken,
    /// Second interrupt: tear down now and exit.
    pub abort: CancellationToken,
}

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
    let folder = RunFolder::create(out, &run_id)?;
    folder.write_scenario(plan)?;
    say!(
        "sessionstorm {} · scenario {} · seed {} · run {run_id}",
        env!("CARGO_PKG_VERSION"),
        plan.name,
        plan.seed
    );

    let engine = Engine::connect().await.map_err(Error::infra)?;
    tracing::info!(run = %run_id, dir = %folder.path().display(), "connected to the Docker engine");
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
    // Only a run that may change an attached store needs its reaper to reach it.
    let reaches_store = plan.attach.as_ref().is_some_and(|a| a.store.is_some())
        && (plan.chaos.iter()).any(|c| c.fault.entry().attached == Support::StoreNamed);
    let reaper = Reaper::start(&engine, &run_id, reaches_store).await?;
    let journal = reaper.as_ref().map(Reaper::journal).unwrap_or_default();
    let outcome = engage(engine, plan, &folder, &identity, journal, shutdown).await;
    if let Some(reaper) = reaper {
        reaper.dismiss().await;
    }
    outcome
}

/// Has the cluster (made, or found running and matched) and runs on it.
async fn engage(
    engine: Engine,
    plan: &Plan,
    folder: &RunFolder,
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
            return conclude(&cluster, plan, folder, identity, shutdown).await;
        }
        let cluster = DockerCluster::new(engine, run_id, plan, shutdown.graceful.clone());
        return conclude(&cluster, plan, folder, identity, shutdown).await;
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
        return conclude(&cluster, &plan, folder, identity, shutdown).await;
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
    conclude(&cluster, &plan, folder, identity, shutdown).await
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
    folder: &RunFolder,
    identity: &RunIdentity,
    shutdown: &Shutdown,
) -> Result<ExitCode> {
    let run_id = &identity.id;
    // A panic must not skip the teardown: catch it, tear down, then let it go on.
    let outcome = tokio::select! {
        outcome = AssertUnwindSafe(drive(cluster, plan, folder, identity, shutdown)).catch_unwind() => outcome,
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
    let all = FullLists {
        anomalies: &anomalies,
        faults: &faults,
    };
    let (path, warnings) = folder.finish(&mut summary, all).map_err(|e| {
        Error::infra(anyhow::anyhow!(
            "cannot write the report in {}: {e}",
            folder.path().display()
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

/// What a run found, in full: its summary, every anomaly and every fault.
type Ran = (Summary, Vec<Anomaly>, Vec<FaultRecord>);

/// Everything between an empty engine (or a stack found running) and a verdict.
async fn drive<C: Lifecycle>(
    cluster: &C,
    plan: &Plan,
    folder: &RunFolder,
    run: &RunIdentity,
    shutdown: &Shutdown,
) -> Result<Ran> {
    let timeline = chaos::schedule(plan);
    let started = start(cluster, plan, timeline.len(), shutdown).await?;
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let (driver, failures) = load_driver(plan, &started, start, &live);
    let ready = (started.url.as_str(), started.ready_after);
    // Replaced at the end: a run that dies still leaves a recent summary.
    let nothing_yet = Summary::assemble(plan, run, ready, Found::nothing_yet());
    let mut checkpoint = folder.checkpoint(nothing_yet, Arc::clone(&live), start, plan.duration);
    let sinks = folder.interval_sinks(&plan.name, plan.seed)?;
    let events = folder.events(plan.service.replicas, started.ready_after)?;
    let spill = folder.spill()?;
    let stop = shutdown.graceful.child_token();
    let store = watch_store(cluster, start, &stop);
    let shown = Shown::start(plan, &live, start, &stop);
    let on_fault = |record: &FaultRecord| {
        shown.fault(record);
        events.fault(record);
    };
    // The load ends at the duration, or earlier when its operation count is reached;
    // either way chaos stops with it.
    let load = async {
        let outcome = driver.run(&stop, sinks, spill).await;
        stop.cancel();
        outcome
    };
    let timer = async {
        tokio::select! {
            () = tokio::time::sleep(plan.duration) => stop.cancel(),
            () = stop.cancelled() => {}
        }
    };
    let chaos = chaos::run(cluster, plan.min_alive, &timeline, start, &stop, &on_fault);
    let (load, mut faults, ()) = tokio::join!(load, chaos, timer);
    let load_elapsed = start.elapsed();
    let store = OptionFuture::from(store).await.and_then(Result::ok);
    shown.stop().await;
    chaos::measure_recovery(&mut faults.records, &failures, load_elapsed);
    let store = store.map(|Recorded { timeline, lag }| {
        lag_at_faults(&mut faults.records, &lag);
        timeline
    });
    let interrupted = shutdown.graceful.is_cancelled();
    if interrupted {
        say!("interrupted: load and chaos stopped; checking what was done (Ctrl-C again to skip)");
    }
    for stopped in &load.collected.stopped {
        eprintln!("warning: {stopped}");
    }
    let healed = heal(cluster, plan, &faults.left_down).await;
    let sweep_after = start.elapsed().saturating_sub(load_elapsed);
    let (swept, sessions) = sweep(&driver, &load, folder, sweep_after).await;
    let (totals, anomalies, verdict) = judge(
        load.collected.totals,
        load.anomalies,
        swept,
        (&faults.records, store.as_ref()),
        interrupted,
    );
    checkpoint.stop().await;
    let found = Found {
        load_elapsed,
        verdict,
        healed,
        sessions,
        totals,
        anomalies: anomalies.clone(),
        faults: faults.records.clone(),
        halted: faults.halted,
        intervals: load.collected.intervals,
        error_messages: driver.tls_failures(),
        store,
    };
    let summary = Summary::assemble(plan, run, ready, found);
    Ok((summary, anomalies, faults.records))
}

/// Asks the store how it is until `stop`, where the engine can reach it.
fn watch_store<C: Lifecycle>(
    cluster: &C,
    start: Instant,
    stop: &CancellationToken,
) -> Option<tokio::task::JoinHandle<Recorded>> {
    let watched = cluster.store_watch()?;
    Some(tokio::spawn(store::watch::watch(
        watched,
        start,
        stop.clone(),
    )))
}

/// Each fault's replication lag when it came: what a primary lost then had not
/// reached its replicas.
fn lag_at_faults(faults: &mut [FaultRecord], lag: &LagTrace) {
    for fault in faults {
        fault.store_lag_bytes = lag.at(fault.injected_ms);
    }
}

/// The load's driver on the started cluster, and the timeline of failed requests
/// it records into, long enough for the sweep too (which runs after the planned
/// duration).
fn load_driver(
    plan: &Plan,
    started: &Started,
    start: Instant,
    live: &Arc<Live>,
) -> (Arc<Driver>, Arc<FailureTimeline>) {
    let failures = Arc::new(FailureTimeline::new(
        plan.duration * 2 + Duration::from_secs(600),
    ));
    let driver = Driver::new(
        Arc::clone(&started.targets),
        &plan.load,
        plan.seed,
        start,
        Arc::clone(live),
        Arc::clone(&failures),
    );
    (Arc::new(driver), failures)
}

/// Starts the cluster (or checks the stack found running) and says what is up and
/// what comes: the load, and the `faults` planned.
async fn start<C: Lifecycle>(
    cluster: &C,
    plan: &Plan,
    faults: usize,
    shutdown: &Shutdown,
) -> Result<Started> {
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
    say!(
        "load: {} for {}; chaos: {} faults planned (min_alive {})",
        plan.load.model.describe(),
        humantime::format_duration(plan.duration),
        faults,
        plan.min_alive
    );
    Ok(started)
}

/// What the terminal shows while the load runs: the live display, and a line per
/// fault.
struct Shown {
    live: Arc<Live>,
    last_fault: progress::LastFault,
    display: tokio::task::JoinHandle<()>,
}

impl Shown {
    /// Starts the live display, which ends with `stop`.
    fn start(plan: &Plan, live: &Arc<Live>, start: Instant, stop: &CancellationToken) -> Shown {
        let last_fault = progress::LastFault::default();
        let display = tokio::spawn(progress::show(
            progress::Mode::detect(),
            Arc::clone(live),
            start,
            plan.duration,
            plan.service.replicas,
            Arc::clone(&last_fault),
            stop.clone(),
        ));
        Shown {
            live: Arc::clone(live),
            last_fault,
            display,
        }
    }

    /// Counts a fault that ended, shows it as the last one and prints its line.
    fn fault(&self, record: &FaultRecord) {
        Live::add(&self.live.faults, 1);
        if let Ok(mut last) = self.last_fault.lock() {
            *last = Some(format!(
                "{} {} at {:.1}s: {}",
                record.fault,
                record.target,
                record.injected_ms as f64 / 1000.0,
                record.outcome
            ));
        }
        print_fault(record);
    }

    /// Waits for the display to clear itself (it stops with the load).
    async fn stop(self) {
        let _ = self.display.await;
    }
}

/// Waits for the cluster to heal after chaos; how long it took, or none (warned).
async fn heal<C: Lifecycle>(cluster: &C, plan: &Plan, left_down: &[usize]) -> Option<Duration> {
    match cluster
        .wait_healthy(plan.service.ready_timeout, left_down)
        .await
    {
        Ok(took) => Some(took),
        Err(err) => {
            eprintln!("warning: the cluster did not heal after chaos: {err}");
            None
        }
    }
}

/// The final sweep: every session the load made read once more; what it found,
/// and the sessions' counts. The spill is removed once swept.
async fn sweep(
    driver: &Driver,
    load: &LoadOutcome,
    folder: &RunFolder,
    sweep_after: Duration,
) -> (Swept, SessionCounts) {
    if let Some(err) = &load.sessions.error {
        eprintln!(
            "warning: {} sessions could not be spilled to {} ({err}): counted unverified",
            load.sessions.unwritten,
            folder.spill_path().display()
        );
    }
    let created = load.sessions.count + load.sessions.unwritten;
    say!("final sweep of {created} sessions");
    let sweep_started = Instant::now();
    let swept = driver.sweep(&load.sessions).await;
    let sweep_took = sweep_started.elapsed();
    // Swept: every session's verdict is in the evidence now.
    let _ = load.sessions.remove();
    let sessions = SessionCounts {
        created,
        checked: swept.checked,
        unverified: swept.unverified,
        expired: load.expired + swept.expired,
        sweep_after_ms: sweep_after.as_millis() as u64,
        sweep_ms: sweep_took.as_millis() as u64,
    };
    (swept, sessions)
}

/// The load's and the sweep's evidence together, each anomaly named by the fault
/// and the store event before it, and the verdict on it.
fn judge(
    mut totals: Recorder,
    mut anomalies: Vec<Anomaly>,
    swept: Swept,
    (faults, store): (&[FaultRecord], Option<&StoreTimeline>),
    interrupted: bool,
) -> (Recorder, Vec<Anomaly>, Verdict) {
    totals.merge(&swept.recorder);
    anomalies.extend(swept.anomalies);
    let hits = chaos::HitTimeline::of(faults);
    for anomaly in &mut anomalies {
        anomaly.nearest_fault = nearest_fault(faults, &hits, anomaly.at);
        if let Some(store) = store {
            explain_by_the_store(anomaly, store);
        }
    }
    let verdict = gate::judge(Evidence {
        anomalies: anomalies.len() as u64,
        unverified: swept.unverified,
        interrupted,
    });
    (totals, anomalies, verdict)
}

/// Names what the store did last before `anomaly`, and says so where any member of
/// the store had evicted keys before a loss: a session the store removed to make
/// room is not one the service forgot (the store's `evicted_keys` counts them, not
/// which ones).
fn explain_by_the_store(anomaly: &mut Anomaly, store: &StoreTimeline) {
    anomaly.nearest_store_event = store.nearest(anomaly.at);
    let lost = matches!(
        anomaly.kind,
        AnomalyKind::LostSession | AnomalyKind::LostWrite
    );
    let evicted = store.last_before(anomaly.at, |e| e.kind == StoreEventKind::Evicted);
    if let (true, Some(eviction)) = (lost, evicted) {
        let who = match eviction.member.as_str() {
            "" => "it",
            member => member,
        };
        let when = store.when(eviction);
        anomaly
            .detail
            .push_str(&format!("; evicted by the store ({who} {when})"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Op;
    use crate::store::timeline::StoreEvent;

    #[test]
    fn a_loss_after_any_member_evicted_names_that_member() {
        let event = |at_ms, kind, member: &str, detail: &str| StoreEvent {
            at_ms,
            since_ms: at_ms - 250,
            kind,
            detail: detail.into(),
            keys: 0,
            member: member.into(),
            replica: false,
        };
        let store = StoreTimeline {
            member: "store".into(),
            events: vec![
                event(
                    1000,
                    StoreEventKind::Evicted,
                    "store-1",
                    "evicted 40 keys under maxmemory (allkeys-lru)",
                ),
                event(
                    2000,
                    StoreEventKind::Role,
                    "store-2",
                    "became a primary (was a replica)",
                ),
            ],
            ..StoreTimeline::default()
        };
        let mut lost = Anomaly {
            kind: AnomalyKind::LostSession,
            session: "s".into(),
            op: Op::Read,
            served_by: None,
            at: Duration::from_millis(2500),
            detail: "answered 404".into(),
            nearest_fault: None,
            nearest_store_event: None,
        };
        explain_by_the_store(&mut lost, &store);
        assert_eq!(
            lost.detail,
            "answered 404; evicted by the store (store-1 evicted 40 keys under maxmemory (allkeys-lru) between 0.8s and 1.0s)"
        );
        assert_eq!(
            lost.nearest_store_event.as_deref(),
            Some("store-2 became a primary (was a replica) between 1.8s and 2.0s")
        );
    }
}
