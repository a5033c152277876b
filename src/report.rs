//! The run's report: one [`Summary`] value, written as `summary.json` and printed as
//! a verdict on the terminal.
//!
//! Both are pure functions of the summary, so what the terminal says and what CI
//! reads cannot disagree. Files are written to a temporary name and renamed, so a
//! reader (or a crash) never sees half a report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::chaos::FaultRecord;
use crate::gate::Verdict;
use crate::metrics::{ErrorKind, Metrics, OpStats};
use crate::session::{Anomaly, AnomalyKind, Op};

/// Bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;
/// How many anomalies are listed one by one; all are counted.
const ANOMALY_SAMPLES: usize = 200;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema_version: u32,
    pub run_id: String,
    pub scenario: String,
    pub description: Option<String>,
    pub seed: u64,
    pub started_at: String,
    /// Planned load duration and how long the load really ran.
    pub duration_s: f64,
    pub load_elapsed_s: f64,
    pub verdict: Verdict,
    pub cluster: ClusterSummary,
    pub sessions: SessionCounts,
    pub operations: BTreeMap<Op, OpSummary>,
    pub anomalies: AnomalySummary,
    pub faults: FaultSummary,
    /// Answers per `X-Served-By` instance.
    pub served_by: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterSummary {
    pub replicas: usize,
    pub url: String,
    /// Time from creating the network until every replica and the balancer were healthy.
    pub ready_ms: u64,
    /// Time after the load stopped until every replica was healthy again.
    pub healed_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionCounts {
    pub created: u64,
    pub checked: u64,
    pub unverified: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    pub latency_ms: Percentiles,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram in microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            mean: h.mean().round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnomalySummary {
    pub total: u64,
    pub by_kind: BTreeMap<AnomalyKind, u64>,
    /// The first anomalies in time order, each with the session, operation, instance and time.
    pub samples: Vec<Anomaly>,
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
        anomalies.truncate(ANOMALY_SAMPLES);
        AnomalySummary {
            total,
            by_kind,
            samples: anomalies,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultSummary {
    /// Faults that hit something (`injected`, `revert_failed`).
    pub injected: u64,
    /// Faults skipped by a safety guard (`min_alive`, target already under a fault).
    pub skipped: u64,
    /// Faults with an error (injection, coming back, or revert).
    pub failed: u64,
    /// Temporary faults whose revert failed after every retry.
    pub revert_failed: u64,
    /// Set when the dead man's switch stopped chaos: why.
    pub halted: Option<String>,
    /// Sums over every fault's error window (as users saw it).
    pub failed_requests: u64,
    pub total_window_ms: u64,
    /// The longest time from a fault until users stopped seeing errors: the
    /// `recovery_ms` metric for gates. 0 when no fault caused a failed request.
    pub recovery_ms: u64,
    /// The fault with the longest error window.
    pub worst: Option<WorstWindow>,
    pub events: Vec<FaultRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorstWindow {
    /// Index into `events`.
    pub event: usize,
    pub fault: &'static str,
    pub target: String,
    pub injected_ms: u64,
    pub window_ms: u64,
    pub failed_requests: u64,
}

impl FaultSummary {
    pub fn of(events: Vec<FaultRecord>, halted: Option<String>) -> Self {
        let count =
            |f: &dyn Fn(&FaultRecord) -> bool| events.iter().filter(|e| f(e)).count() as u64;
        let windows = || events.iter().filter_map(|e| e.recovery.as_ref());
        let worst = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.recovery.as_ref().map(|r| (i, e, r)))
            .max_by_key(|(i, _, r)| (r.window_ms, std::cmp::Reverse(*i)))
            .map(|(i, e, r)| WorstWindow {
                event: i,
                fault: e.fault,
                target: e.target.clone(),
                injected_ms: e.injected_ms,
                window_ms: r.window_ms,
                failed_requests: r.failed_requests,
            });
        FaultSummary {
            injected: count(&|e| matches!(e.outcome, "injected" | "revert_failed")),
            skipped: count(&|e| e.outcome == "skipped"),
            failed: count(&|e| e.error.is_some()),
            revert_failed: count(&|e| e.outcome == "revert_failed"),
            halted,
            failed_requests: windows().map(|r| r.failed_requests).sum(),
            total_window_ms: windows().map(|r| r.window_ms).sum(),
            recovery_ms: windows().map(|r| r.recovery_ms).max().unwrap_or(0),
            worst,
            events,
        }
    }
}

/// The per-operation table of the summary.
pub fn operations(metrics: &Metrics) -> BTreeMap<Op, OpSummary> {
    metrics
        .ops
        .iter()
        .map(|(op, stats): (&Op, &OpStats)| {
            (
                *op,
                OpSummary {
                    ok: stats.ok,
                    errors: stats.error_count(),
                    errors_by_kind: stats.errors.clone(),
                    latency_ms: Percentiles::of(&stats.latency),
                },
            )
        })
        .collect()
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir, path)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    drop(tmp.1);
    std::fs::rename(&tmp.0, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp.0);
    })
}

/// A new file beside `path`, named so no two runs or processes collide.
fn tempfile_in(dir: &Path, path: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    Ok((tmp, file))
}

impl Summary {
    /// Writes `summary.json` into `dir`, which must exist.
    pub fn write_json(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("summary.json");
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        write_atomically(&path, &json)?;
        Ok(path)
    }

    /// The verdict block printed at the end of a run.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let ops: u64 = self.operations.values().map(|o| o.ok + o.errors).sum();
        let errors: u64 = self.operations.values().map(|o| o.errors).sum();
        let _ = writeln!(
            out,
            "\nsessions {} created, {} checked in the final sweep, {} unverified",
            self.sessions.created, self.sessions.checked, self.sessions.unverified
        );
        let f = &self.faults;
        let _ = writeln!(
            out,
            "requests {ops} ({errors} errors: availability, not loss) · faults {} injected, {} skipped, {} failed",
            f.injected, f.skipped, f.failed
        );
        match &f.worst {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "recovery: {} failed requests in fault windows totalling {} ms; worst window {} ms ({} failed) after {} {} at {:.1}s; recovery_ms {}",
                    f.failed_requests,
                    f.total_window_ms,
                    w.window_ms,
                    w.failed_requests,
                    w.fault,
                    w.target,
                    w.injected_ms as f64 / 1000.0,
                    f.recovery_ms
                );
            }
            None if f.injected > 0 => {
                let _ = writeln!(out, "recovery: no request failed after any fault");
            }
            None => {}
        }
        if f.revert_failed > 0 {
            let _ = writeln!(
                out,
                "WARNING: {} fault reverts failed; see faults.events",
                f.revert_failed
            );
        }
        if let Some(why) = &f.halted {
            let _ = writeln!(out, "WARNING: chaos stopped early: {why}");
        }
        let _ = writeln!(
            out,
            "\nlatency (ms)   count      p50      p90      p99    p99.9      max"
        );
        for (op, summary) in &self.operations {
            let p = &summary.latency_ms;
            let _ = writeln!(
                out,
                "  {:<8} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                op.name(),
                p.count,
                p.p50,
                p.p90,
                p.p99,
                p.p999,
                p.max
            );
        }
        let _ = writeln!(out, "\nanomalies {}", self.anomalies.total);
        for (kind, n) in self.anomalies.by_kind.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {kind:<13} {n}");
        }
        for a in self.anomalies.samples.iter().take(5) {
            let _ = writeln!(
                out,
                "  e.g. {} at {:.1}s: session {} ({} served by {}): {}",
                a.kind,
                a.at.as_secs_f64(),
                a.session,
                a.op.name(),
                a.served_by.as_deref().unwrap_or("?"),
                a.detail
            );
        }
        let verdict = match self.verdict.status {
            "passed" => "PASSED: no session lost".to_string(),
            status => format!(
                "{}: {}",
                status.to_uppercase(),
                self.verdict.reasons.join("; ")
            ),
        };
        let _ = writeln!(out, "\nverdict {verdict}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn anomaly_summary_counts_all_kinds_and_keeps_samples_in_time_order() {
        let anomaly = |kind, ms| Anomaly {
            kind,
            session: "s".into(),
            op: Op::Read,
            served_by: None,
            at: Duration::from_millis(ms),
            detail: String::new(),
        };
        let s = AnomalySummary::of(vec![
            anomaly(AnomalyKind::LostWrite, 30),
            anomaly(AnomalyKind::LostSession, 10),
        ]);
        assert_eq!(s.total, 2);
        assert_eq!(s.by_kind[&AnomalyKind::LostWrite], 1);
        assert_eq!(s.by_kind[&AnomalyKind::Phantom], 0);
        assert_eq!(s.samples[0].at, Duration::from_millis(10));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn fault_summary_totals_windows_and_names_the_worst() {
        use crate::chaos::Recovery;
        let record = |outcome, window_ms, failed| FaultRecord {
            entry: 0,
            fault: "kill",
            target: format!("replica-{window_ms}.0"),
            planned_ms: 1000,
            injected_ms: 1000,
            outcome,
            reason: None,
            replacement: None,
            ready_after_ms: None,
            reverted_ms: None,
            error: None,
            recovery: (failed > 0).then_some(Recovery {
                first_failure_ms: 1000,
                last_failure_ms: 1000 + window_ms - 10,
                window_ms,
                failed_requests: failed,
                recovery_ms: window_ms + 5,
            }),
        };
        let s = FaultSummary::of(
            vec![
                record("injected", 40, 3),
                record("injected", 900, 20),
                record("skipped", 0, 0),
                record("revert_failed", 10, 1),
            ],
            None,
        );
        assert_eq!((s.injected, s.skipped, s.revert_failed), (3, 1, 1));
        assert_eq!((s.failed_requests, s.total_window_ms), (24, 950));
        assert_eq!(s.recovery_ms, 905);
        let worst = s.worst.unwrap();
        assert_eq!(
            (worst.event, worst.window_ms, worst.failed_requests),
            (1, 900, 20)
        );
        assert_eq!(worst.target, "replica-900.0");
        assert!(FaultSummary::of(vec![], None).worst.is_none());
    }
}
