//! `cargo bench --bench soak`: what a long run costs, in figures.
//!
//! Drives the load engine against the demo service (memory mode, a separate process
//! on a loopback port) at a fixed open-model rate for `SOAK_SECONDS` (default 60),
//! with the run folder's streamed files (`latency.hlog`, `latency.csv`, and the
//! session spill) in a temporary folder, and prints:
//!
//! - this process's RSS every `SOAK_SAMPLE_SECONDS` (default 10), then the RSS at
//!   5 minutes (or the first sample, in a shorter run) against the RSS at the end;
//! - the final sweep: sessions, time, and time per million sessions;
//! - the sizes of the files a run of that length leaves: `summary.json` and
//!   `report.html` as the run writes them from what the load collected (the
//!   scenario and gates taken from the report tests' fixture, and a kill every
//!   `SOAK_FAULT_EVERY` seconds, default 5, streamed to `events.csv` as the run
//!   goes, like the run's own faults), and the streamed files.
//!
//! `SOAK_RATE` (default 7000 operations/s: 10 appends and 10 reads after each
//! create, about 330 new sessions a second, the demo's rate) sets the load. Figures,
//! not assertions; CI never runs it (an hour is `SOAK_SECONDS=3600`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{endpoint, env_or, load_average, open, plan};
use sessionstorm::load::Driver;
use sessionstorm::metrics::{FailureTimeline, Live};
use sessionstorm::report::{
    self, AnomalySummary, FaultSummary, FullLists, RunFolder, SessionCounts, Summary,
};
use sessionstorm::target::Targets;
use tokio_util::sync::CancellationToken;

/// The report tests' summary: the parts of a report the load does not make.
const FIXTURE: &str = include_str!("../tests/fixtures/summary.json");

/// This process's resident set, in MiB.
fn rss_mib() -> f64 {
    common::status_mib("VmRSS").unwrap_or(0.0)
}

