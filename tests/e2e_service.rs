//! End-to-end tests of "any image, any store": a store started by the scenario's own
//! command and found through an environment template, the `direct` balancer (with
//! and without stickiness), Memcached as a store, and stores that never become ready
//! or do not exist. The real binary against real containers, like `tests/e2e.rs`.

mod common;

use common::{describe, docker_turn, labelled, run_scenario, temp_scenario, unique, Run};

fn summary(run: &Run) -> &serde_json::Value {
    run.summary
        .as_ref()
        .unwrap_or_else(|| panic!("summary.json written; {}", describe(run)))
}

#[test]
fn custom_store_command_and_env_template_pass_under_kills() {
    let _docker = docker_turn();
    let id = unique("e2e-custom-store");
    // Redis listens on 7000 only because of the scenario's command, and the replicas
    // find it only through SESSION_STORE = "redis://{store}:{store_port}/": with the
    // harness's old fixed URL (port 6379) no replica would ever be healthy.
    let run = run_scenario("scenarios/custom-store.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = summary(&run);
    assert_eq!(summary["anomalies"]["total"], 0, "{}", describe(&run));
    assert!(summary["faults"]["injected"].as_u64().unwrap() >= 2);
    assert!(summary["sessions"]["created"].as_u64().unwrap() > 0);
    assert!(
        run.stdout
            .contains("store sessionstorm/redis (redis, port 7000"),
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}

#[test]
fn direct_balancer_shows_raw_failures_and_loses_nothing_with_redis() {
    let _docker = docker_turn();
    let id = unique("e2e-direct");
    let run = run_scenario("scenarios/direct-redis.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let summary = summary(&run);
    assert_eq!(summary["anomalies"]["total"], 0, "{}", describe(&run));
    assert!(
        summary["cluster"]["url"]
            .as_str()
            .unwrap()
            .starts_with("none (direct to http://127.0.0.1:"),
        "{}",
        describe(&run)
    );
    // No balancer retries a request on another replica: the kills show as failed
    // requests in their fault windows.
    assert!(
        summary["faults"]["failed_requests"].as_u64().unwrap() > 0,
        "{}",
        describe(&run)
    );
    // Replacements answered too: the load learnt their new ports.
    let served = summary["served_by"].as_object().unwrap();
    assert!(
        served.keys().any(|k| !k.ends_with(".0")),
        "no replacement served anything: {served:?}"
    );
    assert!(labelled(&id).is_empty());
}

#[test]
fn direct_sticky_memory_loses_sessions_only_after_the_kill() {
    let _docker = docker_turn();
    let id = unique("e2e-direct-sticky");
    let run = run_scenario("scenarios/direct-sticky-memory.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let summary = summary(&run);
    assert!(
        summary["anomalies"]["by_kind"]["lost_session"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        describe(&run)
    );
    // Sticky hides the memory mode until the kill: not one anomaly before it.
    let kill = &summary["faults"]["events"][0];
    assert_eq!(kill["outcome"], "injected", "{}", describe(&run));
    let killed_at = kill["injected_ms"].as_u64().unwrap();
    for anomaly in summary["anomalies"]["samples"].as_array().unwrap() {
        assert!(
            anomaly["at_ms"].as_u64().unwrap() >= killed_at,
            "anomaly before the kill at {killed_at} ms: {anomaly}"
        );
    }
    assert!(labelled(&id).is_empty());
}

const MEMCACHED: &str = r#"
name = "memcached-store"
duration = "8s"

[service]
replicas = 2
ready_timeout = "10s"
env = { MODE = "memory", STORE_ADDRESS = "{store}:{store_port}" }

[store]
image = "sessionstorm/memcached"
port = 11211
command = ["-p", "{store_port}"]

# The demo service does not speak memcached: memory mode, kept correct by
# stickiness and no chaos, so the run passes once the store is ready.
[balancer]
sticky = true

[load]
users = 4
appends_per_session = 3
"#;

#[test]
fn memcached_store_starts_and_is_ready_on_its_port() {
    let _docker = docker_turn();
    let id = unique("e2e-memcached");
    let (_dir, path) = temp_scenario(MEMCACHED);
    let run = run_scenario(&path, &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    assert!(
        run.stdout
            .contains("store sessionstorm/memcached (port 11211)"),
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}

#[test]
fn a_store_that_never_listens_on_its_port_is_an_infrastructure_error() {
    let _docker = docker_turn();
    let id = unique("e2e-store-port");
    // Memcached listens on 11211 while the scenario says 11299: the readiness check
    // must notice rather than start the load.
    let text = MEMCACHED
        .replace("port = 11211", "port = 11299")
        .replace("[\"-p\", \"{store_port}\"]", "[\"-p\", \"11211\"]")
        .replace("ready_timeout = \"10s\"", "ready_timeout = \"3s\"");
    let (_dir, path) = temp_scenario(&text);
    let run = run_scenario(&path, &id, &[]);
    assert_eq!(run.output.status.code(), Some(3), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("was not ready in time on port 11299"),
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}

#[test]
fn a_store_image_that_is_not_there_is_named() {
    let id = unique("e2e-no-image");
    let text = MEMCACHED.replace("sessionstorm/memcached", "acme/no-such-store:1.0");
    let (_dir, path) = temp_scenario(&text);
    let run = run_scenario(&path, &id, &[]);
    assert_eq!(run.output.status.code(), Some(3), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("acme/no-such-store:1.0") && stderr.contains("cannot be pulled"),
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}

/// Replicas that serve HTTPS only, behind HAProxy (which re-encrypts, health checks
/// included) and reached directly by the load: both pass under kills. The same
/// replicas declared `http` never become ready, which shows they really speak TLS
/// only and that the scheme is what made the difference.
#[test]
fn https_replicas_pass_under_kills_behind_haproxy_and_direct() {
    let _docker = docker_turn();
    let id = unique("e2e-tls");
    let run = run_scenario("scenarios/tls-replicas.toml", &id, &[]);
    common::assert_passed_under_kills(&run, &id, 20, 100);
    assert!(
        run.stdout
            .contains("replicas of sessionstorm/session-app:latest (https)"),
        "{}",
        describe(&run)
    );

    let id = unique("e2e-tls-direct");
    let run = run_scenario(
        "scenarios/tls-replicas.toml",
        &id,
        &["--set", "balancer.kind=direct"],
    );
    let s = common::assert_passed_under_kills(&run, &id, 20, 100);
    assert!(
        s["cluster"]["url"]
            .as_str()
            .unwrap()
            .starts_with("none (direct to https://127.0.0.1:"),
        "{}",
        describe(&run)
    );

    let id = unique("e2e-tls-as-http");
    let run = run_scenario(
        "scenarios/tls-replicas.toml",
        &id,
        &[
            "--set",
            "service.scheme=http",
            "--set",
            "service.ready_timeout=5s",
        ],
    );
    assert_eq!(run.output.status.code(), Some(3), "{}", describe(&run));
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    assert!(
        stderr.contains("was not ready in time"),
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}
