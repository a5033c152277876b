//! `MODE=write-behind` against a real, private redis-server: the contract holds while the
//! replica lives; a kill loses the unflushed writes (never the session), a graceful stop
//! loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Short enough for quick tests, long enough to tell "acknowledged" from "flushed".
const FAST_FLUSH_MS: u64 = 200;
/// Never flushes during a test: only the shutdown path (or nothing) writes appends to Redis.
const NO_FLUSH_MS: u64 = 60_000;

/// `(version, items)` of a session as Redis holds it right now, read directly (one MULTI, so
/// both come from the same instant); `None` if Redis does not have the session.
async fn in_redis(redis: &RedisServer, id: &str) -> Option<(u64, Vec<String>)> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (version, items): (Option<u64>, Vec<String>) = redis::pipe()
        .atomic()
        .hget(format!("sess:{{{id}}}"), "version")
        .lrange(format!("sess:{{{id}}}:items"), 0, -1)
        .query_async(&mut conn)
        .await
        .unwrap();
    version.map(|v| (v, items))
}

/// Polls Redis until the session reaches `version`, or fails the test after `within`.
async fn wait_in_redis(
    redis: &RedisServer,
    id: &str,
    version: u64,
    within: Duration,
) -> (u64, Vec<String>) {
    let deadline = Instant::now() + within;
    loop {
        let state = in_redis(redis, id).await;
        if let Some(state) = state.as_ref().filter(|(v, _)| *v >= version) {
            return state.clone();
        }
        assert!(
            Instant::now() < deadline,
            "Redis still has {state:?} for {id} after {within:?}, wanted version {version}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn append_ok(
    c: &reqwest::Client,
    app: &TestApp,
    cookie: &str,
    op: &str,
    item: &str,
) -> Value {
    let res = append(c, app, cookie, op, item).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), app.instance);
    res.json().await.unwrap()
}

