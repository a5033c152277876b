//! The schema of `summary.json`: the [`Summary`] and its parts, read back with the
//! schema version checked, and the run's metrics as the gates and `compare` read
//! them ([`Figures`]).
//!
//! Types only: how the parts are made from the evidence is [`super::aggregate`],
//! how they are printed [`super::text`], where they are written [`super::folder`].
//! `reports/summary.schema.json` describes the same shape for other tools.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chaos::FaultRecord;
use crate::cluster::swarm::facts::Scheduling;
use crate::gate::{Counts, Figures, GateResult, Verdict};
use crate::load::collector::IntervalRow;
use crate::load::series::Point;
use crate::metrics::{ErrorKind, Percentiles};
use crate::session::{Anomaly, AnomalyKind, Op};
use crate::store::timeline::StoreTimeline;

/// Bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

/// `&'static str` fields borrow from the text read: see [`Summary::read`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'static"))]
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
    pub load: LoadSummary,
    pub cluster: ClusterSummary,
    pub sessions: SessionCounts,
    /// After the warm-up; the sweep's reads are under `sweep`.
    pub operations: BTreeMap<Op, OpSummary>,
    pub anomalies: AnomalySummary,
    pub faults: FaultSummary,
    /// Answers per `X-Served-By` instance.
    pub served_by: BTreeMap<String, u64>,
    /// Failed requests per replica instance: answered by it with an error, or cut
    /// off in it (the balancer names where it sent them). Failed requests that no
    /// replica can be named for (refused by the balancer, reset, timed out) are in
    /// `errors_without_replica`; the two add up to the operations' `errors`.
    #[serde(default)]
    pub errors_by: BTreeMap<String, u64>,
    #[serde(default)]
    pub errors_without_replica: u64,
    /// Why failed requests failed where their kind alone does not tell the fix
    /// (a TLS handshake's reason: "tls: invalid peer certificate: UnknownIssuer"),
    /// with how often; at most 16 different ones.
    #[serde(default)]
    pub error_messages: BTreeMap<String, u64>,
    /// The load over time: counts, errors, corrected and uncorrected percentiles by
    /// operation, missed starts; one row per second, or at most 512 rows of
    /// `span_s` seconds each in a longer run (`latency.csv` has every second).
    pub intervals: Vec<IntervalRow>,
    /// Files beside summary.json, by what they hold.
    pub files: BTreeMap<&'static str, String>,
    /// The scenario file as run, verbatim (the seed actually used is `seed`).
    #[serde(default)]
    pub scenario_toml: String,
    /// The scenario's `[gates]` checks, as evaluated.
    #[serde(default)]
    pub gates: Vec<GateResult>,
    /// The scenario's tolerances for `sessionstorm compare`, by metric.
    #[serde(default)]
    pub tolerances: BTreeMap<String, String>,
    /// On an orchestrator (`[cluster] engine = "swarm"`): where each task ran, the
    /// states it went through and the replacements per slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    /// The store's own timeline, where the harness could ask it how it was: one
    /// point a second (keys, evictions, memory) and what it did (restarts, evictions,
    /// a new memory limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreTimeline>,
}

/// The load as it was set up, and what it could not do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSummary {
    /// `open` or `closed`.
    pub model: &'static str,
    /// Open model: operations per second at the start of the profile and at its end.
    pub rate: Option<[f64; 2]>,
    /// Closed model: virtual users.
    pub users: Option<usize>,
    pub ops_per_session: u64,
    pub warmup_s: f64,
    /// Operations the open model could not start on time, after the warm-up.
    pub missed_starts: u64,
    /// How long after its intended start each operation was sent, after the
    /// warm-up: the harness's own lateness, plus the wait of missed starts. Absent
    /// from summaries written before it was recorded.
    #[serde(default = "Percentiles::empty")]
    pub start_lateness_ms: Percentiles,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub replicas: usize,
    pub url: String,
    /// Time from creating the network until every replica and the balancer were healthy.
    pub ready_ms: u64,
    /// Time after the load stopped until every replica was healthy again.
    pub healed_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionCounts {
    pub created: u64,
    pub checked: u64,
    pub unverified: u64,
    /// Found lost after a pause longer than the flow's `idle_timeout`: expired by
    /// design, so not anomalies.
    #[serde(default)]
    pub expired: u64,
    /// From the end of the load to the start of the final sweep (the cluster healing
    /// in between): with a short idle timeout, sessions may expire in this gap.
    #[serde(default)]
    pub sweep_after_ms: u64,
    /// How long the final sweep took, reading every session once more.
    #[serde(default)]
    pub sweep_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    /// Operations that got an answer (a retried append counts once).
    pub ok: u64,
    /// Operations that got none, even after their retries.
    pub failed: u64,
    /// Failed requests, in all and by kind: availability, not loss.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// Latency from the intended start (coordinated omission corrected).
    pub latency_ms: Percentiles,
    /// Latency from the actual send.
    pub latency_uncorrected_ms: Percentiles,
    /// The whole distribution, for the percentile spectrum chart. Empty in
    /// summaries written before it existed; the chart then draws the percentiles.
    #[serde(default)]
    pub spectrum: SpectrumSummary,
}

