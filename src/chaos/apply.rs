//! Where a fault is applied: the cluster actions each fault takes on its victims,
//! what brings them back, and the revert of a temporary fault (retried, and loud
//! when it fails, since a container left paused or cut off falsifies what follows).
//!
//! Separate from [`super::run`], which only decides when a fault starts, so the
//! meaning of each fault (kill, stop, restart, pause, disconnect, blackhole, and the
//! grey ones: cpu, loss, bandwidth, oom) reads in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::record::FaultRecord;
use super::schedule::Scheduled;
use crate::cluster::{Acted, Action, Cluster, Ended, EngineError, KillOutcome, Shaping, Victim};
use crate::plan::{AfterKill, Fault};

/// Attempts for a revert before it is given up (and reported) as failed.
pub(super) const REVERT_ATTEMPTS: u32 = 5;

/// Applies one scheduled fault to `cluster`: reserves its victims with `guard`,
/// takes the first action on all of them at once, then brings killed or stopped
/// replicas back (per `after_kill`) or, for a temporary fault, waits out its
/// duration (or `halt`) and reverts it. Never fails: what went wrong is in the record.
pub(super) async fn apply<C: Cluster>(
    cluster: &C,
    guard: &Mutex<Guard>,
    fault: &Scheduled,
    start: Instant,
    halt: &CancellationToken,
) -> FaultRecord {
    let injected = start.elapsed();
    let names: Vec<String> = fault.victims.iter().map(ToString::to_string).collect();
    let mut record = FaultRecord::injected(
        fault.entry,
        fault.fault.name(),
        names.join(", "),
        fault.at.as_millis() as u64,
        injected.as_millis() as u64,
    );
    let exclusive = fault.fault.entry().exclusive;
    let reserved = match exclusive {
        true => guard.lock().expect("guard lock").reserve(&fault.victims),
        false => Ok(()),
    };
    if let Err(reason) = reserved {
        record.outcome = "skipped";
        record.reason = Some(reason);
        return record;
    }

    record.params = fault.fault.params();
    let first = first_action(fault);
    let results =
        futures_util::future::join_all(fault.victims.iter().map(|v| cluster.act(first, *v))).await;
    let mut hit = Vec::new();
    let mut instances = Vec::new();
    let mut errors = Vec::new();
    let mut ready = None::<Duration>;
    let mut all_gone = true;
    for (victim, result) in fault.victims.iter().zip(results) {
        match result {
            Ok(acted) => {
                if let Some(detail) = acted.detail {
                    record.params = Some(detail);
                }
                all_gone &= acted.outcome == KillOutcome::AlreadyGone;
                ready = max_ready(ready, acted.ready_after);
                // What follows (bringing back, reverting) is for the member that
                // was primary then, whichever is primary by the time it comes.
                hit.push(victim.as_acted(&acted.instance));
                instances.push(acted.instance);
            }
            Err(err) => errors.push(format!("{victim}: {err}")),
        }
    }
    if !instances.is_empty() {
        record.target = instances.join(", ");
    }
    if hit.is_empty() {
        record.outcome = "failed";
    } else if all_gone {
        record.outcome = "already_gone";
    }

    let mut left_down = false;
    match fault.fault {
        Fault::Kill | Fault::Stop | Fault::Failover => {
            left_down = fault.after_kill == AfterKill::None;
            bring_back(cluster, fault, &hit, &mut record, &mut ready, &mut errors).await;
        }
        Fault::Restart => {}
        Fault::Oom { .. } => {
            let until = fault.duration.unwrap_or_default();
            let ended = watch_for_ends(cluster, &hit, until, halt).await;
            let (dead, alive): (Vec<_>, Vec<_>) = hit.iter().partition(|v| ended.contains_key(v));
            if let Some((at, _)) = ended.values().min_by_key(|(at, _)| *at) {
                record.ended_ms = Some((*at - start).as_millis() as u64);
            }
            let all_oom = ended.values().all(|(_, e)| e.oom_killed);
            record.outcome = match (dead.is_empty(), all_oom) {
                _ if hit.is_empty() => record.outcome,
                (true, _) => "survived",
                (false, true) => "oom_killed",
                (false, false) => "exited",
            };
            for (victim, (_, end)) in ended.iter().filter(|(_, (_, e))| !e.oom_killed) {
                errors.push(format!(
                    "{victim} exited with code {} and was not OOM-killed",
                    end.exit_code
                ));
            }
            // A container started again keeps its limits: the old one first.
            if fault.after_kill == AfterKill::Restart {
                revert_all(
                    cluster,
                    Action::UnlimitMemory,
                    &dead,
                    &mut record,
                    &mut errors,
                )
                .await;
            }
            left_down = fault.after_kill == AfterKill::None && !dead.is_empty();
            bring_back(cluster, fault, &dead, &mut record, &mut ready, &mut errors).await;
            if !alive.is_empty() {
                revert_all(
                    cluster,
                    Action::UnlimitMemory,
                    &alive,
                    &mut record,
                    &mut errors,
                )
                .await;
                record.reverted_ms = Some(start.elapsed().as_millis() as u64);
            }
        }
        _ => {
            let revert = revert_action(fault.fault);
            tokio::select! {
                () = tokio::time::sleep(fault.duration.unwrap_or_default()) => {}
                () = halt.cancelled() => {}
            }
            revert_all(cluster, revert, &hit, &mut record, &mut errors).await;
            record.reverted_ms = Some(start.elapsed().as_millis() as u64);
        }
    }
    record.ready_after_ms = ready.map(|d| d.as_millis() as u64);
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    if exclusive {
        guard
            .lock()
            .expect("guard lock")
            .release(&fault.victims, left_down);
    }
    record
}

