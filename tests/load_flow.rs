//! Component tests of the flow runner: the load engine drives an in-process web app
//! (form posts, a session cookie, 303 redirects, a counter page) through a `[flow]`
//! read from TOML, and the checker must tell a correct app from one that loses,
//! doubles or forgets what it acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use sessionstorm::load::LoadOutcome;
use sessionstorm::metrics::{ErrorKind, Outcome};
use sessionstorm::session::{AnomalyKind, Op};

#[path = "support/drive.rs"]
mod support;
use support::drive as serve_and_drive;

/// How the app misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// Every third increment of a session is acknowledged and not counted (a
    /// session whose every increment is dropped would hold none of its writes: that
    /// is a lost session, judged by content).
    DropEveryThird,
    /// Every increment counts twice.
    CountTwice,
    /// Every fourth increment is applied, then answered 503 (the answer is lost):
    /// the harness resends it with the same op id, which must count once.
    LoseEveryFourthAnswer,
    /// Every fifth page view forgets the session and starts a fresh one.
    FreshSessions,
}

struct App {
    fault: Fault,
    sessions: Mutex<HashMap<String, (u64, HashSet<String>)>>,
    next: AtomicU64,
    increments: AtomicU64,
    views: AtomicU64,
}

fn sid(headers: &HeaderMap) -> Option<String> {
    let cookie = headers.get("cookie")?.to_str().ok()?;
    cookie
        .split(';')
        .find_map(|c| c.trim().strip_prefix("sessionid=").map(str::to_string))
}

fn see_other(location: &str) -> Response {
    (StatusCode::SEE_OTHER, [("location", location.to_string())]).into_response()
}

fn new_session(app: &App) -> String {
    let id = format!("s{}", app.next.fetch_add(1, Ordering::Relaxed));
    app.sessions
        .lock()
        .unwrap()
        .insert(id.clone(), (0, HashSet::new()));
    id
}

async fn login(State(app): State<Arc<App>>) -> Response {
    let id = new_session(&app);
    let mut r = see_other("/");
    r.headers_mut().insert(
        "set-cookie",
        format!("sessionid={id}; Path=/; HttpOnly").parse().unwrap(),
    );
    r
}

async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let view = app.views.fetch_add(1, Ordering::Relaxed) + 1;
    if app.fault == Fault::FreshSessions && view % 5 == 0 {
        let id = new_session(&app);
        let mut r = "<p>Count: <span id=\"count\">0</span></p>".into_response();
        r.headers_mut().insert(
            "set-cookie",
            format!("sessionid={id}; Path=/").parse().unwrap(),
        );
        return r;
    }
    let sessions = app.sessions.lock().unwrap();
    match sid(&headers).and_then(|id| sessions.get(&id).map(|s| s.0)) {
        Some(count) => format!("<p>Count: <span id=\"count\">{count}</span></p>").into_response(),
        None => see_other("/accounts/login/?next=/"),
    }
}

