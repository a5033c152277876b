//! Component tests of the checker against in-process apps that behave on the wire
//! like the canonical session examples of real frameworks: a tower-sessions counter
//! shown before its increment under an encrypted cookie that changes on every answer,
//! PHP's non-strict sessions that adopt an unknown id without a new cookie, a Django
//! login that rotates the session key and hides its CSRF token in the page, and an
//! idle timeout. Each app runs correct and broken: the correct one must pass with no
//! anomaly, the broken one must be caught as the kind of loss it is.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use sessionstorm::session::{Anomaly, AnomalyKind};

#[path = "support/drive.rs"]
mod support;

/// One server-side session: a counter, the items of a cart and their op ids.
#[derive(Default, Clone)]
struct Data {
    count: u64,
    items: Vec<String>,
    ops: HashSet<String>,
    user: Option<String>,
    last_used: Option<StdInstant>,
}

/// The app's store and how it misbehaves.
#[derive(Default)]
struct Store {
    sessions: Mutex<HashMap<String, Data>>,
    next: AtomicU64,
    requests: AtomicU64,
    /// Every n-th request loses its session (0: never).
    lose_every: u64,
    /// Sessions idle for longer than this are gone.
    ttl: Option<Duration>,
}

impl Store {
    fn new_id(&self) -> String {
        format!("k{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether this request is one the broken app loses the session on.
    fn loses_now(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        self.lose_every > 0 && n % self.lose_every == 0
    }

    /// The session `id` names, unless it expired.
    fn load(&self, id: &str) -> Option<Data> {
        let sessions = self.sessions.lock().unwrap();
        let data = sessions.get(id)?;
        let expired = self
            .ttl
            .zip(data.last_used)
            .is_some_and(|(ttl, at)| at.elapsed() > ttl);
        (!expired).then(|| data.clone())
    }

    fn save(&self, id: &str, mut data: Data) {
        data.last_used = Some(StdInstant::now());
        self.sessions.lock().unwrap().insert(id.to_string(), data);
    }
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

fn with_cookie(mut response: Response, name: &str, value: &str) -> Response {
    let header = format!("{name}={value}; Path=/; HttpOnly").parse().unwrap();
    response.headers_mut().append("set-cookie", header);
    response
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [("location", location.to_string())]).into_response()
}

/// tower-sessions' counter under actix-session's private cookie: `GET /` shows the
/// count read before it increments it, and the cookie is the id sealed with a fresh
/// nonce on every answer. An unknown cookie gets a new session counting from 0.
async fn counter_before(State(store): State<Arc<Store>>, headers: HeaderMap) -> Response {
    let known = cookie(&headers, "id")
        .and_then(|c| c.split_once('.'))
        .map(|(id, _nonce)| id.to_string())
        .filter(|_| !store.loses_now())
        .and_then(|id| Some((store.load(&id)?, id)));
    let (mut data, id) = known.unwrap_or_else(|| (Data::default(), store.new_id()));
    let shown = data.count;
    data.count += 1;
    store.save(&id, data);
    let nonce = store.next.fetch_add(1, Ordering::Relaxed);
    with_cookie(
        Html(format!("<p>Current count: {shown}</p>")).into_response(),
        "id",
        &format!("{id}.{nonce}"),
    )
}

/// PHP's native sessions in their default non-strict mode: an unknown `PHPSESSID` is
/// adopted as it is, with an empty session and no new cookie. The page counts visits
/// after its own increment. The broken app's store loses a session now and then.
async fn php_visits(State(store): State<Arc<Store>>, headers: HeaderMap) -> Response {
    let (id, fresh) = match cookie(&headers, "PHPSESSID") {
        Some(id) => (id.to_string(), false),
        None => (store.new_id(), true),
    };
    if store.loses_now() {
        store.sessions.lock().unwrap().remove(&id);
    }
    let mut data = store.load(&id).unwrap_or_default();
    data.count += 1;
    let shown = data.count;
    store.save(&id, data);
    let page = Html(format!("<p>Visits: {shown}</p>")).into_response();
    if fresh {
        with_cookie(page, "PHPSESSID", &id)
    } else {
        page
    }
}

/// A Django-like shop: `login_required` pages, a CSRF token in a hidden field that
/// must match the `csrftoken` cookie, a session key cycled at login (and, with
/// `cycle_always`, on every answer), carts that apply each op id once.
struct Shop {
    store: Store,
    cycle_always: bool,
}

fn csrf_page(token: &str, body: &str) -> Html<String> {
    Html(format!(
        "<form method=\"post\"><input type=\"hidden\" name=\"csrfmiddlewaretoken\" value=\"{token}\">{body}</form>"
    ))
}

async fn login_page(State(shop): State<Arc<Shop>>) -> Response {
    let token = format!("t{}", shop.store.new_id());
    with_cookie(csrf_page(&token, "").into_response(), "csrftoken", &token)
}

fn csrf_ok(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let field = form.get("csrfmiddlewaretoken").map(String::as_str);
    field.is_some() && field == cookie(headers, "csrftoken")
}

async fn login(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&headers, &form) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let id = shop.store.new_id();
    let data = Data {
        user: form.get("username").cloned(),
        ..Data::default()
    };
    shop.store.save(&id, data);
    // Django rotates the CSRF token at login too.
    let token = format!("t{}", shop.store.new_id());
    let response = with_cookie(redirect("/cart/"), "sessionid", &id);
    with_cookie(response, "csrftoken", &token)
}

/// The logged-in session of a request; `None` sends it to the login page.
fn logged_in(shop: &Shop, headers: &HeaderMap) -> Option<(String, Data)> {
    let id = cookie(headers, "sessionid").filter(|_| !shop.store.loses_now())?;
    let data = shop.store.load(id)?;
    data.user.is_some().then(|| (id.to_string(), data))
}

fn to_login() -> Response {
    redirect("/accounts/login/?next=/cart/")
}

/// Saves the session, under a new key when the shop cycles it on every answer.
fn save_session(shop: &Shop, id: String, data: Data, response: Response) -> Response {
    if !shop.cycle_always {
        shop.store.save(&id, data);
        return response;
    }
    shop.store.sessions.lock().unwrap().remove(&id);
    let new = shop.store.new_id();
    shop.store.save(&new, data);
    with_cookie(response, "sessionid", &new)
}

async fn cart(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let Some((id, data)) = logged_in(&shop, &headers) else {
        return to_login();
    };
    let token = cookie(&headers, "csrftoken").unwrap_or_default();
    let items: String = data.items.iter().map(|i| format!("<li>{i}</li>")).collect();
    let page = csrf_page(token, &format!("<ul>{items}</ul>")).into_response();
    save_session(&shop, id, data, page)
}

async fn add(
    State(shop): State<Arc<Shop>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&headers, &form) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some((id, mut data)) = logged_in(&shop, &headers) else {
        return to_login();
    };
    let op = form.get("op").cloned().unwrap_or_default();
    if data.ops.insert(op) {
        data.items
            .push(form.get("item").cloned().unwrap_or_default());
    }
    save_session(&shop, id, data, redirect("/cart/"))
}

