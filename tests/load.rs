//! Component tests of the load engine against an in-process session service on a
//! loopback port: pacing, missed starts, coordinated omission, and the checker
//! catching a service that loses writes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use sessionstorm::load::collector::Sinks;
use sessionstorm::load::spill::{Spill, SPILL_FILE};
use sessionstorm::load::{Driver, LoadOutcome};
use sessionstorm::metrics::{FailureTimeline, LatencyHistogram, Live, Outcome};
use sessionstorm::plan::RateProfile;
use sessionstorm::plan::{LoadPlan, Model, Think};
use sessionstorm::session::{AnomalyKind, Op};
use sessionstorm::target::Targets;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A session's version, items and applied op ids.
type Stored = (u64, Vec<String>, HashSet<String>);

/// A session service in memory, with knobs to misbehave.
#[derive(Default)]
struct Service {
    sessions: Mutex<HashMap<String, Stored>>,
    next: AtomicU64,
    /// Every answer waits this long (milliseconds).
    delay_ms: AtomicU64,
    /// While set, answers wait until it is cleared.
    stalled: AtomicBool,
    /// Acknowledge every third append without keeping it.
    drop_writes: AtomicBool,
}

impl Service {
    async fn behave(&self) {
        let delay = self.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        while self.stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn sid(headers: &HeaderMap) -> Option<String> {
    let cookie = headers.get("cookie")?.to_str().ok()?;
    cookie
        .split(';')
        .find_map(|c| c.trim().strip_prefix("sid=").map(str::to_string))
}

fn state(id: &str, version: u64, items: &[String]) -> Json<Value> {
    Json(json!({ "session": id, "version": version, "items": items }))
}

async fn create(State(svc): State<Arc<Service>>) -> Response {
    svc.behave().await;
    let id = format!("s{}", svc.next.fetch_add(1, Ordering::Relaxed));
    svc.sessions
        .lock()
        .unwrap()
        .insert(id.clone(), (0, Vec::new(), HashSet::new()));
    let cookie = format!("sid={id}; Path=/");
    (
        StatusCode::CREATED,
        [("set-cookie", cookie), ("x-served-by", "test".to_string())],
        state(&id, 0, &[]),
    )
        .into_response()
}

async fn append(
    State(svc): State<Arc<Service>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    svc.behave().await;
    let Some(id) = sid(&headers) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut sessions = svc.sessions.lock().unwrap();
    let Some((version, items, ops)) = sessions.get_mut(&id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let op = body["op"].as_str().unwrap_or_default().to_string();
    let item = body["item"].as_str().unwrap_or_default().to_string();
    if ops.insert(op) {
        *version += 1;
        let forget = svc.drop_writes.load(Ordering::Relaxed) && *version % 3 == 0;
        let mut answer = items.clone();
        answer.push(item.clone());
        if !forget {
            items.push(item);
        }
        return state(&id, *version, &answer).into_response();
    }
    state(&id, *version, items).into_response()
}

async fn read(State(svc): State<Arc<Service>>, headers: HeaderMap) -> Response {
    svc.behave().await;
    let Some(id) = sid(&headers) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sessions = svc.sessions.lock().unwrap();
    match sessions.get(&id) {
        Some((version, items, _)) => state(&id, *version, items).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve(svc: Arc<Service>) -> SocketAddr {
    let app = Router::new()
        .route("/session", post(create).get(read))
        .route("/session/items", post(append))
        .with_state(svc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn plan(model: Model) -> LoadPlan {
    LoadPlan {
        model,
        appends_per_session: 5,
        warmup: Duration::ZERO,
        operations: None,
        request_timeout: Duration::from_secs(5),
        retries: 2,
        keep_alive: true,
        max_idle_connections: 1024,
        tls: Default::default(),
        flow: None,
        threads: 1,
        max_connections: 1024,
    }
}

fn open(rate: f64, max_in_flight: usize, session_interval: Duration) -> Model {
    Model::Open {
        profile: RateProfile::constant(rate),
        max_in_flight,
        session_interval,
        start_window: Duration::ZERO,
    }
}

/// Runs the load for `duration` against `svc`, then sweeps.
async fn drive(svc: Arc<Service>, plan: LoadPlan, duration: Duration) -> (LoadOutcome, u64) {
    let addr = serve(svc).await;
    let live = Arc::new(Live::default());
    let driver = Arc::new(Driver::new(
        Arc::new(Targets::one(&format!("http://{addr}"))),
        &plan,
        1,
        Instant::now(),
        Arc::clone(&live),
        Arc::new(FailureTimeline::new(Duration::from_secs(120))),
    ));
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        stopper.cancel();
    });
    let dir = tempfile::tempdir().unwrap();
    let spill = Spill::create(&dir.path().join(SPILL_FILE)).unwrap();
    let mut outcome = driver.run(&stop, Sinks::new(), spill).await;
    let swept = driver.sweep(&outcome.sessions).await;
    outcome.anomalies.extend(swept.anomalies);
    assert_eq!(swept.unverified, 0);
    (outcome, swept.checked)
}

fn done(outcome: &LoadOutcome) -> u64 {
    let totals = &outcome.collected.totals;
    [Op::Create, Op::Append, Op::Read]
        .iter()
        .map(|op| totals.count(*op, Outcome::Ok) + totals.count(*op, Outcome::Error))
        .sum()
}

/// Corrected and uncorrected latency of every successful load operation.
fn ok_latency(outcome: &LoadOutcome) -> (LatencyHistogram, LatencyHistogram) {
    let all = outcome
        .collected
        .totals
        .latency_of(&[Op::Create, Op::Append, Op::Read], Outcome::Ok);
    (all.corrected, all.uncorrected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_holds_the_rate_against_a_fast_service() {
    let (outcome, checked) = drive(
        Arc::default(),
        plan(open(200.0, 1000, Duration::from_millis(500))),
        Duration::from_secs(3),
    )
    .await;
    // 200/s for 3 s: 600 operations were due; started late or not, each was run.
    let ran = done(&outcome);
    let missed = outcome.collected.totals.missed_starts;
    assert!((590..=610).contains(&ran), "ran {ran}, missed {missed}");
    assert_eq!(missed, 0, "a fast service leaves nothing behind schedule");
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    assert!(checked > 0);
    // Sessions of 11 operations arrive at 200/11 per second, about 55 in 3 s
    // (plus the pool of rate × interval = 100 that is started at once).
    assert!(checked >= 100, "{checked} sessions");
    // The interval series covers the run, one row a second.
    assert!(outcome.collected.intervals.len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_load_threads_split_the_sessions_and_their_figures_add_up() {
    let svc = Arc::new(Service::default());
    let mut plan = plan(open(300.0, 1000, Duration::from_millis(500)));
    plan.threads = 2;
    let (outcome, checked) = drive(Arc::clone(&svc), plan, Duration::from_secs(3)).await;
    // 300/s for 3 s on two threads: every operation due was run, on time.
    let ran = done(&outcome);
    assert!((880..=910).contains(&ran), "ran {ran}");
    assert_eq!(outcome.collected.totals.missed_starts, 0);
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    // Each thread keeps half of the 150 live sessions; every one is swept, and the
    // service made exactly those.
    assert!(checked >= 150, "{checked} sessions");
    assert_eq!(checked, svc.next.load(Ordering::Relaxed));
    // The threads' histograms are merged: every operation is in the run's totals
    // and in the per-second rows.
    let (corrected, _) = ok_latency(&outcome);
    assert_eq!(corrected.len(), ran);
    let rows: u64 = outcome
        .collected
        .intervals
        .iter()
        .flat_map(|row| row.ops.values())
        .map(|op| op.ok + op.failed)
        .sum();
    assert_eq!(rows, ran);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_client_counts_missed_starts_and_still_runs_them_late() {
    let svc = Arc::new(Service::default());
    svc.delay_ms.store(200, Ordering::Relaxed);
    // At most 4 operations in flight, each 200 ms: 20/s can start on time, 100/s are due.
    let (outcome, _) = drive(
        svc,
        plan(open(100.0, 4, Duration::from_secs(1))),
        Duration::from_secs(2),
    )
    .await;
    let missed = outcome.collected.totals.missed_starts;
    assert!(missed > 100, "{missed} missed starts of about 200 due");
    let (corrected, uncorrected) = ok_latency(&outcome);
    // Late operations carry their wait in the corrected latency only.
    assert!(corrected.max() > 500_000, "{}", corrected.max());
    assert!(uncorrected.max() < 500_000, "{}", uncorrected.max());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_stall_shows_in_the_corrected_p99_only() {
    let svc = Arc::new(Service::default());
    let stall = Arc::clone(&svc);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stall.stalled.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        stall.stalled.store(false, Ordering::Relaxed);
    });
    // Two live sessions: during the stall both are stuck, and the operations due
    // meanwhile wait for them. 200/s for 6 s: ~1200 operations, ~200 of them late.
    let (outcome, _) = drive(
        svc,
        plan(open(200.0, 1000, Duration::from_millis(10))),
        Duration::from_secs(6),
    )
    .await;
    let totals = &outcome.collected.totals;
    let (corrected, uncorrected) = ok_latency(&outcome);
    let p99 = |h: &LatencyHistogram| h.value_at_quantile(0.99) / 1000;
    assert!(
        p99(&corrected) >= 700,
        "corrected p99 {} ms",
        p99(&corrected)
    );
    assert!(
        p99(&uncorrected) < 100,
        "uncorrected p99 {} ms",
        p99(&uncorrected)
    );
    assert!(totals.missed_starts > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_users_each_keep_one_operation_in_flight() {
    let svc = Arc::new(Service::default());
    svc.delay_ms.store(20, Ordering::Relaxed);
    let model = Model::Closed {
        users: 4,
        think: Think::Fixed(Duration::from_millis(30)),
    };
    let (outcome, checked) = drive(svc, plan(model), Duration::from_secs(2)).await;
    // Each user does one operation per ~50 ms: 4 users × 2 s / 50 ms ≈ 160.
    let ran = done(&outcome);
    assert!((80..=200).contains(&ran), "ran {ran}");
    assert_eq!(outcome.collected.totals.missed_starts, 0);
    assert!(outcome.anomalies.is_empty());
    assert!(checked >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_operation_count_ends_the_load() {
    let mut plan = plan(open(500.0, 1000, Duration::from_millis(200)));
    plan.operations = Some(300);
    let (outcome, _) = drive(Arc::default(), plan, Duration::from_secs(30)).await;
    assert_eq!(done(&outcome), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_that_vanish_are_lost_writes() {
    let svc = Arc::new(Service::default());
    svc.drop_writes.store(true, Ordering::Relaxed);
    let (outcome, _) = drive(
        svc,
        plan(open(200.0, 1000, Duration::from_millis(200))),
        Duration::from_secs(2),
    )
    .await;
    let kinds: HashSet<AnomalyKind> = outcome.anomalies.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&AnomalyKind::LostWrite), "{kinds:?}");
    assert!(!kinds.contains(&AnomalyKind::LostSession), "{kinds:?}");
    let sample = outcome
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::LostWrite)
        .unwrap();
    assert!(
        sample.detail.contains("acknowledged items missing"),
        "{}",
        sample.detail
    );
}
