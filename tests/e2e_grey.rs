//! End-to-end tests of the grey faults (`cpu`, `loss`, `bandwidth`, `oom`): the real
//! binary against real containers, each run short (15 s of load).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    any_detail, assert_lost_sessions, describe, docker_turn, labelled, run_scenario, unique,
};
use serde_json::Value;

fn events(run: &common::Run) -> Vec<Value> {
    let summary = run.summary.as_ref().expect("summary.json written");
    summary["faults"]["events"].as_array().unwrap().clone()
}

#[test]
fn an_oom_kill_is_named_as_such_and_redis_mode_loses_nothing() {
    let _docker = docker_turn();
    let id = unique("e2e-oom");
    let run = run_scenario("scenarios/oom.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let events = events(&run);
    let e = &events[0];
    assert_eq!(e["outcome"], "oom_killed", "{e}");
    assert!(
        e["params"].as_str().unwrap().starts_with("memory limit"),
        "{e}"
    );
    assert!(e["ended_ms"].as_u64().unwrap() >= e["injected_ms"].as_u64().unwrap());
    assert!(e["replacement"].as_str().unwrap().ends_with(".1"), "{e}");
    assert!(labelled(&id).is_empty());
}

#[test]
fn an_oom_kill_in_write_behind_mode_loses_acknowledged_writes_and_is_caught() {
    let _docker = docker_turn();
    let id = unique("e2e-oom-wb");
    let run = run_scenario("scenarios/oom-write-behind.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    assert_eq!(events(&run)[0]["outcome"], "oom_killed");
    let summary = run.summary.as_ref().unwrap();
    assert!(
        summary["anomalies"]["by_kind"]["lost_write"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{}",
        describe(&run)
    );
    assert!(labelled(&id).is_empty());
}

/// Each temporary grey fault is applied, then undone: the record says so, the run
/// passes, and nothing of the harness is left.
#[test]
fn cpu_loss_and_bandwidth_are_applied_then_reverted_and_pass() {
    let _docker = docker_turn();
    for (scenario, fault, params) in [
        ("scenarios/cpu-starve.toml", "cpu", "0.050 cpu"),
        ("scenarios/loss.toml", "loss", "30% of packets dropped"),
        ("scenarios/bandwidth.toml", "bandwidth", "64 kbit/s"),
    ] {
        let id = unique(&format!("e2e-{fault}"));
        let run = run_scenario(scenario, &id, &[]);
        assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
        let injected: Vec<Value> = events(&run)
            .into_iter()
            .filter(|e| e["outcome"] == "injected")
            .collect();
        assert!(!injected.is_empty(), "{}", describe(&run));
        for e in &injected {
            assert_eq!(
                (e["fault"].as_str(), e["params"].as_str()),
                (Some(fault), Some(params))
            );
            assert!(e["error"].is_null(), "{e}");
            assert!(e["reverted_ms"].as_u64().unwrap() > e["injected_ms"].as_u64().unwrap());
        }
        if fault == "loss" {
            // Dropped packets are felt: some requests failed (timed out) in the windows.
            let failed = &run.summary.as_ref().unwrap()["faults"]["failed_requests"];
            assert!(failed.as_u64().unwrap() > 0, "{}", describe(&run));
        }
        assert!(labelled(&id).is_empty());
    }
}

/// What a helper in `container`'s network namespace sees there: `tc qdisc show` and
/// `iptables -S`. The helper carries the run's label, so the run's cleanup takes it.
fn netns_state(run_id: &str, container: &str) -> String {
    let mut seen = String::new();
    for (entrypoint, args) in [
        ("/usr/sbin/tc", &["qdisc", "show", "dev", "eth0"][..]),
        ("/usr/sbin/xtables-nft-multi", &["iptables", "-S"][..]),
    ] {
        let out = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--label",
                &format!("sessionstorm.run={run_id}"),
            ])
            .args([
                "--network",
                &format!("container:{container}"),
                "--cap-add",
                "NET_ADMIN",
            ])
            .args(["--entrypoint", entrypoint, "sessionstorm/nettools"])
            .args(args)
            .output()
            .expect("the docker CLI runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    seen
}

fn inspect(container: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, container])
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every grey fault, one after the other on the same replica, each undone before the
/// next (5 s apart: a revert through a helper container takes a second or more on a
/// busy machine, and a fault due while the last one is still being undone is
/// skipped): once all four are reverted (the run still going), the replica has no
/// CPU quota, no memory limit, no qdisc and no rule left, and the run passes.
#[test]
fn each_grey_fault_leaves_nothing_behind_once_reverted() {
    let _docker = docker_turn();
    let id = unique("e2e-grey-revert");
    let (_dir, scenario) = common::temp_scenario(
        r#"
name = "grey-revert"
seed = 1
duration = "28s"
min_alive = 1
[service]
replicas = 2
env = { MODE = "redis" }
[load]
model = "open"
rate = 40
appends_per_session = 5
[[chaos]]
fault = "cpu"
cpus = 0.1
target = "replica-0"
at = ["1s"]
duration = "1s"
[[chaos]]
fault = "loss"
loss = "20%"
target = "replica-0"
at = ["6s"]
duration = "1s"
[[chaos]]
fault = "bandwidth"
rate = "100kbit"
target = "replica-0"
at = ["11s"]
duration = "1s"
[[chaos]]
fault = "oom"
memory = "1GiB"
target = "replica-0"
at = ["16s"]
duration = "1s"
"#,
    );
    let out = tempfile::tempdir().unwrap();
    let _guard = common::RunGuard(id.clone());
    let (mut child, lines, _) = common::start_run(Path::new(&scenario), &id, out.path());
    let container = format!("sessionstorm-{id}-replica-0.0");
    let mut reverted = Vec::new();
    let mut lines = lines;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains(" replica-0.0 (") && line.contains("reverted at") {
            reverted.push(line);
        }
        if reverted.len() == 4 {
            break;
        }
    }
    assert_eq!(reverted.len(), 4, "{reverted:#?}");
    assert!(
        reverted[3].contains("oom replica-0.0 (memory limit 1024.0 MiB): survived"),
        "{reverted:#?}"
    );
    // The run goes on for a few seconds yet: look at the replica now.
    let quota: i64 = inspect(&container, "{{.HostConfig.CpuQuota}}")
        .parse()
        .unwrap();
    assert!(quota <= 0, "a CPU quota is left: {quota}");
    let memory: i64 = inspect(&container, "{{.HostConfig.Memory}}")
        .parse()
        .unwrap();
    assert!(
        memory == 0 || memory >= 1 << 62,
        "a memory limit is left: {memory}"
    );
    let netns = netns_state(&id, &container);
    assert!(!netns.contains("tbf"), "a qdisc is left: {netns}");
    assert!(!netns.contains("DROP"), "a rule is left: {netns}");
    assert!(netns.contains("-P INPUT ACCEPT"), "{netns}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:#?}");
    drop(_guard);
    assert!(labelled(&id).is_empty());
}

/// GET `url` with curl: the status (0 when nothing answered within 2 s) and the
/// `X-Served-By` header.
fn answer(url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "2", url])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = (text.lines().next())
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let served = (text.lines())
        .find_map(|line| line.strip_prefix("x-served-by:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    (status, served)
}

/// `blackhole` with `peer = "store"` on replica-0, from 4 s for 6 s, behind a
/// balancer that checks `/livez` (which asks no store). Watched while it holds: the
/// replica cannot reach the store (its `/healthz` says 503) but answers everyone
/// else at once, and the balancer keeps sending it requests after its checks had
/// time to take it out; the others still reach the store. A full blackhole would
/// leave the victim silent and out of the balancer; a fault that did nothing would
/// leave its `/healthz` at 200 and fail no request. After the revert it reaches the
/// store again and no rule is left; the run passes with the failed requests all put
/// down to the victim, which was never replaced.
#[test]
fn a_store_partition_seen_by_one_replica_fails_its_store_calls_alone_then_heals() {
    let _docker = docker_turn();
    let id = unique("e2e-store-peer");
    let out = tempfile::tempdir().unwrap();
    let guard = common::RunGuard(id.clone());
    let scenario = common::repo("scenarios/store-partition-one-replica.toml");
    let (mut child, lines, seen) = common::start_run(&scenario, &id, out.path());
    let balancer = (seen.iter())
        .find(|l| l.starts_with("cluster ready"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no balancer URL in {seen:#?}"))
        .to_string();
    let network = format!("sessionstorm-{id}");
    let address = |what: &str| {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
        inspect(&format!("sessionstorm-{id}-{what}"), &format)
    };
    let (victim, other, store) = (
        address("replica-0.0"),
        address("replica-1.0"),
        address("store"),
    );
    let on = |ip: &str, path: &str| answer(&format!("http://{ip}:8080{path}"));

    let cut = common::wait_for(Duration::from_secs(20), || on(&victim, "/healthz").0 == 503);
    assert!(cut.is_some(), "replica-0 never lost its store");
    assert_eq!(on(&victim, "/livez"), (200, "replica-0.0".to_string()));
    assert_eq!(
        on(&other, "/healthz").0,
        200,
        "another replica lost the store"
    );
    let container = format!("sessionstorm-{id}-replica-0.0");
    let rules = netns_state(&id, &container);
    assert!(
        rules.contains(&format!("-A INPUT -s {store}/32 -j DROP"))
            && rules.contains(&format!("-A OUTPUT -d {store}/32 -j DROP")),
        "{rules}"
    );
    assert!(
        !rules.contains("-A INPUT -j DROP"),
        "a full blackhole: {rules}"
    );
    // Past the balancer's two failed checks 500 ms apart, it still sends the replica
    // its share (the load's requests go round the same servers as these).
    std::thread::sleep(Duration::from_millis(1500));
    let served: Vec<String> = (0..30)
        .map(|_| answer(&format!("{balancer}/livez")).1)
        .collect();
    assert!(served.iter().any(|s| s == "replica-0.0"), "{served:?}");
    assert_eq!(
        on(&victim, "/healthz").0,
        503,
        "the fault was over before the balancer was asked"
    );

    let mut lines = lines.map_while(Result::ok);
    let fault = (lines.by_ref())
        .find(|l| l.contains("blackhole replica-0.0"))
        .expect("the fault's line");
    assert!(fault.contains("reverted at"), "{fault}");
    let back = common::wait_for(Duration::from_secs(10), || on(&victim, "/healthz").0 == 200);
    assert!(
        back.is_some(),
        "replica-0 did not reach the store again: {fault}"
    );
    let rules = netns_state(&id, &container);
    assert!(!rules.contains("DROP"), "a rule is left: {rules}");
    let rest: Vec<String> = lines.collect();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{fault}\n{rest:#?}");

    let summary: Value =
        serde_json::from_slice(&std::fs::read(out.path().join(&id).join("summary.json")).unwrap())
            .unwrap();
    let e = &summary["faults"]["events"][0];
    assert_eq!(
        (
            e["fault"].as_str(),
            e["outcome"].as_str(),
            &e["replacement"]
        ),
        (Some("blackhole"), Some("injected"), &Value::Null),
        "{e}"
    );
    let params = e["params"].as_str().unwrap();
    assert!(
        params.starts_with(&format!(
            "only its traffic with the store; the store was at {store}"
        )),
        "{params}"
    );
    let errors = summary["errors_by"].as_object().unwrap();
    assert!(
        errors.get("replica-0.0").and_then(Value::as_u64) > Some(0),
        "{errors:?}"
    );
    assert!(
        errors
            .keys()
            .all(|replica| replica.starts_with("replica-0")),
        "{errors:?}"
    );
    common::assert_errors_add_up(&summary);
    let served = summary["served_by"].as_object().unwrap();
    assert!(!served.contains_key("replica-0.1"), "replaced: {served:?}");
    assert!(summary["cluster"]["healed_ms"].is_u64());
    drop(guard);
    assert!(labelled(&id).is_empty());
}

/// The delay the proxy measured, from a fault record's `params`.
fn measured_mean_ms(e: &Value) -> f64 {
    let params = e["params"].as_str().unwrap();
    params
        .split("held back, ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no measured delay in {params:?}"))
}

/// A percentile of reads in the one-second interval starting at `t` s.
fn read_ms(run: &common::Run, t: u64, percentile: &str) -> f64 {
    let summary = run.summary.as_ref().unwrap();
    let intervals = summary["intervals"].as_array().unwrap();
    let interval = intervals.iter().find(|i| i["t"] == t).unwrap();
    interval["ops"]["read"]["corrected_ms"][percentile]
        .as_f64()
        .unwrap()
}

/// Runs a scenario whose one fault holds answers back from 4 s to 9 s, and checks
/// the record (the delay the proxy measured, within `delay..=delay + jitter`) and
/// that reads' `percentile` carried the delay in the window and not after it.
fn delayed_in_the_window_only(
    scenario: &str,
    fault: &str,
    delay: f64,
    jitter: f64,
    percentile: &str,
) {
    let _docker = docker_turn();
    let id = unique(&format!("e2e-{fault}"));
    let run = run_scenario(scenario, &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let e = &events(&run)[0];
    assert_eq!(
        (e["fault"].as_str(), e["outcome"].as_str()),
        (Some(fault), Some("injected"))
    );
    let mean = measured_mean_ms(e);
    assert!((delay..=delay + jitter + 0.5).contains(&mean), "{e}");
    for t in 5..=7 {
        let ms = read_ms(&run, t, percentile);
        assert!(ms >= delay, "read {percentile} at {t}s: {ms}");
    }
    for t in 11..=13 {
        let ms = read_ms(&run, t, percentile);
        assert!(
            ms < delay * 0.75,
            "read {percentile} at {t}s, after the revert: {ms}"
        );
    }
    assert!(labelled(&id).is_empty());
}

/// `slow_store`: the harness's proxy holds the store's answers back during the
/// window only. Every read makes one store round trip: p50 takes the delay.
#[test]
fn a_slow_store_delays_every_store_answer_in_the_window_only_and_passes() {
    delayed_in_the_window_only(
        "scenarios/slow-store.toml",
        "slow_store",
        200.0,
        50.0,
        "p50",
    );
}

/// `latency`: a replica's answers held back by the proxy between HAProxy and it.
/// A third of the reads go to it: p90 takes the delay.
#[test]
fn latency_on_a_replica_delays_its_answers_in_the_window_only_and_passes() {
    delayed_in_the_window_only("scenarios/latency.toml", "latency", 300.0, 50.0, "p90");
}

/// A full store under `allkeys-lru` evicts sessions: the run fails with lost
/// sessions, and says the store evicted them (it read `evicted_keys`).
#[test]
fn memory_pressure_under_lru_loses_sessions_the_store_evicted() {
    let _docker = docker_turn();
    let id = unique("e2e-evict-lru");
    let run = run_scenario("scenarios/store-evict-lru.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 1);
    assert!(any_detail(samples, "evicted by the store"), "{samples:?}");
    let store = &run.summary.as_ref().unwrap()["store"];
    assert!(store["evicted_total"].as_u64().unwrap() > 0, "{store}");
    let kinds: Vec<&str> = (store["events"].as_array().unwrap().iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"evicted") && kinds.contains(&"memory_limit"),
        "{kinds:?}"
    );
}

/// The same pressure under `noeviction`: Redis refuses writes instead, which are
/// failed requests, not loss. Passes, with the failures counted and nothing evicted.
#[test]
fn memory_pressure_under_noeviction_refuses_writes_and_loses_nothing() {
    let _docker = docker_turn();
    let id = unique("e2e-noeviction");
    let run = run_scenario("scenarios/store-noeviction.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let s = run.summary.as_ref().unwrap();
    assert_eq!(s["anomalies"]["total"], 0);
    common::assert_errors_add_up(s);
    let failed: u64 = (s["operations"].as_object().unwrap().values())
        .map(|o| o["errors"].as_u64().unwrap())
        .sum();
    assert!(
        failed > 0,
        "the full store refused writes: {}",
        s["operations"]
    );
    assert_eq!(s["store"]["evicted_total"], 0, "{}", s["store"]);
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}
