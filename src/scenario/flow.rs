//! `[flow]` as written in the scenario file (see [`crate::scenario`] for why values are
//! [`Spanned`]). [`crate::validate::flow`] turns it into a [`crate::flow::Flow`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[flow]`: the session as HTTP steps, for services that do not speak the contract.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// `[[flow.start]]`: run once when a session begins (log in, create a cart).
    #[serde(default)]
    pub start: Vec<Step>,
    /// `[[flow.steps]]`: one round, repeated `load.appends_per_session` times.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Answers that mean the service forgot the session.
    #[serde(default)]
    pub lost_when: Vec<Spanned<LostWhen>>,
    /// The app's session idle timeout (`"10s"`): losses after a longer pause are
    /// expiry by design.
    pub idle_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub method: Option<Spanned<String>>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
    pub json: Option<Spanned<toml::Value>>,
    pub form: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub expect: Option<Spanned<Vec<Spanned<i64>>>>,
    pub follow: Option<bool>,
    #[serde(default)]
    pub capture: BTreeMap<String, Spanned<Capture>>,
    pub write: Option<Spanned<Write>>,
    pub read: Option<Spanned<Read>>,
}

/// Where a captured value comes from: exactly one of the four.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub json: Option<Spanned<String>>,
    pub header: Option<Spanned<String>>,
    pub cookie: Option<Spanned<String>>,
    pub regex: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    pub value: Option<Spanned<String>>,
}

/// Where the durable values appear: exactly one of `list`, `counter`,
/// `counter_after`, `contains`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub list: Option<Spanned<String>>,
    /// With `list`: a JSON pointer into each element, for lists of objects.
    pub field: Option<Spanned<String>>,
    /// With `list`: `"any"` (default) or `"sent"`.
    pub order: Option<Spanned<String>>,
    pub counter: Option<Spanned<String>>,
    pub counter_after: Option<Spanned<String>>,
    pub contains: Option<Spanned<String>>,
    /// In a step that also writes: `"after"` (default) or `"before"` its own write.
    pub shows: Option<Spanned<String>>,
}

/// One sign of a lost session: exactly one key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LostWhen {
    pub status: Option<Spanned<i64>>,
    pub redirect: Option<Spanned<String>>,
    pub contains: Option<Spanned<String>>,
    pub new_cookie: Option<Spanned<String>>,
}