const HEAD: &str = r#"
name = "framework"
seed = 5
duration = "2s"
[service]
replicas = 1
[load]
users = 6
appends_per_session = 6
retries = 0
"#;

/// tower-sessions' counter: no read-only request, the count shown before the write,
/// no `new_cookie` sign (the cookie changes on every answer).
const COUNTER_BEFORE: &str = r#"
[[flow.steps]]
path = "/"
write = {}
read = { counter_after = "Current count: ", shows = "before" }
"#;

/// PHP's visit counter, shown after the write.
const PHP_AFTER: &str = r#"
[[flow.steps]]
path = "/"
write = {}
read = { counter_after = "Visits: ", shows = "after" }
"#;

/// Django: CSRF from the page, login, then a cart.
const DJANGO: &str = r#"
[flow]
lost_when = [{ redirect = "/accounts/login/" }]
[[flow.start]]
path = "/accounts/login/"
capture = { csrf = { regex = 'name="csrfmiddlewaretoken" value="([^"]+)"' } }
[[flow.start]]
method = "POST"
path = "/accounts/login/"
form = { csrfmiddlewaretoken = "{{csrf}}", username = "u{{vu}}" }
expect = [302]
[[flow.steps]]
path = "/cart/"
capture = { csrf = { regex = 'name="csrfmiddlewaretoken" value="([^"]+)"' } }
read = { contains = "<li>{{item}}</li>" }
[[flow.steps]]
method = "POST"
path = "/cart/add/"
form = { csrfmiddlewaretoken = "{{csrf}}", op = "{{item}}", item = "{{item}}" }
write = {}
follow = true
read = { contains = "<li>{{item}}</li>" }
"#;

struct Found {
    anomalies: Vec<Anomaly>,
    expired: u64,
    checked: u64,
    unverified: u64,
}

impl Found {
    fn kinds(&self) -> HashSet<AnomalyKind> {
        self.anomalies.iter().map(|a| a.kind).collect()
    }
}

/// Drives `flow` against `app` for a second, waits `pause`, then sweeps.
async fn drive(app: Router, flow: &str, pause: Duration) -> Found {
    let (mut outcome, swept) = support::drive(app, &format!("{HEAD}{flow}"), pause).await;
    outcome.anomalies.extend(swept.anomalies);
    Found {
        anomalies: outcome.anomalies,
        expired: outcome.expired + swept.expired,
        checked: swept.checked,
        unverified: swept.unverified,
    }
}

