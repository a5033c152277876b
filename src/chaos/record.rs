//! What chaos did, as the reports show it: one [`FaultRecord`] per scheduled fault,
//! and the [`Outcome`] of the whole chaos run.
//!
//! Plain data, apart from the code that fills it in ([`super::apply`],
//! [`super::recovery`]) so that reports depend on these types and on nothing that
//! touches a cluster.

use serde::{Deserialize, Serialize};

/// The error window one fault caused, from the user's side: failed requests between
/// its injection and the next fault (or the end of the load), in 10 ms buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Offsets from the start of the load of the first and last failed bucket.
    pub first_failure_ms: u64,
    pub last_failure_ms: u64,
    /// `last - first + 10`: how long users saw errors.
    pub window_ms: u64,
    pub failed_requests: u64,
    /// From injection until the end of the last failed bucket: how long until users
    /// stopped seeing errors.
    pub recovery_ms: u64,
}

/// What happened when a fault was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Index of the `[[chaos]]` entry.
    pub entry: usize,
    pub fault: &'static str,
    /// The instances hit (or, when skipped, the planned targets), comma-separated.
    pub target: String,
    /// When the schedule said, and when it happened, from the start of the load.
    pub planned_ms: u64,
    pub injected_ms: u64,
    /// `injected`, `already_gone`, `skipped`, `failed` or `revert_failed`; for `oom`,
    /// `oom_killed` (the kernel killed it: Docker's `State.OOMKilled`), `exited` (it
    /// died otherwise) or `survived` (it outlived the fault; its limit was put back).
    pub outcome: &'static str,
    /// The fault's setting as applied (`0.100 cpu`, `memory limit 12.0 MiB`).
    #[serde(default)]
    pub params: Option<String>,
    /// `oom`: when the victim died during the fault, from the start of the load.
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// Why a fault was skipped.
    pub reason: Option<String>,
    /// The instance that took the slot over (kill or stop with `replace`).
    pub replacement: Option<String>,
    /// From injection until what was killed, stopped or restarted was healthy again.
    pub ready_after_ms: Option<u64>,
    /// When a temporary fault was reverted, from the start of the load.
    pub reverted_ms: Option<u64>,
    pub error: Option<String>,
    /// Filled in after the load by [`measure_recovery`]; none when no request failed.
    pub recovery: Option<Recovery>,
    /// How many bytes the store's replicas were behind their primary (the most of
    /// any) at the harness's last question before the fault: what a primary lost
    /// then had not reached them. Filled in after the load from the store's
    /// timeline; none where the store has no replicas or they could not be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_lag_bytes: Option<u64>,
}

impl FaultRecord {
    /// A fault injected at `injected_ms` as planned, nothing else known yet: the record
    /// applying a fault starts from and fills in.
    pub fn injected(
        entry: usize,
        fault: &'static str,
        target: String,
        planned_ms: u64,
        injected_ms: u64,
    ) -> Self {
        FaultRecord {
            entry,
            fault,
            target,
            planned_ms,
            injected_ms,
            outcome: "injected",
            params: None,
            ended_ms: None,
            reason: None,
            replacement: None,
            ready_after_ms: None,
            reverted_ms: None,
            error: None,
            recovery: None,
            store_lag_bytes: None,
        }
    }
}

/// The faults that hit something (neither skipped nor failed), by injection time:
/// which one came last before a moment, the fault an anomaly seen then is put beside.
/// Sorted once, so thousands of anomalies against thousands of faults stay cheap.
#[derive(Debug, Clone, Default)]
pub struct HitTimeline(Vec<(u64, usize)>);

impl HitTimeline {
    pub fn of(records: &[FaultRecord]) -> Self {
        let mut hits: Vec<(u64, usize)> = (records.iter().enumerate())
            .filter(|(_, f)| f.error.is_none() && f.outcome != "skipped")
            .map(|(i, f)| (f.injected_ms, i))
            .collect();
        hits.sort_by_key(|(at, _)| *at);
        HitTimeline(hits)
    }

    /// The index in `records` of the last fault injected at or before `at_ms` (from
    /// the start of the load).
    pub fn last_before(&self, at_ms: u64) -> Option<usize> {
        let after = self.0.partition_point(|(at, _)| *at <= at_ms);
        after.checked_sub(1).map(|i| self.0[i].1)
    }
}

/// What chaos did over a run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub records: Vec<FaultRecord>,
    /// Set when the dead man's switch stopped chaos early: why.
    pub halted: Option<String>,
    /// Replica slots left down on purpose (`after_kill = "none"`).
    pub left_down: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hit_before_a_moment_is_by_injection_time_and_skips_what_missed() {
        let at = |ms, outcome, error: Option<&str>| FaultRecord {
            outcome,
            error: error.map(str::to_string),
            ..FaultRecord::injected(0, "kill", format!("replica-{ms}"), ms, ms)
        };
        // In the order they ended: the long fault at 1 s ended after the one at 3 s.
        let records = [
            at(3000, "injected", None),
            at(1000, "injected", None),
            at(4000, "skipped", None),
            at(5000, "failed", Some("refused")),
            at(6000, "injected", None),
        ];
        let hits = HitTimeline::of(&records);
        assert_eq!(hits.last_before(500), None, "before any fault");
        assert_eq!(hits.last_before(2000), Some(1));
        assert_eq!(hits.last_before(3000), Some(0));
        assert_eq!(
            hits.last_before(5500),
            Some(0),
            "skipped and failed hit nothing"
        );
        assert_eq!(hits.last_before(60_000), Some(4));
    }
}
