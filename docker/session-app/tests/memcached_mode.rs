//! `MODE=memcached` against a pool of real memcached processes (the tests fail, not skip,
//! without memcached).

mod common;

use common::*;
use reqwest::StatusCode;
use session_app::config::Mode;

async fn pooled(nodes: &[&MemcachedServer], instance: &str) -> TestApp {
    let pool: Vec<String> = nodes.iter().map(|n| n.node()).collect();
    let url = format!("memcached://{}", pool.join(","));
    TestApp::start(Mode::Memcached, Some(url), instance).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_mode_implements_the_contract() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let app = pooled(&[&a, &b], "mc-1").await;
    check_contract(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_mode_applies_concurrent_duplicates_once() {
    let (a, b) = (MemcachedServer::start(), MemcachedServer::start());
    let app = pooled(&[&a, &b], "mc-1").await;
    check_concurrent_duplicates(&app).await;
    app.stop().await;
}

/// Sessions are spread over the pool, any replica finds each on the same node, and a
/// node lost (and back empty) loses exactly the sessions it held: the rest answer as
/// before. While it is down, its sessions get 503 and the replica stays healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_loses_its_share_of_the_sessions_and_no_more() {
    let a = MemcachedServer::start();
    let b = MemcachedServer::start();
    let one = pooled(&[&a, &b], "mc-1").await;
    let c = client();
    let mut cookies = Vec::new();
    for k in 0..40 {
        let (cookie, _) = create(&c, &one).await;
        let op = format!("op-{k}");
        assert_eq!(
            append(&c, &one, &cookie, &op, "apple").await.status(),
            StatusCode::OK
        );
        cookies.push(cookie);
    }
    // Another replica with the same pool finds every one.
    let two = pooled(&[&a, &b], "mc-2").await;
    for cookie in &cookies {
        assert_eq!(get(&c, &two, Some(cookie)).await.status(), StatusCode::OK);
    }

    let port = b.port;
    drop(b);
    let statuses = |app: &TestApp| {
        let (c, app, cookies) = (c.clone(), app.url(""), cookies.clone());
        async move {
            let mut seen = Vec::new();
            for cookie in &cookies {
                let res = c.get(format!("{app}/session")).header("cookie", cookie);
                seen.push(res.send().await.unwrap().status());
            }
            seen
        }
    };
    let down = statuses(&two).await;
    let on_b = down
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert!(on_b > 0 && on_b < 40, "both nodes hold sessions: {down:?}");
    assert!(down
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::SERVICE_UNAVAILABLE));
    let health = c.get(two.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the pool still serves");

    let _b = MemcachedServer::start_on(port);
    let back = statuses(&two).await;
    for (before, after) in down.iter().zip(&back) {
        let expected = if *before == StatusCode::OK {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(*after, expected, "{down:?} then {back:?}");
    }
    one.stop().await;
    two.stop().await;
}
