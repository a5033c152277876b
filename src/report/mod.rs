//! The run's report: one [`Summary`] value, written as `summary.json` and printed as
//! a verdict on the terminal, beside the latency interval log ([`hlog`]).
//!
//! Every other file of the run folder is a pure function of the summary, one module
//! per format: [`csv`] (latency, events, sessions, replicas), [`junit`] and [`html`]
//! (with its [`charts`]). So what the terminal says and what CI reads cannot
//! disagree, and `sessionstorm report RUN_DIR` can rebuild the HTML from
//! summary.json alone. Files are written to a temporary name and renamed, so a
//! reader (or a crash) never sees half a report.

pub mod charts;
pub mod csv;
pub mod hlog;
pub mod html;
pub mod junit;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chaos::{FaultRecord, HitTimeline};
use crate::cluster::swarm::facts::Scheduling;
use crate::gate::{Counts, Figures, GateResult, Verdict};
use crate::load::collector::IntervalRow;
use crate::load::series::{Point, Series};
use crate::metrics::{spectrum, ErrorKind, Outcome, Percentiles, Recorder};
use crate::session::{Anomaly, AnomalyKind, Op};

/// Bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;
/// How many anomalies are listed one by one; all are counted.
const ANOMALY_SAMPLES: usize = 200;
/// Groups of anomalies kept in the summary: beyond this, `sessions.csv` has them.
const ANOMALY_GROUPS: usize = 100;

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

