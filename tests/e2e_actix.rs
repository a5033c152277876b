//! End-to-end tests against a real third-party session library: `actix-app` is
//! actix-session (Rust) configured as its documentation shows, driven through
//! `scenarios/lib-actix-*.toml` while replicas are SIGKILLed. With the cookie key shared
//! by every replica both stores must pass; with `Key::generate()` in every replica (the
//! broken deployment people really ship) both must fail with lost sessions, although
//! the answers are all 200 and the cookie changes on every answer anyway.

mod common;

use common::{describe, docker_turn, labelled, run_scenario, unique, Run};
use serde_json::Value;

fn summary(run: &Run) -> &Value {
    run.summary.as_ref().expect("summary.json written")
}

/// A passing run that really went through kills and really counted.
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
    assert!(created >= 6, "{}", s["sessions"]);
    assert_eq!(s["sessions"]["checked"].as_u64(), Some(created));
    assert!(s["operations"]["append"]["ok"].as_u64().unwrap() > 50);
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
}

/// A run that failed because sessions came back empty (the counter at 0 again).
fn assert_lost_sessions(run: &Run, id: &str) {
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(run));
    let s = summary(run);
    let lost = s["anomalies"]["by_kind"]["lost_session"].as_u64().unwrap();
    assert!(lost >= 3, "{}", s["anomalies"]);
    assert!(run.stdout.contains("verdict FAILED"), "{}", describe(run));
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
}

#[test]
fn redis_store_with_a_shared_key_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("lib-actix-redis");
    let run = run_scenario("scenarios/lib-actix-redis.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
}

#[test]
fn redis_store_with_a_key_per_replica_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("lib-actix-key");
    let run = run_scenario("scenarios/lib-actix-key-per-replica.toml", &id, &[]);
    assert_lost_sessions(&run, &id);
}

#[test]
fn cookie_store_with_a_shared_key_passes_under_kills() {
    let _turn = docker_turn();
    let id = unique("lib-actix-cookie");
    let run = run_scenario("scenarios/lib-actix-cookie.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
}

#[test]
fn cookie_store_with_a_key_per_replica_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let id = unique("lib-actix-cookie-key");
    let run = run_scenario("scenarios/lib-actix-cookie-key-per-replica.toml", &id, &[]);
    assert_lost_sessions(&run, &id);
}
