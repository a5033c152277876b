//! `TLS=self-signed`: the whole contract over HTTPS, and nothing in plain text.

mod common;

use common::*;
use session_app::config::{Config, Mode};

async fn tls_app(instance: &str) -> TestApp {
    TestApp::start_with(Config {
        tls: true,
        ..config(Mode::Memory, None, instance)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mode_implements_the_contract_over_https() {
    let app = tls_app("tls-1").await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    check_contract(&app).await;
    app.stop().await;
}

/// A replica that listens on TLS only: a plain-HTTP client gets no answer, and a broken
/// handshake does not stop the next client from being served.
#[tokio::test]
async fn tls_mode_refuses_plain_http() {
    let app = tls_app("tls-1").await;
    let plain = app.base.replacen("https://", "http://", 1);
    let answer = client().get(format!("{plain}/healthz")).send().await;
    assert!(answer.is_err(), "plain HTTP was answered: {answer:?}");
    let answer = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    app.stop().await;
}
