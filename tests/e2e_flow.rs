//! End-to-end tests of custom session flows: the real binary drives the two demo
//! services only through `[flow]` steps (`scenarios/flow-*.toml`), against real
//! containers, while replicas are SIGKILLed. The correct (redis) modes must pass;
//! the broken (memory) modes really lose sessions and must fail with lost sessions.

mod common;

use common::{
    any_detail, assert_lost_sessions, assert_passed_under_kills, docker_turn, run_scenario, unique,
};

#[test]
fn cart_flow_over_json_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("flow-cart");
    let run = run_scenario("scenarios/flow-cart.toml", &id, &[]);
    replacements_answered(assert_passed_under_kills(&run, &id, 21, 100));
}

#[test]
fn cart_flow_against_memory_mode_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("flow-cart-mem");
    let run = run_scenario("scenarios/flow-cart-memory.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 11);
    assert!(any_detail(samples, "answered 404"), "{samples:?}");
}

#[test]
fn counter_flow_with_forms_and_redirects_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("flow-counter");
    let run = run_scenario("scenarios/flow-counter.toml", &id, &[]);
    let s = assert_passed_under_kills(&run, &id, 21, 100);
    replacements_answered(s);
    // Every increment went through a 303 and a followed page read.
    assert!(s["operations"]["read"]["ok"].as_u64().unwrap() > 100);
}

#[test]
fn counter_flow_against_memory_mode_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("flow-counter-mem");
    let run = run_scenario("scenarios/flow-counter-memory.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 11);
    assert!(
        any_detail(samples, "redirecting to /accounts/login/?next="),
        "{samples:?}"
    );
    assert!(
        samples[0]["session"]
            .as_str()
            .unwrap()
            .starts_with("sessionid="),
        "{}",
        samples[0]
    );
}

/// A replacement replica (generation above 0) answered: the kills really happened and
/// the load went on through them.
fn replacements_answered(s: &serde_json::Value) {
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
}
