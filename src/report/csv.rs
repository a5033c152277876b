//! The CSV files of a run folder, for spreadsheets and scripts: one function per
//! file, each a pure function of the summary (or of the anomaly list), but for
//! `latency.csv`, which the run streams one second at a time ([`LatencyCsv`]).
//!
//! Columns are fixed, whatever the run did (every error kind has its column, zero or
//! not), so a script written against one run reads every other.

use crate::chaos::FaultRecord;
use crate::load::collector::{IntervalRow, IntervalSink};
use crate::metrics::{ErrorKind, Percentiles, Recorder};
use crate::session::Anomaly;
use crate::store::timeline::StoreEvent;

use super::Summary;

type Result<T> = std::io::Result<T>;

fn finish<W: std::io::Write>(writer: csv::Writer<W>) -> Result<W> {
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

fn percentile_cells(p: &Percentiles) -> [String; 5] {
    [p.p50, p.p90, p.p99, p.p999, p.max].map(|v| format!("{v}"))
}

/// `latency.csv`: one row per second of load and operation, written as the run
/// goes (summary.json keeps a downsampled series, this file every second).
#[derive(Debug)]
pub struct LatencyCsv<W: std::io::Write> {
    writer: csv::Writer<W>,
}

impl LatencyCsv<std::io::BufWriter<std::fs::File>> {
    /// Creates the file at `path` and writes its header.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        LatencyCsv::new(std::io::BufWriter::new(std::fs::File::create(path)?))
    }
}

impl<W: std::io::Write> LatencyCsv<W> {
    /// Writes the header to `out`.
    pub fn new(out: W) -> Result<Self> {
        let mut writer = csv::Writer::from_writer(out);
        let mut header: Vec<String> = ["t_s", "warmup", "op", "ok", "failed", "errors"]
            .map(String::from)
            .to_vec();
        header.extend(
            ErrorKind::ALL
                .iter()
                .map(|k| format!("errors_{}", k.name())),
        );
        for prefix in ["", "uncorrected_"] {
            for q in ["p50", "p90", "p99", "p999", "max"] {
                header.push(format!("{prefix}{q}_ms"));
            }
        }
        header.push("interval_missed_starts".into());
        writer.write_record(&header)?;
        Ok(LatencyCsv { writer })
    }

    /// Writes one interval's rows, one per operation, and flushes them: a run that
    /// dies leaves every second it finished.
    pub fn write(&mut self, row: &IntervalRow) -> Result<()> {
        for (op, o) in &row.ops {
            let mut record = vec![
                row.t.to_string(),
                row.warmup.to_string(),
                op.name().to_string(),
                o.ok.to_string(),
                o.failed.to_string(),
                o.errors.values().sum::<u64>().to_string(),
            ];
            record.extend(
                ErrorKind::ALL
                    .iter()
                    .map(|k| o.errors.get(k).copied().unwrap_or(0).to_string()),
            );
            record.extend(percentile_cells(&o.corrected_ms));
            record.extend(percentile_cells(&o.uncorrected_ms));
            record.push(row.missed_starts.to_string());
            self.writer.write_record(&record)?;
        }
        self.writer.flush()
    }

    /// The writer behind it.
    pub fn into_inner(self) -> Result<W> {
        finish(self.writer)
    }
}

/// The run streams every second's rows into the file as it completes.
impl<W: std::io::Write + Send> IntervalSink for LatencyCsv<W> {
    fn name(&self) -> &'static str {
        "latency.csv"
    }

    fn interval(&mut self, row: &IntervalRow, _: &Recorder) -> Result<()> {
        self.write(row)
    }
}

/// `events.csv`: the cluster's own events (ready, load end, healed) and every
/// fault with its timestamps, outcome and the error window users saw after it.
///
/// Written as the run goes: the header and `ready` once the cluster is up, then a
/// row as each fault ends, each flushed, so a run that dies leaves every fault up
/// to its death. At the end [`events`] writes the file again whole, with the error
/// windows (measured after the load) and the load's end. summary.json lists at
/// most [`super::EVENTS_LISTED`] faults; this file lists them all.
#[derive(Debug)]
pub struct EventsCsv<W: std::io::Write> {
    writer: csv::Writer<W>,
}

impl EventsCsv<std::io::BufWriter<std::fs::File>> {
    /// Creates the file at `path` and writes its header.
    pub fn create(path: &std::path::Path) -> Result<Self> {
        EventsCsv::new(std::io::BufWriter::new(std::fs::File::create(path)?))
    }
}

