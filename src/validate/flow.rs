//! Checks a `[flow]` table and turns it into a [`Flow`]. Problems go through the
//! scenario's validator, so they come out with the rest of the scenario's, each at
//! its file:line:column with the accepted values.

use std::ops::Range;

use toml::Spanned;

use super::Validator;
use crate::flow::template::{valid_pointer, ItemPattern, Template, Var};
use crate::flow::{Body, BodyPattern, Capture, Flow, JsonTemplate, LostWhen, Read, Shows, Step};
use crate::scenario::flow as raw;

const METHODS: &str = "\"GET\", \"POST\", \"PUT\", \"PATCH\", \"DELETE\"";
const READ_KINDS: &str = "`list = \"/items\"`, `counter = \"/count\"`, `counter_after = \"Count: \"` or `contains = \"<li>{{item}}</li>\"`";
const LOST_KINDS: &str = "`status = 401`, `redirect = \"/login\"`, `contains = \"Please log in\"` or `new_cookie = \"sessionid\"`";
const ORDERS: &str = "\"any\", \"sent\"";
const SHOWS: &str = "\"after\" (the answer includes this step's write), \"before\"";
const POINTER: &str = "a JSON pointer such as \"/items\" or \"/cart/0/sku\" (RFC 6901: \"\" or tokens after '/', '~' only as ~0 or ~1)";

/// Whether a step is part of the start or of the repeated round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Start,
    Round,
}

/// Validates `raw`; `None` after recording at least one problem.
pub(crate) fn validate(v: &mut Validator<'_>, raw: &Spanned<raw::Flow>) -> Option<Flow> {
    let before = v.problem_count();
    let table = raw.get_ref();
    let mut captures: Vec<String> = Vec::new();
    let mut value: Option<(ItemPattern, Range<usize>)> = None;
    let mut start = Vec::new();
    for (i, s) in table.start.iter().enumerate() {
        let key = format!("flow.start.{i}");
        start.extend(step(v, s, &key, Part::Start, &mut captures, &mut value));
    }
    let mut steps = Vec::new();
    for (i, s) in table.steps.iter().enumerate() {
        let key = format!("flow.steps.{i}");
        steps.extend(step(v, s, &key, Part::Round, &mut captures, &mut value));
    }
    if table.steps.is_empty() {
        v.problem(
            raw.span(),
            "`[flow]` needs at least one `[[flow.steps]]` entry: the round each session repeats",
        );
    }
    // Judged on the steps as written, so a broken read step is not also blamed here.
    // A read that does not write is best (the sweep then changes nothing); an app
    // whose every request writes is swept with its last reading step, which counts
    // its own write like any other.
    let reads = |writing: bool| {
        table
            .steps
            .iter()
            .rposition(|s| s.read.is_some() && (writing || s.write.is_none()))
    };
    let sweep = reads(false).or_else(|| reads(true));
    if sweep.is_none() && !table.steps.is_empty() {
        v.problem(
            raw.span(),
            "the final sweep needs a `[[flow.steps]]` entry that reads (`read = { … }`): it is repeated for every session at the end",
        );
    }
    let idle_timeout = table
        .idle_timeout
        .as_ref()
        .and_then(|t| v.positive_duration(t, "flow.idle_timeout"));
    let lost_when: Vec<LostWhen> = table.lost_when.iter().filter_map(|l| lost(v, l)).collect();
    if v.problem_count() > before {
        return None;
    }
    let writes_per_round = steps.iter().filter(|s| s.writes).count() as u32;
    Some(Flow {
        start,
        steps,
        lost_when,
        captures,
        value: value.map_or_else(
            || ItemPattern {
                before: String::new(),
                after: String::new(),
            },
            |(p, _)| p,
        ),
        writes_per_round,
        sweep: sweep?,
        idle_timeout,
    })
}

fn template(
    v: &mut Validator<'_>,
    text: &Spanned<String>,
    key: &str,
    captures: &[String],
) -> Option<Template> {
    let slot = |name: &str| captures.iter().position(|c| c == name);
    match Template::parse(text.get_ref(), &slot) {
        Ok(t) => Some(t),
        Err(err) => {
            let made_later = err.0.starts_with("unknown template variable");
            let hint = if made_later {
                " (a capture can only be used by a step after the one that makes it)"
            } else {
                ""
            };
            v.problem(text.span(), format!("`{key}`: {err}{hint}"));
            None
        }
    }
}