/// The first action of a fault, on every victim at once. The rest of what a fault
/// is (name, keys, revert or not, engines) is its entry in `plan::faults`.
fn first_action(fault: &Scheduled) -> Action {
    match fault.fault {
        Fault::Kill => Action::Kill,
        Fault::Stop => Action::Stop(fault.grace),
        Fault::Restart => Action::Restart(fault.grace),
        Fault::Pause => Action::Pause,
        Fault::Disconnect => Action::Disconnect,
        Fault::Blackhole { peer: None } => Action::BlackholeOn,
        Fault::Blackhole { peer: Some(peer) } => Action::ShapePeerOn(Shaping::Blackhole, peer),
        Fault::Cpu { millicores } => Action::Throttle(millicores),
        Fault::Loss {
            percent,
            peer: None,
        } => Action::ShapeOn(Shaping::Loss(percent)),
        Fault::Loss {
            percent,
            peer: Some(peer),
        } => Action::ShapePeerOn(Shaping::Loss(percent), peer),
        Fault::Bandwidth { bits_per_sec } => Action::ShapeOn(Shaping::Rate(bits_per_sec)),
        Fault::Oom { bytes } => Action::LimitMemory(bytes),
        Fault::MemoryPressure { bytes } => Action::StoreMemory(bytes),
        Fault::Failover => Action::Failover,
        Fault::StoreSplit => Action::Isolate,
        Fault::SlowStore { .. } | Fault::Latency { .. } | Fault::StoreLag { .. } => {
            let (delay_ms, jitter_ms) = fault.fault.delay().expect("a delay fault has a delay");
            Action::Delay {
                delay_ms,
                jitter_ms,
            }
        }
    }
}

/// What undoes a temporary fault: plain data, so whoever cleans up after the
/// harness can be told what to undo.
pub fn revert_action(fault: Fault) -> Action {
    match fault {
        Fault::Pause => Action::Unpause,
        Fault::Disconnect => Action::Reconnect,
        Fault::Blackhole { peer: None } => Action::BlackholeOff,
        Fault::Blackhole { peer: Some(peer) } => Action::ShapePeerOff(Shaping::Blackhole, peer),
        Fault::Cpu { .. } => Action::Unthrottle,
        Fault::Loss {
            percent,
            peer: None,
        } => Action::ShapeOff(Shaping::Loss(percent)),
        Fault::Loss {
            percent,
            peer: Some(peer),
        } => Action::ShapePeerOff(Shaping::Loss(percent), peer),
        Fault::Bandwidth { bits_per_sec } => Action::ShapeOff(Shaping::Rate(bits_per_sec)),
        Fault::Oom { .. } => Action::UnlimitMemory,
        Fault::MemoryPressure { .. } => Action::StoreMemoryBack,
        Fault::StoreSplit => Action::Rejoin,
        Fault::SlowStore { .. } | Fault::Latency { .. } | Fault::StoreLag { .. } => Action::Undelay,
        Fault::Kill | Fault::Stop | Fault::Restart | Fault::Failover => {
            unreachable!("{} is not temporary", fault.name())
        }
    }
}

