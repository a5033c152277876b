//! End-to-end tests: the real `sessionstorm` binary against real containers.
//!
//! Each test names its run (`--run-id`) and holds a guard that removes whatever
//! carries that run's label when the test ends, pass or fail, so a broken run
//! leaves nothing behind. Runs are serialised: two clusters at once on a two-core
//! machine would measure the machine, not the service.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

static DOCKER: Mutex<()> = Mutex::new(());

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sessionstorm"))
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Names of containers and networks carrying `label`.
fn labelled(label: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (what, format) in [("ps", "{{.Names}}"), ("network", "{{.Name}}")] {
        let mut cmd = Command::new("docker");
        if what == "network" {
            cmd.args(["network", "ls"]);
        } else {
            cmd.args(["ps", "-a"]);
        }
        let out = cmd
            .args(["--filter", &format!("label={label}"), "--format", format])
            .output()
            .expect("the docker CLI runs");
        names.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string),
        );
    }
    names
}

/// Removes the run's objects when dropped, whatever happened.
struct RunGuard {
    id: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let _ = bin().args(["cleanup", "--run", &self.id]).output();
    }
}

struct Run {
    output: Output,
    summary: Option<Value>,
    stdout: String,
}

/// Runs a scenario under a fresh run id; returns its output and summary.json.
fn run_scenario(scenario: &str, run_id: &str, extra: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let _guard = RunGuard {
        id: run_id.to_string(),
    };
    let output = bin()
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

fn describe(run: &Run) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        run.output.status.code(),
        run.stdout,
        String::from_utf8_lossy(&run.output.stderr)
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

#[test]
fn smoke_passes_with_kills_and_no_anomaly_and_leaves_nothing() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-smoke");
    let run = run_scenario("scenarios/smoke.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().expect("summary.json written");
    assert_eq!(summary["verdict"]["status"], "passed");
    assert_eq!(summary["anomalies"]["total"], 0, "{}", describe(&run));
    assert!(
        summary["faults"]["injected"].as_u64().unwrap() >= 1,
        "{}",
        describe(&run)
    );
    let created = summary["sessions"]["created"].as_u64().unwrap();
    assert!(created > 0);
    assert_eq!(summary["sessions"]["checked"].as_u64().unwrap(), created);
    assert!(summary["operations"]["append"]["ok"].as_u64().unwrap() > 0);
    assert!(
        summary["operations"]["append"]["latency_ms"]["p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // Kills replaced replicas: answers came from more instances than the first three.
    assert!(
        summary["served_by"].as_object().unwrap().len() > 3,
        "{}",
        describe(&run)
    );
    assert!(run.stdout.contains("verdict PASSED"), "{}", describe(&run));
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
}

#[test]
fn stateful_memory_fails_with_lost_sessions() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-memory");
    let run = run_scenario("scenarios/stateful-memory.toml", &id, &["--duration", "8s"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let summary = run.summary.as_ref().expect("summary.json written");
    assert_eq!(summary["verdict"]["status"], "failed");
    assert!(
        summary["anomalies"]["by_kind"]["lost_session"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        describe(&run)
    );
    let sample = &summary["anomalies"]["samples"][0];
    assert_eq!(sample["kind"], "lost_session");
    assert!(sample["served_by"]
        .as_str()
        .unwrap()
        .starts_with("replica-"));
    assert!(run.stdout.contains("lost_session"));
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
}

#[test]
fn first_interrupt_tears_down_reports_and_exits_130() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-interrupt");
    let _guard = RunGuard { id: id.clone() };
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "run",
            repo("scenarios/smoke.toml").to_str().unwrap(),
            "--run-id",
            &id,
            "--out",
        ])
        .arg(out.path())
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
    // Keep draining stdout, as a terminal would.
    let drain = std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !labelled(&format!("sessionstorm.run={id}")).is_empty(),
        "cluster is up"
    );
    let signalled = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    seen.extend(drain.join().unwrap());
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("verdict INTERRUPTED")),
        "{seen:#?}"
    );
    assert!(signalled.elapsed() < Duration::from_secs(30));
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.path().join(&id).join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["verdict"]["status"], "interrupted");
    assert!(summary["load_elapsed_s"].as_f64().unwrap() < 10.0);
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
}