fn pointer(v: &mut Validator<'_>, p: &Spanned<String>, key: &str) -> Option<String> {
    if valid_pointer(p.get_ref()) {
        Some(p.get_ref().clone())
    } else {
        v.problem(
            p.span(),
            format!(
                "`{key}` = {:?} is not a JSON pointer; write {POINTER}",
                p.get_ref()
            ),
        );
        None
    }
}

fn header_name(v: &mut Validator<'_>, name: &str, span: Range<usize>, key: &str) -> bool {
    let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    if !ok {
        v.problem(
            span,
            format!("`{key}`: {name:?} is not an HTTP header name (letters, digits and '-')"),
        );
    }
    ok
}

fn step(
    v: &mut Validator<'_>,
    raw: &raw::Step,
    key: &str,
    part: Part,
    captures: &mut Vec<String>,
    value: &mut Option<(ItemPattern, Range<usize>)>,
) -> Option<Step> {
    let before = v.problem_count();
    let method = match &raw.method {
        None => http::Method::GET,
        Some(m) => {
            match m.get_ref().as_str() {
                "GET" => http::Method::GET,
                "POST" => http::Method::POST,
                "PUT" => http::Method::PUT,
                "PATCH" => http::Method::PATCH,
                "DELETE" => http::Method::DELETE,
                other => {
                    v.problem(
                    m.span(),
                    format!("unknown method {other:?} in `{key}.method`; accepted values: {METHODS}"),
                );
                    http::Method::GET
                }
            }
        }
    };
    let path = template(v, &raw.path, &format!("{key}.path"), captures);
    if path.as_ref().is_some_and(|p| !p.prefix().starts_with('/')) {
        v.problem(
            raw.path.span(),
            format!("`{key}.path` must start with '/', for example \"/cart/items\""),
        );
    }
    let mut templates: Vec<(Template, Range<usize>)> = Vec::new();
    templates.extend(path.clone().map(|p| (p, raw.path.span())));
    let mut headers = Vec::new();
    for (name, text) in &raw.headers {
        let k = format!("{key}.headers.{name}");
        if header_name(v, name, text.span(), &k) {
            if let Some(t) = template(v, text, &k, captures) {
                templates.push((t.clone(), text.span()));
                headers.push((name.clone(), t));
            }
        }
    }
    let body = match (&raw.json, &raw.form) {
        (Some(_), Some(form)) => {
            v.problem(
                form.span(),
                format!("`{key}` has both `json` and `form`; a request has one body"),
            );
            Body::None
        }
        (Some(json), None) => match json_template(v, json.get_ref(), json.span(), key, captures) {
            Some(j) => {
                templates.extend(j.templates().into_iter().map(|t| (t.clone(), json.span())));
                Body::Json(j)
            }
            None => Body::None,
        },
        (None, Some(form)) => {
            let mut fields = Vec::new();
            for (name, text) in form.get_ref() {
                if let Some(t) = template(v, text, &format!("{key}.form.{name}"), captures) {
                    templates.push((t.clone(), text.span()));
                    fields.push((name.clone(), t));
                }
            }
            Body::Form(fields)
        }
        (None, None) => Body::None,
    };
    let mut expect = Vec::new();
    for status in raw.expect.iter().flat_map(|e| e.get_ref()) {
        if let Some(s) = v.int_in(status, &format!("{key}.expect"), 100, 599) {
            expect.push(s as u16);
        }
    }

    let writes = raw.write.is_some();
    if let Some(write) = &raw.write {
        if part == Part::Start {
            v.problem(
                write.span(),
                format!("`{key}.write`: a start step cannot write; writes belong in `[[flow.steps]]`, which each session repeats"),
            );
        }
        let text = write.get_ref().value.clone();
        let span = text.as_ref().map_or(write.span(), Spanned::span);
        let parsed = match &text {
            Some(t) => template(v, t, &format!("{key}.write.value"), captures),
            None => Some(Template::parse("{{item}}", &|_| None).expect("a literal item template")),
        };
        if let Some(t) = parsed {
            match ItemPattern::from_template(&t) {
                Err(err) => v.problem(span.clone(), format!("`{key}.write.value` {err}")),
                Ok(p) => match value {
                    Some((first, _)) if *first != p => v.problem(
                        span,
                        format!("`{key}.write.value` differs from an earlier write's; every write of a flow must declare the same value shape, or a read could not tell which write a value came from"),
                    ),
                    Some(_) => {}
                    None => *value = Some((p, span)),
                },
            }
        }
    }
    for (t, span) in &templates {
        if !writes && t.vars().any(|var| var == Var::Item) {
            v.problem(
                span.clone(),
                format!("`{key}` uses `{{{{item}}}}`, which is only known in a step that writes (add `write = {{ value = \"{{{{item}}}}\" }}`)"),
            );
        }
    }

    let read = raw.read.as_ref().and_then(|r| {
        if part == Part::Start {
            v.problem(
                r.span(),
                format!("`{key}.read`: a start step cannot read (nothing is written yet); reads belong in `[[flow.steps]]`"),
            );
        }
        read(v, r, &format!("{key}.read"), captures)
    });
    let shows = raw
        .read
        .as_ref()
        .and_then(|r| shows(v, r.get_ref(), &format!("{key}.read"), writes))
        .unwrap_or_default();

    let mut made = Vec::new();
    for (name, capture) in &raw.capture {
        let k = format!("{key}.capture.{name}");
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || ["item", "uuid", "vu", "session"].contains(&name.as_str()) {
            v.problem(
                capture.span(),
                format!("`{k}`: a capture name is letters, digits and '_' (not starting with a digit) and not one of item, uuid, vu, session"),
            );
            continue;
        }
        let c = capture.get_ref();
        let source = match (&c.json, &c.header, &c.cookie, &c.regex) {
            (Some(p), None, None, None) => pointer(v, p, &format!("{k}.json")).map(Capture::Json),
            (None, Some(h), None, None) => {
                header_name(v, h.get_ref(), h.span(), &format!("{k}.header"))
                    .then(|| Capture::Header(h.get_ref().to_ascii_lowercase()))
            }
            (None, None, Some(c), None) => Some(Capture::Cookie(c.get_ref().clone())),
            (None, None, None, Some(r)) => {
                body_pattern(v, r, &format!("{k}.regex")).map(Capture::Regex)
            }
            _ => {
                v.problem(
                    capture.span(),
                    format!("`{k}` needs exactly one of `json = \"/pointer\"`, `header = \"name\"`, `cookie = \"name\"` or `regex = '…(value)…'`"),
                );
                None
            }
        };
        made.extend(source.map(|s| (name.clone(), s)));
    }
    // Made after the answer, so only later steps may use them.
    let captures_made: Vec<(usize, Capture)> = made
        .into_iter()
        .map(|(name, source)| {
            let slot = captures.iter().position(|c| *c == name).unwrap_or_else(|| {
                captures.push(name);
                captures.len() - 1
            });
            (slot, source)
        })
        .collect();

    if v.problem_count() > before {
        return None;
    }
    Some(Step {
        method,
        path: path?,
        headers,
        body,
        expect,
        follow: raw.follow.unwrap_or(false),
        captures: captures_made,
        writes,
        read,
        shows,
    })
}