async fn increment(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let n = app.increments.fetch_add(1, Ordering::Relaxed) + 1;
    let mut sessions = app.sessions.lock().unwrap();
    let Some((count, ops)) = sid(&headers).and_then(|id| sessions.get_mut(&id)) else {
        return see_other("/accounts/login/?next=/increment");
    };
    let op = form.get("op").cloned().unwrap_or_default();
    if ops.insert(op) {
        *count += match app.fault {
            Fault::DropEveryThird if ops.len() % 3 == 0 => 0,
            Fault::CountTwice => 2,
            _ => 1,
        };
        if app.fault == Fault::LoseEveryFourthAnswer && n % 4 == 0 {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    see_other("/")
}

/// An increment that makes a session when the request has none it knows, the way
/// Rails and PHP make one on its first write: the answer sets the cookie.
async fn increment_or_start(
    State(app): State<Arc<App>>,
    mut headers: HeaderMap,
    form: Form<HashMap<String, String>>,
) -> Response {
    let known = sid(&headers).is_some_and(|id| app.sessions.lock().unwrap().contains_key(&id));
    if known {
        return increment(State(app), headers, form).await;
    }
    let id = new_session(&app);
    headers.insert("cookie", format!("sessionid={id}").parse().unwrap());
    let mut r = increment(State(app), headers, form).await;
    r.headers_mut().insert(
        "set-cookie",
        format!("sessionid={id}; Path=/; HttpOnly").parse().unwrap(),
    );
    r
}

const FLOW: &str = r#"
name = "flow"
seed = 3
duration = "2s"
[service]
replicas = 1
[load]
users = 8
appends_per_session = 4
retries = 3
[flow]
lost_when = [{ redirect = "/accounts/login/" }, { new_cookie = "sessionid" }]
[[flow.start]]
method = "POST"
path = "/accounts/login/"
form = { username = "u{{vu}}" }
expect = [303]
[[flow.steps]]
method = "POST"
path = "/increment"
form = { op = "{{item}}" }
write = {}
expect = [303]
[[flow.steps]]
path = "/"
read = { counter_after = "<span id=\"count\">" }
"#;

/// Runs the flow against an app with `fault` for a second, then sweeps.
async fn drive(fault: Fault) -> (LoadOutcome, u64) {
    drive_with(fault, FLOW).await
}

async fn drive_with(fault: Fault, scenario: &str) -> (LoadOutcome, u64) {
    let app = Arc::new(App {
        fault,
        sessions: Mutex::default(),
        next: AtomicU64::new(0),
        increments: AtomicU64::new(0),
        views: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/accounts/login/", post(login))
        .route("/", get(page))
        .route("/increment", post(increment))
        .route("/increment-or-start", post(increment_or_start))
        .with_state(app);
    let (mut outcome, swept) = serve_and_drive(router, scenario, Duration::ZERO).await;
    outcome.anomalies.extend(swept.anomalies);
    assert_eq!(swept.unverified, 0);
    (outcome, swept.checked)
}

fn kinds(outcome: &LoadOutcome) -> HashSet<AnomalyKind> {
    outcome.anomalies.iter().map(|a| a.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_app_passes_and_every_session_is_checked() {
    let (outcome, checked) = drive(Fault::None).await;
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    assert!(checked >= 8, "{checked} sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_runs_flows_too() {
    let open = FLOW.replace("users = 8", "rate = 200\nsession_interval = \"100ms\"");
    let (outcome, checked) = drive_with(Fault::None, &open).await;
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    assert!(checked >= 20, "{checked} sessions");
    let (outcome, _) = drive_with(Fault::DropEveryThird, &open).await;
    assert!(kinds(&outcome).contains(&AnomalyKind::LostWrite));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_are_resent_with_the_same_op_and_count_once() {
    let (outcome, checked) = drive(Fault::LoseEveryFourthAnswer).await;
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    assert!(checked >= 8);
    // The lost answers happened, and each was resent and then acknowledged.
    let lost = outcome.collected.totals.errors_of(Op::Append);
    assert!(
        lost.get(&ErrorKind::Status5xx).copied().unwrap_or(0) >= 3,
        "{lost:?}"
    );
    assert_eq!(
        outcome.collected.totals.count(Op::Append, Outcome::Error),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_acknowledged_and_not_counted_is_a_lost_write() {
    let (outcome, _) = drive(Fault::DropEveryThird).await;
    let kinds = kinds(&outcome);
    assert!(kinds.contains(&AnomalyKind::LostWrite), "{kinds:?}");
    assert!(!kinds.contains(&AnomalyKind::LostSession), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_counted_twice_is_a_duplicate() {
    let (outcome, _) = drive(Fault::CountTwice).await;
    let kinds = kinds(&outcome);
    assert!(kinds.contains(&AnomalyKind::Duplicate), "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_session_cookie_in_place_of_ours_is_a_lost_session() {
    let (outcome, _) = drive(Fault::FreshSessions).await;
    let lost = lost_to_a_new_cookie(&outcome);
    assert!(lost.session.starts_with("sessionid=s"), "{}", lost.session);
}

/// The first lost session of `outcome`, which a new `sessionid` cookie showed.
fn lost_to_a_new_cookie(outcome: &LoadOutcome) -> &sessionstorm::session::Anomaly {
    let lost = outcome
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::LostSession)
        .expect("a lost session");
    assert!(
        lost.detail.contains("new `sessionid` cookie"),
        "{}",
        lost.detail
    );
    lost
}

/// [`FLOW`] without a start step: the session begins with its first increment,
/// whose answer sets its cookie.
fn flow_without_start() -> String {
    let start = FLOW.find("[[flow.start]]").unwrap();
    let steps = FLOW.find("[[flow.steps]]").unwrap();
    format!("{}{}", &FLOW[..start], &FLOW[steps..]).replace("/increment\"", "/increment-or-start\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_first_write_sets_its_cookie_is_no_fresh_session() {
    let flow = flow_without_start();
    let (outcome, checked) = drive_with(Fault::None, &flow).await;
    assert!(outcome.anomalies.is_empty(), "{:#?}", outcome.anomalies);
    assert!(checked >= 8, "{checked} sessions");
    // Nothing was sent to create a session, so no create was timed or counted.
    let totals = &outcome.collected.totals;
    assert!(!totals.ops().contains(&Op::Create), "{:?}", totals.ops());
    assert!(totals.count(Op::Append, Outcome::Ok) >= 8);
    // A cookie set in place of the one the jar holds is still a fresh session.
    let (outcome, _) = drive_with(Fault::FreshSessions, &flow).await;
    lost_to_a_new_cookie(&outcome);
}
