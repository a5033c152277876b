//! Session-bearing load: virtual users that create sessions and append to them, and
//! the final sweep that reads every session back.
//!
//! This is the closed model: a fixed number of virtual users, each with one request
//! in flight, so every session sees its operations in order and the checker can
//! hold the service to what it acknowledged. Each user records into its own
//! [`Metrics`] and keeps its own sessions; nothing is shared on the request path but
//! the HTTP connection pool and a few relaxed counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{RequestBuilder, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{ErrorKind, FailureTimeline, Live, Metrics};
use crate::plan::LoadPlan;
use crate::session::{Anomaly, Op, Seen, SessionModel, State};

/// What the load sends its requests to, and how.
#[derive(Debug)]
pub struct Driver {
    client: reqwest::Client,
    base: String,
    plan: LoadPlan,
    /// Time zero of the run's timeline: anomaly times and fault times share it.
    start: Instant,
    live: Arc<Live>,
    /// When requests failed, for the error window of each fault.
    failures: Arc<FailureTimeline>,
    next_seq: AtomicU64,
    /// Cookies other than `sid` that came with each session's creation (a sticky
    /// balancer's `SRV=r1`), by session id, sent back with every later request of
    /// that session as a browser would.
    affinity: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// What a set of virtual users (or the sweep) found.
#[derive(Debug, Default)]
pub struct Findings {
    pub metrics: Metrics,
    pub anomalies: Vec<Anomaly>,
}

impl Findings {
    fn merge(&mut self, other: Findings) {
        self.metrics.merge(&other.metrics);
        self.anomalies.extend(other.anomalies);
    }
}

/// Result of the final sweep.
#[derive(Debug, Default)]
pub struct Swept {
    pub findings: Findings,
    pub checked: u64,
    /// Sessions that never gave a usable answer: nothing can be said about them.
    pub unverified: u64,
}

/// One answer, sorted the way the checker needs it.
enum Answer {
    State(State, Option<String>),
    NotFound(Option<String>),
    Failed(ErrorKind),
}

/// The `name=value` of every `Set-Cookie` but `sid`, joined for a `Cookie` header.
fn balancer_cookies(response: &reqwest::Response) -> Option<String> {
    let cookies: Vec<&str> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::trim)
        .filter(|pair| !pair.starts_with("sid=") && pair.contains('='))
        .collect();
    (!cookies.is_empty()).then(|| cookies.join("; "))
}

/// How many times the sweep asks for a session before giving up on it.
const SWEEP_ATTEMPTS: u32 = 5;
/// How many sessions the sweep reads at once.
const SWEEP_CONCURRENCY: usize = 32;
/// Pause after a failed attempt, multiplied by the attempt number.
const BACKOFF: Duration = Duration::from_millis(50);

impl Driver {
    pub fn new(
        base: &str,
        plan: &LoadPlan,
        start: Instant,
        live: Arc<Live>,
        failures: Arc<FailureTimeline>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(plan.request_timeout)
            .pool_max_idle_per_host(plan.users)
            .tcp_nodelay(true)
            .build()
            .expect("a plain HTTP client builds");
        Driver {
            client,
            base: base.trim_end_matches('/').to_string(),
            plan: plan.clone(),
            start,
            live,
            failures,
            next_seq: AtomicU64::new(0),
            affinity: Default::default(),
        }
    }

