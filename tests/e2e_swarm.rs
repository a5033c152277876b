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

/// The summary of a run that passed (exit 0).
fn passed(run: &common::Run) -> &Value {
    assert_eq!(
        run.output.status.code(),
        Some(0),
        "{}",
        common::describe(run)
    );
    common::summary(run)
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
    let gone = wait_for(Duration::from_secs(45), || labelled(&id).is_empty());
    assert!(
        gone.is_some(),
        "left 45 s after SIGKILL: {:?}",
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
    let s = passed(&run);
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

/// A stack someone else runs on Swarm: an overlay network, a Redis, a service of
/// three session-app tasks and HAProxy in front; removed when dropped.
struct Stack {
    name: String,
    url: String,
    config: tempfile::TempDir,
}

impl Stack {
    fn start(name: &str) -> Stack {
        let docker = |args: &[&str]| {
            let out = Command::new("docker").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let net = format!("{name}-net");
        let web = format!("{name}-web");
        let config = tempfile::tempdir().unwrap();
        let mut stack = Stack {
            name: name.to_string(),
            url: String::new(),
            config,
        };
        let app = docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}",
            "sessionstorm/session-app",
        ]);
        docker(&["network", "create", "-d", "overlay", "--attachable", &net]);
        let redis = format!("{name}-redis");
        docker(&[
            "run",
            "-d",
            "--name",
            &redis,
            "--network",
            &net,
            "--network-alias",
            "store",
            "sessionstorm/redis",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
        ]);
        docker(&[
            "service",
            "create",
            "-d",
            "--name",
            &web,
            "--replicas",
            "3",
            "--endpoint-mode",
            "dnsrr",
            "--network",
            &net,
            "--env",
            "MODE=redis",
            "--env",
            "SESSION_STORE=redis://store:6379",
            "--env",
            "INSTANCE_ID={{.Task.Name}}",
            "--restart-delay",
            "0s",
            "--no-resolve-image",
            &app,
        ]);
        let cfg = sessionstorm::cluster::haproxy::render(&sessionstorm::cluster::haproxy::Config {
            replicas: &[],
            port: 8080,
            health_path: "/healthz",
            sticky: false,
            tls: false,
            via: &[],
            tasks: Some((&web, 3)),
        });
        std::fs::write(stack.config.path().join("haproxy.cfg"), cfg).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mount = format!(
            "{}:/usr/local/etc/haproxy:ro",
            stack.config.path().display()
        );
        docker(&[
            "run",
            "-d",
            "--name",
            &format!("{name}-proxy"),
            "--network",
            &net,
            "-p",
            &format!("127.0.0.1:{port}:8080"),
            "-v",
            &mount,
            "sessionstorm/haproxy",
            "-db",
            "-f",
            "/usr/local/etc/haproxy/haproxy.cfg",
        ]);
        stack.url = format!("http://127.0.0.1:{port}");
        stack
    }

    /// The service's tasks that run now.
    fn running(&self) -> usize {
        let out = Command::new("docker")
            .args([
                "service",
                "ps",
                &format!("{}-web", self.name),
                "--filter",
                "desired-state=running",
                "--format",
                "{{.CurrentState}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("Running"))
            .count()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let name = &self.name;
        let _ = Command::new("docker")
            .args(["service", "rm", &format!("{name}-web")])
            .output();
        let _ = Command::new("docker")
            .args([
                "rm",
                "-f",
                &format!("{name}-proxy"),
                &format!("{name}-redis"),
            ])
            .output();
        // The overlay network goes once the tasks' endpoints have.
        let _ = wait_for(Duration::from_secs(30), || {
            Command::new("docker")
                .args(["network", "rm", &format!("{name}-net")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }
}

/// Attached to a running Swarm service: its tasks are killed through the agent and
/// replaced by Swarm; the stack is left running as found, and nothing of the run is.
#[test]
fn attached_to_a_swarm_service_its_tasks_are_killed_and_replaced_by_swarm() {
    let _docker = docker_turn();
    let _swarm = Swarm::manager();
    let id = unique("e2e-swarm-attach");
    let stack = Stack::start(&format!("{id}-shop"));
    let service = format!("{id}-shop-web");
    // The stack serves before the run starts.
    let up = wait_for(Duration::from_secs(30), || {
        Command::new("curl")
            .args(["-fs", &format!("{}/healthz", stack.url)])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(up.is_some(), "the test stack never served");
    let selector = format!("com.docker.swarm.service.name={service}");
    let run = run_scenario(
        "scenarios/attach-swarm.toml",
        &id,
        &[
            "--attach",
            &stack.url,
            "--selector",
            &selector,
            "--duration",
            "20s",
        ],
    );
    let s = passed(&run);
    let kills = kills(s);
    assert!(kills.len() >= 2, "{kills:#?}");
    for kill in &kills {
        assert!(
            kill["target"].as_str().unwrap().starts_with(&service),
            "{kill}"
        );
        assert!(
            kill["replacement"].as_str().unwrap().starts_with(&service),
            "{kill}"
        );
    }
    assert_eq!(s["scheduling"]["service"], service.as_str());
    assert_eq!(s["scheduling"]["restart_delay_ms"], 0);
    // Nothing of the run is left, and the stack runs as it was found.
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
    let running = wait_for(Duration::from_secs(15), || stack.running() == 3);
    assert!(
        running.is_some(),
        "the service does not run 3 tasks after the run"
    );
}