/// The `shows` of a read: meaningful only where the step also writes.
fn shows(v: &mut Validator<'_>, raw: &raw::Read, key: &str, writes: bool) -> Option<Shows> {
    let text = raw.shows.as_ref()?;
    if !writes {
        v.problem(
            text.span(),
            format!("`{key}.shows` only goes with a step that also writes (`write = …`): it says whether the answer shows the state before or after that write"),
        );
        return None;
    }
    match text.get_ref().as_str() {
        "after" => Some(Shows::After),
        "before" => Some(Shows::Before),
        other => {
            v.problem(
                text.span(),
                format!("unknown value {other:?} in `{key}.shows`; accepted values: {SHOWS}"),
            );
            None
        }
    }
}

/// A `regex` capture: it must compile and have a group that holds the value.
fn body_pattern(v: &mut Validator<'_>, text: &Spanned<String>, key: &str) -> Option<BodyPattern> {
    match regex::Regex::new(text.get_ref()) {
        Ok(re) if re.captures_len() > 1 => Some(BodyPattern(re)),
        Ok(_) => {
            v.problem(
                text.span(),
                format!("`{key}` has no group: put the value to capture in parentheses, for example 'name=\"csrfmiddlewaretoken\" value=\"([^\"]+)\"'"),
            );
            None
        }
        Err(err) => {
            let message = err.to_string();
            let last = message.lines().last().unwrap_or_default();
            let reason = last.strip_prefix("error: ").unwrap_or(last).to_string();
            v.problem(
                text.span(),
                format!("`{key}` is not a regular expression ({reason}); the syntax is Rust's `regex` crate's"),
            );
            None
        }
    }
}