    fn seen<'a>(&self, op: Op, served_by: Option<&'a str>) -> Seen<'a> {
        Seen {
            op,
            served_by,
            at: self.start.elapsed(),
        }
    }

    async fn send(&self, op: Op, request: RequestBuilder, metrics: &mut Metrics) -> Answer {
        Live::add(&self.live.ops, 1);
        let answer = match request.send().await {
            Err(err) => Answer::Failed(ErrorKind::classify(&err)),
            Ok(response) => {
                let served_by = response
                    .headers()
                    .get("x-served-by")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                metrics.served(served_by.as_deref());
                let affinity = (op == Op::Create).then(|| balancer_cookies(&response));
                match response.status() {
                    StatusCode::NOT_FOUND => Answer::NotFound(served_by),
                    status if status.is_success() => match response.json::<State>().await {
                        Ok(state) => {
                            if let Some(Some(cookies)) = affinity {
                                self.affinity
                                    .lock()
                                    .expect("affinity lock")
                                    .insert(state.session.clone(), cookies);
                            }
                            Answer::State(state, served_by)
                        }
                        Err(err) => Answer::Failed(ErrorKind::classify(&err)),
                    },
                    status => Answer::Failed(ErrorKind::from_status(status)),
                }
            }
        };
        if let Answer::Failed(kind) = answer {
            metrics.error(op, kind);
            Live::add(&self.live.errors, 1);
            self.failures.record(self.start.elapsed());
        }
        answer
    }

    fn with_cookie(&self, request: RequestBuilder, session: &SessionModel) -> RequestBuilder {
        let affinity = self.affinity.lock().expect("affinity lock");
        let cookie = match affinity.get(session.id()) {
            Some(more) => format!("sid={}; {more}", session.id()),
            None => format!("sid={}", session.id()),
        };
        request.header(reqwest::header::COOKIE, cookie)
    }

    fn record(&self, findings: &mut Findings, anomalies: impl IntoIterator<Item = Anomaly>) {
        for anomaly in anomalies {
            Live::add(&self.live.anomalies, 1);
            findings.anomalies.push(anomaly);
        }
    }

    /// Runs `users` virtual users until `stop` fires; returns what they found and
    /// every session they created, for the sweep.
    pub async fn run_closed(
        self: &Arc<Self>,
        stop: &CancellationToken,
    ) -> (Findings, Vec<SessionModel>) {
        let mut users = tokio::task::JoinSet::new();
        for _ in 0..self.plan.users {
            let driver = Arc::clone(self);
            let stop = stop.clone();
            users.spawn(async move { driver.user(&stop).await });
        }
        let mut findings = Findings::default();
        let mut sessions = Vec::new();
        while let Some(done) = users.join_next().await {
            let (found, mut made) = done.expect("a virtual user never panics");
            findings.merge(found);
            sessions.append(&mut made);
        }
        (findings, sessions)
    }

    /// One virtual user: create a session, append to it (reading it back after each
    /// append), then start over, until told to stop.
    async fn user(&self, stop: &CancellationToken) -> (Findings, Vec<SessionModel>) {
        let mut findings = Findings::default();
        let mut sessions = Vec::new();
        while !stop.is_cancelled() {
            let Some(mut session) = self.create(&mut findings).await else {
                tokio::time::sleep(BACKOFF).await;
                continue;
            };
            for k in 0..self.plan.appends_per_session {
                if stop.is_cancelled() || !self.append(&mut session, k, &mut findings).await {
                    break;
                }
                if !self.read(&mut session, &mut findings).await {
                    break;
                }
            }
            sessions.push(session);
        }
        (findings, sessions)
    }

    async fn create(&self, findings: &mut Findings) -> Option<SessionModel> {
        let began = Instant::now();
        let request = self.client.post(format!("{}/session", self.base));
        match self.send(Op::Create, request, &mut findings.metrics).await {
            Answer::State(state, served_by) => {
                findings.metrics.ok(Op::Create, began.elapsed());
                Live::add(&self.live.sessions, 1);
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let mut session =
                    SessionModel::new(seq, state.session.clone(), self.plan.appends_per_session);
                let anomalies = session.check(&state, self.seen(Op::Create, served_by.as_deref()));
                self.record(findings, anomalies);
                Some(session)
            }
            Answer::NotFound(_) => {
                findings.metrics.error(Op::Create, ErrorKind::Status4xx);
                None
            }
            Answer::Failed(_) => None,
        }
    }

    /// Appends item `k`, retrying with the same op id while the outcome is unknown.
    /// Returns false when the session is lost and the user should move on.
    async fn append(&self, session: &mut SessionModel, k: u32, findings: &mut Findings) -> bool {
        let began = Instant::now();
        let item = session.item(k);
        for attempt in 0..=self.plan.retries {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            session.sent(k);
            let request = self
                .with_cookie(
                    self.client.post(format!("{}/session/items", self.base)),
                    session,
                )
                .json(&serde_json::json!({ "op": item, "item": item }));
            match self.send(Op::Append, request, &mut findings.metrics).await {
                Answer::State(state, served_by) => {
                    findings.metrics.ok(Op::Append, began.elapsed());
                    session.acknowledged(k);
                    let anomalies =
                        session.check(&state, self.seen(Op::Append, served_by.as_deref()));
                    self.record(findings, anomalies);
                    return true;
                }
                Answer::NotFound(served_by) => {
                    let anomaly = session.lost(
                        self.seen(Op::Append, served_by.as_deref()),
                        "answered 404 to an append",
                    );
                    self.record(findings, anomaly);
                    return false;
                }
                Answer::Failed(_) => {}
            }
        }
        // Still unknown after every retry: the item stays indeterminate for the sweep.
        true
    }

    /// Reads the session back. Returns false when the session is lost.
    async fn read(&self, session: &mut SessionModel, findings: &mut Findings) -> bool {
        let began = Instant::now();
        let request = self.with_cookie(self.client.get(format!("{}/session", self.base)), session);
        match self.send(Op::Read, request, &mut findings.metrics).await {
            Answer::State(state, served_by) => {
                findings.metrics.ok(Op::Read, began.elapsed());
                let anomalies = session.check(&state, self.seen(Op::Read, served_by.as_deref()));
                self.record(findings, anomalies);
                true
            }
            Answer::NotFound(served_by) => {
                let anomaly = session.lost(
                    self.seen(Op::Read, served_by.as_deref()),
                    "answered 404 to a read",
                );
                self.record(findings, anomaly);
                false
            }
            Answer::Failed(_) => true,
        }
    }

    /// Reads every session once more, after the cluster has healed, with bounded
    /// concurrency and retries; this is where indeterminate writes are settled.
    pub async fn sweep(&self, sessions: &mut [SessionModel]) -> Swept {
        let results: Vec<(Findings, bool)> = futures_util::stream::iter(sessions.iter_mut())
            .map(|session| self.sweep_one(session))
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut swept = Swept::default();
        for (findings, verified) in results {
            swept.checked += 1;
            swept.unverified += u64::from(!verified);
            swept.findings.merge(findings);
        }
        swept
    }

    async fn sweep_one(&self, session: &mut SessionModel) -> (Findings, bool) {
        let mut findings = Findings::default();
        let began = Instant::now();
        for attempt in 0..SWEEP_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            let request =
                self.with_cookie(self.client.get(format!("{}/session", self.base)), session);
            match self.send(Op::Sweep, request, &mut findings.metrics).await {
                Answer::State(state, served_by) => {
                    findings.metrics.ok(Op::Sweep, began.elapsed());
                    let anomalies =
                        session.check(&state, self.seen(Op::Sweep, served_by.as_deref()));
                    self.record(&mut findings, anomalies);
                    return (findings, true);
                }
                Answer::NotFound(served_by) => {
                    let anomaly = session.lost(
                        self.seen(Op::Sweep, served_by.as_deref()),
                        "answered 404 to the final sweep",
                    );
                    self.record(&mut findings, anomaly);
                    return (findings, true);
                }
                Answer::Failed(_) => {}
            }
        }
        (findings, false)
    }
}