fn size(path: &std::path::Path) -> String {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn main() {
    let seconds = env_or("SOAK_SECONDS", 60);
    let rate = env_or("SOAK_RATE", 7000);
    let every = env_or("SOAK_SAMPLE_SECONDS", 10).max(1);
    let fault_every = env_or("SOAK_FAULT_EVERY", 5).max(1);
    println!(
        "sessionstorm soak: {rate} ops/s for {seconds} s against the demo service (load average {})",
        load_average()
    );
    let endpoint = endpoint();
    let folder = tempfile::tempdir().expect("a temporary run folder");
    let dir = folder.path();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let live = Arc::new(Live::default());
        let start = tokio::time::Instant::now();
        let plan = plan(open(rate as f64, Duration::from_millis(100)), 10);
        let driver = Arc::new(Driver::new(
            Arc::new(Targets::one(&format!("http://127.0.0.1:{}", endpoint.port))),
            &plan,
            1,
            start,
            Arc::clone(&live),
            Arc::new(FailureTimeline::new(Duration::from_secs(seconds * 2 + 600))),
        ));
        let folder = RunFolder::at(dir);
        let sinks = folder.interval_sinks("soak", 1).unwrap();
        let spill = folder.spill().unwrap();
        let stop = CancellationToken::new();
        // A kill every `fault_every` seconds, as chaos reports them: a row in
        // events.csv as each one ends, and the record kept for the summary.
        let faults = {
            let stop = stop.clone();
            let kill = Summary::parse(FIXTURE).expect("the fixture parses").faults.events[0].clone();
            let events = folder.events(3, Duration::from_secs(1)).unwrap();
            tokio::spawn(async move {
                let mut records = Vec::new();
                let mut ticks = tokio::time::interval_at(
                    start + Duration::from_secs(fault_every),
                    Duration::from_secs(fault_every),
                );
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return records,
                        _ = ticks.tick() => {}
                    }
                    let at = start.elapsed().as_millis() as u64;
                    let mut record = kill.clone();
                    (record.planned_ms, record.injected_ms) = (at, at);
                    record.target = format!("replica-{}.{}", records.len() % 3, records.len());
                    events.fault(&record);
                    records.push(record);
                }
            })
        };
        let sampler = {
            let (stop, live) = (stop.clone(), Arc::clone(&live));
            let spill_path = folder.spill_path();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut ticks = tokio::time::interval_at(start, Duration::from_secs(every));
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return samples,
                        _ = ticks.tick() => {}
                    }
                    let (t, rss) = (start.elapsed().as_secs(), rss_mib());
                    println!(
                        "  t {t:>6} s  RSS {rss:>7.1} MiB  ops {:>11}  sessions {:>9}  spill {}",
                        Live::get(&live.ops),
                        Live::get(&live.sessions),
                        size(&spill_path),
                    );
                    samples.push((t, rss));
                }
            })
        };
        let timer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                stop.cancel();
            })
        };
        let outcome = driver.run(&stop, sinks, spill).await;
        timer.await.unwrap();
        let samples = sampler.await.unwrap();
        let faults = faults.await.unwrap();
        let load_elapsed = start.elapsed();
        let at_end = rss_mib();
        let reference = samples
            .iter()
            .find(|(t, _)| *t >= 300)
            .or(samples.get(1))
            .or(samples.first())
            .copied()
            .unwrap_or((0, at_end));
        println!(
            "RSS at {} s {:.1} MiB, at the end ({} s) {at_end:.1} MiB: {:+.1} %",
            reference.0,
            reference.1,
            load_elapsed.as_secs(),
            (at_end / reference.1 - 1.0) * 100.0
        );
        let spill_bytes = outcome.sessions.bytes;
        let sessions = outcome.sessions.count;
        println!(
            "spill: {sessions} sessions in {:.1} MiB ({:.0} bytes each)",
            spill_bytes as f64 / 1048576.0,
            spill_bytes as f64 / sessions.max(1) as f64
        );
        let sweeping = Instant::now();
        let swept = driver.sweep(&outcome.sessions).await;
        let took = sweeping.elapsed();
        println!(
            "sweep: {} sessions checked in {:.1} s ({:.1} s per million), {} unverified, {} anomalies; RSS after it {:.1} MiB",
            swept.checked,
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / swept.checked.max(1) as f64,
            swept.unverified,
            outcome.anomalies.len() + swept.anomalies.len(),
            rss_mib()
        );
        let mut totals = outcome.collected.totals;
        totals.merge(&swept.recorder);
        let mut anomalies = outcome.anomalies;
        anomalies.extend(swept.anomalies);
        let mut summary: Summary = Summary::parse(FIXTURE).expect("the fixture parses");
        summary.duration_s = seconds as f64;
        summary.load_elapsed_s = load_elapsed.as_secs_f64();
        summary.intervals = outcome.collected.intervals;
        summary.operations = report::operations(&totals);
        summary.served_by = std::mem::take(&mut totals.served_by);
        summary.sessions = SessionCounts {
            created: sessions,
            checked: swept.checked,
            unverified: swept.unverified,
            expired: 0,
            sweep_after_ms: 0,
            sweep_ms: took.as_millis() as u64,
        };
        summary.faults = FaultSummary::of(&faults, None, &anomalies);
        summary.anomalies = AnomalySummary::of(anomalies.clone());
        println!(
            "events.csv as the run left it: {} ({} faults)",
            size(&dir.join("events.csv")),
            faults.len()
        );
        let all = FullLists {
            anomalies: &anomalies,
            faults: &faults,
        };
        folder.finish(&mut summary, all).expect("the report is written");
        println!(
            "files: summary.json {}, report.html {}, latency.csv {}, latency.hlog {}, events.csv {} ({} points in the summary's series, {} of {} faults listed)",
            size(&dir.join("summary.json")),
            size(&dir.join("report.html")),
            size(&dir.join("latency.csv")),
            size(&dir.join("latency.hlog")),
            size(&dir.join("events.csv")),
            summary.intervals.len(),
            summary.faults.events_listed,
            summary.faults.events_total
        );
    });
}
