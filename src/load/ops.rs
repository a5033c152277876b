//! One operation of one session, as an HTTP exchange checked on the spot.
//!
//! An operation future owns its session while it runs and hands it back in
//! [`Done`], together with everything the shard must record, so nothing is shared
//! between concurrent operations and a session never has two in flight.

use std::sync::Arc;

use http::header::{HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::exchange::{failed_in, replica, Done, Job, BACKOFF};
use super::headers::Headers;
use super::session::{LiveSession, Step};
use super::wire::{Outgoing, Reply};
use super::Driver;
use crate::metrics::{ErrorKind, Live, Outcome};
use crate::session::{Anomaly, Op, Seen, SessionModel, State};

/// One answer, sorted the way the checker needs it, borrowing from the reply.
/// Large (a state holds its first items inline), but it lives on the stack for one
/// answer: boxing it would be the allocation the inline items save.
#[allow(clippy::large_enum_variant)]
enum Answer<'r> {
    /// The session's state, who served it, and the answer's headers (a create
    /// takes the session's cookies from them).
    State(State<'r>, Option<&'r str>, &'r Headers),
    NotFound(Option<&'r str>),
    /// No usable answer; the replica named by the answer, if it came from one or
    /// the balancer says which it sent the request to.
    Failed(ErrorKind, Option<&'r str>),
}

/// What one of the contract's requests asks: the target comes from the replica
/// it goes to, the rest is the session's.
struct Request<'a> {
    method: &'a Method,
    resource: Resource,
    headers: &'a [(&'a str, &'a [u8])],
    body: &'a [u8],
}

/// The contract's two resources, under whichever replica (or balancer) is picked.
#[derive(Clone, Copy)]
enum Resource {
    Session,
    Items,
}

/// The body of an append of item `k` of `model` (the item's name is also its op
/// id), written once for all its attempts. Item names need no escaping
/// ([`SessionModel::item_name`]): one allocation, no JSON serialiser.
fn append_body(model: &SessionModel, k: u32) -> Vec<u8> {
    let item = model.item_name(k);
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(br#"{"op":""#);
    item.write_to(&mut body);
    body.extend_from_slice(br#"","item":""#);
    item.write_to(&mut body);
    body.extend_from_slice(br#""}"#);
    body
}

impl Driver {
    /// Runs `job` once its intended time has come, unless the run stops first.
    /// The job must have been admitted ([`Driver::admit`]).
    pub(super) async fn run_job(self: Arc<Self>, job: Job, stop: Arc<CancellationToken>) -> Done {
        let mut done = Done::new(Step::Create, job.intended, job.user);
        if job.intended > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(job.intended) => {}
                () = stop.cancelled() => {
                    done.session = job.session;
                    done.skipped = true;
                    return done;
                }
            }
        }
        done.sent = Instant::now();
        if let Some(flow) = self.plan.flow.clone() {
            // Boxed: a flow's future is large, and every operation's future would be
            // as large (and moved whole into the shard) if it were inline.
            Box::pin(self.flow_job(&flow, job.session, job.user, &mut done)).await;
            done.finished = Instant::now();
            return done;
        }
        match job.session {
            None => self.create(&mut done).await,
            Some(mut session) => {
                done.step = session.step();
                match done.step {
                    Step::Append(k) => self.append(&mut session, k, &mut done).await,
                    _ => {
                        self.read(&mut session, Op::Read, &mut done).await;
                    }
                }
                session.next += 1;
                done.session = Some(session);
            }
        }
        done.finished = Instant::now();
        done
    }

    pub(super) fn seen<'a>(&self, op: Op, served_by: Option<&'a str>) -> Seen<'a> {
        Seen {
            op,
            served_by,
            at: self.start.elapsed(),
            write: None,
        }
    }

    /// Sends one request, built for the target chosen for a session whose replica
    /// is `home`, sorts its answer and hands it to `judge`; counts it for the
    /// progress line and a failure for the fault windows (and for the choice of
    /// later targets). The answer borrows from the reply, which lives here: hence
    /// the judge, rather than an answer returned.
    async fn send<R>(
        &self,
        home: &mut Option<usize>,
        request: Request<'_>,
        done: &mut Done,
        judge: impl FnOnce(Answer<'_>, &mut Done) -> R,
    ) -> R {
        Live::add(&self.live.ops, 1);
        let target = self.targets.pick(home);
        let outgoing = Outgoing {
            method: request.method,
            target: match request.resource {
                Resource::Session => &target.urls.session,
                Resource::Items => &target.urls.items,
            },
            headers: request.headers,
            body: request.body,
        };
        let reply = self.http.send(&target.urls.origin, &outgoing).await;
        let answer = match &reply {
            Err(kind) => Answer::Failed(*kind, None),
            Ok(reply) => sort(reply),
        };
        match &answer {
            Answer::Failed(kind, by) => {
                self.targets.failed(&target, *kind, home);
                let by = by
                    .map(str::to_string)
                    .or_else(|| self.targets.replica_of(&target));
                done.errors.push((*kind, by));
                Live::add(&self.live.errors, 1);
                self.failures.record(self.start.elapsed());
            }
            Answer::State(_, Some(by), _) | Answer::NotFound(Some(by)) => {
                done.served_by.push(replica(by));
            }
            _ => {}
        }
        judge(answer, done)
    }

    pub(super) fn record(&self, done: &mut Done, anomalies: impl IntoIterator<Item = Anomaly>) {
        for anomaly in anomalies {
            Live::add(&self.live.anomalies, 1);
            done.anomalies.push(anomaly);
        }
    }

    async fn create(&self, done: &mut Done) {
        let mut home = None;
        let request = Request {
            method: &Method::POST,
            resource: Resource::Session,
            headers: &[],
            body: b"",
        };
        let created = self
            .send(&mut home, request, done, |answer, done| match answer {
                Answer::State(state, served_by, headers) => {
                    let Some(cookie) = session_cookie(headers, &state.session) else {
                        // A session id no Cookie header can carry: the answer is unusable.
                        done.errors
                            .push((ErrorKind::BadBody, served_by.map(str::to_string)));
                        return None;
                    };
                    Live::add(&self.live.sessions, 1);
                    let seq = self.next_seq();
                    let mut model = SessionModel::new(
                        seq,
                        state.session.to_string(),
                        self.plan.appends_per_session,
                    );
                    let seen = self.seen(Op::Create, served_by);
                    let anomalies = model.check(&state, seen);
                    self.record(done, anomalies);
                    done.outcome = Outcome::Ok;
                    Some(LiveSession::new(model, cookie))
                }
                Answer::NotFound(by) => {
                    done.errors
                        .push((ErrorKind::Status4xx, by.map(str::to_string)));
                    None
                }
                Answer::Failed(..) => None,
            })
            .await;
        done.session = created.map(|mut session| {
            session.home = home;
            session
        });
    }

    /// Appends item `k`, retrying with the same op id while the outcome is unknown;
    /// an item still unknown after every retry stays indeterminate for the sweep.
    async fn append(&self, session: &mut LiveSession, k: u32, done: &mut Done) {
        let body = append_body(&session.model, k);
        for attempt in 0..=self.plan.retries {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            session.model.sent(k);
            let headers = [
                ("cookie", session.cookie.as_bytes()),
                ("content-type", b"application/json".as_slice()),
            ];
            let request = Request {
                method: &Method::POST,
                resource: Resource::Items,
                headers: &headers,
                body: &body,
            };
            let answered = self
                .send(&mut session.home, request, done, |answer, done| {
                    if matches!(answer, Answer::State(..)) {
                        session.model.acknowledged(k);
                    }
                    let (model, lost) = (&mut session.model, &mut session.lost);
                    self.check_answer(model, lost, Op::Append, answer, done)
                })
                .await;
            if answered {
                return;
            }
        }
    }

    /// Reads the session back and checks it; returns whether an answer came.
    async fn read(&self, session: &mut LiveSession, op: Op, done: &mut Done) -> bool {
        let headers = [("cookie", session.cookie.as_bytes())];
        let request = Request {
            method: &Method::GET,
            resource: Resource::Session,
            headers: &headers,
            body: b"",
        };
        self.send(&mut session.home, request, done, |answer, done| {
            let (model, lost) = (&mut session.model, &mut session.lost);
            self.check_answer(model, lost, op, answer, done)
        })
        .await
    }

    /// Checks an answer to one of a session's requests against its model; returns
    /// whether an answer came (its state, or a 404 that says the session is lost).
    fn check_answer(
        &self,
        model: &mut SessionModel,
        lost: &mut bool,
        op: Op,
        answer: Answer<'_>,
        done: &mut Done,
    ) -> bool {
        match answer {
            Answer::State(state, served_by, _) => {
                let seen = self.seen(op, served_by);
                let anomalies = model.check(&state, seen);
                self.record(done, anomalies);
                done.outcome = Outcome::Ok;
                true
            }
            Answer::NotFound(served_by) => {
                self.lost(model, lost, op, served_by, done);
                true
            }
            Answer::Failed(..) => false,
        }
    }

    /// The service answered 404 for a session it created: the user moves on.
    fn lost(
        &self,
        model: &mut SessionModel,
        lost: &mut bool,
        op: Op,
        served_by: Option<&str>,
        done: &mut Done,
    ) {
        *lost = true;
        let detail = format!("answered 404 to {}", op.name());
        let anomaly = model.lost(self.seen(op, served_by), detail);
        self.record(done, anomaly);
        // The 404 is the answer, not an error: the operation itself completed.
        done.outcome = Outcome::Ok;
    }

    /// Reads `session` once for the final sweep, retrying failed attempts; returns
    /// whether it got an answer at all.
    pub(super) async fn sweep_one(&self, session: &mut LiveSession, done: &mut Done) -> bool {
        if let Some(flow) = self.plan.flow.clone() {
            return Box::pin(self.flow_sweep(&flow, session, done)).await;
        }
        for attempt in 0..super::SWEEP_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(BACKOFF * attempt).await;
            }
            if self.read(session, Op::Sweep, done).await {
                return true;
            }
        }
        false
    }
}

