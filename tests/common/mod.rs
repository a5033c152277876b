//! What the end-to-end test files share: the binary, run names, the guard that
//! removes a run's objects whatever happens, and starting a run in the background.
//!
//! Each test file uses its own part of this module, so the parts it leaves unused
//! are not dead code.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

/// Runs against Docker one at a time: two clusters at once on a two-core machine
/// would measure the machine, not the service.
static DOCKER: Mutex<()> = Mutex::new(());

pub fn docker_turn() -> MutexGuard<'static, ()> {
    DOCKER.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionstorm"))
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A run id no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// Removes the run's objects when dropped, whatever happened.
pub struct RunGuard(pub String);

impl Drop for RunGuard {
    fn drop(&mut self) {
        let _ = bin().args(["cleanup", "--run", &self.0]).output();
    }
}

/// Names of the containers, networks, volumes and Swarm services of run `id` (no
/// services where this engine is no swarm manager).
pub fn labelled(id: &str) -> Vec<String> {
    let label = format!("label=sessionstorm.run={id}");
    let mut names = Vec::new();
    for args in [
        &["ps", "-a", "--filter", &label, "--format", "{{.Names}}"][..],
        &["network", "ls", "--filter", &label, "--format", "{{.Name}}"][..],
        &["volume", "ls", "--filter", &label, "--format", "{{.Name}}"][..],
        &["service", "ls", "--filter", &label, "--format", "{{.Name}}"][..],
    ] {
        let out = Command::new("docker")
            .args(args)
            .output()
            .expect("the docker CLI runs");
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(String::from),
        );
    }
    names
}

pub type Lines = std::io::Lines<BufReader<ChildStdout>>;

/// Starts `sessionstorm run SCENARIO` in the background and reads its output until
/// the load has started; returns the process, the rest of its output and the lines
/// read so far.
pub fn start_run(scenario: &Path, id: &str, out: &Path) -> (Child, Lines, Vec<String>) {
    let mut child = bin()
        .args(["run", scenario.to_str().unwrap(), "--run-id", id, "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in stdout.by_ref() {
        let line = line.unwrap();
        let load_started = line.starts_with("load:");
        seen.push(line);
        if load_started {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("load:")),
        "{seen:#?}"
    );
    (child, stdout, seen)
}

/// A finished run: what it printed and its summary.json, if it wrote one.
pub struct Run {
    pub output: Output,
    pub summary: Option<Value>,
    pub stdout: String,
}

/// Runs a scenario (a path in the repository, or an absolute one) under `run_id`;
/// returns its output and summary.json. Whatever the run leaves is removed.
pub fn run_scenario(scenario: &str, run_id: &str, extra: &[&str]) -> Run {
    run_scenario_on(None, scenario, run_id, extra)
}

/// [`run_scenario`] against another Docker engine (`DOCKER_HOST`) when given.
pub fn run_scenario_on(engine: Option<&str>, scenario: &str, run_id: &str, extra: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let _guard = RunGuard(run_id.to_string());
    let mut command = bin();
    if let Some(engine) = engine {
        command.env("DOCKER_HOST", engine);
    }
    let output = command
        .args([
            "run",
            repo(scenario).to_str().unwrap(),
            "--run-id",
            run_id,
            "--out",
        ])
        .arg(out.path())
        .args(extra)
        .output()
        .expect("sessionstorm runs");
    let summary = std::fs::read(out.path().join(run_id).join("summary.json"))
        .ok()
        .map(|bytes| serde_json::from_slice(&bytes).expect("summary.json is JSON"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    Run {
        output,
        summary,
        stdout,
    }
}

/// The exit code and everything the run printed, for an assertion message.
pub fn describe(run: &Run) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        run.output.status.code(),
        run.stdout,
        String::from_utf8_lossy(&run.output.stderr)
    )
}

/// Writes a scenario into a temporary folder; returns the folder (keep it alive).
pub fn temp_scenario(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// The run's summary.json, which every finished run writes.
pub fn summary(run: &Run) -> &Value {
    run.summary.as_ref().expect("summary.json written")
}

/// Asserts a passing run that really went through kills and really wrote: exit 0, no
/// anomaly, at least two faults, at least `sessions` sessions, every one checked by the
/// sweep, more than `appends` writes acknowledged, nothing labelled left behind.
/// Returns the summary for the test's own checks.
pub fn assert_passed_under_kills<'r>(
    run: &'r Run,
    id: &str,
    sessions: u64,
    appends: u64,
) -> &'r Value {
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(run));
    let s = summary(run);
    assert_eq!(s["anomalies"]["total"], 0, "{}", describe(run));
    assert!(
        s["faults"]["injected"].as_u64().unwrap() >= 2,
        "{}",
        s["faults"]
    );
    let created = s["sessions"]["created"].as_u64().unwrap();
    assert!(created >= sessions, "{}", s["sessions"]);
    assert_eq!(s["sessions"]["checked"].as_u64(), Some(created));
    assert_eq!(s["sessions"]["unverified"], 0);
    assert!(
        s["operations"]["append"]["ok"].as_u64().unwrap() > appends,
        "{}",
        s["operations"]
    );
    assert_errors_add_up(s);
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
    s
}

