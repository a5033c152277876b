//! Custom session flows: a session described as HTTP steps, for services that do not
//! speak the session contract (a Spring Session, express-session, Django,
//! tower-sessions or actix-session app behind Redis).
//!
//! A flow has `start` steps (run once when a session begins: log in, open a cart),
//! `steps` (one round, repeated `load.appends_per_session` times) and `lost_when`
//! signs (a 401, a redirect to the login page, a fresh session cookie). A step that
//! **writes** makes one value durable when answered: the harness generates it per
//! write as `{{item}}` = `"<seq>.<k>"`, so it stays attributable exactly like the
//! contract's items. A step that **reads** says where the durable values appear (a
//! JSON list, a counter, or text in the page), and [`crate::session::SessionModel`]
//! checks it with the same anomaly kinds as the contract.
//!
//! - `crate::scenario::flow`: the `[flow]` table as written; `crate::validate::flow`
//!   turns it into a [`Flow`], reporting problems with the rest of the scenario's.
//! - [`template`]: `{{…}}` templates, item patterns and JSON pointers.
//! - [`cookies`]: the per-session cookie jar.
//!
//! The runner is `crate::load::flow`.

pub mod cookies;
pub mod template;

use template::{ItemPattern, Template};

/// A validated flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub start: Vec<Step>,
    /// One round; never empty.
    pub steps: Vec<Step>,
    pub lost_when: Vec<LostWhen>,
    /// Names of the captured values; a template refers to one by its index here.
    pub captures: Vec<String>,
    /// How written values appear in a `list` read (every write declares the same).
    pub value: ItemPattern,
    /// Writes per round.
    pub writes_per_round: u32,
    /// The step of `steps` the final sweep repeats: the last one that reads and does
    /// not write or, when every request of the app writes (a counter page that counts
    /// its own views), the last one that reads; its write then counts like any other.
    pub sweep: usize,
    /// The app's idle timeout: a session found lost after a pause longer than this
    /// expired by design, and is counted apart from the anomalies.
    pub idle_timeout: Option<std::time::Duration>,
}

/// One HTTP exchange of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub method: http::Method,
    pub path: Template,
    pub headers: Vec<(String, Template)>,
    pub body: Body,
    /// Statuses the (last) answer may have; empty: any 2xx.
    pub expect: Vec<u16>,
    /// Follow a 3xx answer (GET its `Location`, up to [`MAX_REDIRECTS`] times).
    pub follow: bool,
    /// Values taken from the answer, by slot.
    pub captures: Vec<(usize, Capture)>,
    pub writes: bool,
    pub read: Option<Read>,
    /// For a step that writes and reads: whether the answer shows the state before
    /// or after this step's own write.
    pub shows: Shows,
}

/// Where a step that writes and reads stands in its own answer. Frameworks differ:
/// Django's and tower-sessions' counter examples render the value read before they
/// increment it; express-session's view counter renders it after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shows {
    /// The answer includes this step's write (the default).
    #[default]
    After,
    /// The answer shows the state as it was when the request came in.
    Before,
}

/// Redirects a step with `follow = true` follows before it gives up.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(JsonTemplate),
    /// `application/x-www-form-urlencoded` fields.
    Form(Vec<(String, Template)>),
}

/// A JSON body whose strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Bool(bool),
    Integer(i64),
    Float(f64),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    pub fn render(&self, values: &mut template::Values<'_>) -> serde_json::Value {
        use serde_json::Value;
        match self {
            JsonTemplate::Bool(b) => Value::Bool(*b),
            JsonTemplate::Integer(n) => Value::from(*n),
            JsonTemplate::Float(f) => Value::from(*f),
            JsonTemplate::String(t) => Value::String(t.render(values)),
            JsonTemplate::Array(items) => {
                Value::Array(items.iter().map(|i| i.render(values)).collect())
            }
            JsonTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(values)))
                    .collect(),
            ),
        }
    }

    pub(crate) fn templates(&self) -> Vec<&Template> {
        match self {
            JsonTemplate::String(t) => vec![t],
            JsonTemplate::Array(items) => items.iter().flat_map(Self::templates).collect(),
            JsonTemplate::Object(fields) => {
                fields.iter().flat_map(|(_, v)| v.templates()).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Where a captured value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capture {
    /// A JSON pointer into the answer's body (a string, or a number as its text).
    Json(String),
    Header(String),
    /// A cookie in the session's jar after the answer.
    Cookie(String),
    /// The first group of the first match in the body: a value that lives only in
    /// HTML, such as a CSRF token in a hidden form field.
    Regex(BodyPattern),
}

/// A compiled regular expression with at least one group, compared by its text.
#[derive(Debug, Clone)]
pub struct BodyPattern(pub regex::Regex);

impl BodyPattern {
    /// The first group of the first match in `body`.
    pub fn find<'b>(&self, body: &'b str) -> Option<&'b str> {
        Some(self.0.captures(body)?.get(1)?.as_str())
    }
}

impl PartialEq for BodyPattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for BodyPattern {}

/// Where a read step finds the durable values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A JSON pointer to a list of written values (`field`: a pointer into each
    /// element); with `ordered`, they must appear in the order they were written.
    List {
        pointer: String,
        field: Option<String>,
        ordered: bool,
    },
    /// A counter (JSON pointer) that must equal the number of acknowledged writes.
    Counter(String),
    /// A counter in text: the integer right after this text (an HTML page).
    CounterAfter(String),
    /// Each written value, in this pattern, must appear in the body exactly once.
    Contains(ItemPattern),
}

/// A sign that the service forgot the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostWhen {
    Status(u16),
    /// A redirect whose `Location` path starts with this (`/accounts/login/`).
    Redirect(String),
    /// The body contains this text.
    Contains(String),
    /// The answer sets this cookie to a value other than the session's: the service
    /// started a fresh session in place of ours. Only for apps whose session cookie
    /// keeps its value: signed or encrypted cookies and rotated ids change without
    /// any loss, and such apps are judged by what the session holds instead.
    NewCookie(String),
}

impl Flow {
    /// Operations per session: the start (none without start steps: the first
    /// step then begins the session), then every step of every round.
    pub fn ops_per_session(&self, rounds: u32) -> u64 {
        u64::from(!self.start.is_empty()) + u64::from(rounds) * self.steps.len() as u64
    }
}
