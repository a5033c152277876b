//! `MODE=redis` against a real, private redis-server (the tests fail, not skip, without one).

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use session_app::config::Mode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_implements_the_contract() {
    let redis = RedisServer::start();
    let app = TestApp::redis(&redis, "red-1").await;
    check_contract(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_applies_concurrent_duplicates_once() {
    let redis = RedisServer::start();
    let app = TestApp::redis(&redis, "red-1").await;
    check_concurrent_duplicates(&app).await;
    app.stop().await;
}

/// The statelessness claim: the session outlives the replica that created it, and any other
/// replica (here: B, started after A is gone) serves and extends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_sessions_survive_the_app() {
    let redis = RedisServer::start();
    let c = client();

    let a = TestApp::redis(&redis, "red-a").await;
    let (cookie, id) = create(&c, &a).await;
    for (op, item) in [("op-1", "apple"), ("op-2", "pear")] {
        assert_eq!(
            append(&c, &a, &cookie, op, item).await.status(),
            StatusCode::OK
        );
    }
    a.stop().await;

    let b = TestApp::redis(&redis, "red-b").await;
    let res = get(&c, &b, Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), "red-b");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"session": id, "version": 2, "items": ["apple", "pear"]})
    );

    // A's last op retried against B is recognised as already applied.
    let body: Value = append(&c, &b, &cookie, "op-2", "pear")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["version"], 2);
    b.stop().await;
}

/// A dead store must give quick 503s (never a hang, never a 404), and the service must
/// recover by itself once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_reports_and_recovers_from_store_outage() {
    let port = free_port();
    let c = client();
    // Start the app before the store exists: it must come up anyway.
    let app = TestApp::start(
        session_app::config::Mode::Redis,
        Some(format!("redis://127.0.0.1:{port}")),
        "red-1",
    )
    .await;

    let started = Instant::now();
    let res = c.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(served_by(&res), "red-1");
    // The liveness check asks no store: alive, while everything else fails.
    let res = c.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), "red-1");
    let res = c.post(app.url("/session")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(served_by(&res), "red-1");
    assert!(res.json::<Value>().await.unwrap()["error"].is_string());
    let res = get(&c, &app, Some("sid=00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(3));

    let redis = RedisServer::try_start_on(port).unwrap();
    wait_healthy(&c, &app).await;
    let (cookie, _) = create(&c, &app).await;

    // Store restart (data gone, since it has no persistence): 503 or 404 meanwhile, then
    // healthy again without restarting the app.
    drop(redis);
    let res = get(&c, &app, Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let _redis = RedisServer::try_start_on(port).unwrap();
    wait_healthy(&c, &app).await;
    create(&c, &app).await;
    app.stop().await;
}

async fn wait_healthy(c: &reqwest::Client, app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = c.get(app.url("/healthz")).send().await.unwrap();
        if res.status() == StatusCode::OK {
            return;
        }
        assert!(Instant::now() < deadline, "app did not recover within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `SESSION_STORE_WAIT=1`: a write is acknowledged only once a replica holds it, and
/// answered 503 (not acknowledged) when no replica holds it in time, so a failover to a
/// replica can lose no acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_replica_acknowledges_only_replicated_writes() {
    let primary = RedisServer::start();
    let app = TestApp::redis_waiting(&primary, "red-wait", 1, 300).await;
    let c = client();
    let res = c.post(app.url("/session")).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no replica yet"
    );
    let error = res.json::<Value>().await.unwrap()["error"].to_string();
    assert!(error.contains("0 of 1 replicas"), "{error}");

    let replica = RedisServer::replica_of(&primary);
    // The replica syncs first; until then WAIT counts it out.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cookie = loop {
        let res = c.post(app.url("/session")).send().await.unwrap();
        if res.status() == StatusCode::CREATED {
            let id = res.json::<Value>().await.unwrap()["session"]
                .as_str()
                .unwrap()
                .to_owned();
            break format!("sid={id}");
        }
        assert!(
            Instant::now() < deadline,
            "the replica never acknowledged a write"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let res = append(&c, &app, &cookie, "op-1", "apple").await;
    assert_eq!(res.status(), StatusCode::OK);
    // Acknowledged means on the replica, now.
    let id = cookie.strip_prefix("sid=").unwrap();
    let mut on_replica = redis::Client::open(replica.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("sess:{{{id}}}:items"))
        .arg(0)
        .arg(-1)
        .query(&mut on_replica)
        .unwrap();
    assert_eq!(items, ["apple"]);

    drop(replica);
    let res = append(&c, &app, &cookie, "op-2", "pear").await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "the replica is gone"
    );
    app.stop().await;
}

/// `SESSION_STORE=redis-cluster://…`: the contract holds on a Redis Cluster (its scripts
/// would fail with CROSSSLOT were a session's keys not in one slot), and sessions spread
/// over its primaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mode_works_on_a_redis_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = RedisServer::cluster(dir.path(), 3);
    // One node named is enough: the client learns the others from it.
    let url = format!("redis-cluster://127.0.0.1:{}", nodes[0].port);
    let app = TestApp::start(Mode::Redis, Some(url), "red-cluster").await;
    check_contract(&app).await;
    let c = client();
    for k in 0..30 {
        let (cookie, _) = create(&c, &app).await;
        let res = append(&c, &app, &cookie, &format!("op-{k}"), "apple").await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    let spread: Vec<u64> = nodes.iter().map(RedisServer::keys).collect();
    assert!(
        spread.iter().all(|n| *n > 0),
        "keys per primary: {spread:?}"
    );
    app.stop().await;
}
