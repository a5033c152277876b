//! The store's timeline per member, on a real replicated store (a primary, two
//! replicas, three Sentinels, HAProxy in front): what each member did, who was
//! primary when, Sentinel's own lines, the replicas' lag at each fault, and the lost
//! sessions tied to what the primary did.

mod common;

use common::*;
use serde_json::Value;

/// The store's events of `member` (`store-0`, `sentinel-0`; "" for the whole store).
fn events_of<'s>(store: &'s Value, member: &str) -> Vec<&'s Value> {
    (store["events"].as_array().unwrap().iter())
        .filter(|e| e["member"].as_str().unwrap_or("") == member)
        .collect()
}

fn ms(value: &Value) -> u64 {
    value.as_u64().unwrap()
}

/// `store-sentinel-restart-empty.toml`: the primary, without persistence, restarted
/// before the Sentinels act. Its keys drop to none, the replicas resync from it
/// emptied, and the lost sessions are tied to its restart.
#[test]
fn a_primary_restarted_empty_empties_its_replicas_on_their_timelines() {
    let _docker = docker_turn();
    let id = unique("e2e-store-timeline-empty");
    let run = run_scenario("scenarios/store-sentinel-restart-empty.toml", &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 1);
    let s = summary(&run);
    let problems = schema_problems(s);
    assert!(problems.is_empty(), "{problems:#?}");
    let store = &s["store"];
    let members: Vec<&str> = (store["members"].as_array().unwrap().iter())
        .map(|m| m["member"].as_str().unwrap())
        .collect();
    assert_eq!(members, ["store-0", "store-1", "store-2"], "{store}");

    // store-0 came back a new process and its keys dropped to none.
    let restarted = (events_of(store, "store-0").into_iter())
        .find(|e| e["kind"] == "restarted")
        .unwrap_or_else(|| panic!("store-0 did not restart: {}", store["events"]));
    let back = ms(&restarted["at_ms"]);
    let points = store["members"][0]["points"].as_array().unwrap();
    let held = |p: &&Value| ms(&p["keys_max"]) > 0;
    assert!(points
        .iter()
        .take_while(|p| ms(&p["t"]) * 1000 < back)
        .any(|p| held(&p)));
    // An answer of none (a second in which the store was also down, back within
    // it, shows its keys before the restart as the most and none as the fewest).
    let answered = |p: &Value| p["unanswered"] == 0 || ms(&p["keys_max"]) > 0;
    assert!(
        (points.iter())
            .filter(|p| (ms(&p["t"]) + ms(&p["span_s"])) * 1000 >= back)
            .any(|p| p["keys_min"] == 0 && answered(p)),
        "store-0's keys after its restart at {back} ms: {points:?}"
    );
    assert!(
        restarted["detail"]
            .as_str()
            .unwrap()
            .contains("it holds 0 keys"),
        "{restarted}"
    );

    // Each replica lost what it held after that, resyncing from the empty primary.
    for replica in ["store-1", "store-2"] {
        let emptied = (events_of(store, replica).into_iter()).find(|e| {
            ["emptied", "resynced"].contains(&e["kind"].as_str().unwrap())
                && ms(&e["at_ms"]) >= back
        });
        let emptied = emptied.unwrap_or_else(|| {
            panic!("{replica} not emptied after {back} ms: {}", store["events"])
        });
        assert_eq!(emptied["replica"], true, "{emptied}");
    }

    // store-0 was the primary throughout, but while it was down.
    let primaries = store["primaries"].as_array().unwrap();
    assert!(
        primaries.iter().all(|p| p["member"] == "store-0"),
        "{primaries:?}"
    );
    // The lag when the fault came is on its record.
    let fault = &s["faults"]["events"][0];
    assert!(fault["store_lag_bytes"].is_u64(), "{fault}");

    // Every lost session found after the restart is tied to it, not to a replica's
    // resync nor a Sentinel's line.
    let tied: Vec<&str> = (samples.iter())
        .filter(|a| ms(&a["at_ms"]) > back)
        .map(|a| a["nearest_store_event"].as_str().unwrap_or(""))
        .collect();
    assert!(!tied.is_empty(), "{samples:?}");
    assert!(
        (tied.iter()).all(|e| e.starts_with("store-0 restarted (a new process)")),
        "{tied:?}"
    );
    assert!(
        run.stdout.contains("store-0 restarted (a new process)"),
        "{}",
        describe(&run)
    );
}

