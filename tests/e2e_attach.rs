//! Attach mode end to end: each test starts a stack itself (network, Redis, replicas
//! carrying a selector label, HAProxy in front, and one bystander container that the
//! selector does not match), then runs the real binary with `--attach` against it.
//!
//! Every object of the stack carries `sessionstorm.run=<stack id>`, and a guard
//! removes them when the test ends, pass or fail. The harness's own run gets another
//! id, so its teardown could not remove the stack even if it tried: the tests check
//! that the stack is still there, untouched where it was not matched.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::{
    bin, blackholed, docker_turn, labelled, repo, sigkill, unique, wait_for, RunGuard, HELD_FAULTS,
};
use serde_json::Value;

use sessionstorm::cluster::haproxy;

const REPLICAS: usize = 3;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `StartedAt RestartCount Status` of a container: what a fault would change.
fn life(name: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{.State.StartedAt}} {{.RestartCount}} {{.State.Status}}",
        name,
    ])
}

fn restart_count(name: &str) -> u32 {
    docker(&["inspect", "-f", "{{.RestartCount}}", name])
        .parse()
        .unwrap()
}

/// A stack started the way a team might: none of it made by the harness.
struct Stack {
    id: String,
    replicas: Vec<String>,
    bystander: String,
    proxy: String,
    store: String,
    /// Where the store is published, `127.0.0.1:PORT`: what `[attach] store` names.
    store_addr: String,
    url: String,
    selector: String,
    _guard: RunGuard,
}

impl Stack {
    /// Starts the stack; `mode` is the demo service's MODE, `restart` a Docker
    /// restart policy for the replicas (`no` for none).
    fn up(mode: &str, restart: &str) -> Stack {
        Stack::up_with_store(mode, restart, &[])
    }

    /// [`Stack::up`] with more arguments for the store's `redis-server`.
    fn up_with_store(mode: &str, restart: &str, store_args: &[&str]) -> Stack {
        assert!(bin()
            .args(["images", "build"])
            .output()
            .unwrap()
            .status
            .success());
        let id = unique("stack");
        let guard = RunGuard(id.clone());
        let label = format!("sessionstorm.run={id}");
        let selector = format!("app.role=replica-{id}");
        let network = format!("{id}-net");
        docker(&["network", "create", "--label", &label, &network]);
        let store = format!("{id}-store");
        let mut args = vec![
            "run",
            "-d",
            "--name",
            &store,
            "--label",
            &label,
            "--network",
            &network,
            "--network-alias",
            "store",
            "-p",
            "127.0.0.1::6379",
            "sessionstorm/redis",
            "--bind",
            "0.0.0.0",
            "--protected-mode",
            "no",
            "--save",
            "",
        ];
        args.extend(store_args);
        docker(&args);
        let store_addr = docker(&["port", &store, "6379"]);
        let store_addr = store_addr.lines().next().unwrap().to_string();
        let app = |name: &str, alias: &str, extra: &[&str]| {
            let mut args = vec![
                "run",
                "-d",
                "--name",
                name,
                "--label",
                &label,
                "--network",
                &network,
                "--network-alias",
                alias,
                "-e",
                "SESSION_STORE=redis://store:6379",
                "-e",
                "PORT=8080",
            ];
            args.extend(extra);
            let mode = format!("MODE={mode}");
            let instance = format!("INSTANCE_ID={name}");
            args.extend(["-e", &mode, "-e", &instance, "sessionstorm/session-app"]);
            docker(&args);
        };
        let mut replicas = Vec::new();
        let mut aliases = Vec::new();
        for i in 0..REPLICAS {
            let name = format!("{id}-app-{i}");
            let alias = format!("app-{i}");
            app(&name, &alias, &["--label", &selector, "--restart", restart]);
            replicas.push(name);
            aliases.push(alias);
        }
        // Same image, same network, same store: only the selector label is missing.
        let bystander = format!("{id}-bystander");
        app(&bystander, "bystander", &[]);

        let proxy = format!("{id}-proxy");
        let config = haproxy::render(&haproxy::Config {
            replicas: &aliases,
            port: 8080,
            health_path: "/healthz",
            sticky: false,
            tls: false,
            via: &[],
            tasks: None,
        });
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(haproxy::CONFIG_FILE);
        std::fs::write(&file, config).unwrap();
        let config_path = format!("{}/{}", haproxy::CONFIG_DIR, haproxy::CONFIG_FILE);
        docker(&[
            "create",
            "--name",
            &proxy,
            "--label",
            &label,
            "--network",
            &network,
            "-p",
            "127.0.0.1::8080",
            "sessionstorm/haproxy",
            "-db",
            "-f",
            &config_path,
        ]);
        docker(&[
            "cp",
            file.to_str().unwrap(),
            &format!("{proxy}:{config_path}"),
        ]);
        docker(&["start", &proxy]);
        let port = docker(&["port", &proxy, "8080"]);
        let url = format!("http://{}", port.lines().next().unwrap());
        Stack {
            id,
            replicas,
            bystander,
            proxy,
            store,
            store_addr,
            url,
            selector,
            _guard: guard,
        }
    }

