//! End-to-end tests of apps built on real third-party session libraries, each in a
//! correct configuration that must pass under kills and in a broken one people really
//! deploy that must fail with lost sessions:
//! - `sessionstorm/lib-apps`: Django's sessions behind its CSRF-protected login form,
//!   and PHP native sessions (made from Debian packages with `debootstrap` the first
//!   time: minutes);
//! - `sessionstorm/actix-app`: actix-session (Rust) as its documentation shows, whose
//!   encrypted cookie changes on every answer, with a key shared or generated per
//!   replica, on Redis or in the cookie itself.
//!
//! They use the flow keys for real libraries (`capture = { regex }`, `shows`, a writing
//! final sweep, lost sessions judged from content).

mod common;

use common::{
    any_detail, assert_lost_sessions, assert_passed_under_kills, docker_turn, run_scenario,
    summary, unique, Run,
};
use serde_json::Value;

fn run(scenario: &str) -> (Run, String) {
    let id = unique(scenario);
    let run = run_scenario(&format!("scenarios/{scenario}.toml"), &id, &[]);
    (run, id)
}

/// A broken deployment's verdict: mostly lost sessions, and nothing the service never
/// wrote or wrote twice.
fn mostly_lost_sessions<'r>(run: &'r Run, id: &str) -> &'r [Value] {
    let samples = assert_lost_sessions(run, id, 3);
    let by_kind = summary(run)["anomalies"]["by_kind"].as_object().unwrap();
    let count = |kind: &str| by_kind[kind].as_u64().unwrap();
    for kind in ["lost_write", "stale_read"] {
        assert!(count(kind) < count("lost_session"), "{by_kind:?}");
    }
    assert_eq!(count("duplicate") + count("phantom"), 0, "{by_kind:?}");
    samples
}

#[test]
fn django_sessions_on_redis_pass_under_kills() {
    let _turn = docker_turn();
    let (run, id) = run("lib-django-redis");
    let s = assert_passed_under_kills(&run, &id, 10, 50);
    // Every add went through a 302 to the cart page, which was read.
    assert!(s["operations"]["read"]["ok"].as_u64().unwrap() > 50);
}

#[test]
fn django_sessions_in_locmem_fail_with_login_redirects() {
    let _turn = docker_turn();
    let (run, id) = run("lib-django-locmem");
    let samples = mostly_lost_sessions(&run, &id);
    assert!(any_detail(samples, "/accounts/login/?next="), "{samples:?}");
}

#[test]
fn php_sessions_on_redis_pass_under_kills() {
    let _turn = docker_turn();
    let (run, id) = run("lib-php-redis");
    let s = assert_passed_under_kills(&run, &id, 10, 50);
    // No read-only page: the sweep visited (and wrote) once per session.
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
    let (run, id) = run("lib-php-files");
    let samples = mostly_lost_sessions(&run, &id);
    // PHP adopted the unknown id: the session came back empty under the same cookie.
    assert!(any_detail(samples, "under the same cookie"), "{samples:?}");
}

#[test]
fn actix_redis_store_with_a_shared_key_passes_under_kills() {
    let _turn = docker_turn();
    let (run, id) = run("lib-actix-redis");
    assert_passed_under_kills(&run, &id, 6, 50);
}

#[test]
fn actix_redis_store_with_a_key_per_replica_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let (run, id) = run("lib-actix-key-per-replica");
    // Another replica cannot decrypt the cookie and starts a session counting from 0.
    let samples = mostly_lost_sessions(&run, &id);
    assert!(any_detail(samples, "with a new `id` cookie"), "{samples:?}");
}

#[test]
fn actix_cookie_store_with_a_shared_key_passes_under_kills() {
    let _turn = docker_turn();
    let (run, id) = run("lib-actix-cookie");
    assert_passed_under_kills(&run, &id, 6, 50);
}

#[test]
fn actix_cookie_store_with_a_key_per_replica_fails_with_lost_sessions() {
    let _turn = docker_turn();
    let (run, id) = run("lib-actix-cookie-key-per-replica");
    mostly_lost_sessions(&run, &id);
}