fn json_template(
    v: &mut Validator<'_>,
    value: &toml::Value,
    span: Range<usize>,
    key: &str,
    captures: &[String],
) -> Option<JsonTemplate> {
    Some(match value {
        toml::Value::String(s) => {
            let text = Spanned::new(span, s.clone());
            JsonTemplate::String(template(v, &text, &format!("{key}.json"), captures)?)
        }
        toml::Value::Integer(n) => JsonTemplate::Integer(*n),
        toml::Value::Float(f) => JsonTemplate::Float(*f),
        toml::Value::Boolean(b) => JsonTemplate::Bool(*b),
        toml::Value::Datetime(_) => {
            v.problem(
                span,
                format!("`{key}.json` holds a TOML date, which JSON has no type for; write it as a string"),
            );
            return None;
        }
        toml::Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .map(|i| json_template(v, i, span.clone(), key, captures))
                .collect::<Option<_>>()?,
        ),
        toml::Value::Table(fields) => JsonTemplate::Object(
            fields
                .iter()
                .map(|(k, i)| Some((k.clone(), json_template(v, i, span.clone(), key, captures)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn read(
    v: &mut Validator<'_>,
    raw: &Spanned<raw::Read>,
    key: &str,
    captures: &[String],
) -> Option<Read> {
    let r = raw.get_ref();
    let kinds = [
        r.list.is_some(),
        r.counter.is_some(),
        r.counter_after.is_some(),
        r.contains.is_some(),
    ];
    let n = kinds.iter().filter(|k| **k).count();
    if n != 1 {
        let what = if n == 0 {
            "no kind"
        } else {
            "more than one kind"
        };
        v.problem(
            raw.span(),
            format!("`{key}` has {what}; a read needs exactly one of {READ_KINDS}"),
        );
        return None;
    }
    if r.list.is_none() {
        for (name, extra) in [("field", &r.field), ("order", &r.order)] {
            if let Some(extra) = extra {
                v.problem(
                    extra.span(),
                    format!("`{key}.{name}` only goes with `list`"),
                );
            }
        }
    }
    if let Some(list) = &r.list {
        let pointer_ = pointer(v, list, &format!("{key}.list"));
        let field = match &r.field {
            Some(f) => Some(pointer(v, f, &format!("{key}.field"))?),
            None => None,
        };
        let ordered = match r.order.as_ref().map(|o| (o.get_ref().as_str(), o.span())) {
            None | Some(("any", _)) => false,
            Some(("sent", _)) => true,
            Some((other, span)) => {
                v.problem(
                    span,
                    format!("unknown order {other:?} in `{key}.order`; accepted values: {ORDERS}"),
                );
                return None;
            }
        };
        return Some(Read::List {
            pointer: pointer_?,
            field,
            ordered,
        });
    }
    if let Some(c) = &r.counter {
        return pointer(v, c, &format!("{key}.counter")).map(Read::Counter);
    }
    if let Some(after) = &r.counter_after {
        if after.get_ref().is_empty() {
            v.problem(
                after.span(),
                format!("`{key}.counter_after` is empty; give the text right before the number, e.g. \"Count: \""),
            );
            return None;
        }
        return Some(Read::CounterAfter(after.get_ref().clone()));
    }
    let contains = r.contains.as_ref()?;
    let t = template(v, contains, &format!("{key}.contains"), captures)?;
    match ItemPattern::from_template(&t) {
        Ok(p) => Some(Read::Contains(p)),
        Err(err) => {
            v.problem(contains.span(), format!("`{key}.contains` {err}"));
            None
        }
    }
}

fn lost(v: &mut Validator<'_>, raw: &Spanned<raw::LostWhen>) -> Option<LostWhen> {
    let l = raw.get_ref();
    let text = |s: &Spanned<String>| s.get_ref().clone();
    let found = match (&l.status, &l.redirect, &l.contains, &l.new_cookie) {
        (Some(s), None, None, None) => {
            LostWhen::Status(v.int_in(s, "flow.lost_when.status", 100, 599)? as u16)
        }
        (None, Some(r), None, None) if !r.get_ref().is_empty() => LostWhen::Redirect(text(r)),
        (None, None, Some(c), None) if !c.get_ref().is_empty() => LostWhen::Contains(text(c)),
        (None, None, None, Some(c)) if !c.get_ref().is_empty() => LostWhen::NewCookie(text(c)),
        _ => {
            v.problem(
                raw.span(),
                format!(
                    "each `flow.lost_when` entry needs exactly one non-empty sign: {LOST_KINDS}"
                ),
            );
            return None;
        }
    };
    Some(found)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::scenario::overrides::Overrides;
    use crate::scenario::{Problem, Source};
    use crate::validate::build;

    const HEAD: &str = r#"name = "f"
seed = 1
duration = "5s"
[service]
replicas = 2
[load]
users = 2
appends_per_session = 3
"#;

    fn build_flow(flow: &str) -> Result<crate::plan::Plan, Vec<Problem>> {
        let source = Source {
            path: PathBuf::from("f.toml"),
            text: format!("{HEAD}{flow}"),
        };
        build(&source, &Overrides::default())
    }

    /// Every problem of a broken flow, as `line:column: message`.
    fn problems(flow: &str) -> Vec<String> {
        build_flow(flow)
            .expect_err("the flow is broken")
            .iter()
            .map(|p| format!("{}:{}: {}", p.line, p.column, p.message))
            .collect()
    }

    const CART: &str = r#"
[flow]
lost_when = [{ status = 404 }, { redirect = "/login" }]
[[flow.start]]
method = "POST"
path = "/cart"
capture = { cart = { json = "/id" }, csrf = { header = "X-CSRF-Token" } }
[[flow.steps]]
method = "POST"
path = "/cart/{{cart}}/items"
headers = { X-CSRF-Token = "{{csrf}}" }
json = { sku = "sku-{{item}}", qty = 1, tags = ["{{vu}}"] }
write = { value = "sku-{{item}}" }
[[flow.steps]]
path = "/cart/{{cart}}"
read = { list = "/items", field = "/sku", order = "sent" }
"#;

    #[test]
    fn a_cart_flow_becomes_a_plan() {
        let plan = build_flow(CART).unwrap();
        let flow = plan.load.flow.as_deref().unwrap();
        assert_eq!(flow.captures, ["cart", "csrf"]);
        assert_eq!(flow.writes_per_round, 1);
        assert_eq!(flow.sweep, 1);
        assert_eq!(flow.value.before, "sku-");
        assert_eq!(flow.steps[0].method, http::Method::POST);
        assert_eq!(flow.steps[1].method, http::Method::GET);
        assert_eq!(
            flow.steps[1].read,
            Some(super::Read::List {
                pointer: "/items".into(),
                field: Some("/sku".into()),
                ordered: true
            })
        );
        assert_eq!(flow.lost_when.len(), 2);
        // The start, then 2 steps for each of 3 rounds.
        assert_eq!(plan.load.ops_per_session(), 7);
    }

    #[test]
    fn every_problem_of_a_flow_is_located_at_once() {
        let found = problems(
            r#"
[flow]
lost_when = [{ }]
[[flow.start]]
method = "FETCH"
path = "/login/{{token}}"
write = {}
[[flow.steps]]
path = "items"
capture = { token = { json = "items" } }
read = { }
[[flow.steps]]
path = "/x/{{item}}"
read = { counter = "/n", order = "sent" }
"#,
        );
        let expect = [
            "13:10: unknown method \"FETCH\" in `flow.start.0.method`; accepted values: \"GET\", \"POST\"",
            "14:8: `flow.start.0.path`: unknown template variable `{{token}}`",
            "15:9: `flow.start.0.write`: a start step cannot write",
            "17:8: `flow.steps.0.path` must start with '/'",
            "19:8: `flow.steps.0.read` has no kind; a read needs exactly one of",
            "18:30: `flow.steps.0.capture.token.json` = \"items\" is not a JSON pointer",
            "21:8: `flow.steps.1` uses `{{item}}`, which is only known in a step that writes",
            "22:34: `flow.steps.1.read.order` only goes with `list`",
            "11:14: each `flow.lost_when` entry needs exactly one non-empty sign",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn a_capture_used_before_the_step_that_makes_it_is_an_error() {
        let found = problems(
            r#"
[flow]
[[flow.steps]]
path = "/a/{{later}}"
read = { counter = "/n" }
[[flow.steps]]
path = "/b"
capture = { later = { cookie = "sessionid" } }
"#,
        );
        assert!(
            found[0].contains("unknown template variable `{{later}}`")
                && found[0].contains("only be used by a step after the one that makes it"),
            "{found:?}"
        );
    }

    /// tower-sessions' counter: every `GET /` increments and shows the count before.
    const COUNTER_BEFORE: &str = r#"
[flow]
idle_timeout = "10s"
[[flow.steps]]
path = "/"
write = {}
read = { counter_after = "Current count: ", shows = "before" }
"#;

    #[test]
    fn an_app_whose_every_request_writes_is_swept_with_its_last_reading_step() {
        let plan = build_flow(COUNTER_BEFORE).unwrap();
        let flow = plan.load.flow.as_deref().unwrap();
        assert_eq!(flow.sweep, 0);
        assert!(flow.steps[0].writes);
        assert_eq!(flow.steps[0].shows, super::Shows::Before);
        assert_eq!(flow.idle_timeout, Some(std::time::Duration::from_secs(10)));
        // A read that does not write is still preferred for the sweep.
        let both = format!("{COUNTER_BEFORE}[[flow.steps]]\npath = \"/count\"\nread = {{ counter = \"/n\" }}\n[[flow.steps]]\npath = \"/\"\nwrite = {{}}\nread = {{ counter = \"/n\" }}\n");
        assert_eq!(build_flow(&both).unwrap().load.flow.unwrap().sweep, 1);
    }

    #[test]
    fn the_sweep_needs_a_step_that_reads() {
        let found = problems(
            r#"
[flow]
[[flow.steps]]
method = "POST"
path = "/increment"
form = { op = "{{item}}" }
write = {}
"#,
        );
        assert!(found[0].contains("the final sweep needs"), "{found:?}");
        let found = problems("[flow]\n");
        assert!(
            found[0].contains("at least one `[[flow.steps]]`"),
            "{found:?}"
        );
    }

    #[test]
    fn shows_regex_captures_and_idle_timeout_are_checked_with_their_place() {
        let found = problems(
            r#"
[flow]
idle_timeout = "0s"
[[flow.start]]
path = "/login"
capture = { a = { regex = 'csrf="[^"]+"' }, b = { regex = '(unclosed' }, c = { regex = 'x', cookie = "y" } }
[[flow.steps]]
path = "/"
read = { counter = "/n", shows = "before" }
[[flow.steps]]
path = "/"
write = {}
read = { counter = "/n", shows = "during" }
"#,
        );
        let expect = [
            "11:16: `flow.idle_timeout` must be longer than zero",
            "14:27: `flow.start.0.capture.a.regex` has no group",
            "14:59: `flow.start.0.capture.b.regex` is not a regular expression (unclosed group)",
            "14:78: `flow.start.0.capture.c` needs exactly one of",
            "17:34: `flow.steps.0.read.shows` only goes with a step that also writes",
            "21:34: unknown value \"during\" in `flow.steps.1.read.shows`; accepted values: \"after\"",
        ];
        for e in expect {
            assert!(
                found.iter().any(|f| f.starts_with(e)),
                "missing {e:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn writes_must_share_one_value_shape_that_holds_the_item() {
        let found = problems(
            r#"
[flow]
[[flow.steps]]
method = "POST"
path = "/a"
json = { v = "{{item}}" }
write = { value = "a-{{item}}" }
[[flow.steps]]
method = "POST"
path = "/b"
json = { v = "{{item}}" }
write = { value = "b-{{item}}" }
[[flow.steps]]
path = "/c"
read = { contains = "{{uuid}}" }
"#,
        );
        assert!(
            found
                .iter()
                .any(|f| f.contains("differs from an earlier write's")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f
                    .contains("`flow.steps.2.read.contains` must contain `{{item}}` exactly once")),
            "{found:?}"
        );
    }
}
