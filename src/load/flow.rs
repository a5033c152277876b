//! The operation runner for custom flows ([`crate::flow`]): runs a session's start
//! steps as its create, each later operation as the next step of its round, and the
//! flow's sweep step for the final sweep.
//!
//! Every request carries the session's cookie jar. Redirects are never followed
//! behind the harness's back (many apps say "session lost" with a 302/303 to the login
//! page): a step follows them only with `follow = true`, and every answer on the way is
//! checked against `lost_when` first. A write is acknowledged by its step's first
//! answer (an expected status, or a redirect the step follows); one whose outcome is
//! unknown is resent, byte for byte the same, up to `load.retries` times, exactly like
//! the contract's appends, and stays indeterminate for the checker otherwise.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use url::Url;

use super::answers::{capture, check_read, lost_sign, Answer};
use super::exchange::{Done, BACKOFF};
use super::headers::Headers;
use super::http::{path_of, Origin};
use super::session::{FlowState, LiveSession, Step as OpStep};
use super::wire::Outgoing;
use super::Driver;
use crate::flow::cookies::{Jar, SetCookie};
use crate::flow::template::Values;
use crate::flow::{Body, Flow, Shows, Step, MAX_REDIRECTS};
use crate::metrics::{ErrorKind, Live, Outcome};
use crate::session::{Anomaly, AnomalyKind, Op, Seen, SessionModel};

/// A request with its templates filled in, so a retry resends exactly the same.
struct Prepared {
    method: Method,
    url: Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    /// The body's `Content-Type`, when there is a body.
    content_type: Option<HeaderValue>,
}

enum Reply {
    Answer(Answer),
    /// A `lost_when` sign: the service forgot the session.
    Lost {
        detail: String,
        served_by: Option<String>,
    },
    /// No usable answer (counted as an error already).
    Failed,
}

impl Driver {
    /// Runs one operation of a flow session: its start when `session` is `None`, else
    /// the next step of its round.
    pub(super) async fn flow_job(
        &self,
        flow: &Flow,
        session: Option<LiveSession>,
        user: Option<usize>,
        done: &mut Done,
    ) {
        let mut session = match session {
            Some(session) => session,
            None => {
                done.step = OpStep::Create;
                self.flow_start(flow, user, done).await;
                match done.session.take() {
                    // With no start step nothing was sent to create the session: this
                    // operation is its first step, so no `create` is timed or counted.
                    Some(session) if flow.start.is_empty() => {
                        done.outcome = Outcome::Error;
                        session
                    }
                    started => {
                        done.session = started;
                        return;
                    }
                }
            }
        };
        let step = &flow.steps[session.next as usize % flow.steps.len()];
        let state = session
            .flow
            .as_ref()
            .expect("a flow session has flow state");
        done.step = if step.writes {
            OpStep::Append(state.writes)
        } else {
            OpStep::Read
        };
        let op = done.step.op();
        self.flow_step(flow, step, &mut session, op, done).await;
        session.next += 1;
        done.session = Some(session);
    }