fn store(lose_every: u64, ttl: Option<Duration>) -> Arc<Store> {
    Arc::new(Store {
        lose_every,
        ttl,
        ..Store::default()
    })
}

fn counter_app(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(counter_before))
        .with_state(store)
}

fn php_app(store: Arc<Store>) -> Router {
    Router::new().route("/", get(php_visits)).with_state(store)
}

fn shop_app(lose_every: u64, cycle_always: bool) -> Router {
    let shop = Arc::new(Shop {
        store: Store {
            lose_every,
            ..Store::default()
        },
        cycle_always,
    });
    Router::new()
        .route("/accounts/login/", get(login_page).post(login))
        .route("/cart/", get(cart))
        .route("/cart/add/", axum::routing::post(add))
        .with_state(shop)
}

fn no_anomaly(found: &Found) {
    assert!(found.anomalies.is_empty(), "{:#?}", found.anomalies);
    assert_eq!(found.unverified, 0);
    assert!(found.checked >= 6, "{} sessions checked", found.checked);
}

/// Every anomaly is a lost session, and there is one.
fn only_lost_sessions(found: &Found) -> &Anomaly {
    assert_eq!(
        found.kinds(),
        HashSet::from([AnomalyKind::LostSession]),
        "{:#?}",
        found.anomalies
    );
    &found.anomalies[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_shown_before_its_write_under_a_nonce_cookie_passes() {
    let found = drive(counter_app(store(0, None)), COUNTER_BEFORE, Duration::ZERO).await;
    no_anomaly(&found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_count_read_as_after_its_write_is_caught_as_lost_writes() {
    // Telling the checker the wrong side of the write must not pass silently: each
    // page is one short of what `after` promises.
    let after = COUNTER_BEFORE.replace("\"before\"", "\"after\"");
    let found = drive(counter_app(store(0, None)), &after, Duration::ZERO).await;
    assert!(
        found.kinds().contains(&AnomalyKind::LostWrite),
        "{:#?}",
        found.anomalies
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_session_forgotten_behind_a_new_cookie_is_a_lost_session() {
    let found = drive(counter_app(store(7, None)), COUNTER_BEFORE, Duration::ZERO).await;
    let lost = only_lost_sessions(&found);
    assert!(lost.detail.contains("came back reset"), "{}", lost.detail);
    assert!(
        lost.detail.ends_with("with a new `id` cookie"),
        "{}",
        lost.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_visits_counted_after_the_write_pass() {
    let found = drive(php_app(store(0, None)), PHP_AFTER, Duration::ZERO).await;
    no_anomaly(&found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_php_session_reset_under_the_same_cookie_is_a_lost_session() {
    let found = drive(php_app(store(7, None)), PHP_AFTER, Duration::ZERO).await;
    let lost = only_lost_sessions(&found);
    assert!(
        lost.detail.ends_with("under the same cookie"),
        "{}",
        lost.detail
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_login_with_csrf_in_the_page_and_rotated_keys_passes() {
    no_anomaly(&drive(shop_app(0, false), DJANGO, Duration::ZERO).await);
    // A key cycled on every answer is no loss either.
    no_anomaly(&drive(shop_app(0, true), DJANGO, Duration::ZERO).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_django_session_forgotten_is_a_lost_session_by_its_login_redirect() {
    let found = drive(shop_app(9, false), DJANGO, Duration::ZERO).await;
    let lost = only_lost_sessions(&found);
    assert!(lost.detail.contains("/accounts/login/"), "{}", lost.detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_lost_after_their_idle_timeout_expired_by_design() {
    let ttl = Duration::from_millis(300);
    let with_timeout = format!("[flow]\nidle_timeout = \"300ms\"\n{COUNTER_BEFORE}");
    // Swept after a pause longer than the app's timeout: every session expired, and
    // that is no anomaly when the flow declares the timeout...
    let found = drive(counter_app(store(0, Some(ttl))), &with_timeout, ttl * 2).await;
    assert!(found.anomalies.is_empty(), "{:#?}", found.anomalies);
    assert!(found.expired >= 6, "{} expired", found.expired);
    // ...while the same pause without it is session loss.
    let found = drive(counter_app(store(0, Some(ttl))), COUNTER_BEFORE, ttl * 2).await;
    only_lost_sessions(&found);
    assert_eq!(found.expired, 0);
    // Under the timeout, a loss is still a loss.
    let found = drive(
        counter_app(store(7, Some(ttl))),
        &with_timeout,
        Duration::ZERO,
    )
    .await;
    only_lost_sessions(&found);
}