/// Asserts that every failed request of the operations is put down to a replica
/// (`errors_by`) or to none (`errors_without_replica`), once.
pub fn assert_errors_add_up(s: &Value) {
    let of_ops: u64 = (s["operations"].as_object().unwrap().values())
        .map(|o| o["errors"].as_u64().unwrap())
        .sum();
    let by_replica: u64 = (s["errors_by"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    let without = s["errors_without_replica"].as_u64().unwrap();
    assert_eq!(
        by_replica + without,
        of_ops,
        "errors_by {} + errors_without_replica {without} against the operations' {of_ops}",
        s["errors_by"]
    );
}

/// Asserts a run that failed with at least `lost` lost sessions and left nothing
/// labelled behind; returns its anomaly samples.
pub fn assert_lost_sessions<'r>(run: &'r Run, id: &str, lost: u64) -> &'r [Value] {
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(run));
    assert!(run.stdout.contains("verdict FAILED"), "{}", describe(run));
    let s = summary(run);
    let found = s["anomalies"]["by_kind"]["lost_session"].as_u64().unwrap();
    assert!(found >= lost, "{}", s["anomalies"]);
    assert_errors_add_up(s);
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
    s["anomalies"]["samples"].as_array().unwrap()
}

/// Whether an anomaly in `samples` says `text` in its detail.
pub fn any_detail(samples: &[Value], text: &str) -> bool {
    samples
        .iter()
        .any(|a| a["detail"].as_str().unwrap().contains(text))
}

/// Whether the network namespace of container `name` drops all input (the
/// `blackhole` fault's rules), as the host's `iptables` sees it from inside.
pub fn blackholed(name: &str) -> bool {
    let pid = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", name])
        .output()
        .expect("the docker CLI runs");
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    if pid.is_empty() || pid == "0" {
        return false;
    }
    let rules = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["iptables", "-S", "INPUT"])
        .output()
        .expect("nsenter and iptables run");
    String::from_utf8_lossy(&rules.stdout).contains("-j DROP")
}

/// Polls `done` every 100 ms for up to `limit`; says how long it took, or `None`
/// when it never held.
pub fn wait_for(
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> Option<std::time::Duration> {
    let began = std::time::Instant::now();
    loop {
        if done() {
            return Some(began.elapsed());
        }
        if began.elapsed() > limit {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Kills the harness with SIGKILL, as the OOM killer would: no teardown runs.
pub fn sigkill(child: &mut Child) {
    child.kill().expect("SIGKILL the harness");
    child.wait().expect("the harness is reaped");
}

/// `[[chaos]]` entries that hold far longer than a test's run: replica-0 paused and
/// replica-1 disconnected from 1 s, for 10 minutes; only teardown or the reaper
/// undoes them.
pub const HELD_FAULTS: &str = r#"[[chaos]]
fault = "pause"
target = "replica-0"
at = ["1s"]
duration = "10m"
[[chaos]]
fault = "disconnect"
target = "replica-1"
at = ["1s"]
duration = "10m"
"#;

/// What breaks the committed summary.json schema in `summary`, one line each.
pub fn schema_problems(summary: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(include_str!("../../reports/summary.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}
