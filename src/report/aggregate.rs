//! From the run's evidence to the summary's parts: the operations table from the
//! merged recorder, the anomalies counted, grouped and binned by second, and the
//! faults counted in full but listed in part, so summary.json stays small however
//! long the run.

use std::collections::{BTreeMap, BTreeSet};

use crate::chaos::{FaultRecord, HitTimeline};
use crate::load::series::Series;
use crate::metrics::{spectrum, Outcome, Percentiles, Recorder};
use crate::session::{Anomaly, AnomalyKind, Op};

use super::summary::{
    events_file, AnomalyGroup, AnomalySecond, AnomalySummary, FaultSummary, OpSummary,
    SpectrumSummary, WorstWindow, EVENTS_LISTED,
};

/// How many anomalies are listed one by one; all are counted.
const ANOMALY_SAMPLES: usize = 200;
/// Groups of anomalies kept in the summary: beyond this, `sessions.csv` has them.
const ANOMALY_GROUPS: usize = 100;

/// The fault (or store event) an anomaly's `nearest_fault` names, without how long
/// before it came (`"kill of replica-1.0 at 3.0s, 1.9s before"` → `"kill of
/// replica-1.0 at 3.0s"`), so that every anomaly after one fault falls in one window.
fn fault_window(nearest: &str) -> &str {
    match nearest.rsplit_once(", ") {
        Some((fault, ago)) if ago.ends_with("s before") => fault,
        _ => nearest,
    }
}

impl AnomalyGroup {
    /// Groups `anomalies` (in time order) by kind, replica and fault window, largest
    /// group first, at most [`ANOMALY_GROUPS`] of them.
    fn of(anomalies: &[Anomaly]) -> Vec<AnomalyGroup> {
        type Key<'a> = (
            AnomalyKind,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let mut groups: BTreeMap<Key<'_>, AnomalyGroup> = BTreeMap::new();
        for a in anomalies {
            let at = a.at.as_millis() as u64;
            let window = a.nearest_fault.as_deref().map(fault_window);
            let store = a.nearest_store_event.as_deref().map(fault_window);
            let key = (a.kind, a.served_by.as_deref(), window, store);
            let group = groups.entry(key).or_insert_with(|| AnomalyGroup {
                kind: a.kind,
                served_by: a.served_by.clone(),
                nearest_fault: window.map(str::to_string),
                nearest_store_event: store.map(str::to_string),
                count: 0,
                first_ms: at,
                last_ms: at,
            });
            group.count += 1;
            group.last_ms = at;
        }
        let mut groups: Vec<AnomalyGroup> = groups.into_values().collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.first_ms.cmp(&b.first_ms)));
        groups.truncate(ANOMALY_GROUPS);
        groups
    }
}

impl AnomalySummary {
    pub fn of(mut anomalies: Vec<Anomaly>) -> Self {
        anomalies.sort_by_key(|a| a.at);
        let mut by_kind: BTreeMap<AnomalyKind, u64> =
            AnomalyKind::ALL.iter().map(|k| (*k, 0)).collect();
        for a in &anomalies {
            *by_kind.entry(a.kind).or_default() += 1;
        }
        let total = anomalies.len() as u64;
        let groups = AnomalyGroup::of(&anomalies);
        let mut seconds: BTreeMap<u64, BTreeMap<AnomalyKind, u64>> = BTreeMap::new();
        for a in &anomalies {
            *seconds
                .entry(a.at.as_secs())
                .or_default()
                .entry(a.kind)
                .or_default() += 1;
        }
        let mut per_second = Series::default();
        for (t, by_kind) in seconds {
            per_second.push(AnomalySecond {
                t,
                span_s: 1,
                by_kind,
                peak: BTreeMap::new(),
            });
        }
        anomalies.truncate(ANOMALY_SAMPLES);
        AnomalySummary {
            total,
            by_kind,
            samples: anomalies,
            groups,
            per_second: per_second.into_rows(),
        }
    }
}

/// Of those, the first and the last this many are always listed.
const EVENTS_AT_EACH_END: usize = 50;

