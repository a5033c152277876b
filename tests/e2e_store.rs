//! End-to-end tests of the store topologies and their faults: the real binary against
//! real containers (Redis members, Sentinels, HAProxy in front; memcached nodes),
//! the shipped scenarios, each exiting as its header says.

mod common;

use common::{
    any_detail, assert_lost_sessions, assert_passed_under_kills, describe, docker_turn, labelled,
    run_scenario, summary, unique, Run,
};
use serde_json::Value;

/// The run's fault records of `fault`.
fn faults<'r>(run: &'r Run, fault: &str) -> Vec<&'r Value> {
    (summary(run)["faults"]["events"].as_array().unwrap().iter())
        .filter(|e| e["fault"] == fault)
        .collect()
}

/// Whether some anomaly sample's nearest fault is `text`'s.
fn tied_to(run: &Run, text: &str) -> bool {
    (summary(run)["anomalies"]["samples"]
        .as_array()
        .unwrap()
        .iter())
    .any(|a| {
        a["nearest_fault"]
            .as_str()
            .is_some_and(|f| f.contains(text))
    })
}

#[test]
fn a_sentinel_failover_under_load_loses_nothing_and_says_how_long_it_took() {
    let _docker = docker_turn();
    let id = unique("e2e-sentinel-failover");
    let run = run_scenario(
        "scenarios/store-sentinel-failover.toml",
        &id,
        &["--duration", "20s"],
    );
    assert_passed_under_kills(&run, &id, 300, 1000);
    let failovers = faults(&run, "failover");
    assert_eq!(failovers.len(), 2, "{}", describe(&run));
    for f in failovers {
        // The primary of the moment was killed, another promoted, and the time from
        // the kill until it served through `store` is the record's.
        let params = f["params"].as_str().unwrap();
        assert!(
            params.contains("killed;") && params.contains("promoted after"),
            "{f}"
        );
        assert!(f["target"].as_str().unwrap().starts_with("store-"), "{f}");
        assert!(f["ready_after_ms"].as_u64().unwrap() > 0, "{f}");
        assert_eq!(f["replacement"].as_str(), f["target"].as_str(), "{f}");
    }
}

#[test]
fn a_primary_restarted_empty_before_the_sentinels_notice_loses_every_session() {
    let _docker = docker_turn();
    let id = unique("e2e-sentinel-restart-empty");
    let run = run_scenario(
        "scenarios/store-sentinel-restart-empty.toml",
        &id,
        &["--duration", "14s"],
    );
    let samples = assert_lost_sessions(&run, &id, 100);
    assert!(any_detail(samples, "answered 404"), "{}", describe(&run));
    assert!(tied_to(&run, "restart of store-0"), "{}", describe(&run));
    // The store's timeline says why: the primary came back a new process, empty.
    let events = summary(&run)["store"]["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["detail"].as_str().unwrap().contains("it holds 0 keys")),
        "{events:?}"
    );
}

#[test]
fn a_lagging_replication_link_loses_acknowledged_writes_at_the_failover() {
    let _docker = docker_turn();
    let id = unique("e2e-sentinel-lag");
    let run = run_scenario(
        "scenarios/store-sentinel-lag.toml",
        &id,
        &["--duration", "18s"],
    );
    assert_eq!(run.output.status.code(), Some(1), "{}", describe(&run));
    let s = summary(&run);
    let by_kind = &s["anomalies"]["by_kind"];
    let lost = ["lost_session", "lost_write"]
        .iter()
        .filter_map(|k| by_kind[k].as_u64())
        .sum::<u64>();
    assert!(lost > 0, "{}", describe(&run));
    assert!(tied_to(&run, "failover of store-0"), "{}", describe(&run));
    let lag = faults(&run, "store_lag");
    assert!(
        lag[0]["params"]
            .as_str()
            .unwrap()
            .contains("answers held back"),
        "{lag:?}"
    );
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

#[test]
fn waiting_for_a_replica_after_every_write_makes_the_lagging_failover_lossless() {
    let _docker = docker_turn();
    let id = unique("e2e-sentinel-wait");
    let run = run_scenario(
        "scenarios/store-sentinel-wait.toml",
        &id,
        &["--duration", "18s"],
    );
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let s = summary(&run);
    assert_eq!(s["anomalies"]["total"], 0, "{}", describe(&run));
    assert_eq!(s["sessions"]["unverified"], 0);
    // Writes the new primary could not have a replica confirm were refused: failed
    // requests, not loss.
    let failed: u64 = (s["operations"].as_object().unwrap().values())
        .map(|o| o["errors"].as_u64().unwrap())
        .sum();
    assert!(failed > 0, "{}", describe(&run));
    assert_eq!(faults(&run, "failover").len(), 1, "{}", describe(&run));
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

#[test]
fn a_lost_memcached_node_loses_the_sessions_it_held() {
    let _docker = docker_turn();
    let id = unique("e2e-memcached-node");
    let run = run_scenario(
        "scenarios/store-memcached-node-loss.toml",
        &id,
        &["--duration", "14s"],
    );
    let samples = assert_lost_sessions(&run, &id, 10);
    assert!(any_detail(samples, "answered 404"), "{}", describe(&run));
    assert!(tied_to(&run, "kill of store-1"), "{}", describe(&run));
    // The other nodes kept theirs: far from every session was lost.
    let s = summary(&run);
    let lost = s["anomalies"]["by_kind"]["lost_session"].as_u64().unwrap();
    let created = s["sessions"]["created"].as_u64().unwrap();
    assert!(lost < created * 2 / 3, "{lost} of {created}");
}
