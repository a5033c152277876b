//! End-to-end tests: the real `sessionstorm` binary against real containers.
//!
//! Each test names its run (`--run-id`) and holds a guard that removes whatever
//! carries that run's label when the test ends, pass or fail, so a broken run
//! leaves nothing behind. Runs are serialised: two clusters at once on a two-core
//! machine would measure the machine, not the service.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    bin, describe, docker_turn, labelled, repo, run_scenario, start_run, temp_scenario, unique,
    Run, RunGuard,
};

use serde_json::Value;

#[test]
fn smoke_passes_with_kills_and_no_anomaly_and_leaves_nothing() {
    let _docker = docker_turn();
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
    assert!(labelled(&id).is_empty());
}

#[test]
fn stateful_memory_fails_with_lost_sessions() {
    let _docker = docker_turn();
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
    assert!(labelled(&id).is_empty());
}

#[test]
fn first_interrupt_tears_down_reports_and_exits_130() {
    let _docker = docker_turn();
    let id = unique("e2e-interrupt");
    let _guard = RunGuard(id.clone());
    let out = tempfile::tempdir().unwrap();
    let (mut child, stdout, mut seen) = start_run(&repo("scenarios/smoke.toml"), &id, out.path());
    // Keep draining stdout, as a terminal would.
    let drain = std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(2));
    assert!(!labelled(&id).is_empty(), "cluster is up");
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
    assert!(labelled(&id).is_empty());
}

#[test]
fn cleanup_removes_only_labelled_objects() {
    let _docker = docker_turn();
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
    let _guard = RunGuard(id.clone());
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
    assert_eq!(labelled(&id), [labelled_name]);

    let real = bin().args(["cleanup", "--run", &id]).output().unwrap();
    assert!(real.status.success());
    assert!(labelled(&id).is_empty());
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

/// After a chaos run: nothing of the run is left (containers, network, volume), none
/// of its containers is paused, and before teardown every replica was
/// healthy again on the run's network (a replica still paused or disconnected fails
/// that check, which leaves `healed_ms` null).
fn assert_clean_after_chaos(run: &Run, id: &str) {
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
    let paused = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=sessionstorm.run={id}"),
            "--filter",
            "status=paused",
        ])
        .output()
        .unwrap();
    assert!(paused.stdout.is_empty(), "a labelled container is paused");
    let summary = run.summary.as_ref().expect("summary.json written");
    assert!(
        summary["cluster"]["healed_ms"].is_u64(),
        "the cluster did not heal after chaos: {}",
        describe(run)
    );
    for event in summary["faults"]["events"].as_array().unwrap() {
        assert_ne!(event["outcome"], "revert_failed", "{event}");
        assert_ne!(event["outcome"], "failed", "{event}");
    }
}

fn events(summary: &Value) -> &Vec<Value> {
    summary["faults"]["events"].as_array().unwrap()
}

