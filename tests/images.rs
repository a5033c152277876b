//! Builds the host-derived images against the real Docker engine and runs them.
//!
//! Needs a Docker engine and the host packages `redis-server` and `haproxy`
//! (`apt-get install redis-server haproxy`). `session-app` is not covered here: it needs the
//! workspace built first; its lookup logic has unit tests in `src/images/rootfs.rs`.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use sessionstorm::cluster::engine::Engine;
use sessionstorm::images::{self, BuiltIn, ImageError, Outcome};

async fn docker() -> Docker {
    Docker::connect_with_local_defaults()
        .expect("connect to the local Docker engine")
        .negotiate_version()
        .await
        .expect("negotiate the Docker API version")
}

/// The harness's own client, which the images module builds through.
async fn engine() -> Engine {
    Engine::connect().await.expect("the Docker engine answers")
}

/// Builds `image` with `force` (so the first call really builds, whatever is cached), then
/// again without: the content hash is unchanged, so that is a skip.
async fn build_then_skip(image: BuiltIn) {
    let engine = &engine().await;
    let started = Instant::now();
    let first = images::build(engine, &[image], true)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let built_in = started.elapsed();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].image, image);
    assert_eq!(first[0].outcome, Outcome::Built);

    let started = Instant::now();
    let second = images::build(engine, &[image, image], false).await.unwrap();
    let skipped_in = started.elapsed();
    assert_eq!(second.len(), 1, "a repeated image is built once");
    assert_eq!(second[0].outcome, Outcome::Skipped);
    assert_eq!(second[0].content_hash, first[0].content_hash);
    eprintln!(
        "{image}: {} bytes of files, built in {built_in:?}, skipped in {skipped_in:?}",
        first[0].bytes
    );

    images::ensure(engine, image.tag()).await.unwrap();
    images::ensure(engine, image.name()).await.unwrap();

    let listed = images::list(engine).await.unwrap();
    let info = listed
        .iter()
        .find(|info| info.tag == image.tag())
        .unwrap_or_else(|| panic!("{image} missing from {listed:?}"));
    assert_eq!(
        info.content_hash.as_deref(),
        Some(first[0].content_hash.as_str())
    );
    assert!(info.size > 0);
    eprintln!("{image}: image size {} bytes", info.size);
}

/// Creates a container, runs `body` with its id, and force-removes the container afterwards,
/// even when `body` panics.
async fn with_container<F, Fut>(docker: &Docker, what: &str, config: ContainerCreateBody, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let run = format!("test-images-{}", std::process::id());
    let name = format!("sessionstorm-{run}-{what}");
    let config = ContainerCreateBody {
        labels: Some(HashMap::from([("sessionstorm.run".to_string(), run)])),
        ..config
    };
    let options = CreateContainerOptionsBuilder::default().name(&name).build();
    let id = docker
        .create_container(Some(options), config)
        .await
        .unwrap_or_else(|e| panic!("create container {name}: {e}"))
        .id;
    let outcome = AssertUnwindSafe(body(id.clone())).catch_unwind().await;
    let remove = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    if let Err(err) = docker.remove_container(&id, Some(remove)).await {
        eprintln!("could not remove container {name}: {err}");
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn logs(docker: &Docker, id: &str) -> String {
    let options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .build();
    let mut stream = docker.logs(id, Some(options));
    let mut out = String::new();
    while let Some(chunk) = stream.next().await {
        out.push_str(&chunk.expect("read container logs").to_string());
    }
    out
}

#[tokio::test]
async fn redis_image_builds_skips_and_serves() {
    let docker = docker().await;
    build_then_skip(BuiltIn::Redis).await;

    let config = ContainerCreateBody {
        image: Some(BuiltIn::Redis.tag().to_string()),
        cmd: Some(
            ["--port", "6399", "--save", "", "--appendonly", "no"]
                .map(String::from)
                .to_vec(),
        ),
        ..Default::default()
    };
    with_container(&docker, "redis", config, |id| {
        let docker = &docker;
        async move {
            docker.start_container(&id, None).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = String::new();
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                seen = logs(docker, &id).await;
                if seen.contains("Ready to accept connections") {
                    break;
                }
            }
            assert!(
                seen.contains("Ready to accept connections"),
                "redis logs:\n{seen}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            let state = docker
                .inspect_container(&id, None)
                .await
                .unwrap()
                .state
                .unwrap();
            assert_eq!(
                state.running,
                Some(true),
                "redis exited; logs:\n{}",
                logs(docker, &id).await
            );
        }
    })
    .await;
}

#[tokio::test]
async fn haproxy_image_builds_skips_and_runs() {
    let docker = docker().await;
    build_then_skip(BuiltIn::Haproxy).await;

    let config = ContainerCreateBody {
        image: Some(BuiltIn::Haproxy.tag().to_string()),
        cmd: Some(vec!["-v".to_string()]),
        ..Default::default()
    };
    with_container(&docker, "haproxy", config, |id| {
        let docker = &docker;
        async move {
            docker.start_container(&id, None).await.unwrap();
            let mut wait = docker.wait_container(&id, None);
            let exit = tokio::time::timeout(Duration::from_secs(10), wait.next())
                .await
                .expect("haproxy -v exits within 10 s");
            let output = logs(docker, &id).await;
            assert!(
                matches!(exit, Some(Ok(_))),
                "haproxy -v failed: {exit:?}; logs:\n{output}"
            );
            assert!(
                output.contains("HAProxy version"),
                "haproxy logs:\n{output}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn foreign_images_that_are_absent_are_reported_as_missing() {
    let engine = engine().await;
    let tag = "sessionstorm-test/not-here:never";
    match images::ensure(&engine, tag).await {
        Err(ImageError::Missing { image }) => assert_eq!(image, tag),
        other => panic!("expected ImageError::Missing, got {other:?}"),
    }
}
