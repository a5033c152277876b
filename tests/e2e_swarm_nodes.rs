//! The swarm engine on a swarm of two nodes, end to end: two Docker engines in
//! containers (`sessionstorm/dind`, made from Debian's `docker.io` by the images
//! code) on a network of the test's own, one the manager, one a worker, and the real
//! binary run against the manager over TCP (`DOCKER_HOST=tcp://<manager>:2375`).
//!
//! First the images are only on the manager (the harness builds them there, through
//! its engine): the run must stop before any load, naming the worker and the image
//! it lacks (the agent's, then, once that one is copied, the replicas'). Then the
//! images are copied to the worker (`docker save | docker load`,
//! no registry) and the same scenario must pass with tasks on both nodes and kills
//! through the agent job on the worker. This host's own swarm state is never touched:
//! everything happens in the two engines, which are removed with their volumes and
//! network, also when the test fails ([`Nodes`]).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{describe, run_scenario_on, unique, Run};
use serde_json::Value;
use sessionstorm::cluster::engine::Engine;
use sessionstorm::images::{self, BuiltIn};

/// The images the worker needs, in the order the harness checks them: the agent's,
/// then the replicas' (the store and the balancer are containers on the manager).
const WORKER_IMAGES: [&str; 2] = ["sessionstorm/reaper", "sessionstorm/session-app"];

/// The `docker` CLI, against `host` when given.
fn docker(host: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new("docker");
    if let Some(host) = host {
        command.args(["-H", host]);
    }
    command.args(args).output().expect("the docker CLI runs")
}

/// Like [`docker`], and it must succeed; its standard output.
fn docker_ok(host: Option<&str>, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two Docker engines in containers on a network of their own, one swarm: removed
/// (containers with their volumes, then the network) when dropped.
struct Nodes {
    network: String,
    containers: Vec<String>,
    /// `tcp://IP:2375` of the manager, then of the worker.
    engines: Vec<String>,
}

impl Nodes {
    fn start(id: &str) -> Nodes {
        // A /24 of the test's own, unlikely to be taken by another run's network.
        let third = 20 + std::process::id() % 200;
        let subnet = format!("10.231.{third}.0/24");
        let label = format!("sessionstorm.run={id}");
        let mut nodes = Nodes {
            network: format!("{id}-nodes"),
            containers: Vec::new(),
            engines: Vec::new(),
        };
        docker_ok(
            None,
            &[
                "network",
                "create",
                "--label",
                &label,
                "--subnet",
                &subnet,
                &nodes.network,
            ],
        );
        for (n, role) in ["manager", "worker"].into_iter().enumerate() {
            let name = format!("{id}-{role}");
            let ip = format!("10.231.{third}.{}", n + 2);
            let bip = format!("10.232.{}.1/24", n + 1);
            // Named before it is made: removed also when `docker run` fails half way.
            nodes.containers.push(name.clone());
            docker_ok(
                None,
                &[
                    "run",
                    "-d",
                    "--name",
                    &name,
                    "--hostname",
                    role,
                    "--label",
                    &label,
                    "--network",
                    &nodes.network,
                    "--ip",
                    &ip,
                    // Every capability but SYS_RESOURCE: `--privileged` needs it, and
                    // some hosts (this one) do not have it to give.
                    "--cap-add",
                    "ALL",
                    "--cap-drop",
                    "SYS_RESOURCE",
                    "--security-opt",
                    "seccomp=unconfined",
                    "--security-opt",
                    "apparmor=unconfined",
                    "--security-opt",
                    "systempaths=unconfined",
                    "--device-cgroup-rule",
                    "a *:* rwm",
                    "-v",
                    "/var/lib/docker",
                    BuiltIn::Dind.tag(),
                    "--bip",
                    &bip,
                ],
            );
            nodes.engines.push(format!("tcp://{ip}:2375"));
        }
        for (engine, name) in nodes.engines.iter().zip(&nodes.containers) {
            let began = Instant::now();
            while !docker(Some(engine), &["info"]).status.success() {
                assert!(
                    began.elapsed() < Duration::from_secs(60),
                    "the engine in {name} did not answer in 60 s: {}",
                    docker_ok(None, &["logs", "--tail", "20", name])
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let manager_ip = nodes.ip(0);
        docker_ok(
            Some(&nodes.engines[0]),
            &["swarm", "init", "--advertise-addr", &manager_ip],
        );
        let token = docker_ok(
            Some(&nodes.engines[0]),
            &["swarm", "join-token", "-q", "worker"],
        );
        docker_ok(
            Some(&nodes.engines[1]),
            &[
                "swarm",
                "join",
                "--token",
                &token,
                &format!("{manager_ip}:2377"),
            ],
        );
        nodes
    }

    /// The address of node `n` (0 the manager, 1 the worker).
    fn ip(&self, n: usize) -> String {
        let engine = self.engines[n].trim_start_matches("tcp://");
        engine.rsplit_once(':').unwrap().0.to_string()
    }

    /// Copies `image` from the manager's store to the worker's, as one would
    /// without a registry.
    fn copy_image(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["-H", &self.engines[0], "save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save runs");
        let load = Command::new("docker")
            .args(["-H", &self.engines[1], "load"])
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .expect("docker load runs");
        assert!(
            save.wait().expect("docker save ends").success(),
            "docker save failed"
        );
        assert!(
            load.status.success(),
            "docker load: {}",
            String::from_utf8_lossy(&load.stderr)
        );
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = docker(None, &["rm", "-fv", name]);
        }
        let _ = docker(None, &["network", "rm", &self.network]);
    }
}

/// `sessionstorm/dind` on this host, built (or found up to date) by the images code.
fn dind_image() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = Engine::connect().await.expect("the Docker engine answers");
        images::ensure(&engine, BuiltIn::Dind.tag())
            .await
            .expect("sessionstorm/dind builds");
    });
}