    /// Runs the start steps; the session exists once all of them were answered.
    async fn flow_start(&self, flow: &Flow, user: Option<usize>, done: &mut Done) {
        let seq = self.next_seq();
        let mut state = FlowState {
            jar: Jar::default(),
            captures: vec![None; flow.captures.len()],
            writes: 0,
            vu: user.map_or(seq, |u| u as u64),
            seq,
            rng: StdRng::seed_from_u64(self.seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            steps_per_round: flow.steps.len() as u32,
            renewed: None,
            last_sent: self.start.elapsed(),
        };
        for step in &flow.start {
            let Some(prepared) = self.prepare(step, &mut state, None, done) else {
                return;
            };
            let (_, reply) = self
                .exchange(flow, step, &prepared, &mut state, false, done)
                .await;
            let Reply::Answer(answer) = reply else { return };
            if !capture(step, &answer, &mut state) {
                self.fail(ErrorKind::BadBody, None, done);
                return;
            }
        }
        Live::add(&self.live.sessions, 1);
        let id = state
            .jar
            .first()
            .unwrap_or_else(|| format!("session {seq}"));
        // A sweep step that writes takes a write of its own on every attempt.
        let sweep_writes = if flow.steps[flow.sweep].writes {
            super::SWEEP_ATTEMPTS
        } else {
            0
        };
        let writes = self.plan.appends_per_session * flow.writes_per_round + sweep_writes;
        let model = SessionModel::new(seq, id, writes).judged_by_content();
        done.outcome = Outcome::Ok;
        // A flow's requests carry its cookie jar, not a fixed Cookie header.
        let unused = HeaderValue::from_static("");
        done.session = Some(LiveSession::new(model, unused).with_flow(state));
    }

    /// Runs `step` for `session` and checks what it reads; returns whether an answer
    /// (or a sign of loss) came.
    async fn flow_step(
        &self,
        flow: &Flow,
        step: &Step,
        session: &mut LiveSession,
        op: Op,
        done: &mut Done,
    ) -> bool {
        let mut state = session.flow.take().expect("a flow session has flow state");
        let answered = self
            .flow_step_with(flow, step, session, &mut state, op, done)
            .await;
        session.flow = Some(state);
        answered
    }

    async fn flow_step_with(
        &self,
        flow: &Flow,
        step: &Step,
        session: &mut LiveSession,
        state: &mut FlowState,
        op: Op,
        done: &mut Done,
    ) -> bool {
        let write = step.writes.then(|| {
            state.writes += 1;
            state.writes - 1
        });
        let item = write.map(|k| session.model.item(k));
        let Some(prepared) = self.prepare(step, state, item.as_deref(), done) else {
            return false;
        };
        let attempts = if write.is_some() {
            self.plan.retries + 1
        } else {
            1
        };
        // A page that shows the state from before its own write is checked before the
        // model learns of that write; one that shows it after, with the write known.
        let (early, shown) = match (write, step.shows) {
            (Some(k), Shows::After) => (Some(k), Some(k)),
            (Some(_), Shows::Before) | (None, _) => (None, None),
        };
        let late = write.filter(|_| early.is_none());
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            if let Some(k) = early {
                session.model.sent(k);
            }
            let (committed, reply) = self
                .exchange(flow, step, &prepared, state, true, done)
                .await;
            if let (true, Some(k)) = (committed, early) {
                session.model.acknowledged(k);
            }
            let idle = self.start.elapsed().saturating_sub(state.last_sent);
            state.last_sent = self.start.elapsed();
            let answered = self
                .judge(flow, step, session, state, op, shown, reply, done)
                .map(|anomalies| self.settle(flow, session, idle, anomalies, done));
            if let Some(k) = late {
                session.model.sent(k);
                if committed {
                    session.model.acknowledged(k);
                }
            }
            match answered {
                Some(()) => return true,
                // The write was taken; what followed the redirect did not answer.
                None if committed => return false,
                None => {}
            }
        }
        false
    }