/// Sorts an answer the way the checker needs it.
fn sort(reply: &Reply) -> Answer<'_> {
    // The balancer names the replica for an app that does not name itself.
    let served_by = failed_in(&reply.headers);
    match reply.status {
        StatusCode::NOT_FOUND => Answer::NotFound(served_by),
        status if status.is_success() => match state_of(&reply.body) {
            Some(state) => Answer::State(state, served_by, &reply.headers),
            None => Answer::Failed(ErrorKind::BadBody, served_by),
        },
        status => Answer::Failed(ErrorKind::from_status(status), served_by),
    }
}

/// The session's state in an answer's body, `None` unless it is one. A body that
/// is UTF-8 (all of them, in practice) is checked once, whole, and read as text:
/// read from bytes, serde_json checks each string it keeps on its own. One that is
/// not may still hold a state (serde_json does not check a string it skips, in a
/// field the contract does not name), so it is read from bytes, as before.
fn state_of(body: &[u8]) -> Option<State<'_>> {
    match std::str::from_utf8(body) {
        Ok(text) => State::read(text),
        Err(_) => serde_json::from_slice(body).ok(),
    }
}

/// The `Cookie` header a new session sends from now on: every cookie its create
/// answer set (a sticky balancer's too), else `sid=<id>`; `None` when no header can
/// carry it.
fn session_cookie(headers: &Headers, id: &str) -> Option<HeaderValue> {
    let set: Vec<&str> = headers
        .texts(SET_COOKIE.as_str())
        .filter_map(|v| v.split(';').next())
        .collect();
    let cookie = if set.is_empty() {
        format!("sid={id}")
    } else {
        set.join("; ")
    };
    HeaderValue::try_from(cookie).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_names_its_item_as_op_and_item() {
        let model = SessionModel::new(42, "s".into(), 3);
        let body: serde_json::Value = serde_json::from_slice(&append_body(&model, 2)).unwrap();
        assert_eq!(body, serde_json::json!({"op": "42.2", "item": "42.2"}));
        assert_eq!(model.item(2), "42.2");
    }

    #[test]
    fn a_state_is_read_where_serde_json_reads_one() {
        let state = state_of(br#"{"session":"s","version":1,"items":["1.0","caf\u00e9"]}"#)
            .expect("a state");
        assert_eq!(state.items.len(), 2);
        assert_eq!(state.items[1].0, "caf\u{e9}");
        // Bytes that are not UTF-8 in a field the contract does not name: still a state.
        let other = state_of(b"{\"session\":\"s\",\"version\":1,\"items\":[],\"x\":\"\xff\"}")
            .expect("a state");
        assert_eq!(other.version, 1);
        let bad: [&[u8]; 4] = [
            br#"{"session":"s","version":1,"items":["\xff"]}"#,
            b"{\"session\":\"s\xff\",\"version\":1,\"items\":[]}",
            b"<html>",
            b"",
        ];
        for bad in bad {
            assert!(state_of(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
