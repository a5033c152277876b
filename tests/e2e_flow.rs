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

/// A session made by its first write, with `new_cookie` on its id cookie and no
/// start step: the first cookie a session gets is no sign of loss, so the correct
/// app passes (issue 24: this was 24,000 false lost sessions on a Rails app), and no
/// `create` is timed, since nothing is sent to create a session.
#[test]
fn a_session_made_by_its_first_write_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("flow-first-write");
    let run = run_scenario("scenarios/flow-counter-first-write.toml", &id, &[]);
    let s = assert_passed_under_kills(&run, &id, 21, 100);
    replacements_answered(s);
    assert!(
        s["operations"].get("create").is_none(),
        "{}",
        s["operations"]
    );
    let create_row = run
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("create "));
    assert!(!create_row, "{}", run.stdout);
}

/// The same flow against sessions kept per process: another replica makes a fresh
/// session under a new cookie, and the sign catches it.
#[test]
fn a_session_made_by_its_first_write_in_memory_mode_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("flow-first-write-mem");
    let run = run_scenario("scenarios/flow-counter-first-write-memory.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 11);
    assert!(
        any_detail(samples, "setting a new `sessionid` cookie"),
        "{samples:?}"
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
