//! Drives a scenario's `[flow]` against an in-process app, for the component tests of
//! the flow runner and the checker (`tests/load_flow*.rs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sessionstorm::load::collector::Sinks;
use sessionstorm::load::spill::{Spill, SPILL_FILE};
use sessionstorm::load::{Driver, LoadOutcome, Swept};
use sessionstorm::metrics::{FailureTimeline, Live};
use sessionstorm::scenario::overrides::Overrides;
use sessionstorm::scenario::Source;
use sessionstorm::target::Targets;
use sessionstorm::validate::build;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Serves `app` on a loopback port, runs the load of `scenario` against it for a
/// second, waits `pause` (an idle session's time to expire), then sweeps every session.
pub async fn drive(app: Router, scenario: &str, pause: Duration) -> (LoadOutcome, Swept) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = Source {
        path: PathBuf::from("flow.toml"),
        text: scenario.to_string(),
    };
    let plan = build(&source, &Overrides::default()).unwrap_or_else(|p| panic!("{p:#?}"));
    let driver = Arc::new(Driver::new(
        Arc::new(Targets::one(&format!("http://{addr}"))),
        &plan.load,
        plan.seed,
        Instant::now(),
        Arc::new(Live::default()),
        Arc::new(FailureTimeline::new(Duration::from_secs(60))),
    ));
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stopper.cancel();
    });
    let dir = tempfile::tempdir().unwrap();
    let spill = Spill::create(&dir.path().join(SPILL_FILE)).unwrap();
    let outcome = driver.run(&stop, Sinks::new(), spill).await;
    tokio::time::sleep(pause).await;
    let swept = driver.sweep(&outcome.sessions).await;
    (outcome, swept)
}
