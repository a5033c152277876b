//! The run folder, `out/<run id>`: [`RunFolder`] makes every file in it, so the
//! conductor (`run.rs`) says what happens and never how a file is written.
//!
//! The scenario as run comes first, before any container exists, so a full disk
//! or an unwritable `--out` stops the run with nothing to undo. Then the files
//! streamed while the run goes, flushed per row so that a run that dies leaves them
//! up to its death: `latency.csv` and `latency.hlog` (the collector's
//! [`IntervalSink`](crate::load::collector::IntervalSink)s), `events.csv` a row as
//! each fault ends ([`EventsLog`]), the session spill, and `summary.json` marked
//! running ([`Checkpoint`]). At the end, summary.json and every format made from it
//! ([`RunFolder::finish`]), each through a temporary name and a rename, so a reader
//! (or a crash) never sees half a file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::checkpoint::Checkpoint;
use super::csv::{EventsCsv, LatencyCsv};
use super::hlog::HlogWriter;
use super::{csv, html, junit, Summary};
use crate::chaos::FaultRecord;
use crate::error::{Error, Result};
use crate::load::collector::Sinks;
use crate::load::spill::{Spill, SPILL_FILE};
use crate::metrics::Live;
use crate::plan::Plan;
use crate::session::Anomaly;

/// The scenario file in the run folder.
pub const SCENARIO_FILE: &str = "scenario.toml";
/// The latency interval log's name in the run folder.
pub const HLOG_FILE: &str = "latency.hlog";

/// The files of a run folder, by their key in `Summary::files`.
pub const FILES: [(&str, &str); 8] = [
    ("summary", "summary.json"),
    ("latency_csv", "latency.csv"),
    ("events_csv", "events.csv"),
    ("sessions_csv", "sessions.csv"),
    ("replicas_csv", "replicas.csv"),
    ("latency_log", HLOG_FILE),
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

/// One run's folder and every file in it.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
}