/// (percentile, ms) points of the whole latency distribution, from
/// [`crate::metrics::spectrum`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpectrumSummary {
    pub corrected: Vec<[f64; 2]>,
    pub uncorrected: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AnomalySummary {
    pub total: u64,
    pub by_kind: BTreeMap<AnomalyKind, u64>,
    /// The first anomalies in time order, each with the session, operation, instance and time.
    pub samples: Vec<Anomaly>,
    /// Anomalies of one kind, shown by one replica, after one fault: a failing run of
    /// thousands of anomalies reads as a few lines of cause. Largest first.
    #[serde(default)]
    pub groups: Vec<AnomalyGroup>,
    /// Anomalies per second of the run, by kind, for the chart against the faults;
    /// only the seconds that had any. At most [`MAX_POINTS`](crate::load::series::MAX_POINTS) points: in a longer run
    /// a point spans several seconds (`span_s`) and keeps its busiest second
    /// (`peak`), like `intervals`.
    #[serde(default)]
    pub per_second: Vec<AnomalySecond>,
}

/// A group of anomalies sharing a kind, a replica and a fault window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalyGroup {
    pub kind: AnomalyKind,
    /// The replica that answered (as the app or the balancer named it), if known.
    pub served_by: Option<String>,
    /// The last fault before them (see [`Anomaly::nearest_fault`], without the
    /// delay); none before the first fault.
    pub nearest_fault: Option<String>,
    /// What the store did last before them, likewise; none where the store was not
    /// watched or had done nothing yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_store_event: Option<String>,
    pub count: u64,
    pub first_ms: u64,
    pub last_ms: u64,
}

/// The anomalies of one second of the run, or of several once the run is longer
/// than [`MAX_POINTS`](crate::load::series::MAX_POINTS) seconds with anomalies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnomalySecond {
    /// Seconds since the load started: its first second with anomalies.
    pub t: u64,
    /// Seconds from `t` to the end of its last second with anomalies.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub span_s: u64,
    /// All of its anomalies, by kind.
    pub by_kind: BTreeMap<AnomalyKind, u64>,
    /// In a point of several seconds: the most anomalies of each kind in any one
    /// of them, so a burst stays as high on the chart as it was.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peak: BTreeMap<AnomalyKind, u64>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl AnomalySecond {
    /// The most anomalies of `kind` in one second of it.
    pub fn peak_of(&self, kind: AnomalyKind) -> Option<u64> {
        self.peak
            .get(&kind)
            .or_else(|| self.by_kind.get(&kind))
            .copied()
    }
}

impl Point for AnomalySecond {
    fn t(&self) -> u64 {
        self.t
    }

    fn absorb(&mut self, later: &AnomalySecond) {
        let kinds: Vec<AnomalyKind> = self
            .by_kind
            .keys()
            .chain(later.by_kind.keys())
            .copied()
            .collect();
        for kind in kinds {
            let peak = self.peak_of(kind).max(later.peak_of(kind)).unwrap_or(0);
            self.peak.insert(kind, peak);
        }
        for (kind, n) in &later.by_kind {
            *self.by_kind.entry(*kind).or_default() += n;
        }
        self.span_s = later.t + later.span_s - self.t;
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(bound(deserialize = "'de: 'static"))]
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
    /// The sum over every fault of its `recovery_ms`: the `recovery_ms.total` metric.
    #[serde(default)]
    pub recovery_total_ms: u64,
    /// Every fault of the run, listed or not.
    #[serde(default)]
    pub events_total: u64,
    /// How many `events` lists: all of them up to [`EVENTS_LISTED`]; beyond, see
    /// [`FaultSummary::of`] for which.
    #[serde(default)]
    pub events_listed: u64,
    /// The file in the run folder that lists every fault.
    #[serde(default = "events_file")]
    pub events_file: String,
    /// The faults listed (see `events_listed`), in the order they ended.
    pub events: Vec<FaultRecord>,
}

