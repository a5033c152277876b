//! Where a fault is applied: the cluster actions each fault takes on its victims,
//! what brings them back, and the revert of a temporary fault (retried, and loud
//! when it fails, since a container left paused or cut off falsifies what follows).
//!
//! Separate from [`super::run`], which only decides when a fault starts, so the
//! meaning of each fault (kill, stop, restart, pause, disconnect, blackhole) reads in
//! one place.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::record::FaultRecord;
use super::schedule::Scheduled;
use crate::cluster::{Acted, Action, Cluster, EngineError, KillOutcome, Victim};
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
    let reserved = guard.lock().expect("guard lock").reserve(&fault.victims);
    if let Err(reason) = reserved {
        record.outcome = "skipped";
        record.reason = Some(reason);
        return record;
    }

    // The first action, on every victim at once.
    let first = match fault.fault {
        Fault::Kill => Action::Kill,
        Fault::Stop => Action::Stop(fault.grace),
        Fault::Restart => Action::Restart(fault.grace),
        Fault::Pause => Action::Pause,
        Fault::Disconnect => Action::Disconnect,
        Fault::Blackhole => Action::BlackholeOn,
    };
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
                instances.push(acted.instance);
                all_gone &= acted.outcome == KillOutcome::AlreadyGone;
                ready = max_ready(ready, acted.ready_after);
                hit.push(*victim);
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
        Fault::Kill | Fault::Stop => {
            let then = |v: &Victim| match (fault.after_kill, v) {
                (AfterKill::None, _) => None,
                (AfterKill::Replace, Victim::Replica(_)) => Some(Action::Replace),
                _ => Some(Action::StartAgain),
            };
            left_down = fault.after_kill == AfterKill::None;
            let results = futures_util::future::join_all(
                hit.iter()
                    .filter_map(|v| then(v).map(|a| (a, *v)))
                    .map(|(a, v)| cluster.act(a, v)),
            )
            .await;
            let mut replacements = Vec::new();
            for result in results {
                match result {
                    Ok(acted) => {
                        ready = max_ready(ready, acted.ready_after);
                        replacements.push(acted.instance);
                    }
                    Err(err) => errors.push(format!("coming back failed: {err}")),
                }
            }
            if fault.after_kill == AfterKill::Replace && !replacements.is_empty() {
                record.replacement = Some(replacements.join(", "));
            }
        }
        Fault::Restart => {}
        Fault::Pause | Fault::Disconnect | Fault::Blackhole => {
            let revert = match fault.fault {
                Fault::Pause => Action::Unpause,
                Fault::Disconnect => Action::Reconnect,
                _ => Action::BlackholeOff,
            };
            tokio::select! {
                () = tokio::time::sleep(fault.duration.unwrap_or_default()) => {}
                () = halt.cancelled() => {}
            }
            for victim in &hit {
                if let Err(err) = revert_with_retry(cluster, revert, *victim).await {
                    record.outcome = "revert_failed";
                    errors.push(err);
                }
            }
            record.reverted_ms = Some(start.elapsed().as_millis() as u64);
        }
    }
    record.ready_after_ms = ready.map(|d| d.as_millis() as u64);
    if !errors.is_empty() {
        record.error = Some(errors.join("; "));
    }
    guard
        .lock()
        .expect("guard lock")
        .release(&fault.victims, left_down);
    record
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