    /// Checks one reply of a step: what it reads, or its sign of loss. Returns what it
    /// found, `None` when no answer came.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        flow: &Flow,
        step: &Step,
        session: &mut LiveSession,
        state: &mut FlowState,
        op: Op,
        shown: Option<u32>,
        reply: Reply,
        done: &mut Done,
    ) -> Option<Vec<Anomaly>> {
        Some(match reply {
            Reply::Answer(answer) => {
                let served_by = served_by(&answer.headers);
                let seen = Seen {
                    write: shown,
                    ..self.seen(op, served_by.as_deref())
                };
                let usable = capture(step, &answer, state);
                let checked = match &step.read {
                    Some(read) => {
                        check_read(read, &flow.value, &mut session.model, &answer.body, seen)
                    }
                    None => Some(Vec::new()),
                };
                match checked {
                    Some(mut anomalies) => {
                        if let Some(lost) = anomalies
                            .iter_mut()
                            .find(|a| a.kind == AnomalyKind::LostSession)
                        {
                            session.lost = true;
                            lost.detail.push_str(&match &state.renewed {
                                Some(name) => format!(", with a new `{name}` cookie"),
                                None => ", under the same cookie".to_string(),
                            });
                        }
                        if usable {
                            done.outcome = Outcome::Ok;
                        } else {
                            self.fail(ErrorKind::BadBody, None, done);
                        }
                        anomalies
                    }
                    None => {
                        self.fail(ErrorKind::BadBody, None, done);
                        Vec::new()
                    }
                }
            }
            Reply::Lost { detail, served_by } => {
                session.lost = true;
                // The sign of loss is the answer, not an error.
                done.outcome = Outcome::Ok;
                let seen = self.seen(op, served_by.as_deref());
                session.model.lost(seen, detail).into_iter().collect()
            }
            Reply::Failed => return None,
        })
    }

    /// Records what an answer showed, unless the session was lost after a pause
    /// longer than the app's idle timeout: that is expiry by design, counted apart.
    fn settle(
        &self,
        flow: &Flow,
        session: &LiveSession,
        idle: Duration,
        anomalies: Vec<Anomaly>,
        done: &mut Done,
    ) {
        let expired = session.lost && flow.idle_timeout.is_some_and(|timeout| idle > timeout);
        if expired {
            done.expired += 1;
        } else {
            self.record(done, anomalies);
        }
    }

    /// Reads `session` once for the final sweep with the flow's sweep step, retrying
    /// failed attempts; returns whether it got an answer at all.
    pub(super) async fn flow_sweep(
        &self,
        flow: &Flow,
        session: &mut LiveSession,
        done: &mut Done,
    ) -> bool {
        let step = &flow.steps[flow.sweep];
        for attempt in 0..super::SWEEP_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            if self.flow_step(flow, step, session, Op::Sweep, done).await {
                return true;
            }
        }
        false
    }

    /// Fills in the step's templates.
    fn prepare(
        &self,
        step: &Step,
        state: &mut FlowState,
        item: Option<&str>,
        done: &mut Done,
    ) -> Option<Prepared> {
        let FlowState {
            captures,
            vu,
            seq,
            rng,
            ..
        } = state;
        let mut uuid = || uuid(rng);
        let mut values = Values {
            item,
            vu: *vu,
            session_n: *seq,
            captures,
            uuid: &mut uuid,
        };
        let path = step.path.render(&mut values);
        // With `direct` balancing, each request of a flow goes to the next replica
        // in turn (a flow session is not pinned to one).
        let target = self.targets.pick(&mut None);
        let url = target.urls.url.join(&path).ok();
        let headers: Option<Vec<_>> = step
            .headers
            .iter()
            .map(|(name, t)| {
                let value = HeaderValue::try_from(t.render(&mut values)).ok()?;
                Some((HeaderName::try_from(name.as_str()).ok()?, value))
            })
            .collect();
        let (body, content_type) = match &step.body {
            Body::None => (Bytes::new(), None),
            Body::Json(j) => (
                j.render(&mut values).to_string().into(),
                Some(HeaderValue::from_static("application/json")),
            ),
            Body::Form(fields) => {
                let fields: Vec<_> = fields
                    .iter()
                    .map(|(n, t)| (n.clone(), t.render(&mut values)))
                    .collect();
                let form = serde_urlencoded::to_string(fields).expect("pairs of strings encode");
                let kind = HeaderValue::from_static("application/x-www-form-urlencoded");
                (form.into(), Some(kind))
            }
        };
        let (Some(url), Some(headers)) = (url, headers) else {
            // A captured value made the path or a header unusable: the service's
            // answer was odd.
            self.fail(ErrorKind::BadBody, None, done);
            return None;
        };
        Some(Prepared {
            method: step.method.clone(),
            url,
            headers,
            body,
            content_type,
        })
    }

    /// Sends a prepared request, follows redirects if the step says so, and sorts the
    /// last answer. `established`: the session exists, so `lost_when` applies. Returns
    /// whether the first answer acknowledged the request, and the reply.
    async fn exchange(
        &self,
        flow: &Flow,
        step: &Step,
        prepared: &Prepared,
        state: &mut FlowState,
        established: bool,
        done: &mut Done,
    ) -> (bool, Reply) {
        let mut method = prepared.method.clone();
        let mut url = prepared.url.clone();
        let (mut body, mut content_type) = (prepared.body.clone(), prepared.content_type.clone());
        let mut committed = false;
        for hop in 0..=MAX_REDIRECTS {
            let Some(origin) = Origin::of(&url) else {
                // Only a redirect can lead here: to a place neither http:// nor https://.
                self.fail(ErrorKind::BadBody, None, done);
                return (committed, Reply::Failed);
            };
            let target = path_of(&url);
            // The jar's cookies and the body's type stand in for any the step set.
            let cookie = state
                .jar
                .header()
                .and_then(|c| HeaderValue::try_from(c).ok());
            let mut headers: Vec<(&str, &[u8])> = prepared
                .headers
                .iter()
                .filter(|(name, _)| {
                    !(*name == COOKIE && cookie.is_some()
                        || *name == CONTENT_TYPE && content_type.is_some())
                })
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            headers.extend(cookie.as_ref().map(|c| ("cookie", c.as_bytes())));
            headers.extend(
                content_type
                    .as_ref()
                    .map(|t| ("content-type", t.as_bytes())),
            );
            let request = Outgoing {
                method: &method,
                target: &target,
                headers: &headers,
                body: &body,
            };
            Live::add(&self.live.ops, 1);
            let response = match self.http.send(&origin, &request).await {
                Ok(response) => response,
                Err(kind) => {
                    self.fail(kind, None, done);
                    return (committed, Reply::Failed);
                }
            };
            let (status, headers) = (response.status, response.headers);
            let text = String::from_utf8_lossy(&response.body).into_owned();
            let served = served_by(&headers);
            done.served_by
                .extend(served.as_deref().map(super::exchange::replica));
            let set: Vec<SetCookie> = headers
                .texts(SET_COOKIE.as_str())
                .filter_map(SetCookie::parse)
                .collect();
            if established {
                if let Some(detail) =
                    lost_sign(&flow.lost_when, status, &headers, &text, &set, &state.jar)
                {
                    return (
                        committed,
                        Reply::Lost {
                            detail,
                            served_by: served,
                        },
                    );
                }
            }
            if hop == 0 {
                state.renewed = None;
            }
            for cookie in &set {
                let known = state.jar.get(&cookie.name);
                if known.is_some_and(|v| v != cookie.value) && !cookie.removes {
                    state.renewed = Some(cookie.name.clone());
                }
                state.jar.set(cookie);
            }
            let next = step
                .follow
                .then(|| {
                    status
                        .is_redirection()
                        .then(|| headers.text(LOCATION.as_str()))
                })
                .flatten()
                .flatten()
                .and_then(|l| url.join(l).ok());
            if hop == 0 {
                committed = next.is_some() || expected(step, status);
            }
            match next {
                Some(location) if hop < MAX_REDIRECTS => {
                    url = location;
                    method = Method::GET;
                    (body, content_type) = (Bytes::new(), None);
                }
                _ if expected(step, status) => {
                    return (
                        committed,
                        Reply::Answer(Answer {
                            headers,
                            body: text,
                        }),
                    );
                }
                _ => {
                    let by = super::exchange::failed_in(&headers).map(str::to_string);
                    self.fail(ErrorKind::from_status(status), by, done);
                    return (committed, Reply::Failed);
                }
            }
        }
        unreachable!("the last hop never follows a redirect")
    }

    /// Counts a failed request for the progress line, the operation, the replica
    /// it names (`by`) and the fault windows.
    fn fail(&self, kind: ErrorKind, by: Option<String>, done: &mut Done) {
        done.errors.push((kind, by));
        Live::add(&self.live.errors, 1);
        self.failures.record(self.start.elapsed());
    }
}

fn expected(step: &Step, status: StatusCode) -> bool {
    if step.expect.is_empty() {
        status.is_success()
    } else {
        step.expect.contains(&status.as_u16())
    }
}

/// The replica that answered: as the app says, or as the balancer says for apps that
/// do not (a Django or PHP app sets no `X-Served-By`).
fn served_by(headers: &Headers) -> Option<String> {
    super::exchange::failed_in(headers).map(str::to_string)
}

/// A random UUID in the version 4 layout, from the session's seeded RNG.
fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_v4_shaped_and_reproducible_from_the_seed() {
        let a = uuid(&mut StdRng::seed_from_u64(5));
        assert_eq!(a, uuid(&mut StdRng::seed_from_u64(5)));
        assert_ne!(a, uuid(&mut StdRng::seed_from_u64(6)));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