/// How often an `oom` fault looks whether its victims still run.
const WATCH: Duration = Duration::from_millis(100);

/// Watches `victims` until `until` has passed (or `halt`), or all of them ended;
/// returns when and how each one that ended did.
async fn watch_for_ends<C: Cluster>(
    cluster: &C,
    victims: &[Victim],
    until: Duration,
    halt: &CancellationToken,
) -> BTreeMap<Victim, (Instant, Ended)> {
    let deadline = Instant::now() + until;
    let mut ended = BTreeMap::new();
    while ended.len() < victims.len() && Instant::now() < deadline && !halt.is_cancelled() {
        for victim in victims {
            if ended.contains_key(victim) {
                continue;
            }
            if let Ok(Some(end)) = cluster.ended(*victim).await {
                ended.insert(*victim, (Instant::now(), end));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(WATCH) => {}
            () = halt.cancelled() => {}
        }
    }
    ended
}

/// Brings back what a fault killed, per `after_kill`: a replacement in a replica's
/// slot, or the same container started again; nothing for `none`.
async fn bring_back<C: Cluster>(
    cluster: &C,
    fault: &Scheduled,
    downed: &[Victim],
    record: &mut FaultRecord,
    ready: &mut Option<Duration>,
    errors: &mut Vec<String>,
) {
    let then = |v: &Victim| match (fault.after_kill, v) {
        (AfterKill::None, _) => None,
        (AfterKill::Replace, Victim::Replica(_) | Victim::StoreMember(_)) => Some(Action::Replace),
        _ => Some(Action::StartAgain),
    };
    let results = futures_util::future::join_all(
        downed
            .iter()
            .filter_map(|v| then(v).map(|a| (a, *v)))
            .map(|(a, v)| cluster.act(a, v)),
    )
    .await;
    let mut replacements = Vec::new();
    for result in results {
        match result {
            Ok(acted) => {
                *ready = max_ready(*ready, acted.ready_after);
                replacements.push(acted.instance);
            }
            Err(err) => errors.push(format!("coming back failed: {err}")),
        }
    }
    if fault.after_kill == AfterKill::Replace && !replacements.is_empty() {
        record.replacement = Some(replacements.join(", "));
    }
}

/// Reverts a temporary fault on each of `victims`; a revert that fails for good
/// marks the record.
async fn revert_all<C: Cluster>(
    cluster: &C,
    revert: Action,
    victims: &[Victim],
    record: &mut FaultRecord,
    errors: &mut Vec<String>,
) {
    for victim in victims {
        match revert_with_retry(cluster, revert, *victim).await {
            // What the revert found (the delay a proxy measured) goes with the setting.
            Ok(Acted {
                detail: Some(found),
                ..
            }) => {
                let params = record.params.take().unwrap_or_default();
                record.params = Some(format!("{params}; {found}"));
            }
            Ok(_) => {}
            Err(err) => {
                record.outcome = "revert_failed";
                errors.push(err);
            }
        }
    }
}

fn max_ready(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Reverts a temporary fault, retrying with growing pauses; every failure is printed
/// on stderr at once, since a container left paused or cut off falsifies what follows.
async fn revert_with_retry<C: Cluster>(
    cluster: &C,
    action: Action,
    victim: Victim,
) -> Result<Acted, String> {
    let mut last: Option<EngineError> = None;
    for attempt in 1..=REVERT_ATTEMPTS {
        match cluster.act(action, victim).await {
            Ok(acted) => return Ok(acted),
            Err(err) => {
                eprintln!(
                    "error: REVERT FAILED: {action:?} {victim} (attempt {attempt}/{REVERT_ATTEMPTS}): {err}"
                );
                last = Some(err);
            }
        }
        tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt - 1)).await;
    }
    Err(format!(
        "revert {action:?} of {victim} failed {REVERT_ATTEMPTS} times: {}",
        last.map_or_else(String::new, |e| e.to_string())
    ))
}
