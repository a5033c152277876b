//! `MODE=memory`: the contract holds while the replica lives, and sessions die with it.

mod common;

use common::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_implements_the_contract() {
    let app = TestApp::memory("mem-1").await;
    check_contract(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_applies_concurrent_duplicates_once() {
    let app = TestApp::memory("mem-1").await;
    check_concurrent_duplicates(&app).await;
    app.stop().await;
}

/// The flaw this mode exists to exhibit: another replica (or a restarted one) does not know
/// the session.
#[tokio::test]
async fn memory_mode_loses_sessions_with_the_replica() {
    let c = client();
    let a = TestApp::memory("mem-a").await;
    let (cookie, _) = create(&c, &a).await;
    assert_eq!(
        append(&c, &a, &cookie, "op-1", "x").await.status(),
        StatusCode::OK
    );
    a.stop().await;

    let b = TestApp::memory("mem-b").await;
    let res = get(&c, &b, Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(served_by(&res), "mem-b");
    b.stop().await;
}
