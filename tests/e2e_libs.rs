//! End-to-end tests of apps built on real session libraries (`sessionstorm/lib-apps`,
//! `scenarios/lib-*.toml`): Django's sessions with its CSRF-protected login form, and
//! PHP native sessions, each in a correct configuration (Redis) that must pass under
//! kills and in a broken one people deploy that must fail with lost sessions.
//!
//! The scenarios use the flow keys of issue 13 (`capture = { regex }`, `shows`, a
//! writing final sweep, lost sessions judged from content). The image is built from
//! Debian packages with `debootstrap` the first time (minutes).

mod common;

use common::{describe, docker_turn, labelled, run_scenario, unique, Run};
use serde_json::Value;

fn summary(run: &Run) -> &Value {
    run.summary.as_ref().expect("summary.json written")
}

/// A passing run that went through kills: faults injected, every session checked.
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
    assert!(created > 10, "{}", s["sessions"]);
    assert_eq!(s["sessions"]["checked"].as_u64(), Some(created));
    assert_eq!(s["sessions"]["unverified"], 0);
    assert!(s["operations"]["append"]["ok"].as_u64().unwrap() > 50);
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
}

/// A run that failed with lost sessions (the most frequent kind), and nothing the
/// service never wrote or wrote twice. Returns the anomaly samples.
fn assert_lost_sessions(run: &Run, id: &str) -> Vec<Value> {
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(run));
    let s = summary(run);
    let by_kind = s["anomalies"]["by_kind"].as_object().unwrap();
    let count = |kind: &str| by_kind[kind].as_u64().unwrap();
    assert!(count("lost_session") > 10, "{}", s["anomalies"]);
    for kind in ["lost_write", "stale_read"] {
        assert!(count(kind) < count("lost_session"), "{}", s["anomalies"]);
    }
    assert_eq!(count("duplicate"), 0, "{}", s["anomalies"]);
    assert_eq!(count("phantom"), 0, "{}", s["anomalies"]);
    assert!(run.stdout.contains("verdict FAILED"), "{}", describe(run));
    assert!(labelled(id).is_empty(), "left behind: {:?}", labelled(id));
    s["anomalies"]["samples"].as_array().unwrap().clone()
}

#[test]
fn django_sessions_on_redis_pass_under_kills() {
    let _turn = docker_turn();
    let id = unique("lib-django-redis");
    let run = run_scenario("scenarios/lib-django-redis.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
    // Every add went through a 302 to the cart page, which was read.
    assert!(summary(&run)["operations"]["read"]["ok"].as_u64().unwrap() > 50);
}

#[test]
fn django_sessions_in_locmem_fail_with_login_redirects() {
    let _turn = docker_turn();
    let id = unique("lib-django-locmem");
    let run = run_scenario("scenarios/lib-django-locmem.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id);
    assert!(
        samples.iter().any(|a| a["detail"]
            .as_str()
            .unwrap()
            .contains("/accounts/login/?next=")),
        "no anomaly names the login redirect: {samples:?}"
    );
}

#[test]
fn php_sessions_on_redis_pass_under_kills() {
    let _turn = docker_turn();
    let id = unique("lib-php-redis");
    let run = run_scenario("scenarios/lib-php-redis.toml", &id, &[]);
    assert_passed_under_kills(&run, &id);
    // No read-only page: the sweep visited (and wrote) once per session.
    let s = summary(&run);
    assert_eq!(
        s["operations"]["sweep"]["ok"].as_u64(),
        s["sessions"]["created"].as_u64(),
        "{}",
        s["operations"]["sweep"]
    );
}

#[test]
fn php_sessions_in_files_fail_with_silent_resets() {
    let _turn = docker_turn();
    let id = unique("lib-php-files");
    let run = run_scenario("scenarios/lib-php-files.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id);
    // PHP adopted the unknown id: the session came back empty under the same cookie.
    assert!(
        samples.iter().any(|a| a["kind"] == "lost_session"
            && a["detail"]
                .as_str()
                .unwrap()
                .contains("under the same cookie")),
        "{samples:?}"
    );
}