impl RunFolder {
    /// Makes the folder `out/<run_id>`, which must not exist yet: the first thing a
    /// run does, so an unwritable `--out` fails before any container exists.
    pub fn create(out: &Path, run_id: &str) -> Result<RunFolder> {
        let dir = out.join(run_id);
        std::fs::create_dir_all(out)
            .and_then(|()| std::fs::create_dir(&dir))
            .map_err(|e| {
                let fix = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    "a run of that id exists; choose another --run-id"
                } else {
                    "choose another folder with --out"
                };
                Error::Invalid(format!(
                    "cannot create the report folder {}: {e}; {fix}",
                    dir.display()
                ))
            })?;
        Ok(RunFolder { dir })
    }

    /// A folder that exists already: one a run left, for `sessionstorm report`.
    pub fn at(dir: &Path) -> RunFolder {
        RunFolder {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keeps the scenario as run beside the report, secrets masked: the file as
    /// written, headed by the overrides the command line applied to it.
    pub fn write_scenario(&self, plan: &Plan) -> Result<()> {
        use std::fmt::Write as _;
        let mut text = format!(
            "# scenario {} as run (secrets masked)\n",
            plan.source.path.display()
        );
        for setting in &plan.overrides {
            let _ = writeln!(text, "# override: {setting}");
        }
        text.push_str(&crate::secrets::mask_scenario(&plan.source.text));
        let path = self.dir.join(SCENARIO_FILE);
        std::fs::write(&path, text).map_err(|e| {
            let message = format!(
                "cannot write {}: {e}; free some space or choose another folder with --out",
                path.display()
            );
            // A full disk is the machine's problem; anything else is the folder given.
            if e.kind() == std::io::ErrorKind::StorageFull {
                Error::infra(anyhow::anyhow!(message))
            } else {
                Error::Invalid(message)
            }
        })
    }

    /// The latency interval log (its header naming the `scenario` and `seed`) and
    /// `latency.csv`, for the collector to stream every second into.
    pub fn interval_sinks(&self, scenario: &str, seed: u64) -> Result<Sinks> {
        let hlog_path = self.dir.join(HLOG_FILE);
        let comment = format!("sessionstorm run of scenario {scenario} with seed {seed}");
        let hlog = HlogWriter::create(&hlog_path, SystemTime::now(), &comment)
            .map_err(cannot_write(&hlog_path))?;
        let latency_path = self.dir.join("latency.csv");
        let latency = LatencyCsv::create(&latency_path).map_err(cannot_write(&latency_path))?;
        Ok(vec![Box::new(hlog), Box::new(latency)])
    }

    /// `events.csv` with its header and the cluster's `ready` row: `replicas`
    /// healthy `ready` after the network was made.
    pub fn events(&self, replicas: usize, ready: Duration) -> Result<EventsLog> {
        let path = self.dir.join("events.csv");
        let mut csv = EventsCsv::create(&path).map_err(cannot_write(&path))?;
        (csv.ready(replicas, ready.as_millis() as u64)).map_err(cannot_write(&path))?;
        Ok(EventsLog(Mutex::new(Some(csv))))
    }

    /// The file finished sessions wait in for the final sweep.
    pub fn spill(&self) -> Result<Spill> {
        let path = self.spill_path();
        Spill::create(&path).map_err(cannot_write(&path))
    }

    pub fn spill_path(&self) -> PathBuf {
        self.dir.join(SPILL_FILE)
    }

    /// summary.json from `base`, marked running, rewritten as the run goes until
    /// the checkpoint is stopped.
    pub fn checkpoint(
        &self,
        base: Summary,
        live: Arc<Live>,
        start: Instant,
        duration: Duration,
    ) -> Checkpoint {
        Checkpoint::spawn(base, &self.dir, live, start, duration)
    }

    /// Writes every file of the run folder but the latency log and latency.csv
    /// (written as the run goes); returns summary.json's path and the warnings.
    /// summary.json comes first and is the only one whose failure is an error: any
    /// other file that cannot be made is a warning, and the rest are still written.
    /// events.csv, streamed while the run went, is written again whole from
    /// `all.faults`, with the error windows measured after the load.
    pub fn finish(
        &self,
        summary: &mut Summary,
        all: FullLists<'_>,
    ) -> std::io::Result<(PathBuf, Vec<String>)> {
        summary.files = FILES.iter().map(|(k, f)| (*k, f.to_string())).collect();
        let json = summary.write_json(&self.dir)?;
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
            let path = self.dir.join(name);
            if let Err(e) = export().and_then(|bytes| write_atomically(&path, &bytes)) {
                warnings.push(format!("cannot write {}: {e}", path.display()));
            }
        }
        Ok((json, warnings))
    }

    /// Rewrites report.html and junit.xml from the folder's summary.json (say, of
    /// a folder downloaded from CI); returns report.html's path and the summary.
    pub fn rebuild(&self) -> Result<(PathBuf, Summary)> {
        let summary = Summary::read(&self.dir).map_err(Error::Invalid)?;
        let write = |name: &str, text: String| {
            let path = self.dir.join(name);
            write_atomically(&path, text.as_bytes())
                .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.display())))
                .map(|()| path)
        };
        let junit = junit::render(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
        write("junit.xml", junit)?;
        let html = html::render(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
        let path = write("report.html", html)?;
        Ok((path, summary))
    }
}

/// `events.csv` while the run goes: a row as each fault ends, from chaos's
/// callback (hence the lock). The first failure stops the file and says so once;
/// the run goes on, and the end writes the file again whole.
#[derive(Debug)]
pub struct EventsLog(Mutex<Option<EventsCsv<BufWriter<File>>>>);

impl EventsLog {
    pub fn fault(&self, record: &FaultRecord) {
        if let Ok(mut csv) = self.0.lock() {
            if let Some(Err(err)) = csv.as_mut().map(|w| w.fault(record)) {
                eprintln!("warning: events.csv stopped early: {err}");
                *csv = None;
            }
        }
    }
}

/// The error for a file of the run folder that cannot be made.
fn cannot_write(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::infra(anyhow::anyhow!("cannot write {}: {e}", path.display()))
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
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