/// Which of `events` summary.json lists (indices, in order): all of them up to
/// [`EVENTS_LISTED`]. Beyond, the first and the last [`EVENTS_AT_EACH_END`] (how the
/// run began and ended), then from between them what a reader looks for, in this
/// order until [`EVENTS_LISTED`]: the worst error window, the faults that failed or
/// whose revert failed, then those followed by anomalies, earliest first.
fn listed(events: &[FaultRecord], worst: Option<usize>, anomalous: &BTreeSet<usize>) -> Vec<usize> {
    let n = events.len();
    if n <= EVENTS_LISTED {
        return (0..n).collect();
    }
    let middle = EVENTS_AT_EACH_END..n - EVENTS_AT_EACH_END;
    let mut keep: BTreeSet<usize> = (0..EVENTS_AT_EACH_END).chain(middle.end..n).collect();
    let failed = middle
        .clone()
        .filter(|i| events[*i].error.is_some() || events[*i].outcome == "revert_failed");
    let notable = (worst.into_iter())
        .chain(failed)
        .chain(anomalous.range(middle).copied());
    for i in notable {
        if keep.len() == EVENTS_LISTED {
            break;
        }
        keep.insert(i);
    }
    keep.into_iter().collect()
}

impl FaultSummary {
    /// Counts and windows over every one of `events`, and the list cut to at most
    /// [`EVENTS_LISTED`] ([`listed`]); `anomalies` tell which faults were followed
    /// by some.
    pub fn of(events: &[FaultRecord], halted: Option<String>, anomalies: &[Anomaly]) -> Self {
        let count =
            |f: &dyn Fn(&FaultRecord) -> bool| events.iter().filter(|e| f(e)).count() as u64;
        let windows = || events.iter().filter_map(|e| e.recovery.as_ref());
        let worst = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.recovery.as_ref().map(|r| (i, r)))
            .max_by_key(|(i, r)| (r.window_ms, std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        let hits = HitTimeline::of(events);
        let anomalous: BTreeSet<usize> = (anomalies.iter())
            .filter_map(|a| hits.last_before(a.at.as_millis() as u64))
            .collect();
        let listed = listed(events, worst, &anomalous);
        let worst = worst.map(|w| {
            let (e, r) = (
                &events[w],
                events[w].recovery.as_ref().expect("it has a window"),
            );
            WorstWindow {
                event: listed.binary_search(&w).expect("the worst is listed"),
                fault: e.fault,
                target: e.target.clone(),
                injected_ms: e.injected_ms,
                window_ms: r.window_ms,
                failed_requests: r.failed_requests,
            }
        });
        FaultSummary {
            injected: count(&|e| {
                matches!(
                    e.outcome,
                    "injected" | "revert_failed" | "oom_killed" | "exited" | "survived"
                )
            }),
            skipped: count(&|e| e.outcome == "skipped"),
            failed: count(&|e| e.error.is_some()),
            revert_failed: count(&|e| e.outcome == "revert_failed"),
            halted,
            failed_requests: windows().map(|r| r.failed_requests).sum(),
            total_window_ms: windows().map(|r| r.window_ms).sum(),
            recovery_ms: windows().map(|r| r.recovery_ms).max().unwrap_or(0),
            worst,
            recovery_total_ms: windows().map(|r| r.recovery_ms).sum(),
            events_total: events.len() as u64,
            events_listed: listed.len() as u64,
            events_file: events_file(),
            events: listed.iter().map(|i| events[*i].clone()).collect(),
        }
    }
}

/// The per-operation table of the summary.
pub fn operations(recorder: &Recorder) -> BTreeMap<Op, OpSummary> {
    recorder
        .ops()
        .into_iter()
        .map(|op| {
            let ok = recorder.latency.get(&(op, Outcome::Ok));
            let corrected = ok.map(|l| &l.corrected);
            let uncorrected = ok.map(|l| &l.uncorrected);
            let errors_by_kind = recorder.errors_of(op);
            let summary = OpSummary {
                ok: recorder.count(op, Outcome::Ok),
                failed: recorder.count(op, Outcome::Error),
                errors: errors_by_kind.values().sum(),
                errors_by_kind,
                latency_ms: corrected.map_or_else(Percentiles::empty, Percentiles::of),
                latency_uncorrected_ms: uncorrected
                    .map_or_else(Percentiles::empty, Percentiles::of),
                spectrum: SpectrumSummary {
                    corrected: corrected.map_or_else(Vec::new, spectrum),
                    uncorrected: uncorrected.map_or_else(Vec::new, spectrum),
                },
            };
            (op, summary)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::series::MAX_POINTS;
    use crate::report::{csv, Summary};
    use std::time::Duration;

    #[test]
    fn anomaly_summary_counts_all_kinds_and_keeps_samples_in_time_order() {
        let s = AnomalySummary::of(vec![
            anomaly_at(AnomalyKind::LostWrite, 30),
            anomaly_at(AnomalyKind::LostSession, 10),
        ]);
        assert_eq!(s.total, 2);
        assert_eq!(s.by_kind[&AnomalyKind::LostWrite], 1);
        assert_eq!(s.by_kind[&AnomalyKind::Phantom], 0);
        assert_eq!(s.samples[0].at, Duration::from_millis(10));
    }

    #[test]
    fn anomalies_are_grouped_by_kind_replica_and_fault_and_binned_by_second() {
        let anomaly = |kind, by: &str, fault: Option<&str>, ms| Anomaly {
            kind,
            session: "s".into(),
            op: Op::Read,
            served_by: Some(by.into()),
            at: Duration::from_millis(ms),
            detail: String::new(),
            nearest_fault: fault.map(str::to_string),
            nearest_store_event: None,
        };
        let kill = Some("kill of replica-1.0 at 2.0s");
        let after = |ago: &str| Some(format!("kill of replica-1.0 at 2.0s, {ago} before"));
        let s = AnomalySummary::of(vec![
            anomaly(
                AnomalyKind::LostSession,
                "replica-0",
                after("0.5s").as_deref(),
                2500,
            ),
            anomaly(
                AnomalyKind::LostSession,
                "replica-0",
                after("0.1s").as_deref(),
                2100,
            ),
            anomaly(
                AnomalyKind::LostSession,
                "replica-2",
                after("1.9s").as_deref(),
                3900,
            ),
            anomaly(
                AnomalyKind::LostWrite,
                "replica-0",
                after("0.2s").as_deref(),
                2200,
            ),
            anomaly(AnomalyKind::LostSession, "replica-0", None, 900),
        ]);
        let largest = &s.groups[0];
        assert_eq!(
            (largest.kind, largest.served_by.as_deref(), largest.count),
            (AnomalyKind::LostSession, Some("replica-0"), 2)
        );
        assert_eq!((largest.first_ms, largest.last_ms), (2100, 2500));
        assert_eq!(largest.nearest_fault.as_deref(), kill);
        assert_eq!(s.groups.len(), 4);
        let seconds: Vec<(u64, u64)> = s
            .per_second
            .iter()
            .map(|b| (b.t, b.by_kind.values().sum()))
            .collect();
        assert_eq!(seconds, [(0, 1), (2, 3), (3, 1)]);
    }

    #[test]
    fn fault_summary_totals_windows_and_names_the_worst() {
        use crate::chaos::Recovery;
        let record = |outcome, window_ms, failed| FaultRecord {
            outcome,
            recovery: (failed > 0).then_some(Recovery {
                first_failure_ms: 1000,
                last_failure_ms: 1000 + window_ms - 10,
                window_ms,
                failed_requests: failed,
                recovery_ms: window_ms + 5,
            }),
            ..FaultRecord::injected(0, "kill", format!("replica-{window_ms}.0"), 1000, 1000)
        };
        let s = FaultSummary::of(
            &[
                record("injected", 40, 3),
                record("injected", 900, 20),
                record("skipped", 0, 0),
                record("revert_failed", 10, 1),
            ],
            None,
            &[],
        );
        assert_eq!((s.injected, s.skipped, s.revert_failed), (3, 1, 1));
        assert_eq!((s.failed_requests, s.total_window_ms), (24, 950));
        assert_eq!(s.recovery_ms, 905);
        let worst = s.worst.clone().unwrap();
        assert_eq!(
            (worst.event, worst.window_ms, worst.failed_requests),
            (1, 900, 20)
        );
        assert_eq!(worst.target, "replica-900.0");
        assert_eq!(s.recovery_total_ms, 45 + 905 + 15);
        assert_eq!((s.events_total, s.events_listed), (4, 4));
        assert!(!s.is_cut());
        assert!(FaultSummary::of(&[], None, &[]).worst.is_none());
    }

    fn anomaly_at(kind: AnomalyKind, ms: u64) -> Anomaly {
        Anomaly {
            kind,
            session: "s".into(),
            op: Op::Read,
            served_by: None,
            at: Duration::from_millis(ms),
            detail: String::new(),
            nearest_fault: None,
            nearest_store_event: None,
        }
    }

    /// A day with a kill every 5 s: 17 280 faults. The summary counts them all,
    /// lists a bounded part that keeps what a reader looks for, and events.csv,
    /// written a row per fault as they end, has every one.
    #[test]
    fn a_day_of_faults_is_counted_in_full_listed_in_part_and_streamed_whole() {
        use crate::chaos::Recovery;
        let faults: Vec<FaultRecord> = (0..17_280u64)
            .map(|i| {
                let at = i * 5000;
                let mut record =
                    FaultRecord::injected(0, "kill", format!("replica-{}.{i}", i % 3), at, at);
                record.recovery = Some(Recovery {
                    first_failure_ms: at,
                    last_failure_ms: at + 10,
                    window_ms: if i == 9_000 { 4000 } else { 20 },
                    failed_requests: 2,
                    recovery_ms: 30,
                });
                if i == 4_000 {
                    record.outcome = "revert_failed";
                    record.error = Some("unpause refused".into());
                }
                record
            })
            .collect();
        // Anomalies 1 s after faults 7 000 and 12 000, and before any fault.
        let anomalies = [
            anomaly_at(AnomalyKind::LostWrite, 7_000 * 5000 + 1000),
            anomaly_at(AnomalyKind::LostSession, 12_000 * 5000 + 1000),
        ];
        let s = FaultSummary::of(&faults, None, &anomalies);
        assert_eq!(s.events_total, 17_280);
        assert_eq!(s.events_listed as usize, s.events.len());
        assert!(
            s.is_cut() && s.events.len() <= EVENTS_LISTED,
            "{}",
            s.events.len()
        );
        assert_eq!(s.injected, 17_280);
        assert_eq!(s.failed_requests, 2 * 17_280);
        assert_eq!(s.recovery_total_ms, 30 * 17_280);
        assert_eq!(s.events_file, "events.csv");
        let listed: Vec<&str> = s.events.iter().map(|e| e.target.as_str()).collect();
        let has = |i: u64| listed.contains(&format!("replica-{}.{i}", i % 3).as_str());
        for i in (0..50).chain(17_230..17_280) {
            assert!(has(i), "fault {i} of the first or last 50 is listed");
        }
        for i in [4_000, 7_000, 9_000, 12_000] {
            assert!(
                has(i),
                "fault {i} (failed, worst or followed by anomalies) is listed"
            );
        }
        assert!(!has(5_000), "an unremarkable fault in the middle is not");
        // The worst is named by its place in the list.
        let worst = s.worst.as_ref().unwrap();
        assert_eq!(worst.window_ms, 4000);
        assert_eq!(s.events[worst.event].target, "replica-0.9000");
        // In time order, as they ended.
        assert!(s
            .events
            .windows(2)
            .all(|w| w[0].injected_ms < w[1].injected_ms));

        // The summary with it stays small.
        let summary = {
            let mut summary =
                Summary::parse(include_str!("../../tests/fixtures/summary.json")).unwrap();
            summary.faults = s.clone();
            summary
        };
        let json = serde_json::to_vec_pretty(&summary).unwrap();
        assert!(json.len() < 200_000, "summary.json is {} bytes", json.len());
        // Read back, the totals stay as written.
        let back =
            Summary::parse(Box::leak(String::from_utf8(json).unwrap().into_boxed_str())).unwrap();
        assert_eq!(
            (back.faults.events_total, back.faults.recovery_total_ms),
            (17_280, 30 * 17_280)
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        let mut streamed = csv::EventsCsv::create(&path).unwrap();
        streamed.ready(3, 1200).unwrap();
        for fault in &faults {
            streamed.fault(fault).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let fault_rows = text.lines().filter(|l| l.contains(",fault,kill,")).count();
        assert_eq!(fault_rows, 17_280, "every fault is in events.csv");
        assert!(text.contains("replica-2.17279"));
    }

    /// Anomalies in 3 000 different seconds of a day, and one burst: at most
    /// [`MAX_POINTS`](crate::load::series::MAX_POINTS) points, every anomaly counted, the burst as high as it was.
    #[test]
    fn anomalies_per_second_are_bounded_and_keep_their_peak() {
        let mut anomalies: Vec<Anomaly> = (0..3_000u64)
            .map(|i| anomaly_at(AnomalyKind::LostWrite, i * 28_000 + 500))
            .collect();
        anomalies.extend((0..40).map(|_| anomaly_at(AnomalyKind::LostSession, 50_000_300)));
        let s = AnomalySummary::of(anomalies);
        assert!(s.per_second.len() <= MAX_POINTS, "{}", s.per_second.len());
        let counted: u64 = (s.per_second.iter()).flat_map(|p| p.by_kind.values()).sum();
        assert_eq!(counted, 3_040);
        let peak = (s.per_second.iter())
            .filter_map(|p| p.peak_of(AnomalyKind::LostSession))
            .max();
        assert_eq!(peak, Some(40));
        assert!(s
            .per_second
            .iter()
            .all(|p| p.peak_of(AnomalyKind::LostWrite) <= Some(1)));
        // Each point covers its seconds, and the points do not overlap.
        for pair in s.per_second.windows(2) {
            assert!(pair[0].t + pair[0].span_s <= pair[1].t);
        }
    }
}
