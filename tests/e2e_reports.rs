//! End-to-end tests of the run folder, gates and `compare` with the real binary and
//! real containers. Like tests/e2e.rs, each run has its own `--run-id` and a guard
//! that removes whatever carries that run's label, pass or fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, docker_turn, repo, unique, RunGuard};

/// smoke.toml with its `[gates]` replaced by `gates` and its chaos by `chaos`.
fn scenario(dir: &Path, name: &str, gates: &str, chaos: &str) -> PathBuf {
    let smoke = std::fs::read_to_string(repo("scenarios/smoke.toml")).unwrap();
    let body = smoke.split("[[chaos]]").next().unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("{body}{chaos}\n[gates]\n{gates}\n")).unwrap();
    path
}

/// Runs `scenario` for `duration` into `out/<id>`, with `extra` arguments.
fn run(scenario: &Path, out: &Path, id: &str, duration: &str, extra: &[&str]) -> Output {
    let _guard = RunGuard(id.to_string());
    bin()
        .arg("run")
        .arg(scenario)
        .args(["--run-id", id, "--duration", duration, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Secrets the gated run is given, each in one of the ways a user can: in the
/// file under a name the rules know, under a name the scenario lists in `secrets`,
/// and on the command line.
const SECRETS: [&str; 3] = [
    "rails-signing-secret-5f2a9c",
    "postgres://cart:pg-pass-77d1@db/cart",
    "master-key-0b8e41",
];

/// Gives the scenario at `path` the first two of [`SECRETS`].
fn with_secrets(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let env = format!(
        "env = {{ MODE = \"redis\", SECRET_KEY_BASE = \"{}\", DATABASE_URL = \"{}\" }}",
        SECRETS[0], SECRETS[1]
    );
    let text = text.replace("env = { MODE = \"redis\" }", &env);
    assert!(text.contains(SECRETS[0]), "smoke.toml's env line changed");
    std::fs::write(path, format!("secrets = [\"DATABASE_URL\"]\n{text}")).unwrap();
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const KILL: &str = "[[chaos]]\nfault = \"kill\"\ntarget = \"random-replica\"\nat = [\"3s\"]\n";

#[test]
fn a_missed_gate_fails_the_run_with_exit_1_a_junit_failure_and_a_full_folder() {
    let _docker = docker_turn();
    let dir = tempfile::tempdir().unwrap();
    let gates = r#"checks = ["anomalies == 0", "p99_ms.append < 0.001"]"#;
    let path = scenario(dir.path(), "gated", gates, KILL);
    with_secrets(&path);
    let id = unique("e2e-gate");
    let master_key = format!("service.env.RAILS_MASTER_KEY={}", SECRETS[2]);
    let output = run(&path, dir.path(), &id, "6s", &["--set", &master_key]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL p99_ms.append < 0.001"),
        "{}",
        describe(&output)
    );
    assert!(
        stdout.contains("gate p99_ms.append < 0.001 missed"),
        "{}",
        describe(&output)
    );

    let folder = dir.path().join(&id);
    for file in [
        "summary.json",
        "latency.csv",
        "events.csv",
        "sessions.csv",
        "replicas.csv",
        "latency.hlog",
        "junit.xml",
        "report.html",
    ] {
        let len = std::fs::metadata(folder.join(file))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 0, "{file} missing or empty");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    let problems = common::schema_problems(&summary);
    assert!(
        problems.is_empty(),
        "a real summary.json breaks the schema: {problems:#?}"
    );
    assert_eq!(summary["verdict"]["status"], "failed");
    assert_eq!(
        summary["gates"][0]["passed"], true,
        "no anomaly in redis mode"
    );
    assert_eq!(summary["gates"][1]["passed"], false);

    let junit = std::fs::read_to_string(folder.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"tests="3""#) && junit.contains(r#"failures="1""#),
        "{junit}"
    );
    assert!(
        junit.contains("gate p99_ms.append &lt; 0.001 missed"),
        "{junit}"
    );

    let events = std::fs::read_to_string(folder.join("events.csv")).unwrap();
    assert!(
        events.lines().any(|l| l.contains(",fault,kill,replica-")),
        "{events}"
    );
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains("kill replica-"), "the kill is drawn");
    // Five charts and the store's lane (its Redis was watched), no anomalies chart.
    assert_eq!(html.matches("<svg").count(), 6);
    assert!(html.contains(r#"id="chart-store""#));
    let store = &summary["store"];
    assert!(store["points"].as_array().unwrap().len() >= 5, "{store}");
    let most = (store["points"].as_array().unwrap().iter())
        .map(|p| p["keys_max"].as_u64().unwrap())
        .max();
    assert!(most > Some(0), "the store held the sessions: {store}");

    // The secrets are in no file of the run folder, nor in what the run printed.
    let kept = std::fs::read_to_string(folder.join("scenario.toml")).unwrap();
    assert!(kept.contains("SECRET_KEY_BASE = \"***\""), "{kept}");
    assert!(kept.contains("RAILS_MASTER_KEY=***"), "{kept}");
    for entry in std::fs::read_dir(&folder).unwrap() {
        let file = entry.unwrap().path();
        let Ok(bytes) = std::fs::read(&file) else {
            continue; // a folder
        };
        let text = String::from_utf8_lossy(&bytes);
        for secret in SECRETS {
            assert!(!text.contains(secret), "{} holds {secret}", file.display());
        }
    }
    for secret in SECRETS {
        assert!(!describe(&output).contains(secret), "printed {secret}");
    }
}

#[test]
fn compare_flags_a_run_slowed_by_more_users_than_the_machine_serves() {
    let _docker = docker_turn();
    let dir = tempfile::tempdir().unwrap();
    let none = "checks = []";
    // The same service without chaos, with 2 users and then with 48 on two cores:
    // every request of the second run queues behind the others.
    let baseline = scenario(dir.path(), "calm", none, "");
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(text.contains("users = 16"), "smoke.toml changed: {text}");
    std::fs::write(&baseline, text.replace("users = 16", "users = 2")).unwrap();
    let slowed = dir.path().join("slowed.toml");
    std::fs::write(&slowed, text.replace("users = 16", "users = 48")).unwrap();
    let (base_id, slow_id) = (unique("e2e-base"), unique("e2e-slow"));
    let output = run(&baseline, dir.path(), &base_id, "5s", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let output = run(&slowed, dir.path(), &slow_id, "5s", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));

    let compare = |a: &str, b: &str| {
        bin()
            .arg("compare")
            .arg(dir.path().join(a))
            .arg(dir.path().join(b))
            .args(["--format", "markdown"])
            .output()
            .unwrap()
    };
    let output = compare(&base_id, &slow_id);
    let table = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(table.contains("❌ regression"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("| p50_ms.append |") && l.ends_with("| FAIL |")),
        "{table}"
    );
    // The other way round, the slowed run is the baseline: faster is no regression.
    let output = compare(&slow_id, &base_id);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("| p50_ms.append |") && l.ends_with("| pass |")),
        "{table}"
    );
    // An unreadable run is invalid input.
    let output = compare(&base_id, "no-such-run");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("the current run: cannot read"));
}

#[test]
fn an_interrupted_run_still_leaves_every_file_marked_interrupted() {
    use std::io::{BufRead, BufReader};
    let _docker = docker_turn();
    let dir = tempfile::tempdir().unwrap();
    let id = unique("e2e-int-report");
    let _guard = RunGuard(id.clone());
    let mut child = bin()
        .arg("run")
        .arg(repo("scenarios/smoke.toml"))
        .args(["--run-id", &id, "--out"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("load:"));
    assert!(started, "the load never started");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_secs(2));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let seen = drain.join().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:#?}");

    let folder = dir.path().join(&id);
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for file in [
        "summary.json",
        "latency.csv",
        "events.csv",
        "sessions.csv",
        "replicas.csv",
        "latency.hlog",
        "junit.xml",
        "report.html",
    ] {
        assert!(names.iter().any(|n| n == file), "{file} missing: {names:?}");
    }
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let junit = std::fs::read_to_string(folder.join("junit.xml")).unwrap();
    assert!(junit.contains("the run was interrupted"), "{junit}");
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains(r#"<div class="banner interrupted" id="verdict">"#));
    let latency = std::fs::read_to_string(folder.join("latency.csv")).unwrap();
    assert!(
        latency.lines().count() > 1,
        "seconds of load before the interrupt are there"
    );
}
