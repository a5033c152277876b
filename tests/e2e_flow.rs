//! End-to-end tests of custom session flows: the real binary drives the two demo
//! services only through `[flow]` steps (`scenarios/flow-*.toml`), against real
//! containers, while replicas are SIGKILLed. The correct (redis) modes must pass;
//! the broken (memory) modes really lose sessions and must fail with lost sessions.

mod common;

use common::{describe, docker_turn, labelled, run_scenario, unique, Run};
use serde_json::Value;

fn summary(run: &Run) -> &Value {
    run.summary.as_ref().expect("summary.json written")
}

/// Asserts a passing run that really went through kills and really wrote: faults
/// injected, replacements answering, acknowledged writes checked by every session.
fn assert_passed_under_kills(run: &Run, id: &str) {
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(run));
    let s = summary(run);
    assert_eq!(s["anomalies"]["total"], 0, "{}", describe(run));
    assert!(
        s["faults"]["injected"].as_u64().unwrap() >= 2,
        "{}",
        s["faults"]
    );
    let created = s["sessions"]["created"].as_u64().unwrap();
    assert!(created > 20, "{}", s["sessions"]);
    assert_eq!(s["sessions"]["checked"].as_u64(), Some(created));
    assert_eq!(s["sessions"]["unverified"], 0);
    assert!(s["operations"]["append"]["ok"].as_u64().unwrap() > 100);
    let replacements = s["served_by"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|instance| !instance.ends_with(".0"))
        .count();
    assert!(
        replacements >= 1,
        "no replacement replica answered: {}",
        s["served_by"]
    );
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
}

/// Asserts a run that failed with lost sessions, whose details name `sign`.
fn assert_lost_sessions(run: &Run, id: &str, sign: &str) {
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(run));
    let s = summary(run);
    let lost = s["anomalies"]["by_kind"]["lost_session"].as_u64().unwrap();
    assert!(lost > 10, "{}", s["anomalies"]);
    let samples = s["anomalies"]["samples"].as_array().unwrap();
    assert!(
        samples
            .iter()
            .any(|a| a["detail"].as_str().unwrap().contains(sign)),
        "no anomaly names {sign:?}: {}",
        s["anomalies"]
    );
    assert!(run.stdout.contains("verdict FAILED"), "{}", describe(run));
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
}

#[test]
fn cart_flow_over_json_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("flow-cart");
    let run = run_scenario("scenarios/flow-cart.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
}

#[test]
fn cart_flow_against_memory_mode_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("flow-cart-mem");
    let run = run_scenario("scenarios/flow-cart-memory.toml", &id, &[]);
    assert_lost_sessions(&run, &id, "answered 404");
}

#[test]
fn counter_flow_with_forms_and_redirects_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("flow-counter");
    let run = run_scenario("scenarios/flow-counter.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
    // Every increment went through a 303 and a followed page read.
    let s = summary(&run);
    assert!(s["operations"]["read"]["ok"].as_u64().unwrap() > 100);
}

#[test]
fn counter_flow_against_memory_mode_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("flow-counter-mem");
    let run = run_scenario("scenarios/flow-counter-memory.toml", &id, &[]);
    assert_lost_sessions(&run, &id, "redirecting to /accounts/login/?next=");
    let samples = summary(&run)["anomalies"]["samples"].as_array().unwrap();
    assert!(
        samples[0]["session"]
            .as_str()
            .unwrap()
            .starts_with("sessionid="),
        "{}",
        samples[0]
    );
}