    fn containers(&self) -> Vec<String> {
        let mut names: Vec<String> = labelled(&self.id)
            .into_iter()
            .filter(|n| !n.ends_with("-net"))
            .collect();
        names.sort();
        names
    }

    /// Runs scenarios/attach.toml for 12 s against the stack with `extra` arguments.
    fn run(&self, run_id: &str, extra: &[&str]) -> (Output, Option<Value>) {
        let mut args = vec!["--duration", "12s"];
        args.extend(extra);
        self.run_scenario(&repo("scenarios/attach.toml"), run_id, &args)
    }

    fn run_scenario(
        &self,
        scenario: &Path,
        run_id: &str,
        extra: &[&str],
    ) -> (Output, Option<Value>) {
        let mut args = vec!["--attach", self.url.as_str()];
        args.extend_from_slice(extra);
        let run = common::run_scenario(scenario.to_str().unwrap(), run_id, &args);
        (run.output, run.summary)
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The kills the run made: their targets, each injected.
fn killed(summary: &Value) -> Vec<String> {
    let events = summary["faults"]["events"].as_array().unwrap();
    for event in events {
        assert_eq!(event["outcome"], "injected", "{event}");
    }
    events
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect()
}

/// What must hold after any attached run: every container of the stack is still
/// there and running, the bystander, store and proxy were not touched, and nothing
/// of the harness's run is left.
fn assert_stack_intact(stack: &Stack, before: &BTreeMap<String, String>, run_id: &str) {
    let mut expected: Vec<String> = before.keys().cloned().collect();
    expected.sort();
    assert_eq!(
        stack.containers(),
        expected,
        "the stack's containers changed"
    );
    for name in &expected {
        assert!(life(name).ends_with(" running"), "{name}: {}", life(name));
    }
    for name in [&stack.bystander, &stack.store, &stack.proxy] {
        assert_eq!(life(name), before[name], "{name} was touched");
    }
    assert!(labelled(run_id).is_empty(), "left: {:?}", labelled(run_id));
}

fn lives(stack: &Stack) -> BTreeMap<String, String> {
    (stack.containers().into_iter())
        .map(|name| {
            let life = life(&name);
            (name, life)
        })
        .collect()
}

#[test]
fn attached_redis_stack_passes_kills_brought_back_by_docker_start() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let before = lives(&stack);
    let run_id = unique("attach-start");
    let (output, summary) = stack.run(&run_id, &["--selector", &stack.selector]);
    let summary = summary.expect("summary.json written");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(summary["anomalies"]["total"], 0, "{}", describe(&output));
    assert_eq!(summary["cluster"]["replicas"], REPLICAS);

    let victims = killed(&summary);
    assert!(victims.len() >= 2, "{victims:?}");
    for victim in &victims {
        assert!(stack.replicas.contains(victim), "{victim} is not a replica");
        // Started again by the harness: a new process, no restart by Docker.
        assert_ne!(life(victim), before[victim], "{victim} was not killed");
        assert_eq!(restart_count(victim), 0, "{victim}");
    }
    assert_stack_intact(&stack, &before, &run_id);
}

#[test]
fn attached_stack_with_a_restart_policy_is_restarted_by_docker() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "unless-stopped");
    let before = lives(&stack);
    let run_id = unique("attach-policy");
    let (output, summary) = stack.run(&run_id, &["--selector", &stack.selector]);
    let summary = summary.expect("summary.json written");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_eq!(summary["anomalies"]["total"], 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("restart policy unless-stopped"), "{stdout}");

    let victims = killed(&summary);
    assert!(victims.len() >= 2, "{victims:?}");
    let mut restarts = BTreeMap::new();
    for victim in &victims {
        assert!(stack.replicas.contains(victim), "{victim} is not a replica");
        *restarts.entry(victim.clone()).or_insert(0) += 1;
    }
    // Docker itself restarted each victim, once per kill.
    for (victim, kills) in restarts {
        assert_eq!(restart_count(&victim), kills, "{victim}");
    }
    assert_stack_intact(&stack, &before, &run_id);
}

