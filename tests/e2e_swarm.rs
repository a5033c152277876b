//! The swarm engine end to end: the real binary against a real single-node swarm.
//! The demo service in redis mode must pass while Swarm replaces killed tasks; in
//! memory mode it must fail with lost sessions; a SIGKILLed harness leaves no
//! service behind. Nothing labelled may be left, and the node leaves the tests in
//! the swarm state it was found in ([`Swarm`]).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{docker_turn, labelled, run_scenario, sigkill, start_run, unique, wait_for, RunGuard};
use serde_json::Value;

/// This node as a swarm manager for one test: made one if it was not, and taken
/// out of the swarm again when dropped (also when the test fails), only then.
struct Swarm {
    made: bool,
}

impl Swarm {
    fn manager() -> Swarm {
        let made = swarm_state() == "inactive";
        if made {
            let out = Command::new("docker")
                .args(["swarm", "init", "--advertise-addr", "127.0.0.1"])
                .output()
                .expect("the docker CLI runs");
            assert!(
                out.status.success(),
                "docker swarm init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Swarm { made }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if self.made {
            let _ = Command::new("docker")
                .args(["swarm", "leave", "--force"])
                .output();
        }
    }
}

fn swarm_state() -> String {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The kill records of a run.
fn kills(summary: &Value) -> Vec<Value> {
    summary["faults"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fault"] == "kill")
        .cloned()
        .collect()
}

#[test]
fn redis_mode_passes_while_swarm_replaces_killed_tasks() {
    let _docker = docker_turn();
    let _swarm = Swarm::manager();
    let id = unique("e2e-swarm-smoke");
    let run = run_scenario("scenarios/swarm-smoke.toml", &id, &["--duration", "20s"]);
    let s = common::assert_passed_under_kills(&run, &id, 100, 500);
    let kills = kills(s);
    assert!(kills.len() >= 2, "{kills:#?}");
    for kill in &kills {
        // Through the agent's job on the task's node, then a new task of Swarm's.
        let params = kill["params"].as_str().unwrap_or_default();
        assert!(params.starts_with("agent job on node "), "{kill}");
        let (old, new) = (
            kill["target"].as_str().unwrap(),
            kill["replacement"].as_str().unwrap(),
        );
        assert_ne!(old, new, "{kill}");
        assert_eq!(
            old.rsplit_once('.').unwrap().0,
            new.rsplit_once('.').unwrap().0
        );
        // At least Swarm's restart delay (1 s in the scenario) from the kill.
        let ready = kill["ready_after_ms"].as_u64().unwrap();
        assert!(ready >= 1000, "{kill}");
    }
    let facts = &s["scheduling"];
    assert_eq!(facts["engine"], "swarm");
    assert_eq!(facts["restart_delay_ms"], 1000);
    let replaced: u64 = (facts["restarts_by_slot"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(replaced, kills.len() as u64, "{facts}");
    let tasks = facts["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3 + kills.len(), "{facts}");
    let failed = tasks
        .iter()
        .filter(|t| {
            let states = t["states"].as_array().unwrap();
            states.iter().any(|c| c["state"] == "running")
                && states.last().unwrap()["state"] == "failed"
        })
        .count();
    assert_eq!(
        failed,
        kills.len(),
        "every killed task ran, then failed: {facts}"
    );
    assert!(tasks
        .iter()
        .all(|t| !t["node"].as_str().unwrap().is_empty()));
    assert!(run.stdout.contains("swarm: "), "{}", run.stdout);
    let problems = common::schema_problems(s);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn memory_mode_loses_sessions_when_swarm_replaces_tasks() {
    let _docker = docker_turn();
    let _swarm = Swarm::manager();
    let id = unique("e2e-swarm-memory");
    let run = run_scenario("scenarios/swarm-memory.toml", &id, &["--duration", "20s"]);
    common::assert_lost_sessions(&run, &id, 10);
    assert!(kills(common::summary(&run)).len() >= 2);
}

/// A SIGKILLed harness: its reaper removes the Swarm service, the overlay network
/// and every container of the run within 20 s.
#[test]
fn a_sigkilled_harness_leaves_no_service_behind() {
    let _docker = docker_turn();
    let _swarm = Swarm::manager();
    let id = unique("e2e-swarm-sigkill");
    let _guard = RunGuard(id.clone());
    let out = tempfile::tempdir().unwrap();
    let (mut child, _stdout, _) =
        start_run(&common::repo("scenarios/swarm-smoke.toml"), &id, out.path());
    let service = format!("sessionstorm-{id}-replicas");
    assert!(labelled(&id).contains(&service), "{:?}", labelled(&id));
    sigkill(&mut child);
    let gone = wait_for(Duration::from_secs(20), || labelled(&id).is_empty());
    assert!(
        gone.is_some(),
        "left 20 s after SIGKILL: {:?}",
        labelled(&id)
    );
    println!("nothing of the run left {:?} after SIGKILL", gone.unwrap());
}

/// `pause` freezes a task's container through the agent's job and thaws the same
/// one; `stop` (SIGTERM, then SIGKILL after the grace) fails the task and Swarm
/// replaces it, with a restart delay of 0.
#[test]
fn pause_and_stop_go_through_the_agent_and_pass() {
    let _docker = docker_turn();
    let _swarm = Swarm::manager();
    let id = unique("e2e-swarm-pause");
    let (_dir, scenario) = common::temp_scenario(
        r#"name = "swarm-pause"
seed = 3
duration = "15s"
[cluster]
engine = "swarm"
restart_delay = "0s"
[service]
replicas = 3
env = { MODE = "redis" }
[load]
users = 8
appends_per_session = 5
request_timeout = "2s"
retries = 3
[[chaos]]
fault = "pause"
target = "replica-0"
at = ["2s"]
duration = "3s"
[[chaos]]
fault = "stop"
target = "replica-1"
at = ["7s"]
grace = "1s"
"#,
    );
    let run = run_scenario(&scenario, &id, &[]);
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        common::describe(&run)
    );
    let s = common::summary(&run);
    let events = s["faults"]["events"].as_array().unwrap();
    let pause = events.iter().find(|e| e["fault"] == "pause").unwrap();
    assert_eq!(pause["outcome"], "injected", "{pause}");
    assert!(pause["reverted_ms"].as_u64().unwrap() >= 5000, "{pause}");
    assert!(pause["error"].is_null(), "{pause}");
    let stop = events.iter().find(|e| e["fault"] == "stop").unwrap();
    assert!(stop["replacement"].is_string(), "{stop}");
    assert!(stop["error"].is_null(), "{stop}");
    // Paused, the task stayed the same one; stopped, slot 2 got a new task.
    assert_eq!(
        s["scheduling"]["restarts_by_slot"]["0"], 0,
        "{}",
        s["scheduling"]
    );
    assert_eq!(
        s["scheduling"]["restarts_by_slot"]["1"], 1,
        "{}",
        s["scheduling"]
    );
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}