/// `store-sentinel-failover.toml`: the primary SIGKILLed every 8 s. Each failover
/// is a promotion on the timeline, with the Sentinel's own lines, and the primary
/// changes hands; the replicas' lag is on every fault's record.
#[test]
fn failovers_are_promotions_with_sentinel_s_lines_and_the_lag_at_each_kill() {
    let _docker = docker_turn();
    let id = unique("e2e-store-timeline-failover");
    let run = run_scenario("scenarios/store-sentinel-failover.toml", &id, &[]);
    assert_eq!(run.output.status.code(), Some(0), "{}", describe(&run));
    let s = summary(&run);
    let problems = schema_problems(s);
    assert!(problems.is_empty(), "{problems:#?}");
    let store = &s["store"];
    let events = store["events"].as_array().unwrap();
    let promotions = (events.iter())
        .filter(|e| e["kind"] == "role" && e["detail"] == "became a primary (was a replica)")
        .count();
    let faults = s["faults"]["events"].as_array().unwrap();
    assert!(
        promotions >= faults.len(),
        "{promotions} promotions, {} failovers: {events:?}",
        faults.len()
    );
    let lines: Vec<&str> = (events.iter())
        .filter(|e| e["kind"] == "sentinel")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+switch-master sessions ")),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("+odown master sessions ")));
    // More than one member was primary in turn.
    let mut primaries: Vec<&str> = (store["primaries"].as_array().unwrap().iter())
        .map(|p| p["member"].as_str().unwrap())
        .collect();
    primaries.dedup();
    assert!(primaries.len() > faults.len(), "{primaries:?}");
    assert!(
        faults.iter().all(|f| f["store_lag_bytes"].is_u64()),
        "{faults:?}"
    );
    assert!(run.stdout.contains("  primary: store-0 "), "{}", run.stdout);
    assert!(labelled(&id).is_empty(), "left behind: {:?}", labelled(&id));
}

/// A memcached pool, one node SIGKILLed and replaced: the node stopped answering and
/// came back a new process, all but empty, and the sessions it held are lost and
/// tied to that.
#[test]
fn a_pool_node_lost_comes_back_a_new_empty_process() {
    let _docker = docker_turn();
    let id = unique("e2e-store-timeline-pool");
    let (_dir, scenario) = temp_scenario(
        r#"
name = "pool-timeline"
seed = 3
duration = "14s"
[service]
replicas = 2
env = { MODE = "memcached" }
[store]
topology = "memcached-pool"
nodes = 3
[load]
users = 8
appends_per_session = 10
retries = 3
[[chaos]]
fault = "kill"
target = "store-1"
at = ["6s"]
"#,
    );
    let run = run_scenario(&scenario, &id, &[]);
    let samples = assert_lost_sessions(&run, &id, 1);
    let s = summary(&run);
    let problems = schema_problems(s);
    assert!(problems.is_empty(), "{problems:#?}");
    let store = &s["store"];
    let kinds: Vec<&str> = (events_of(store, "store-1").into_iter())
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unreachable", "reachable", "restarted"], "{store}");
    let restarted = events_of(store, "store-1")[2];
    let detail = restarted["detail"].as_str().unwrap();
    let (now, before) = held(detail);
    assert!(now * 4 < before, "{detail}");
    assert!(store["primaries"].is_null(), "a pool has no primaries");
    for other in ["store-0", "store-2"] {
        assert!(events_of(store, other).is_empty(), "{store}");
    }
    let back = ms(&restarted["at_ms"]);
    assert!(
        (samples.iter())
            .filter(|a| ms(&a["at_ms"]) > back)
            .all(|a| a["nearest_store_event"]
                .as_str()
                .is_some_and(|e| e.starts_with("store-1 restarted"))),
        "{samples:?}"
    );
}

/// The keys a restarted member holds and held before, from its event's detail
/// ("restarted (a new process): it holds 4 keys, 70 before").
fn held(detail: &str) -> (u64, u64) {
    let numbers: Vec<u64> = detail
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}