#[test]
fn cleanup_removes_only_labelled_objects() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-cleanup");
    let labelled_name = format!("{id}-labelled");
    let bystander = format!("{id}-bystander");
    // Any local image will do: the containers are created, never started.
    let create = |name: &str, label: Option<&str>| {
        let mut cmd = Command::new("docker");
        cmd.args(["create", "--name", name]);
        if let Some(label) = label {
            cmd.args(["--label", label]);
        }
        let status = cmd.args(["sessionstorm/redis:latest"]).output().unwrap();
        assert!(status.status.success(), "{status:?}");
    };
    let _guard = RunGuard { id: id.clone() };
    struct Bystander(String);
    impl Drop for Bystander {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _bystander = Bystander(bystander.clone());
    // Make sure the image exists (builds it on a fresh machine).
    assert!(bin().args(["images", "build"]).status().unwrap().success());
    create(&labelled_name, Some(&format!("sessionstorm.run={id}")));
    create(&bystander, None);

    let dry = bin()
        .args(["cleanup", "--run", &id, "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).contains(&format!("would remove {labelled_name}")));
    assert_eq!(labelled(&format!("sessionstorm.run={id}")), [labelled_name]);

    let real = bin().args(["cleanup", "--run", &id]).output().unwrap();
    assert!(real.status.success());
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
    let still_there = Command::new("docker")
        .args(["inspect", "--format", "{{.Name}}", &bystander])
        .output()
        .unwrap();
    assert!(
        still_there.status.success(),
        "the unlabelled container must survive"
    );
}

#[test]
fn unreachable_docker_is_exit_3_with_a_hint() {
    let started = Instant::now();
    let out = tempfile::tempdir().unwrap();
    let output = bin()
        .args([
            "run",
            repo("scenarios/smoke.toml").to_str().unwrap(),
            "--out",
        ])
        .arg(out.path())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the Docker engine"),
        "{stderr}"
    );
    assert!(stderr.contains("docker info"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn invalid_scenario_is_exit_2_with_every_problem_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(repo("scenarios/smoke.toml"))
        .unwrap()
        .replace("replicas = 3", "replicas = 0")
        .replace("every = \"5s\"", "every = \"5 parsecs\"");
    std::fs::write(&path, &text).unwrap();
    for command in ["validate", "run"] {
        let output = bin()
            .args([command, path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("2 problems"), "{stderr}");
        assert!(
            stderr.contains("bad.toml:11:12: `service.replicas` is 0"),
            "{stderr}"
        );
        assert!(stderr.contains("parsecs"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let missing = bin()
        .args(["validate", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the scenario file"));
}

#[test]
fn shipped_scenarios_validate() {
    for entry in std::fs::read_dir(repo("scenarios")).unwrap() {
        let path = entry.unwrap().path();
        let output = bin()
            .args(["validate", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}: {output:?}", path.display());
    }
}

#[test]
fn open_model_scenario_passes_with_both_latencies_and_an_interval_log() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-open");
    let out = tempfile::tempdir().unwrap();
    let _guard = RunGuard { id: id.clone() };
    let output = bin()
        .args([
            "run",
            repo("scenarios/open-model.toml").to_str().unwrap(),
            "--run-id",
            &id,
        ])
        .args(["--duration", "15s", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dir = out.path().join(&id);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["load"]["model"], "open");
    assert!(summary["load"]["missed_starts"].is_u64());
    let append = &summary["operations"]["append"];
    assert!(append["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(append["latency_uncorrected_ms"]["p99"].as_f64().unwrap() > 0.0);
    let intervals = summary["intervals"].as_array().unwrap();
    assert!(intervals.len() >= 14, "{} intervals", intervals.len());
    assert_eq!(intervals[0]["warmup"], true);
    assert!(
        intervals[5]["ops"]["append"]["corrected_ms"]["p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let hlog = std::fs::read_to_string(dir.join("latency.hlog")).unwrap();
    assert!(
        hlog.contains("Tag=append.ok.corrected,"),
        "{}",
        &hlog[..hlog.len().min(500)]
    );
    assert!(hlog.contains("Tag=append.ok.uncorrected,"));
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
}

#[test]
fn write_behind_kill_shows_lost_writes_not_lost_sessions() {
    let _docker = DOCKER.lock().unwrap_or_else(|e| e.into_inner());
    let id = unique("e2e-write-behind");
    let run = run_scenario("scenarios/write-behind.toml", &id, &["--duration", "10s"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let summary = run.summary.as_ref().expect("summary.json written");
    let by_kind = &summary["anomalies"]["by_kind"];
    assert!(
        by_kind["lost_write"].as_u64().unwrap() > 0,
        "{}",
        describe(&run)
    );
    assert_eq!(by_kind["lost_session"], 0, "{}", describe(&run));
    let lost = summary["anomalies"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "lost_write")
        .unwrap();
    assert!(
        lost["nearest_fault"]
            .as_str()
            .unwrap()
            .starts_with("kill of replica-"),
        "{lost}"
    );
    assert!(labelled(&format!("sessionstorm.run={id}")).is_empty());
}
