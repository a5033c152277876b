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
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE,
};
use http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use url::Url;

use super::exchange::{Done, BACKOFF};
use super::http::{path_of, request, Origin};
use super::session::{FlowState, LiveSession, Step as OpStep};
use super::Driver;
use crate::flow::cookies::{Jar, SetCookie};
use crate::flow::template::{ItemPattern, Values};
use crate::flow::{Body, Capture, Flow, LostWhen, Read, Shows, Step, MAX_REDIRECTS};
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

/// An answer read in full.
struct Answer {
    headers: HeaderMap,
    body: String,
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
        let Some(mut session) = session else {
            done.step = OpStep::Create;
            self.flow_start(flow, user, done).await;
            return;
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
            let (Some(origin), Some(path)) = (Origin::of(&url), path_of(&url)) else {
                // Only a redirect can lead here: to a place neither http:// nor https://.
                self.fail(ErrorKind::BadBody, None, done);
                return (committed, Reply::Failed);
            };
            let mut request = request(method.clone(), path, body.clone());
            let headers = request.headers_mut();
            for (name, value) in &prepared.headers {
                headers.append(name, value.clone());
            }
            if let Some(cookie) = state
                .jar
                .header()
                .and_then(|c| HeaderValue::try_from(c).ok())
            {
                headers.insert(COOKIE, cookie);
            }
            if let Some(kind) = &content_type {
                headers.insert(CONTENT_TYPE, kind.clone());
            }
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
            done.served_by.extend(served.clone());
            let set: Vec<SetCookie> = headers
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| SetCookie::parse(v.to_str().ok()?))
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
                .then(|| status.is_redirection().then(|| headers.get(LOCATION)))
                .flatten()
                .flatten()
                .and_then(|l| url.join(l.to_str().ok()?).ok());
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
                    let by = super::exchange::failed_in(&headers);
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
fn served_by(headers: &HeaderMap) -> Option<String> {
    super::exchange::failed_in(headers)
}

/// The first `lost_when` sign the answer shows, in words.
fn lost_sign(
    signs: &[LostWhen],
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    set: &[SetCookie],
    jar: &Jar,
) -> Option<String> {
    signs.iter().find_map(|sign| match sign {
        LostWhen::Status(s) => (status.as_u16() == *s).then(|| format!("answered {status}")),
        LostWhen::Redirect(prefix) => {
            let location = headers.get(LOCATION)?.to_str().ok()?;
            let path = Url::parse(location)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| location.to_string());
            (status.is_redirection() && path.starts_with(prefix.as_str()))
                .then(|| format!("answered {status} redirecting to {location}"))
        }
        LostWhen::Contains(text) => body
            .contains(text.as_str())
            .then(|| format!("answered {status} with {text:?} in the body")),
        LostWhen::NewCookie(name) => set
            .iter()
            .find(|c| c.name == *name && !c.removes && jar.get(name) != Some(c.value.as_str()))
            .map(|_| format!("answered {status} setting a new `{name}` cookie: a fresh session in place of ours")),
    })
}

/// Takes the step's captures from the answer; false if one is missing.
fn capture(step: &Step, answer: &Answer, state: &mut FlowState) -> bool {
    let mut json = None;
    let mut all = true;
    for (slot, source) in &step.captures {
        let value = match source {
            Capture::Json(pointer) => json
                .get_or_insert_with(|| serde_json::from_str::<Value>(&answer.body).ok())
                .as_ref()
                .and_then(|v| v.pointer(pointer))
                .and_then(scalar_text),
            Capture::Header(name) => answer
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            Capture::Cookie(name) => state.jar.get(name).map(str::to_string),
            Capture::Regex(pattern) => pattern.find(&answer.body).map(str::to_string),
        };
        match value {
            Some(v) => state.captures[*slot] = Some(v),
            None => all = false,
        }
    }
    all
}