#[test]
fn attached_memory_stack_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let stack = Stack::up("memory", "no");
    let before = lives(&stack);
    let run_id = unique("attach-memory");
    let (output, summary) = stack.run(&run_id, &["--selector", &stack.selector]);
    let summary = summary.expect("summary.json written");
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        summary["anomalies"]["by_kind"]["lost_session"].as_u64() > Some(0),
        "{}",
        summary["anomalies"]
    );
    for victim in killed(&summary) {
        assert!(
            stack.replicas.contains(&victim),
            "{victim} is not a replica"
        );
    }
    assert_stack_intact(&stack, &before, &run_id);
}

#[test]
fn a_selector_that_matches_other_images_or_nothing_is_refused_before_any_fault() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let before = lives(&stack);
    // The stack's own label matches the store and the proxy too.
    let run_id = unique("attach-broad");
    let broad = format!("sessionstorm.run={}", stack.id);
    let (output, _) = stack.run(&run_id, &["--selector", &broad]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("different images"), "{stderr}");

    let run_id = unique("attach-none");
    let (output, _) = stack.run(&run_id, &["--selector", "app.role=nobody-has-this"]);
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no container matches"), "{stderr}");
    // More than the matched containers can give: bad input, found once they are counted.
    let run_id = unique("attach-few");
    let (output, _) = stack.run(
        &run_id,
        &["--selector", &stack.selector, "--set", "min_alive=4"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("attach.toml: `min_alive` is 4, but the selector matches 3 containers"),
        "{stderr}"
    );
    assert_eq!(lives(&stack), before, "a refused run touched the stack");
}