#[test]
fn plan_prints_the_same_timeline_for_the_same_seed_and_another_for_another() {
    let plan = |seed: &str| {
        let output = bin()
            .args([
                "plan",
                repo("scenarios/kill-storm.toml").to_str().unwrap(),
                "--seed",
                seed,
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let a = plan("7");
    assert!(a.contains("seed 7"), "{a}");
    assert!(a.contains("timeline (17 faults"), "{a}");
    assert_eq!(a, plan("7"));
    let timeline = |text: &str| text.split("timeline").nth(1).unwrap().to_string();
    assert_ne!(timeline(&a), timeline(&plan("8")));
    let bad = bin().args(["plan", "/nonexistent.toml"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// The planned victims, in order, from `sessionstorm plan`'s timeline.
fn planned_victims(scenario: &str, extra: &[&str]) -> Vec<(u64, String)> {
    let output = bin()
        .args(["plan", repo(scenario).to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.split("timeline")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let mut words = line.split_whitespace();
            let at: f64 = words.next().unwrap().trim_end_matches('s').parse().unwrap();
            let victim = words.nth(2).unwrap().trim_end_matches(',').to_string();
            ((at * 1000.0).round() as u64, victim)
        })
        .collect()
}

#[test]
fn kill_storm_follows_the_seeded_plan_replaces_every_kill_and_passes() {
    let _docker = docker_turn();
    let id = unique("e2e-kill-storm");
    let args = ["--seed", "11", "--duration", "9s"];
    let planned = planned_victims("scenarios/kill-storm.toml", &args);
    assert_eq!(planned.len(), 6, "{planned:?}");
    let run = run_scenario("scenarios/kill-storm.toml", &id, &args);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    let events = events(summary);
    let happened: Vec<(u64, String)> = events
        .iter()
        .map(|e| {
            let target = e["target"].as_str().unwrap();
            let victim = target.split('.').next().unwrap().to_string();
            (e["planned_ms"].as_u64().unwrap(), victim)
        })
        .collect();
    assert_eq!(happened, planned, "the run follows `plan --seed 11`");
    // A kill that finds its slot still being replaced (a slow machine) is skipped
    // and says why; every other one is injected and replaced.
    let mut injected = 0;
    for e in events {
        if e["outcome"] == "skipped" {
            assert!(e["reason"].is_string(), "{e}");
            continue;
        }
        assert_eq!(e["outcome"], "injected", "{e}");
        assert!(e["replacement"].is_string(), "{e}");
        assert!(e["ready_after_ms"].as_u64().unwrap() < 60_000, "{e}");
        injected += 1;
    }
    assert!(injected >= 3, "{}", describe(&run));
    assert_eq!(summary["faults"]["injected"], injected);
    assert_eq!(summary["anomalies"]["total"], 0);
    assert!(run.stdout.contains("recovery"), "{}", describe(&run));
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn rolling_restart_restarts_every_replica_once_and_passes() {
    let _docker = docker_turn();
    let id = unique("e2e-rolling");
    let run = run_scenario("scenarios/rolling-restart.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    let targets: Vec<&str> = events(summary)
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    // Restarted in place: same containers, generation 0, each once, in slot order.
    assert_eq!(targets, ["replica-0.0", "replica-1.0", "replica-2.0"]);
    for e in events(summary) {
        assert_eq!(
            (e["fault"].as_str(), e["outcome"].as_str()),
            (Some("restart"), Some("injected"))
        );
        assert!(e["ready_after_ms"].is_u64(), "{e}");
    }
    assert_eq!(summary["anomalies"]["total"], 0);
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn partition_disconnects_and_reconnects_replicas_and_passes() {
    let _docker = docker_turn();
    let id = unique("e2e-partition");
    let run = run_scenario("scenarios/partition.toml", &id, &["--duration", "10s"]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    let injected: Vec<&Value> = events(summary)
        .iter()
        .filter(|e| e["outcome"] == "injected")
        .collect();
    assert!(!injected.is_empty(), "{}", describe(&run));
    for e in injected {
        assert_eq!(e["fault"], "disconnect");
        let (at, back) = (
            e["injected_ms"].as_u64().unwrap(),
            e["reverted_ms"].as_u64().unwrap(),
        );
        assert!(back > at, "{e}");
    }
    assert_eq!(summary["anomalies"]["total"], 0);
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn pause_and_stop_side_by_side_are_reverted_and_pass() {
    let _docker = docker_turn();
    let id = unique("e2e-pause");
    let run = run_scenario("scenarios/pause.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    let kinds: Vec<(&str, &str)> = events(summary)
        .iter()
        .map(|e| (e["fault"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert_eq!(kinds[0], ("pause", "replica-1.0"));
    assert_eq!(kinds[2], ("pause", "replica-1.0"));
    assert_eq!(kinds[1].0, "stop");
    // Stopped with after_kill = "restart": the same container came back.
    assert!(kinds[1].1.ends_with(".0"), "{kinds:?}");
    assert!(events(summary)[1]["ready_after_ms"].is_u64());
    for pause in [&events(summary)[0], &events(summary)[2]] {
        assert!(pause["reverted_ms"].is_u64(), "{pause}");
    }
    assert_eq!(summary["anomalies"]["total"], 0);
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn store_restart_with_aof_loses_nothing_and_removes_its_volume() {
    let _docker = docker_turn();
    let id = unique("e2e-store-aof");
    let run = run_scenario("scenarios/store-restart-with-aof.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    let e = &events(summary)[0];
    assert_eq!(
        (e["fault"].as_str(), e["target"].as_str()),
        (Some("restart"), Some("store"))
    );
    assert!(e["ready_after_ms"].is_u64(), "{e}");
    assert_eq!(summary["anomalies"]["total"], 0);
    assert!(run.stdout.contains("and 1 volume"), "{}", describe(&run));
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn store_kill_without_persistence_fails_with_lost_sessions() {
    let _docker = docker_turn();
    let id = unique("e2e-store-kill");
    let run = run_scenario("scenarios/store-kill-no-persistence.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    assert!(
        summary["anomalies"]["by_kind"]["lost_session"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        describe(&run)
    );
    let e = &events(summary)[0];
    assert_eq!(
        (e["fault"].as_str(), e["target"].as_str()),
        (Some("kill"), Some("store"))
    );
    // The store's own timeline says why: it came back a new process, empty, and the
    // lost sessions are tied to that.
    let store = &summary["store"]["events"];
    let restarted = (store.as_array().unwrap().iter())
        .find(|e| e["kind"] == "restarted")
        .unwrap_or_else(|| panic!("no restart on the store's timeline: {store}"));
    assert!(
        restarted["detail"]
            .as_str()
            .unwrap()
            .contains("it holds 0 keys"),
        "{restarted}"
    );
    let samples = summary["anomalies"]["samples"].as_array().unwrap();
    let tied = samples.iter().filter(|a| {
        a["nearest_store_event"]
            .as_str()
            .is_some_and(|e| e.contains("restarted"))
    });
    assert!(tied.count() > 0, "{samples:?}");
    assert!(
        run.stdout.contains("restarted (a new process)"),
        "{}",
        run.stdout
    );
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn sticky_memory_passes_without_chaos_and_fails_once_a_replica_dies() {
    let _docker = docker_turn();
    let calm_id = unique("e2e-sticky-calm");
    let calm = run_scenario(
        "scenarios/sticky-memory-calm.toml",
        &calm_id,
        &["--duration", "6s"],
    );
    assert_eq!(calm.output.status.code(), Some(0), "{}", describe(&calm));
    let summary = calm.summary.as_ref().unwrap();
    // Stickiness did its job: the sessions were spread, yet none was lost.
    assert!(summary["served_by"].as_object().unwrap().len() >= 2);
    assert_eq!(summary["anomalies"]["total"], 0);
    assert_clean_after_chaos(&calm, &calm_id);

    let id = unique("e2e-sticky-kill");
    let run = run_scenario("scenarios/sticky-memory.toml", &id, &["--duration", "8s"]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let summary = run.summary.as_ref().unwrap();
    assert!(
        summary["anomalies"]["by_kind"]["lost_session"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        describe(&run)
    );
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn balancer_pause_and_a_kill_that_leaves_the_cluster_smaller_respect_min_alive() {
    let _docker = docker_turn();
    let (_dir, path) = temp_scenario(
        r#"
name = "balancer-and-shrink"
seed = 1
duration = "9s"
min_alive = 2
[service]
replicas = 3
env = { MODE = "redis" }
[load]
users = 8
appends_per_session = 5
request_timeout = "1s"
[[chaos]]
fault = "pause"
target = "balancer"
at = ["2s"]
duration = "2s"
[[chaos]]
fault = "kill"
target = "random-replica"
at = ["4s", "6s"]
after_kill = "none"
"#,
    );
    let id = unique("e2e-balancer");
    let run = run_scenario(&path, &id, &[]);
    let summary = run.summary.as_ref().expect("summary.json written");
    let outcomes: Vec<(&str, &str)> = events(summary)
        .iter()
        .map(|e| (e["fault"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("pause", "injected"),
            ("kill", "injected"),
            ("kill", "skipped")
        ],
        "{}",
        describe(&run)
    );
    assert!(events(summary)[2]["reason"]
        .as_str()
        .unwrap()
        .contains("min_alive = 2"));
    assert_eq!(events(summary)[1]["replacement"], Value::Null);
    assert_eq!(summary["faults"]["skipped"], 1);
    // The balancer was frozen for two seconds: users saw it, and it came back.
    let pause = &events(summary)[0];
    assert!(pause["reverted_ms"].is_u64());
    assert!(
        pause["recovery"]["failed_requests"].as_u64().unwrap() > 0,
        "{pause}"
    );
    assert_eq!(summary["anomalies"]["total"], 0, "{}", describe(&run));
    // Healed means: every replica but the one left down answered again.
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn blackhole_drops_a_replicas_traffic_then_restores_it_and_passes() {
    let _docker = docker_turn();
    let id = unique("e2e-blackhole");
    let run = run_scenario("scenarios/blackhole.toml", &id, &[]);
    if run.output.status.code() == Some(3) {
        // The kernel cannot do it here: the harness must say so before anything
        // starts, not pretend.
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        assert!(stderr.contains("kernel lacks"), "{}", describe(&run));
        assert!(stderr.contains("nf_tables"), "{stderr}");
        eprintln!("SKIPPED: blackhole is not possible on this machine: {stderr}");
        assert!(labelled(&id).is_empty());
        return;
    }
    let summary = run.summary.as_ref().expect("summary.json written");
    let events = events(summary);
    assert_eq!(events.len(), 2, "{}", describe(&run));
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    for e in events {
        assert_eq!(
            (e["fault"].as_str(), e["outcome"].as_str()),
            (Some("blackhole"), Some("injected")),
            "{e}"
        );
        assert!(e["reverted_ms"].as_u64().unwrap() > e["injected_ms"].as_u64().unwrap());
    }
    // Dropped packets are felt: at least one request timed out during a blackhole.
    assert!(
        summary["faults"]["failed_requests"].as_u64().unwrap() > 0,
        "{}",
        describe(&run)
    );
    assert_eq!(summary["anomalies"]["total"], 0);
    // The helper containers are gone, and the blackholed replica serves again
    // (`healed_ms` is set only if every replica answered on its own address).
    assert_clean_after_chaos(&run, &id);
}

#[test]
fn first_interrupt_reverts_a_pause_under_way_before_teardown() {
    let _docker = docker_turn();
    // A pause far longer than the time to the interrupt: only the interrupt can end it.
    let (_dir, path) = temp_scenario(
        r#"
name = "interrupt-pause"
seed = 1
duration = "60s"
[service]
replicas = 2
env = { MODE = "redis" }
[load]
users = 4
appends_per_session = 5
request_timeout = "1s"
[[chaos]]
fault = "pause"
target = "replica-1"
at = ["1s"]
duration = "10m"
"#,
    );
    let id = unique("e2e-interrupt-pause");
    let _guard = RunGuard(id.clone());
    let out = tempfile::tempdir().unwrap();
    let (mut child, stdout, _) = start_run(Path::new(&path), &id, out.path());
    let drain = std::thread::spawn(move || stdout.map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_secs(4));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let seen = drain.join().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:#?}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.path().join(&id).join("summary.json")).unwrap())
            .unwrap();
    let pause = &events(&summary)[0];
    assert_eq!(pause["outcome"], "injected", "{pause}");
    // Reverted by the interrupt (about 5 s in), long before the pause's own end
    // (10 min) or the end of the load (60 s).
    assert!(pause["reverted_ms"].as_u64().unwrap() < 30_000, "{pause}");
    assert!(
        seen.iter()
            .any(|l| l.contains("pause replica-1.0: injected → reverted")),
        "{seen:#?}"
    );
    assert!(labelled(&id).is_empty());
}

#[test]
fn open_model_scenario_passes_with_both_latencies_and_an_interval_log() {
    let _docker = docker_turn();
    let id = unique("e2e-open");
    let out = tempfile::tempdir().unwrap();
    let _guard = RunGuard(id.clone());
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
    // How late the paced operations were really sent: the harness's own delay.
    assert!(summary["load"]["start_lateness_ms"]["p99"].is_f64());
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
    assert!(labelled(&id).is_empty());
}

#[test]
fn write_behind_kill_shows_lost_writes_not_lost_sessions() {
    let _docker = docker_turn();
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
    assert!(labelled(&id).is_empty());
}