/// A JSON string as it is, a number or bool as its text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// Checks what a read step found; `None` when the answer does not have the shape the
/// read expects (not JSON, no list or counter where it should be).
fn check_read(
    read: &Read,
    value: &ItemPattern,
    model: &mut SessionModel,
    body: &str,
    seen: Seen<'_>,
) -> Option<Vec<Anomaly>> {
    let json = || serde_json::from_str::<Value>(body).ok();
    Some(match read {
        Read::List {
            pointer,
            field,
            ordered,
        } => {
            let json = json()?;
            let texts: Vec<String> = json
                .pointer(pointer)?
                .as_array()?
                .iter()
                .map(|element| {
                    let v = match field {
                        Some(f) => element.pointer(f),
                        None => Some(element),
                    };
                    v.and_then(scalar_text)
                        .unwrap_or_else(|| element.to_string())
                })
                .collect();
            let names = texts.iter().map(|t| value.strip(t).unwrap_or(t));
            model.check_items(names, *ordered, seen)
        }
        Read::Counter(pointer) => {
            let json = json()?;
            let v = json.pointer(pointer)?;
            let n = v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())?;
            model.check_counter(n, seen)
        }
        Read::CounterAfter(text) => {
            let at = body.find(text.as_str())? + text.len();
            let digits: String = body[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            model.check_counter(digits.parse().ok()?, seen)
        }
        Read::Contains(pattern) => model.check_occurrences(
            |item| body.matches(pattern.render(item).as_str()).count() as u32,
            seen,
        ),
    })
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
    use std::time::Duration;

    use super::*;
    use crate::session::AnomalyKind;

    fn seen() -> Seen<'static> {
        Seen {
            op: Op::Read,
            served_by: Some("replica-0.1"),
            at: Duration::from_secs(1),
            write: None,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// Session 7 with 3 writes, the first two acknowledged.
    fn model() -> SessionModel {
        let mut m = SessionModel::new(7, "sessionid=abc".into(), 3);
        for k in 0..2 {
            m.sent(k);
            m.acknowledged(k);
        }
        m
    }

    fn plain() -> ItemPattern {
        ItemPattern {
            before: String::new(),
            after: String::new(),
        }
    }

    fn kinds(found: Option<Vec<Anomaly>>) -> Option<Vec<AnomalyKind>> {
        found.map(|f| f.iter().map(|a| a.kind).collect())
    }

    #[test]
    fn lost_signs_of_real_frameworks() {
        let mut jar = Jar::default();
        jar.set(&SetCookie::parse("sessionid=abc").unwrap());
        let signs = [
            LostWhen::Status(401),
            LostWhen::Redirect("/accounts/login/".into()),
            LostWhen::Contains("Please log in".into()),
            LostWhen::NewCookie("sessionid".into()),
        ];
        let check = |status: u16, h: &HeaderMap, body: &str, set: &[SetCookie]| {
            lost_sign(
                &signs,
                StatusCode::from_u16(status).unwrap(),
                h,
                body,
                set,
                &jar,
            )
        };
        let none = HeaderMap::new();
        assert_eq!(check(200, &none, "Count: 3", &[]), None);
        assert!(check(401, &none, "", &[]).unwrap().contains("401"));
        // Django's login_required, relative or absolute.
        for location in [
            "/accounts/login/?next=/",
            "http://app:8080/accounts/login/?next=/",
        ] {
            let h = headers(&[("location", location)]);
            assert!(check(302, &h, "", &[]).unwrap().contains(location));
        }
        assert_eq!(check(303, &headers(&[("location", "/")]), "", &[]), None);
        assert!(check(200, &none, "<p>Please log in</p>", &[]).is_some());
        // The same session cookie sent again is not a new session; another one is.
        let same = SetCookie::parse("sessionid=abc; Path=/").unwrap();
        assert_eq!(check(200, &none, "", &[same]), None);
        let fresh = SetCookie::parse("sessionid=zzz; Path=/").unwrap();
        assert!(check(200, &none, "", &[fresh])
            .unwrap()
            .contains("fresh session"));
    }

    #[test]
    fn list_reads_strip_the_value_shape_and_follow_field_pointers() {
        let read = Read::List {
            pointer: "/cart/items".into(),
            field: Some("/sku".into()),
            ordered: true,
        };
        let sku = ItemPattern {
            before: "sku-".into(),
            after: String::new(),
        };
        let body = r#"{"cart":{"items":[{"sku":"sku-7.0"},{"sku":"sku-7.1"}]}}"#;
        assert_eq!(
            kinds(check_read(&read, &sku, &mut model(), body, seen())),
            Some(vec![])
        );
        let body = r#"{"cart":{"items":[{"sku":"sku-7.0"},{"sku":"sku-9.9"}]}}"#;
        assert_eq!(
            kinds(check_read(&read, &sku, &mut model(), body, seen())),
            Some(vec![AnomalyKind::Phantom, AnomalyKind::LostWrite])
        );
        // Not the shape the read expects: no verdict, an error.
        assert_eq!(
            kinds(check_read(&read, &sku, &mut model(), "<html>", seen())),
            None
        );
        assert_eq!(
            kinds(check_read(
                &read,
                &sku,
                &mut model(),
                r#"{"cart":{}}"#,
                seen()
            )),
            None
        );
    }

    #[test]
    fn counters_come_from_json_or_from_the_text_of_a_page() {
        let json = Read::Counter("/count".into());
        assert_eq!(
            kinds(check_read(
                &json,
                &plain(),
                &mut model(),
                r#"{"count":2}"#,
                seen()
            )),
            Some(vec![])
        );
        assert_eq!(
            kinds(check_read(
                &json,
                &plain(),
                &mut model(),
                r#"{"count":"2"}"#,
                seen()
            )),
            Some(vec![])
        );
        assert_eq!(
            kinds(check_read(
                &json,
                &plain(),
                &mut model(),
                r#"{"count":1}"#,
                seen()
            )),
            Some(vec![AnomalyKind::LostWrite])
        );
        let page = Read::CounterAfter("<span id=\"count\">".into());
        let body = "<p>Count: <span id=\"count\">4</span></p>";
        assert_eq!(
            kinds(check_read(&page, &plain(), &mut model(), body, seen())),
            Some(vec![AnomalyKind::Duplicate])
        );
        assert_eq!(
            kinds(check_read(
                &page,
                &plain(),
                &mut model(),
                "<p>login</p>",
                seen()
            )),
            None
        );
    }

    #[test]
    fn contains_reads_count_each_value_in_its_pattern() {
        let read = Read::Contains(ItemPattern {
            before: "<li>".into(),
            after: "</li>".into(),
        });
        // 7.1 inside 7.10 would be a false match without the pattern around it.
        let body = "<ul><li>7.0</li><li>7.1</li><li>7.10</li></ul>";
        assert_eq!(
            kinds(check_read(&read, &plain(), &mut model(), body, seen())),
            Some(vec![])
        );
        assert_eq!(
            kinds(check_read(
                &read,
                &plain(),
                &mut model(),
                "<li>7.1</li>",
                seen()
            )),
            Some(vec![AnomalyKind::LostWrite])
        );
    }

    #[test]
    fn captures_come_from_json_headers_and_the_jar() {
        let step = Step {
            method: Method::POST,
            path: crate::flow::template::Template::literal("/cart"),
            headers: Vec::new(),
            body: Body::None,
            expect: Vec::new(),
            follow: false,
            captures: vec![
                (0, Capture::Json("/id".into())),
                (1, Capture::Header("x-csrf-token".into())),
                (2, Capture::Cookie("connect.sid".into())),
            ],
            writes: false,
            read: None,
            shows: Shows::After,
        };
        let mut state = FlowState {
            jar: Jar::default(),
            captures: vec![None; 3],
            writes: 0,
            vu: 0,
            seq: 0,
            rng: StdRng::seed_from_u64(1),
            steps_per_round: 1,
            renewed: None,
            last_sent: Duration::ZERO,
        };
        state
            .jar
            .set(&SetCookie::parse("connect.sid=s%3Axyz; Path=/").unwrap());
        let answer = Answer {
            headers: headers(&[("x-csrf-token", "t1")]),
            body: r#"{"id": 42}"#.into(),
        };
        assert!(capture(&step, &answer, &mut state));
        assert_eq!(
            state.captures,
            [Some("42".into()), Some("t1".into()), Some("s%3Axyz".into())]
        );
        let empty = Answer {
            headers: HeaderMap::new(),
            body: "{}".into(),
        };
        assert!(
            !capture(&step, &empty, &mut state),
            "missing values are reported"
        );
    }

    #[test]
    fn uuids_are_v4_shaped_and_reproducible_from_the_seed() {
        let a = uuid(&mut StdRng::seed_from_u64(5));
        assert_eq!(a, uuid(&mut StdRng::seed_from_u64(5)));
        assert_ne!(a, uuid(&mut StdRng::seed_from_u64(6)));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