impl<W: std::io::Write> EventsCsv<W> {
    /// Writes the header to `out`.
    pub fn new(out: W) -> Result<Self> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record([
            "at_ms",
            "kind",
            "event",
            "target",
            "outcome",
            "planned_ms",
            "replacement",
            "ready_after_ms",
            "reverted_ms",
            "first_failure_ms",
            "last_failure_ms",
            "window_ms",
            "failed_requests",
            "recovery_ms",
            "detail",
        ])?;
        Ok(EventsCsv { writer })
    }

    /// The cluster came up: `replicas` healthy `ready_ms` after the network was made.
    pub fn ready(&mut self, replicas: usize, ready_ms: u64) -> Result<()> {
        self.cluster(
            0,
            "ready",
            format!("{replicas} replicas healthy {ready_ms} ms after the network was created"),
        )
    }

    /// One of the cluster's own events, and flushes it.
    fn cluster(&mut self, at: u64, event: &str, detail: String) -> Result<()> {
        self.other(at, "cluster", event, "", detail)
    }

    /// One thing the store's `member` did (or its Sentinel said), and flushes it.
    fn store(&mut self, member: &str, event: &StoreEvent) -> Result<()> {
        let kind = serde_json::to_value(event.kind).expect("a kind serialises");
        let name = kind.as_str().unwrap_or_default();
        self.other(event.at_ms, "store", name, member, event.detail.clone())
    }

    /// A row that is not a fault: its time, kind, event, target and detail.
    fn other(
        &mut self,
        at: u64,
        kind: &str,
        event: &str,
        target: &str,
        detail: String,
    ) -> Result<()> {
        let mut record = vec![at.to_string(), kind.into(), event.into(), target.into()];
        record.extend(std::iter::repeat_n(String::new(), 10));
        record.push(detail);
        self.writer.write_record(&record)?;
        self.writer.flush()
    }

    /// One fault, and flushes it.
    pub fn fault(&mut self, e: &FaultRecord) -> Result<()> {
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let r = e.recovery.as_ref();
        let lag = (e.store_lag_bytes)
            .map(|bytes| format!("the store's replicas {bytes} bytes behind their primary"));
        let detail = [e.reason.as_deref(), e.error.as_deref(), lag.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        self.writer.write_record([
            e.injected_ms.to_string(),
            "fault".into(),
            e.fault.to_string(),
            e.target.clone(),
            e.outcome.to_string(),
            e.planned_ms.to_string(),
            e.replacement.clone().unwrap_or_default(),
            opt(e.ready_after_ms),
            opt(e.reverted_ms),
            opt(r.map(|r| r.first_failure_ms)),
            opt(r.map(|r| r.last_failure_ms)),
            opt(r.map(|r| r.window_ms)),
            opt(r.map(|r| r.failed_requests)),
            opt(r.map(|r| r.recovery_ms)),
            detail,
        ])?;
        self.writer.flush()
    }

    /// The writer behind it.
    pub fn into_inner(self) -> Result<W> {
        finish(self.writer)
    }
}

/// The whole of `events.csv` at the end of a run: every one of `faults` (the full
/// list, of which the summary keeps a part), with the summary's cluster events.
pub fn events(summary: &Summary, faults: &[FaultRecord]) -> Result<Vec<u8>> {
    let mut w = EventsCsv::new(Vec::new())?;
    w.ready(summary.cluster.replicas, summary.cluster.ready_ms)?;
    // Faults and the store's events in the order they happened.
    let store = summary.store.as_ref();
    let who = |event| store.map_or("", |s| s.who(event));
    let mut store_events = store.map_or(&[][..], |s| &s.events[..]).iter().peekable();
    for e in faults {
        while let Some(event) = store_events.next_if(|s| s.at_ms < e.injected_ms) {
            w.store(who(event), event)?;
        }
        w.fault(e)?;
    }
    for event in store_events {
        w.store(who(event), event)?;
    }
    let load_end = (summary.load_elapsed_s * 1000.0).round() as u64;
    w.cluster(load_end, "load_end", String::new())?;
    if let Some(healed) = summary.cluster.healed_ms {
        w.cluster(
            load_end + healed,
            "healed",
            format!("every replica healthy {healed} ms after the load stopped"),
        )?;
    }
    w.into_inner()
}

/// `sessions.csv`: every anomaly, in time order.
pub fn sessions(anomalies: &[Anomaly]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&Anomaly> = anomalies.iter().collect();
    sorted.sort_by_key(|a| a.at);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "at_ms",
        "kind",
        "session",
        "op",
        "served_by",
        "expected_vs_seen",
        "nearest_fault",
        "nearest_store_event",
    ])?;
    for a in sorted {
        w.write_record([
            (a.at.as_millis() as u64).to_string(),
            a.kind.name().to_string(),
            a.session.clone(),
            a.op.name().to_string(),
            a.served_by.clone().unwrap_or_default(),
            a.detail.clone(),
            a.nearest_fault.clone().unwrap_or_default(),
            a.nearest_store_event.clone().unwrap_or_default(),
        ])?;
    }
    finish(w)
}

/// `replicas.csv`: answers and failed requests per replica instance
/// (`X-Served-By`, or the balancer's word for where a failed request went), and
/// each instance's share of the answers. Failed requests no replica can be named
/// for (refused, timed out before any answer) are the last row, `(no replica)`, so
/// the `errors` column adds up to the operations' errors.
pub fn replicas(summary: &Summary) -> Result<Vec<u8>> {
    let total: u64 = summary.served_by.values().sum();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["instance", "answers", "errors", "share"])?;
    let instances: std::collections::BTreeSet<&String> = summary
        .served_by
        .keys()
        .chain(summary.errors_by.keys())
        .collect();
    for instance in instances {
        let answers = summary.served_by.get(instance).copied().unwrap_or(0);
        let errors = summary.errors_by.get(instance).copied().unwrap_or(0);
        let share = if total == 0 {
            0.0
        } else {
            answers as f64 / total as f64
        };
        w.write_record([
            instance.clone(),
            answers.to_string(),
            errors.to_string(),
            format!("{share:.4}"),
        ])?;
    }
    let unnamed = summary.errors_without_replica;
    if unnamed > 0 {
        w.write_record(["(no replica)", "0", &unnamed.to_string(), "0.0000"])?;
    }
    finish(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run that dies keeps every fault that ended before: each row is on disk as
    /// soon as it is written, the file still open.
    #[test]
    fn events_csv_has_each_fault_on_disk_before_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.csv");
        let mut csv = EventsCsv::create(&path).unwrap();
        csv.ready(3, 1500).unwrap();
        let on_disk = || std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk().lines().count(), 2, "{}", on_disk());
        let kill = FaultRecord::injected(0, "kill", "replica-1.0".into(), 2000, 2010);
        csv.fault(&kill).unwrap();
        let text = on_disk();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .starts_with("2010,fault,kill,replica-1.0,injected,2000,"),
            "{text}"
        );
        drop(csv);
    }
}