pub(super) fn events_file() -> String {
    "events.csv".to_string()
}

/// The most faults `faults.events` lists: a day with a kill every few seconds has
/// tens of thousands, and summary.json must stay small. All are counted, and
/// events.csv has every one.
pub const EVENTS_LISTED: usize = 200;
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorstWindow {
    /// Index into `events` (the worst is always listed).
    pub event: usize,
    pub fault: &'static str,
    pub target: String,
    pub injected_ms: u64,
    pub window_ms: u64,
    pub failed_requests: u64,
}

impl FaultSummary {
    /// A summary written before the list was cut has every fault in `events` and no
    /// totals: fills them in from the list.
    fn fill_totals(&mut self) {
        if self.events_total == 0 && !self.events.is_empty() {
            self.events_total = self.events.len() as u64;
            self.events_listed = self.events_total;
            self.recovery_total_ms = (self.events.iter())
                .filter_map(|e| e.recovery.as_ref())
                .map(|r| r.recovery_ms)
                .sum();
        }
    }

    /// Whether `events` leaves faults out.
    pub fn is_cut(&self) -> bool {
        self.events_listed < self.events_total
    }
}

impl Summary {
    /// Reads a `summary.json` (or the one inside a run folder). The text is kept for
    /// the life of the process: the summary's `&'static str` fields borrow from it.
    pub fn read(path: &Path) -> Result<Summary, String> {
        let path = if path.is_dir() {
            path.join("summary.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Summary::parse(Box::leak(text.into_boxed_str()))
            .map_err(|e| format!("{} is not a sessionstorm summary: {e}", path.display()))
    }

    /// Parses summary.json text.
    pub fn parse(text: &'static str) -> Result<Summary, String> {
        let mut summary: Summary = serde_json::from_str(text).map_err(|e| e.to_string())?;
        summary.faults.fill_totals();
        if summary.schema_version != SCHEMA_VERSION {
            return Err(format!(
                "schema version {} (this sessionstorm reads version {SCHEMA_VERSION})",
                summary.schema_version
            ));
        }
        Ok(summary)
    }
}

/// Gates and `compare` read a run's metrics from its summary, also one read back
/// from disk.
impl Figures for Summary {
    fn latency_ms(&self, op: Op, uncorrected: bool) -> Option<&Percentiles> {
        let o = self.operations.get(&op)?;
        Some(if uncorrected {
            &o.latency_uncorrected_ms
        } else {
            &o.latency_ms
        })
    }

    fn counts(&self) -> Vec<Counts> {
        self.operations
            .values()
            .map(|o| Counts {
                ok: o.ok,
                errors: o.errors,
                failed: o.failed,
            })
            .collect()
    }

    fn anomalies(&self, kind: Option<AnomalyKind>) -> u64 {
        match kind {
            None => self.anomalies.total,
            Some(kind) => self
                .anomalies
                .by_kind
                .get(&kind)
                .copied()
                .unwrap_or_default(),
        }
    }

    fn missed_starts(&self) -> u64 {
        self.load.missed_starts
    }

    fn unverified(&self) -> u64 {
        self.sessions.unverified
    }

    fn worst_recovery_ms(&self) -> u64 {
        self.faults.recovery_ms
    }

    fn total_recovery_ms(&self) -> u64 {
        self.faults.recovery_total_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_written_before_the_cut_gets_its_totals_from_its_list() {
        let mut summary =
            Summary::parse(include_str!("../../tests/fixtures/summary.json")).unwrap();
        summary.faults.events_total = 0;
        summary.faults.events_listed = 0;
        summary.faults.recovery_total_ms = 0;
        let mut json = serde_json::to_value(&summary).unwrap();
        for field in [
            "events_total",
            "events_listed",
            "events_file",
            "recovery_total_ms",
        ] {
            json["faults"].as_object_mut().unwrap().remove(field);
        }
        let text = Box::leak(json.to_string().into_boxed_str());
        let old = Summary::parse(text).unwrap();
        assert_eq!(old.faults.events_total, 2);
        assert_eq!(old.faults.events_listed, 2);
        assert_eq!(old.faults.recovery_total_ms, 40);
        assert_eq!(old.faults.events_file, "events.csv");
    }
}