/// Runs `swarm-smoke` against `engine` (`DOCKER_HOST`), with `extra` arguments.
fn run_on(engine: &str, run_id: &str, extra: &[&str]) -> Run {
    run_scenario_on(Some(engine), "scenarios/swarm-smoke.toml", run_id, extra)
}

fn swarm_state() -> String {
    docker_ok(None, &["info", "--format", "{{.Swarm.LocalNodeState}}"])
}

#[test]
fn two_nodes_a_worker_without_the_images_is_named_then_kills_on_the_worker_pass() {
    let host_swarm = swarm_state();
    dind_image();
    let id = unique("e2e-nodes");
    let nodes = Nodes::start(&id);
    let manager = nodes.engines[0].clone();
    let nodes_up = docker_ok(
        Some(&manager),
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    );
    assert_eq!(
        nodes_up.lines().filter(|l| l.ends_with("Ready")).count(),
        2,
        "{nodes_up}"
    );

    // The harness builds its images on the manager, through its engine; the worker
    // has none of them. The agent's is checked first (a job on every other node),
    // then the replicas' (their tasks refused on the worker).
    for (n, missing) in WORKER_IMAGES.into_iter().enumerate() {
        let run = run_on(&manager, &format!("{id}-{n}"), &["--duration", "10s"]);
        let stderr = String::from_utf8_lossy(&run.output.stderr);
        assert_eq!(run.output.status.code(), Some(3), "{}", describe(&run));
        assert!(
            stderr.contains(&format!("the image {missing}"))
                && stderr.contains("is not on node worker"),
            "{}",
            describe(&run)
        );
        let left = docker_ok(Some(&manager), &["service", "ls", "-q"]);
        assert!(left.is_empty(), "services left on the manager: {left}");
        nodes.copy_image(missing);
    }

    // Four tasks over two nodes, a kill every 3 s: Swarm spreads the tasks two and
    // two, so each kill (a random slot) is on the worker one time in two, and none
    // of about nine is, about one run in 500.
    let run = run_on(
        &manager,
        &format!("{id}-b"),
        &[
            "--duration",
            "30s",
            "--set",
            "service.replicas=4",
            "--set",
            "chaos.0.every=3s",
        ],
    );
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let s = common::summary(&run);
    let facts = &s["scheduling"];
    let mut on: Vec<&str> = (facts["tasks"].as_array().unwrap().iter())
        .map(|t| t["node"].as_str().unwrap())
        .collect();
    on.sort_unstable();
    on.dedup();
    assert_eq!(on, ["manager", "worker"], "{facts}");
    let kills: Vec<&Value> = (s["faults"]["events"].as_array().unwrap().iter())
        .filter(|e| e["fault"] == "kill")
        .collect();
    let on_worker: Vec<&&Value> = (kills.iter())
        .filter(|k| {
            (k["params"].as_str().unwrap_or_default()).starts_with("agent job on node worker")
        })
        .collect();
    assert!(!on_worker.is_empty(), "no kill on the worker: {kills:#?}");
    for kill in &on_worker {
        // A new task of the slot served after the kill.
        assert_ne!(kill["target"], kill["replacement"], "{kill}");
        assert!(kill["ready_after_ms"].as_u64().unwrap() >= 1000, "{kill}");
        eprintln!(
            "kill on the worker: {} -> {} serving after {} ms",
            kill["target"], kill["replacement"], kill["ready_after_ms"]
        );
    }
    assert_eq!(
        s["sessions"]["anomalies"].as_u64().unwrap_or(0),
        0,
        "{}",
        s["sessions"]
    );
    let left = docker_ok(Some(&manager), &["service", "ls", "-q"]);
    assert!(left.is_empty(), "services left on the manager: {left}");
    drop(nodes);
    assert!(
        common::labelled(&id).is_empty(),
        "{:?}",
        common::labelled(&id)
    );
    assert_eq!(swarm_state(), host_swarm, "this host's swarm state changed");
}