/// The fault an anomaly's `nearest_fault` names, without how long before it came
/// (`"kill of replica-1.0 at 3.0s, 1.9s before"` → `"kill of replica-1.0 at 3.0s"`),
/// so that every anomaly after one fault falls in one window.
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
        type Key<'a> = (AnomalyKind, Option<&'a str>, Option<&'a str>);
        let mut groups: BTreeMap<Key<'_>, AnomalyGroup> = BTreeMap::new();
        for a in anomalies {
            let at = a.at.as_millis() as u64;
            let window = a.nearest_fault.as_deref().map(fault_window);
            let key = (a.kind, a.served_by.as_deref(), window);
            let group = groups.entry(key).or_insert_with(|| AnomalyGroup {
                kind: a.kind,
                served_by: a.served_by.clone(),
                nearest_fault: window.map(str::to_string),
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
    /// [`listed`].
    #[serde(default)]
    pub events_listed: u64,
    /// The file in the run folder that lists every fault.
    #[serde(default = "events_file")]
    pub events_file: String,
    /// The faults listed (see `events_listed`), in the order they ended.
    pub events: Vec<FaultRecord>,
}

fn events_file() -> String {
    "events.csv".to_string()
}

/// The most faults `faults.events` lists: a day with a kill every few seconds has
/// tens of thousands, and summary.json must stay small. All are counted, and
/// events.csv has every one.
pub const EVENTS_LISTED: usize = 200;
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

/// The files of a run folder, by their key in `Summary::files`.
pub const FILES: [(&str, &str); 8] = [
    ("summary", "summary.json"),
    ("latency_csv", "latency.csv"),
    ("events_csv", "events.csv"),
    ("sessions_csv", "sessions.csv"),
    ("replicas_csv", "replicas.csv"),
    ("latency_log", "latency.hlog"),
    ("junit", "junit.xml"),
    ("html", "report.html"),
];

/// What summary.json lists only in part, in full, for the files that list
/// everything: every anomaly (sessions.csv) and every fault (events.csv).
#[derive(Debug, Clone, Copy, Default)]
pub struct FullLists<'a> {
    pub anomalies: &'a [Anomaly],
    pub faults: &'a [FaultRecord],
}

/// Writes every file of the run folder but the latency log and latency.csv
/// (written as the run goes). summary.json comes first and is the only one whose failure is an error:
/// any other file that cannot be made is a warning (returned), and the rest are
/// still written. events.csv, streamed while the run went, is written again whole
/// from `all.faults`, with the error windows measured after the load.
pub fn write_folder(
    summary: &mut Summary,
    all: FullLists<'_>,
    dir: &Path,
) -> std::io::Result<(PathBuf, Vec<String>)> {
    summary.files = FILES.iter().map(|(k, f)| (*k, f.to_string())).collect();
    let json = summary.write_json(dir)?;
    let summary = &*summary;
    type Export<'a> = &'a dyn Fn() -> std::io::Result<Vec<u8>>;
    let exporters: [(&str, Export<'_>); 5] = [
        ("events.csv", &|| csv::events(summary, all.faults)),
        ("sessions.csv", &|| csv::sessions(all.anomalies)),
        ("replicas.csv", &|| csv::replicas(summary)),
        ("junit.xml", &|| {
            junit::render(summary).map(String::into_bytes)
        }),
        ("report.html", &|| {
            html::render(summary).map(String::into_bytes)
        }),
    ];
    let mut warnings = Vec::new();
    for (name, export) in exporters {
        let path = dir.join(name);
        if let Err(e) = export().and_then(|bytes| write_atomically(&path, &bytes)) {
            warnings.push(format!("cannot write {}: {e}", path.display()));
        }
    }
    Ok((json, warnings))
}

/// `sessionstorm report RUN_DIR`: rewrites report.html and junit.xml of a run folder
/// from its summary.json.
pub fn rebuild(dir: &Path) -> crate::error::Result<crate::error::ExitCode> {
    use crate::error::{Error, ExitCode};
    let summary = Summary::read(dir).map_err(Error::Invalid)?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())
            .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.display())))
            .map(|()| path)
    };
    let junit = junit::render(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    write("junit.xml", junit)?;
    let html = html::render(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    let path = write("report.html", html)?;
    crate::say!(
        "wrote {} (verdict {})",
        path.display(),
        summary.verdict.status
    );
    Ok(ExitCode::Passed)
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

    /// Writes `summary.json` into `dir`, which must exist.
    pub fn write_json(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("summary.json");
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        write_atomically(&path, &json)?;
        Ok(path)
    }

    /// The verdict block printed at the end of a run.
    /// On an orchestrator: its tasks, nodes, replacements per slot, and the time
    /// from each kill to a new task serving (median and max over the run's kills).
    fn scheduling_line(&self) -> Option<String> {
        let facts = self.scheduling.as_ref()?;
        let mut nodes: Vec<&str> = facts.tasks.iter().map(|t| t.node.as_str()).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let per_slot: Vec<String> = (facts.restarts_by_slot.iter())
            .map(|(slot, n)| format!("replica-{slot} {n}"))
            .collect();
        let mut line = format!(
            "{}: {} tasks on {} ({}); replacements per slot: {}",
            facts.engine,
            facts.tasks.len(),
            if nodes.len() == 1 { "node" } else { "nodes" },
            nodes.join(", "),
            per_slot.join(", ")
        );
        let mut ready: Vec<u64> = (self.faults.events.iter())
            .filter(|e| e.replacement.is_some())
            .filter_map(|e| e.ready_after_ms)
            .collect();
        ready.sort_unstable();
        if let (Some(median), Some(max)) = (ready.get(ready.len() / 2), ready.last()) {
            let _ = write!(
                line,
                "; kill or stop to new task serving (restart delay {} ms): median {median} ms, max {max} ms over {} faults",
                facts.restart_delay_ms,
                ready.len()
            );
        }
        Some(line)
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let requests: u64 = self.operations.values().map(|o| o.ok + o.errors).sum();
        let errors: u64 = self.operations.values().map(|o| o.errors).sum();
        let _ = writeln!(
            out,
            "\nsessions {} created, {} checked in the final sweep, {} unverified",
            self.sessions.created, self.sessions.checked, self.sessions.unverified
        );
        if self.sessions.expired > 0 {
            let _ = writeln!(
                out,
                "sessions {} expired by design (lost after a pause longer than the flow's idle_timeout; the sweep began {:.1}s after the load)",
                self.sessions.expired,
                self.sessions.sweep_after_ms as f64 / 1000.0
            );
        }
        let f = &self.faults;
        let _ = writeln!(
            out,
            "operations {requests} ({errors} failed requests: availability, not loss) · {} load, {} missed starts · faults {} injected, {} skipped, {} failed",
            self.load.model, self.load.missed_starts, f.injected, f.skipped, f.failed
        );
        for (message, n) in &self.error_messages {
            let _ = writeln!(out, "  {n} failed: {message}");
        }
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
        if let Some(line) = self.scheduling_line() {
            let _ = writeln!(out, "{line}");
        }
        if f.revert_failed > 0 {
            let _ = writeln!(
                out,
                "WARNING: {} fault reverts failed; see faults.events (all in events.csv)",
                f.revert_failed
            );
        }
        if let Some(why) = &f.halted {
            let _ = writeln!(out, "WARNING: chaos stopped early: {why}");
        }
        let _ = writeln!(
            out,
            "\nlatency (ms)   count      p50      p90      p99    p99.9      max  uncorrected p99"
        );
        for (op, summary) in &self.operations {
            let p = &summary.latency_ms;
            let _ = writeln!(
                out,
                "  {:<8} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>16.2}",
                op.name(),
                p.count,
                p.p50,
                p.p90,
                p.p99,
                p.p999,
                p.max,
                summary.latency_uncorrected_ms.p99
            );
        }
        let _ = writeln!(out, "\nanomalies {}", self.anomalies.total);
        for (kind, n) in self.anomalies.by_kind.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {kind:<13} {n}");
        }
        for a in self.anomalies.samples.iter().take(5) {
            let _ = writeln!(
                out,
                "  e.g. {} at {:.1}s: session {} ({} served by {}): {}{}",
                a.kind,
                a.at.as_secs_f64(),
                a.session,
                a.op.name(),
                a.served_by.as_deref().unwrap_or("?"),
                a.detail,
                a.nearest_fault
                    .as_deref()
                    .map(|f| format!(" [after {f}]"))
                    .unwrap_or_default()
            );
        }
        if !self.gates.is_empty() {
            let _ = writeln!(out, "\ngates");
            for gate in &self.gates {
                let value = gate
                    .value
                    .map_or_else(|| "no value".to_string(), |v| format!("{v}"));
                let mark = if gate.passed { "pass" } else { "FAIL" };
                let _ = writeln!(out, "  {mark} {:<32} (run: {value})", gate.expr);
            }
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
    use crate::load::series::MAX_POINTS;
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