async fn get_ok(c: &reqwest::Client, app: &TestApp, cookie: &str) -> Value {
    let res = get(c, app, Some(cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(served_by(&res), app.instance);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_mode_implements_the_contract() {
    let redis = RedisServer::start();
    let app = TestApp::write_behind(&redis, "wb-1", FAST_FLUSH_MS).await;
    check_contract(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_mode_applies_concurrent_duplicates_once() {
    let redis = RedisServer::start();
    let app = TestApp::write_behind(&redis, "wb-1", FAST_FLUSH_MS).await;
    check_concurrent_duplicates(&app).await;
    app.stop().await;
}

/// Creation is written through; appends are answered from the cache at once and reach Redis
/// (and so other replicas) only with the next flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_acks_from_cache_and_flushes_within_the_interval() {
    let redis = RedisServer::start();
    let c = client();
    let a = TestApp::write_behind(&redis, "wb-a", FAST_FLUSH_MS).await;
    let (cookie, id) = create(&c, &a).await;
    assert_eq!(in_redis(&redis, &id).await, Some((0, vec![])));

    let mut expected = Vec::new();
    for (n, item) in ["apple", "pear", "fig"].into_iter().enumerate() {
        let body = append_ok(&c, &a, &cookie, &format!("op-{n}"), item).await;
        expected.push(item.to_owned());
        assert_eq!(
            body,
            json!({"session": id, "version": n + 1, "items": expected})
        );
    }
    assert_eq!(
        get_ok(&c, &a, &cookie).await,
        json!({"session": id, "version": 3, "items": expected})
    );

    let started = Instant::now();
    let stored = wait_in_redis(&redis, &id, 3, Duration::from_secs(5)).await;
    assert_eq!(stored, (3, expected.clone()));
    // About one interval after the last acknowledgement; generous slack for a busy machine.
    assert!(started.elapsed() < Duration::from_millis(FAST_FLUSH_MS * 10));

    // Now any replica sees it.
    let b = TestApp::write_behind(&redis, "wb-b", FAST_FLUSH_MS).await;
    assert_eq!(
        get_ok(&c, &b, &cookie).await,
        json!({"session": id, "version": 3, "items": expected})
    );
    a.stop().await;
    b.stop().await;
}

/// A repeated op is applied once: in the cache, in Redis after the flush, on a retry after the
/// flush, and on another replica that loads the session (op ids included) from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_applies_a_repeated_op_once() {
    let redis = RedisServer::start();
    let c = client();
    let a = TestApp::write_behind(&redis, "wb-a", FAST_FLUSH_MS).await;
    let (cookie, id) = create(&c, &a).await;

    let once = json!({"session": id, "version": 1, "items": ["apple"]});
    assert_eq!(append_ok(&c, &a, &cookie, "op-1", "apple").await, once);
    assert_eq!(append_ok(&c, &a, &cookie, "op-1", "apple").await, once);
    assert_eq!(get_ok(&c, &a, &cookie).await, once);

    let stored = wait_in_redis(&redis, &id, 1, Duration::from_secs(5)).await;
    assert_eq!(stored, (1, vec!["apple".to_owned()]));

    // Retried after the flush, on the same replica and on another one.
    assert_eq!(append_ok(&c, &a, &cookie, "op-1", "apple").await, once);
    let b = TestApp::write_behind(&redis, "wb-b", FAST_FLUSH_MS).await;
    assert_eq!(append_ok(&c, &b, &cookie, "op-1", "apple").await, once);

    // Give both replicas time to flush anything they (wrongly) thought was pending.
    tokio::time::sleep(Duration::from_millis(FAST_FLUSH_MS * 3)).await;
    assert_eq!(
        in_redis(&redis, &id).await,
        Some((1, vec!["apple".to_owned()]))
    );
    a.stop().await;
    b.stop().await;
    assert_eq!(
        in_redis(&redis, &id).await,
        Some((1, vec!["apple".to_owned()]))
    );
}

/// The flaw this mode exists to exhibit: a replica killed before its flush takes its
/// acknowledged writes along. The session itself survives (it was created in Redis), so the
/// replacement answers 200 with an older state: lost writes, not a lost session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_kill_loses_unflushed_writes() {
    let redis = RedisServer::start();
    let c = client();
    let a = TestApp::write_behind(&redis, "wb-a", NO_FLUSH_MS).await;
    let (cookie, id) = create(&c, &a).await;
    for (op, item) in [("op-1", "apple"), ("op-2", "pear"), ("op-3", "fig")] {
        append_ok(&c, &a, &cookie, op, item).await;
    }
    let acknowledged = json!({"session": id, "version": 3, "items": ["apple", "pear", "fig"]});
    assert_eq!(get_ok(&c, &a, &cookie).await, acknowledged);
    // Acknowledged, yet not in the store.
    assert_eq!(in_redis(&redis, &id).await, Some((0, vec![])));

    a.kill().await;
    assert_eq!(in_redis(&redis, &id).await, Some((0, vec![])));

    let b = TestApp::write_behind(&redis, "wb-b", NO_FLUSH_MS).await;
    assert_eq!(
        get_ok(&c, &b, &cookie).await,
        json!({"session": id, "version": 0, "items": []})
    );
    // The client's retry of a lost op is applied anew on B (B never saw it).
    assert_eq!(
        append_ok(&c, &b, &cookie, "op-3", "fig").await,
        json!({"session": id, "version": 1, "items": ["fig"]})
    );
    b.stop().await;
}

/// SIGTERM-style stop: the final flush writes everything acknowledged, so a replacement
/// replica sees all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_graceful_stop_flushes() {
    let redis = RedisServer::start();
    let c = client();
    let a = TestApp::write_behind(&redis, "wb-a", NO_FLUSH_MS).await;
    let (cookie, id) = create(&c, &a).await;
    for (op, item) in [("op-1", "apple"), ("op-2", "pear"), ("op-3", "fig")] {
        append_ok(&c, &a, &cookie, op, item).await;
    }
    let acknowledged = json!({"session": id, "version": 3, "items": ["apple", "pear", "fig"]});
    assert_eq!(in_redis(&redis, &id).await, Some((0, vec![])));

    a.stop().await;
    let items = vec!["apple".to_owned(), "pear".to_owned(), "fig".to_owned()];
    assert_eq!(in_redis(&redis, &id).await, Some((3, items)));

    let b = TestApp::write_behind(&redis, "wb-b", NO_FLUSH_MS).await;
    assert_eq!(get_ok(&c, &b, &cookie).await, acknowledged);
    // A's last op retried against B is recognised as already applied.
    assert_eq!(
        append_ok(&c, &b, &cookie, "op-3", "fig").await,
        acknowledged
    );
    b.stop().await;
}

/// A store that lost its data (restart without persistence): the flush does not resurrect
/// the session; the replica drops it from its cache and answers 404 like every other one.
/// Meanwhile, with the store down, appends to a cached session are still acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_behind_drops_sessions_the_store_lost() {
    let port = free_port();
    let redis = RedisServer::try_start_on(port).unwrap();
    let c = client();
    let app = TestApp::write_behind(&redis, "wb-1", FAST_FLUSH_MS).await;
    let (cookie, id) = create(&c, &app).await;

    drop(redis);
    append_ok(&c, &app, &cookie, "op-1", "apple").await;
    let res = c.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    let redis = RedisServer::try_start_on(port).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = get(&c, &app, Some(&cookie)).await;
        if res.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(res.status(), StatusCode::OK);
        assert!(Instant::now() < deadline, "session still cached after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(in_redis(&redis, &id).await, None);
    app.stop().await;
}
