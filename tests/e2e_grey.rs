//! End-to-end tests of the grey faults (`cpu`, `loss`, `bandwidth`, `oom`): the real
//! binary against real containers, each run short (15 s of load).

mod common;

use common::{describe, docker_turn, labelled, run_scenario, unique};
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
        ("scenarios/loss.toml", "loss", "10% of packets dropped"),
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
        assert!(labelled(&id).is_empty());
    }
}