/// Networks and aliases of a container, as Docker reports them.
fn networks(name: &str) -> BTreeMap<String, Vec<String>> {
    let json = docker(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", name]);
    let networks: BTreeMap<String, Value> = serde_json::from_str(&json).unwrap();
    (networks.into_iter())
        .map(|(network, endpoint)| {
            let mut aliases: Vec<String> = (endpoint["Aliases"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .filter(|a| a.starts_with("app-"))
                .collect();
            aliases.sort();
            (network, aliases)
        })
        .collect()
}

#[test]
fn disconnect_stop_pause_and_blackhole_on_an_attached_stack_are_reverted_as_found() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let before = lives(&stack);
    let nets: Vec<_> = stack.replicas.iter().map(|r| networks(r)).collect();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("faults.toml");
    std::fs::write(
        &scenario,
        r#"name = "attach-faults"
seed = 3
duration = "14s"
[load]
model = "closed"
users = 4
appends_per_session = 5
[[chaos]]
fault = "disconnect"
target = "replica-0"
at = ["2s"]
duration = "2s"
[[chaos]]
fault = "stop"
target = "replica-1"
at = ["3s"]
grace = "1s"
after_kill = "restart"
[[chaos]]
fault = "pause"
target = "replica-2"
at = ["7s"]
duration = "2s"
[[chaos]]
fault = "blackhole"
target = "replica-0"
at = ["10s"]
duration = "2s"
"#,
    )
    .unwrap();
    let run_id = unique("attach-faults");
    let (output, summary) =
        stack.run_scenario(&scenario, &run_id, &["--selector", &stack.selector]);
    let summary = summary.expect("summary.json written");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let events = summary["faults"]["events"].as_array().unwrap();
    let faults: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["fault"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let r = &stack.replicas;
    assert_eq!(
        faults,
        [
            ("disconnect", r[0].as_str(), "injected"),
            ("stop", r[1].as_str(), "injected"),
            ("pause", r[2].as_str(), "injected"),
            ("blackhole", r[0].as_str(), "injected"),
        ],
        "{}",
        describe(&output)
    );
    for event in events.iter().filter(|e| e["fault"] != "stop") {
        assert!(event["reverted_ms"].is_u64(), "{event}");
    }
    // Back on its network under its alias, stopped one started again, none paused.
    for (replica, net) in stack.replicas.iter().zip(&nets) {
        assert_eq!(&networks(replica), net, "{replica}");
    }
    assert_ne!(
        life(&r[1]),
        before[&r[1]],
        "the stopped replica was not started again"
    );
    assert_stack_intact(&stack, &before, &run_id);
}

/// A run of `stack` under way whose faults hold far longer than the run gets:
/// replica-0 paused, replica-1 disconnected and the scenario's `more` (a third
/// fault, see [`on_replica_2`]), so only teardown or the reaper can undo them.
struct Holding {
    child: std::process::Child,
    run_id: String,
    _guard: RunGuard,
    _dirs: [tempfile::TempDir; 2],
}

impl Holding {
    /// Starts the run and waits until the faults hold (`held`).
    fn start(stack: &Stack, more: &str, mut held: impl FnMut() -> bool) -> Holding {
        let dir = tempfile::tempdir().unwrap();
        let scenario = dir.path().join("hold.toml");
        std::fs::write(
            &scenario,
            format!(
                r#"name = "attach-hold"
seed = 1
duration = "60s"
min_alive = 0
[load]
users = 2
appends_per_session = 5
request_timeout = "1s"
{HELD_FAULTS}{more}
"#
            ),
        )
        .unwrap();
        let run_id = unique("attach-hold");
        let guard = RunGuard(run_id.clone());
        let out = tempfile::tempdir().unwrap();
        let mut child = bin()
            .args(["run", scenario.to_str().unwrap(), "--attach", &stack.url])
            .args(["--selector", &stack.selector, "--run-id", &run_id, "--out"])
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if wait_for(std::time::Duration::from_secs(60), &mut held).is_none() {
            let _ = child.kill();
            panic!("the faults never took hold");
        }
        Holding {
            child,
            run_id,
            _guard: guard,
            _dirs: [dir, out],
        }
    }
}

/// A fault on replica-2 from 1 s, as [`Holding::start`] takes it.
fn on_replica_2(fault: &str) -> String {
    format!("[[chaos]]\ntarget = \"replica-2\"\nat = [\"1s\"]\n{fault}")
}

fn status(name: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", name])
}

#[test]
fn two_interrupts_still_leave_the_stack_running_as_it_was_found() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let before = lives(&stack);
    let nets: Vec<_> = stack.replicas.iter().map(|r| networks(r)).collect();
    let r = &stack.replicas;
    let kill = on_replica_2("fault = \"kill\"\nafter_kill = \"none\"");
    let mut run = Holding::start(&stack, &kill, || {
        status(&r[0]) == "paused" && status(&r[2]) == "exited" && networks(&r[1]).is_empty()
    });
    for _ in 0..2 {
        Command::new("kill")
            .args(["-INT", &run.child.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(run.child.wait().unwrap().code(), Some(130));
    for (replica, net) in stack.replicas.iter().zip(&nets) {
        assert_eq!(&networks(replica), net, "{replica}");
    }
    assert_stack_intact(&stack, &before, &run.run_id);
}

/// A SIGKILLed harness with a pause, a disconnect and a blackhole under way: its
/// reaper reverts them and removes the run's helpers within seconds (the test waits
/// 30). The replicas are the same processes as before (same StartedAt), back on
/// their networks under their aliases, with no DROP rule left.
#[test]
fn a_sigkilled_harness_leaves_the_stack_as_it_was_found() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let before = lives(&stack);
    let nets: Vec<_> = stack.replicas.iter().map(|r| networks(r)).collect();
    let r = &stack.replicas;
    let blackhole = on_replica_2("fault = \"blackhole\"\nduration = \"10m\"");
    let mut run = Holding::start(&stack, &blackhole, || {
        status(&r[0]) == "paused" && networks(&r[1]).is_empty() && blackholed(&r[2])
    });
    sigkill(&mut run.child);
    // Generous: the reaper's own pauses and a helper container's undo of the
    // blackhole take seconds on a slow machine; the time taken is printed.
    let restored = wait_for(std::time::Duration::from_secs(30), || {
        status(&r[0]) == "running"
            && networks(&r[1]) == nets[1]
            && !blackholed(&r[2])
            && labelled(&run.run_id).is_empty()
    });
    assert!(
        restored.is_some(),
        "30 s after SIGKILL: {} / {:?} / blackholed {} / left {:?}",
        status(&r[0]),
        networks(&r[1]),
        blackholed(&r[2]),
        labelled(&run.run_id)
    );
    println!("stack restored {:?} after SIGKILL", restored.unwrap());
    for (replica, net) in r.iter().zip(&nets) {
        assert_eq!(&networks(replica), net, "{replica}");
        assert_eq!(life(replica), before[replica], "{replica} was restarted");
    }
    assert_stack_intact(&stack, &before, &run.run_id);
}

/// The `maxmemory` the attached store starts with: not Redis's default (none), so
/// putting back "what it was" cannot pass by setting none.
const STORE_LIMIT: u64 = 64 << 20;

/// A stack whose Redis evicts under `allkeys-lru` below [`STORE_LIMIT`].
fn lru_stack() -> Stack {
    let limit = STORE_LIMIT.to_string();
    Stack::up_with_store(
        "redis",
        "no",
        &["--maxmemory", &limit, "--maxmemory-policy", "allkeys-lru"],
    )
}

/// The store's `maxmemory` now, asked as the harness asks it; `None` if it does
/// not answer.
fn maxmemory(store: &str) -> Option<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let value = runtime.block_on(sessionstorm::store::resp::config_get(store, "maxmemory"));
    value.ok()?.parse().ok()
}

/// `memory_pressure` on the store `[attach] store` names: the store is watched as
/// the harness's own is (its timeline in summary.json, its rows in events.csv, its
/// lane in report.html), it evicts sessions, the lost ones are put down to it, and
/// its `maxmemory` is what it was before the run.
#[test]
fn memory_pressure_on_an_attached_store_loses_sessions_it_evicted_and_is_put_back() {
    let _turn = docker_turn();
    let stack = lru_stack();
    let before = lives(&stack);
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("evict.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"name = "attach-evict"
seed = 5
duration = "10s"
[attach]
store = "redis://{}"
[load]
users = 16
appends_per_session = 20
retries = 3
[[chaos]]
fault = "memory_pressure"
memory = "1MiB"
at = ["4s"]
duration = "4s"
[gates]
checks = ["unverified == 0"]
"#,
            stack.store_addr
        ),
    )
    .unwrap();
    let run_id = unique("attach-evict");
    let _guard = RunGuard(run_id.clone());
    let out = tempfile::tempdir().unwrap();
    let output = bin()
        .args(["run", scenario.to_str().unwrap(), "--attach", &stack.url])
        .args(["--selector", &stack.selector, "--run-id", &run_id, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let folder = out.path().join(&run_id);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(folder.join("summary.json")).unwrap()).unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));

    let fault = &summary["faults"]["events"][0];
    assert_eq!(
        (&fault["fault"], &fault["target"], &fault["outcome"]),
        (
            &Value::from("memory_pressure"),
            &Value::from("store"),
            &Value::from("injected")
        ),
        "{fault}"
    );
    assert!(fault["reverted_ms"].is_u64(), "{fault}");
    let store = &summary["store"];
    assert_eq!(store["member"], "store", "{store}");
    assert!(store["evicted_total"].as_u64().unwrap() > 0, "{store}");
    let kinds: Vec<&str> = (store["events"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"evicted") && kinds.contains(&"memory_limit"),
        "{kinds:?}"
    );
    let anomalies = &summary["anomalies"];
    assert!(
        anomalies["by_kind"]["lost_session"].as_u64() > Some(0),
        "{anomalies}"
    );
    let samples = anomalies["samples"].as_array().unwrap();
    assert!(
        samples.iter().any(|a| {
            a["kind"] == "lost_session"
                && a["detail"]
                    .as_str()
                    .unwrap()
                    .contains("evicted by the store")
        }),
        "{samples:?}"
    );
    let events = std::fs::read_to_string(folder.join("events.csv")).unwrap();
    assert!(
        events.lines().any(|l| l.contains(",store,evicted,store,")),
        "{events}"
    );
    let html = std::fs::read_to_string(folder.join("report.html")).unwrap();
    assert!(html.contains(r#"id="chart-store""#), "no store lane");

    assert_eq!(maxmemory(&stack.store_addr), Some(STORE_LIMIT));
    assert_stack_intact(&stack, &before, &run_id);
}

/// A SIGKILLed harness with the attached store's `maxmemory` lowered (and two
/// replicas held): its reaper, on the host's network, sets the value the store had
/// back, and undoes the rest.
#[test]
fn a_sigkilled_harness_leaves_the_attached_store_with_its_maxmemory() {
    let _turn = docker_turn();
    let stack = lru_stack();
    let before = lives(&stack);
    let nets: Vec<_> = stack.replicas.iter().map(|r| networks(r)).collect();
    let r = &stack.replicas;
    let pressure = format!(
        "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"1MiB\"\nat = [\"1s\"]\nduration = \"10m\"\n[attach]\nstore = \"redis://{}\"",
        stack.store_addr
    );
    let mut run = Holding::start(&stack, &pressure, || {
        status(&r[0]) == "paused"
            && networks(&r[1]).is_empty()
            && maxmemory(&stack.store_addr) == Some(1 << 20)
    });
    sigkill(&mut run.child);
    let restored = wait_for(std::time::Duration::from_secs(30), || {
        status(&r[0]) == "running"
            && networks(&r[1]) == nets[1]
            && maxmemory(&stack.store_addr) == Some(STORE_LIMIT)
            && labelled(&run.run_id).is_empty()
    });
    assert!(
        restored.is_some(),
        "30 s after SIGKILL: {} / {:?} / maxmemory {:?} / left {:?}",
        status(&r[0]),
        networks(&r[1]),
        maxmemory(&stack.store_addr),
        labelled(&run.run_id)
    );
    println!(
        "stack and store restored {:?} after SIGKILL",
        restored.unwrap()
    );
    assert_stack_intact(&stack, &before, &run.run_id);
}

/// One answer of the Redis or Sentinel at `addr` (a published port), as the texts
/// of its parts; `None` if it does not answer.
fn ask(addr: &str, args: &[&str]) -> Option<Vec<String>> {
    use sessionstorm::store::resp::{self, Reply};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(resp::ask(addr, args)).ok()? {
        Reply::Array(Some(parts)) => Some(parts.iter().filter_map(Reply::text).collect()),
        reply => Some(reply.text().into_iter().collect()),
    }
}

/// The master the Sentinel watches in the test's stack.
const MASTER: &str = "mymaster";

/// Gives `stack` a replica of its Redis and one Sentinel watching that Redis
/// (published on 127.0.0.1), both of the stack; returns the replica's container and
/// the Sentinel's address, once the Sentinel knows the replica.
fn with_sentinel(stack: &Stack) -> (String, String) {
    let label = format!("sessionstorm.run={}", stack.id);
    let network = format!("{}-net", stack.id);
    let replica = format!("{}-store-replica", stack.id);
    docker(&[
        "run",
        "-d",
        "--name",
        &replica,
        "--label",
        &label,
        "--network",
        &network,
        "sessionstorm/redis",
        "--bind",
        "0.0.0.0",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--replicaof",
        "store",
        "6379",
    ]);
    let synced = wait_for(std::time::Duration::from_secs(30), || {
        ask(&stack.store_addr, &["INFO", "replication"])
            .is_some_and(|info| info.concat().contains("state=online"))
    });
    assert!(synced.is_some(), "the store's replica never synced");

    let sentinel = format!("{}-sentinel", stack.id);
    docker(&[
        "create",
        "--name",
        &sentinel,
        "--label",
        &label,
        "--network",
        &network,
        "-p",
        "127.0.0.1::26379",
        "sessionstorm/redis",
        "/sentinel.conf",
        "--sentinel",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "port 26379\nprotected-mode no\nsentinel resolve-hostnames yes\n\
             sentinel monitor {MASTER} store 6379 1\n\
             sentinel down-after-milliseconds {MASTER} 1000\n"
        ),
    )
    .unwrap();
    docker(&[
        "cp",
        config.to_str().unwrap(),
        &format!("{sentinel}:/sentinel.conf"),
    ]);
    docker(&["start", &sentinel]);
    let addr = docker(&["port", &sentinel, "26379"]);
    let addr = addr.lines().next().unwrap().to_string();
    let knows = wait_for(std::time::Duration::from_secs(30), || {
        ask(&addr, &["SENTINEL", "MASTER", MASTER])
            .is_some_and(|f| f.windows(2).any(|w| w == ["num-slaves", "1"]))
    });
    assert!(knows.is_some(), "the Sentinel never found the replica");
    (replica, addr)
}

/// `[attach] sentinel`: the Sentinel of the stack's store is heard during the run.
/// The test (not the harness, which only listens) pauses the store's replica every
/// few seconds, and the Sentinel's `+sdown slave` and `-sdown slave` lines are in the
/// store's timeline as `sentinel` events; the kills of the service's replicas went
/// as ever, and the Sentinel still names the primary it named before.
#[test]
fn an_attached_sentinel_is_heard_on_the_store_timeline() {
    let _turn = docker_turn();
    let stack = Stack::up("redis", "no");
    let (replica, sentinel) = with_sentinel(&stack);
    let primary = ask(&sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]);
    let before = lives(&stack);
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("sentinel.toml");
    let text = std::fs::read_to_string(repo("scenarios/attach.toml")).unwrap();
    let attach = format!(
        "service = \"app\"\nstore = \"redis://{}\"\nsentinel = \"redis://{sentinel}\"\n",
        stack.store_addr
    );
    std::fs::write(&scenario, text.replacen("service = \"app\"\n", &attach, 1)).unwrap();

    // Paused and unpaused over and over until the run ends: whenever its load
    // starts, a whole pause falls within it.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pausing = std::thread::spawn({
        let (replica, done) = (replica.clone(), std::sync::Arc::clone(&done));
        move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                docker(&["pause", &replica]);
                std::thread::sleep(std::time::Duration::from_secs(3));
                docker(&["unpause", &replica]);
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
        }
    });
    let run_id = unique("attach-sentinel");
    let (output, summary) = stack.run_scenario(
        &scenario,
        &run_id,
        &["--duration", "12s", "--selector", &stack.selector],
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    pausing.join().unwrap();
    let summary = summary.expect("summary.json written");
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert!(!killed(&summary).is_empty(), "{}", describe(&output));

    let events = summary["store"]["events"].as_array().unwrap();
    let heard: Vec<&str> = (events.iter())
        .filter(|e| e["kind"] == "sentinel")
        .inspect(|e| assert_eq!(e["member"], "sentinel", "{e}"))
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    for line in ["+sdown slave ", "-sdown slave "] {
        assert!(
            heard.iter().any(|h| h.starts_with(line)),
            "{line}: {heard:?}"
        );
    }
    assert_eq!(
        ask(&sentinel, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]),
        primary
    );
    assert_stack_intact(&stack, &before, &run_id);
}

