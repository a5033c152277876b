//! The error window each fault caused, as users saw it: read after the load from
//! its [`FailureTimeline`], not from anything the cluster reports.
//!
//! Apart from applying faults because it runs later, on the load's figures, and
//! needs no cluster at all.

use std::time::Duration;

use super::record::{FaultRecord, Recovery};
use crate::metrics::FailureTimeline;

/// Gives each injected fault its error window: the failed requests from its
/// injection until the next fault's (or `end`, the end of the load).
pub fn measure_recovery(records: &mut [FaultRecord], failures: &FailureTimeline, end: Duration) {
    records.sort_by_key(|r| (r.injected_ms, r.entry));
    let starts: Vec<u64> = records
        .iter()
        .filter(|r| !matches!(r.outcome, "skipped" | "failed"))
        .map(|r| r.injected_ms)
        .collect();
    let bucket = FailureTimeline::RESOLUTION.as_millis() as u64;
    for record in records.iter_mut() {
        if matches!(record.outcome, "skipped" | "failed") {
            continue;
        }
        let from = record.injected_ms;
        let to = starts
            .iter()
            .copied()
            .find(|s| *s > from)
            .map_or(end, Duration::from_millis);
        let failed = failures.failures_between(Duration::from_millis(from), to);
        let (Some(first), Some(last)) = (failed.first(), failed.last()) else {
            continue;
        };
        let first_ms = first.0.as_millis() as u64;
        let last_ms = last.0.as_millis() as u64;
        record.recovery = Some(Recovery {
            first_failure_ms: first_ms,
            last_failure_ms: last_ms,
            window_ms: last_ms - first_ms + bucket,
            failed_requests: failed.iter().map(|(_, n)| u64::from(*n)).sum(),
            recovery_ms: (last_ms + bucket).saturating_sub(from),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_window_spans_the_failures_until_the_next_fault() {
        let failures = FailureTimeline::new(Duration::from_secs(30));
        for ms in [1_005, 1_200, 1_200, 1_790, 6_000] {
            failures.record(Duration::from_millis(ms));
        }
        let record = |injected_ms, outcome| FaultRecord {
            outcome,
            ..FaultRecord::injected(0, "kill", "replica-0.0".into(), injected_ms, injected_ms)
        };
        let mut records = vec![
            record(1_000, "injected"),
            record(3_000, "skipped"),
            record(5_000, "injected"),
            record(8_000, "injected"),
        ];
        measure_recovery(&mut records, &failures, Duration::from_secs(10));
        assert_eq!(
            records[0].recovery,
            Some(Recovery {
                first_failure_ms: 1_000,
                last_failure_ms: 1_790,
                window_ms: 800,
                failed_requests: 4,
                recovery_ms: 800,
            })
        );
        assert_eq!(records[1].recovery, None, "skipped faults get no window");
        let second = records[2].recovery.as_ref().unwrap();
        assert_eq!((second.window_ms, second.failed_requests), (10, 1));
        assert_eq!(records[3].recovery, None, "no failure after 8 s");
    }
}
