//! What a flow's answers say: the signs of a lost session, the values captured for
//! later steps, and the reads checked against the session model. Pure functions of one
//! answer, kept apart from the HTTP exchange in [`super::flow`] so that each framework's
//! way of showing a session is unit-tested without a server.

use http::header::LOCATION;
use http::StatusCode;
use serde_json::Value;
use url::Url;

use super::headers::Headers;
use super::session::FlowState;
use crate::flow::cookies::{Jar, SetCookie};
use crate::flow::template::ItemPattern;
use crate::flow::{Capture, LostWhen, Read, Step};
use crate::session::{Anomaly, Seen, SessionModel};

/// An answer read in full.
pub(super) struct Answer {
    pub(super) headers: Headers,
    pub(super) body: String,
}

/// The first `lost_when` sign the answer shows, in words.
pub(super) fn lost_sign(
    signs: &[LostWhen],
    status: StatusCode,
    headers: &Headers,
    body: &str,
    set: &[SetCookie],
    jar: &Jar,
) -> Option<String> {
    signs.iter().find_map(|sign| match sign {
        LostWhen::Status(s) => (status.as_u16() == *s).then(|| format!("answered {status}")),
        LostWhen::Redirect(prefix) => {
            let location = headers.text(LOCATION.as_str())?;
            let path = Url::parse(location)
                .map(|u| u.path().to_string())
                .unwrap_or_else(|_| location.to_string());
            (status.is_redirection() && path.starts_with(prefix.as_str()))
                .then(|| format!("answered {status} redirecting to {location}"))
        }
        LostWhen::Contains(text) => body
            .contains(text.as_str())
            .then(|| format!("answered {status} with {text:?} in the body")),
        // Only a value in place of the one the jar holds: the first cookie a session
        // ever gets is its start, whether a start step or its first write set it
        // (Rails and PHP make a session on its first write).
        LostWhen::NewCookie(name) => {
            let held = jar.get(name)?;
            set.iter()
                .find(|c| c.name == *name && !c.removes && c.value != held)
                .map(|_| format!("answered {status} setting a new `{name}` cookie: a fresh session in place of ours"))
        }
    })
}

/// Takes the step's captures from the answer; false if one is missing.
pub(super) fn capture(step: &Step, answer: &Answer, state: &mut FlowState) -> bool {
    let mut json = None;
    let mut all = true;
    for (slot, source) in &step.captures {
        let value = match source {
            Capture::Json(pointer) => json
                .get_or_insert_with(|| serde_json::from_str::<Value>(&answer.body).ok())
                .as_ref()
                .and_then(|v| v.pointer(pointer))
                .and_then(scalar_text),
            Capture::Header(name) => answer.headers.text(name).map(str::to_string),
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
pub(super) fn check_read(
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::Method;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::flow::{Body, Shows};
    use crate::session::{AnomalyKind, Op};

    fn seen() -> Seen<'static> {
        Seen {
            op: Op::Read,
            served_by: Some("replica-0.1"),
            at: Duration::from_secs(1),
            write: None,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> Headers {
        Headers::of(pairs)
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
        let check = |status: u16, h: &Headers, body: &str, set: &[SetCookie]| {
            lost_sign(
                &signs,
                StatusCode::from_u16(status).unwrap(),
                h,
                body,
                set,
                &jar,
            )
        };
        let none = Headers::default();
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
        assert!(check(200, &none, "", std::slice::from_ref(&fresh))
            .unwrap()
            .contains("fresh session"));
        // A session's first cookie, set by its first write rather than a start step,
        // is no sign of loss: the jar held none to replace.
        let empty = Jar::default();
        let first = lost_sign(&signs, StatusCode::OK, &none, "", &[fresh], &empty);
        assert_eq!(first, None);
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
            headers: Headers::default(),
            body: "{}".into(),
        };
        assert!(
            !capture(&step, &empty, &mut state),
            "missing values are reported"
        );
    }
}
