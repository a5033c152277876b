//! End-to-end tests of the Redis Cluster topology: the real binary forms a cluster of
//! six real Redis containers (three primaries, a replica each), the demo service
//! reaches it through its cluster client, and the primary of slot 0 is SIGKILLed.

mod common;

use std::time::Duration;

use common::{
    assert_passed_under_kills, describe, docker_turn, labelled, run_scenario, sigkill, start_run,
    unique, wait_for, RunGuard,
};

/// `store-cluster-failover.toml` passes, as measured: a failover per 8 s loses no
/// acknowledged write (replication within a shard lags by far less than the kill),
/// and the requests that failed meanwhile are failed requests, not anomalies. Each
/// fault's record names the member killed, the one promoted and the failover time;
/// a fresh member under the dead one's name is the next failover's promoted replica.
/// The store's timeline has the cluster's own account: the killed member marked
/// failing, and its replica a primary of its slots.
#[test]
fn a_cluster_failover_loses_nothing_and_says_who_was_promoted_when() {
    let _docker = docker_turn();
    let id = unique("e2e-cluster-failover");
    let run = run_scenario("scenarios/store-cluster-failover.toml", &id, &[]);
    let summary = assert_passed_under_kills(&run, &id, 300, 3000);
    let faults = summary["faults"]["events"].as_array().unwrap();
    let injected: Vec<_> = (faults.iter())
        .filter(|f| f["outcome"] == "injected")
        .collect();
    assert_eq!(injected.len(), 3, "{}", describe(&run));
    for (n, fault) in injected.iter().enumerate() {
        // The primary of slot 0 goes back and forth between store-0 and its replica.
        let (killed, promoted) = match n % 2 {
            0 => ("store-0", "store-3"),
            _ => ("store-3", "store-0"),
        };
        assert_eq!(fault["target"], killed, "{fault}");
        assert_eq!(fault["replacement"], killed, "{fault}");
        let detail = fault["params"].as_str().unwrap();
        let said = format!("{killed} killed; {promoted} promoted after ");
        assert!(detail.starts_with(&said), "{fault}");
        assert!(detail.contains(" s, the cluster ok after "), "{fault}");
        // Detection (1 s of silence), agreement and the election take seconds.
        let ready = fault["ready_after_ms"].as_u64().unwrap();
        assert!((1000..15_000).contains(&ready), "{fault}");
        assert!(fault["error"].is_null(), "{fault}");
    }
    let told: Vec<(&str, &str)> = (summary["store"]["events"].as_array().unwrap().iter())
        .filter(|e| e["kind"] == "cluster")
        .map(|e| {
            (
                e["member"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    for said in [
        ("store-0", "marked failing by the cluster (fail)"),
        (
            "store-3",
            "is a primary of slots 0-5460 (was a replica of store-0)",
        ),
    ] {
        assert!(told.contains(&said), "{said:?} in {told:#?}");
    }
    assert!(
        summary["faults"]["failed_requests"].as_u64().unwrap() > 0,
        "a failover with no failed request was no failover: {}",
        summary["faults"]
    );
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

/// A harness SIGKILLed while the cluster fails over leaves nothing: its reaper
/// removes the six members, the replaced member's fresh container and the network.
#[test]
fn a_sigkilled_harness_leaves_no_member_of_the_cluster() {
    let _docker = docker_turn();
    let id = unique("e2e-cluster-sigkill");
    let _guard = RunGuard(id.clone());
    let out = tempfile::tempdir().unwrap();
    let scenario = common::repo("scenarios/store-cluster-failover.toml");
    let (mut child, _stdout, _) = start_run(&scenario, &id, out.path());
    let fresh = format!("sessionstorm-{id}-store-0.1");
    let replaced = wait_for(Duration::from_secs(30), || labelled(&id).contains(&fresh));
    assert!(replaced.is_some(), "no fresh store-0: {:?}", labelled(&id));
    sigkill(&mut child);
    let gone = wait_for(Duration::from_secs(30), || labelled(&id).is_empty());
    assert!(
        gone.is_some(),
        "left 30 s after SIGKILL: {:?}",
        labelled(&id)
    );
}