/// Removes a Compose project when dropped.
struct ComposeGuard {
    project: String,
    port: String,
}

impl ComposeGuard {
    fn compose(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(["-p", &self.project, "-f"])
            .arg(repo("docker/compose/docker-compose.yml"))
            .args(args)
            .env("SESSIONSTORM_DEMO_PORT", &self.port)
            .output()
            .expect("docker-compose runs")
    }
}

impl Drop for ComposeGuard {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v", "--remove-orphans"]);
    }
}

#[test]
fn compose_project_and_service_select_the_replicas_of_the_demo_compose_stack() {
    if Command::new("docker-compose")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("docker-compose is not installed: skipping the Compose example");
        return;
    }
    let _turn = docker_turn();
    assert!(bin()
        .args(["images", "build"])
        .output()
        .unwrap()
        .status
        .success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let compose = ComposeGuard {
        project: unique("ssattach").to_lowercase().replace('-', ""),
        port,
    };
    let up = compose.compose(&["up", "-d"]);
    assert!(up.status.success(), "{}", describe(&up));
    let project = format!("label=com.docker.compose.project={}", compose.project);
    let names = docker(&["ps", "-a", "--filter", &project, "--format", "{{.Names}}"]);
    let before: BTreeMap<String, String> =
        names.lines().map(|n| (n.to_string(), life(n))).collect();
    assert_eq!(before.len(), 5, "{before:?}");
    let url = format!("http://127.0.0.1:{}", compose.port);

    let attach = |run_id: &str, extra: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let _guard = RunGuard(run_id.to_string());
        let mut args = vec![
            "run",
            "--attach",
            &url,
            "--compose-project",
            &compose.project,
            "--duration",
            "10s",
            "--run-id",
            run_id,
        ];
        args.extend(extra);
        let output = bin()
            .args(args)
            .arg(repo("scenarios/attach.toml"))
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        let summary: Option<Value> = std::fs::read(out.path().join(run_id).join("summary.json"))
            .ok()
            .map(|b| serde_json::from_slice(&b).unwrap());
        (output, summary)
    };
    // Without --service the project's store and proxy would be hit too: refused.
    let (output, _) = attach(&unique("compose-all"), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("(app, proxy, store)"));

    let run_id = unique("compose-app");
    let (output, summary) = attach(&run_id, &["--service", "app"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let summary = summary.unwrap();
    assert_eq!(summary["cluster"]["replicas"], 3);
    let victims = killed(&summary);
    assert!(!victims.is_empty());
    for victim in &victims {
        assert!(victim.contains("app"), "{victim} is not an app replica");
    }
    let after: BTreeMap<String, String> = names.lines().map(|n| (n.to_string(), life(n))).collect();
    for (name, life_before) in &before {
        if name.contains("proxy") || name.contains("store") {
            assert_eq!(&after[name], life_before, "{name} was touched");
        }
        assert!(after[name].ends_with(" running"), "{name}: {}", after[name]);
    }
    assert!(labelled(&run_id).is_empty());
}
