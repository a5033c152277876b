//! `--set key=value` (and the `--rate`/`--replicas` shortcuts): any scenario key,
//! changed from the command line before validation.
//!
//! A setting edits the parsed TOML document, not a typed field, so every key of the
//! scenario works without code of its own, and the edited document goes through the
//! same deserialisation and [`crate::validate`] checks as the file. A bad override is
//! therefore reported like a bad line of the file, but named by the setting instead
//! of a line: "--set load.rate=0: `load.rate` is 0; …".
//!
//! How the origin survives: values parsed from the file carry byte spans into its
//! text. A value put in by a setting gets a span *past the end* of the text, one
//! position per setting, so [`locate`] can tell which setting a problem is about.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Problem, Scenario, Source};

/// One `key=value` override, as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Dotted path: table keys, and array indexes (`chaos.0.every`).
    pub path: Vec<String>,
    /// The value as typed: read as a TOML value (`300`, `true`, `["1s", "2s"]`),
    /// and as a plain string when it is not one (`2s`, `memory`).
    pub value: String,
    /// How the user wrote it, to name it in errors: `--set load.rate=0`, `--rate 0`.
    pub origin: String,
}

impl Setting {
    /// How to name this setting once the scenario's own secret names are known: a
    /// `--set` of one of them loses its value, as the rules' own secrets did when typed.
    pub fn origin_masked(&self, secrets: &crate::secrets::Secrets) -> String {
        match (self.origin.strip_prefix("--set "), self.path.last()) {
            (Some(_), Some(last)) if secrets.is_secret(last) => {
                format!("--set {}={}", self.path.join("."), crate::secrets::MASK)
            }
            _ => self.origin.clone(),
        }
    }

    /// A setting from a shortcut flag such as `--rate 300` (`key` is `load.rate`).
    pub fn shortcut(flag: &str, key: &str, value: impl fmt::Display) -> Setting {
        let value = value.to_string();
        Setting {
            path: key.split('.').map(str::to_string).collect(),
            origin: format!("--{flag} {value}"),
            value,
        }
    }
}

impl FromStr for Setting {
    type Err = String;

    fn from_str(text: &str) -> Result<Setting, String> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(format!(
                "{text:?} has no '='; write key=value, e.g. load.rate=300 or service.env.MODE=memory"
            ));
        };
        let key = key.trim();
        let path = split_key(key).ok_or_else(|| {
            format!(
                "{key:?} is not a key; write a dotted path such as load.rate, service.env.MODE or \
                 chaos.0.every, and quote a key that holds a dot: gates.tolerances.\"p99_ms.append\""
            )
        })?;
        Ok(Setting {
            path,
            value: value.trim().to_string(),
            origin: format!("--set {}", crate::secrets::mask_setting(key, value.trim())),
        })
    }
}

/// Splits a dotted key into its parts, as TOML does: a part in double quotes may
/// hold dots (`gates.tolerances."p99_ms.append"`). None for an empty part or an
/// unclosed quote.
fn split_key(key: &str) -> Option<Vec<String>> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut()?.push(c),
        }
    }
    let parts: Vec<String> = parts.iter().map(|p| p.trim().to_string()).collect();
    (!quoted && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// Parses the scenario in `source` with `settings` applied, in order.
pub fn parse<'a>(source: &'a Source, settings: &'a [Setting]) -> Result<Scenario, Problem> {
    let root = document(source, settings)?;
    Scenario::deserialize(toml::de::Deserializer::from(root))
        .map_err(|err| toml_problem(source, settings, &err))
}

/// The scenario as a TOML document with `settings` applied, every key and value
/// carrying its span: for checks about which keys were written at all.
pub fn document<'a>(
    source: &'a Source,
    settings: &'a [Setting],
) -> Result<Spanned<DeTable<'a>>, Problem> {
    let mut root =
        DeTable::parse(&source.text).map_err(|err| toml_problem(source, settings, &err))?;
    for (index, setting) in settings.iter().enumerate() {
        let span = virtual_span(source, index);
        let path: Vec<&str> = setting.path.iter().map(String::as_str).collect();
        let value = parse_value(&setting.value, &span);
        set_in_table(root.get_mut(), &path, 0, value, &span)
            .map_err(|message| problem_of_setting(setting, message))?;
    }
    Ok(root)
}

/// A problem at `span`: in the file, or about the setting whose value sits there.
pub fn locate(
    source: &Source,
    settings: &[Setting],
    span: Range<usize>,
    message: impl Into<String>,
) -> Problem {
    let message = message.into();
    if span.start > source.text.len() {
        let index = span.start - source.text.len() - 1;
        if let Some(setting) = settings.get(index) {
            return problem_of_setting(setting, message);
        }
    }
    source.problem(span, message)
}

fn toml_problem(source: &Source, settings: &[Setting], err: &toml::de::Error) -> Problem {
    let span = err.span().unwrap_or(0..0);
    // serde names Rust types; say what to write instead.
    let message = err
        .message()
        .trim_end()
        .replace(
            "as i128, expected i64",
            "is out of range: integers are at most 9223372036854775807",
        )
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number");
    // A type error quotes the value: not when it is a secret's.
    let message = if key_before(&source.text, span.start).is_some_and(crate::secrets::is_secret) {
        "the value of this secret is not a string (value not shown)".to_string()
    } else {
        message
    };
    locate(source, settings, span, message)
}

/// The key written just before byte `at` on its line (`KEY = value` or, in an inline
/// table, `{ A = 1, KEY = value }`), if any.
fn key_before(text: &str, at: usize) -> Option<&str> {
    let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
    let before = text.get(line_start..at)?.trim_end().strip_suffix('=')?;
    let key = before
        .rsplit(['{', ',', '.'])
        .next()?
        .trim()
        .trim_matches(['"', '\'']);
    (!key.is_empty()).then_some(key)
}

/// A problem named by the setting instead of a place in the file (line 0).
fn problem_of_setting(setting: &Setting, message: String) -> Problem {
    Problem {
        path: setting.origin.clone().into(),
        line: 0,
        column: 0,
        message,
    }
}

/// The span marking values that setting `index` put in: one byte past the text per
/// setting.
fn virtual_span(source: &Source, index: usize) -> Range<usize> {
    let at = source.text.len() + 1 + index;
    at..at + 1
}

/// Sets `path[at..]` inside `table`, creating missing tables on the way.
fn set_in_table<'a>(
    table: &mut DeTable<'a>,
    path: &[&'a str],
    at: usize,
    value: Spanned<DeValue<'a>>,
    span: &Range<usize>,
) -> Result<(), String> {
    let segment = path[at];
    if at + 1 == path.len() {
        table.insert(Spanned::new(span.clone(), Cow::Borrowed(segment)), value);
        return Ok(());
    }
    if !table.contains_key(segment) {
        table.insert(
            Spanned::new(span.clone(), Cow::Borrowed(segment)),
            Spanned::new(span.clone(), DeValue::Table(DeTable::new())),
        );
    }
    let child = table
        .get_mut(segment)
        .expect("the key was just checked or inserted")
        .get_mut();
    set_in_value(child, path, at + 1, value, span)
}

/// Sets `path[at..]` inside a value that must be a table or an array.
fn set_in_value<'a>(
    here: &mut DeValue<'a>,
    path: &[&'a str],
    at: usize,
    value: Spanned<DeValue<'a>>,
    span: &Range<usize>,
) -> Result<(), String> {
    match here {
        DeValue::Table(table) => set_in_table(table, path, at, value, span),
        DeValue::Array(array) => {
            let parent = path[..at].join(".");
            let len = array.len();
            let index = match path[at].parse::<usize>() {
                Ok(i) if i <= len => i,
                Ok(i) => {
                    return Err(format!(
                        "`{parent}` has {len} entr{}, so there is no `{parent}.{i}`; use an index from 0 to {len} ({len} adds an entry)",
                        if len == 1 { "y" } else { "ies" }
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "`{parent}` is a list; the key after it must be an index from 0, e.g. `{parent}.0`, not {:?}",
                        path[at]
                    ))
                }
            };
            if at + 1 == path.len() {
                if index == len {
                    array.push(value);
                } else {
                    let items: &mut [Spanned<DeValue<'a>>] = array;
                    items[index] = value;
                }
                return Ok(());
            }
            if index == len {
                array.push(Spanned::new(span.clone(), DeValue::Table(DeTable::new())));
            }
            let items: &mut [Spanned<DeValue<'a>>] = array;
            set_in_value(items[index].get_mut(), path, at + 1, value, span)
        }
        other => Err(format!(
            "`{}` is a {}, not a table, so it has no key {:?}",
            path[..at].join("."),
            other.type_str(),
            path[at]
        )),
    }
}

/// Reads `text` as a TOML value, or as a string when it is not one; every part of the
/// value carries `span`, so a problem anywhere in it names the setting.
fn parse_value<'a>(text: &'a str, span: &Range<usize>) -> Spanned<DeValue<'a>> {
    let value = match DeValue::parse(text) {
        Ok(value) => value.into_inner(),
        Err(_) => DeValue::String(Cow::Borrowed(text)),
    };
    respan(value, span)
}

fn respan<'a>(value: DeValue<'a>, span: &Range<usize>) -> Spanned<DeValue<'a>> {
    let value = match value {
        DeValue::Array(array) => DeValue::Array(
            array
                .into_iter()
                .map(|v| respan(v.into_inner(), span))
                .collect(),
        ),
        DeValue::Table(table) => {
            let mut out = DeTable::new();
            for (key, v) in table {
                out.insert(
                    Spanned::new(span.clone(), key.into_inner()),
                    respan(v.into_inner(), span),
                );
            }
            DeValue::Table(out)
        }
        other => other,
    };
    Spanned::new(span.clone(), value)
}

/// Values given on the command line; they win over the scenario file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    /// `--set key=value` and its shortcuts, applied to the scenario before validation.
    pub set: Vec<Setting>,
    /// `--attach URL` with `--selector` or `--compose-project`.
    pub attach: Requested,
}

/// What the command line asked for; each value given wins over the scenario's.
#[derive(Debug, Clone, Default)]
pub struct Requested {
    /// `--attach URL`.
    pub url: Option<String>,
    /// `--selector KEY=VALUE`, repeatable.
    pub selector: Vec<String>,
    /// `--compose-project NAME`.
    pub compose_project: Option<String>,
    /// `--service NAME`: the Compose service of the replicas.
    pub service: Option<String>,
}

impl Requested {
    /// Whether the command line asks for attach mode at all.
    pub fn any(&self) -> bool {
        self.url.is_some()
            || !self.selector.is_empty()
            || self.compose_project.is_some()
            || self.service.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::build;

    const BASE: &str = "name = \"t\"\nduration = \"10s\"\n[service]\nreplicas = 3\n[load]\nrate = 10\nappends_per_session = 1\n[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n";

    fn source() -> Source {
        Source {
            path: "t.toml".into(),
            text: BASE.to_string(),
        }
    }

    fn with(settings: &[&str]) -> Result<crate::plan::Plan, Vec<String>> {
        let overrides = Overrides {
            set: settings.iter().map(|s| s.parse().unwrap()).collect(),
            ..Overrides::default()
        };
        build(&source(), &overrides).map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn settings_parse_key_and_value() {
        let s: Setting = "service.env.MODE = memory".parse().unwrap();
        assert_eq!(s.path, ["service", "env", "MODE"]);
        assert_eq!(s.value, "memory");
        assert_eq!(s.origin, "--set service.env.MODE=memory");
        let s: Setting = "service.env.DB_PASSWORD=hunter2".parse().unwrap();
        assert_eq!(s.origin, "--set service.env.DB_PASSWORD=***");
        assert!("load.rate"
            .parse::<Setting>()
            .unwrap_err()
            .contains("no '='"));
        assert!("load..rate=1"
            .parse::<Setting>()
            .unwrap_err()
            .contains("not a key"));
        assert!("=1".parse::<Setting>().is_err());
        let s: Setting = r#"gates.tolerances."p99_ms.append"=5%"#.parse().unwrap();
        assert_eq!(s.path, ["gates", "tolerances", "p99_ms.append"]);
        assert!(r#"gates."p99=1"#.parse::<Setting>().is_err());
    }

    #[test]
    fn a_bad_gate_override_is_named_by_its_setting() {
        let problems = with(&[r#"gates.checks=["p99_ms.apend < 5"]"#]).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(r#"--set gates.checks=["p99_ms.apend < 5"]: "#)
                && problems[0].contains("unknown operation \"apend\""),
            "{problems:?}"
        );
        let problems = with(&[r#"gates.tolerances."p99_ms.read"=lots"#]).unwrap_err();
        assert!(
            problems[0].starts_with(r#"--set gates.tolerances."p99_ms.read"=lots: "#),
            "{problems:?}"
        );
    }

    #[test]
    fn any_key_can_be_set_and_values_are_toml_or_strings() {
        let plan = with(&[
            "load.rate=300",
            "service.replicas=5",
            "service.env.MODE=memory",
            "chaos.0.every=2s",
            "chaos.1.fault=pause",
            "chaos.1.at=[\"1s\", \"2s\"]",
            "balancer.sticky=true",
        ])
        .unwrap();
        assert_eq!(plan.load.model.describe(), "open, 300 ops/s");
        assert_eq!(plan.service.replicas, 5);
        assert_eq!(plan.service.env["MODE"].to_string(), "memory");
        assert_eq!(plan.chaos.len(), 2);
        assert_eq!(
            plan.chaos[0].schedule,
            crate::plan::Schedule::Every(std::time::Duration::from_secs(2))
        );
        assert!(plan.balancer.sticky);
    }

    #[test]
    fn a_bad_override_is_named_by_the_setting() {
        let err = with(&["load.rate=0"]).unwrap_err();
        assert_eq!(err.len(), 1, "{err:?}");
        assert!(
            err[0].starts_with("--set load.rate=0: `load.rate`"),
            "{err:?}"
        );
        let err = with(&["service.replicas=abc"]).unwrap_err();
        assert!(
            err[0].starts_with("--set service.replicas=abc: "),
            "{err:?}"
        );
        assert!(err[0].contains("expected an integer"), "{err:?}");
        let err = with(&["load.bogus=1"]).unwrap_err();
        assert!(err[0].contains("unknown field `bogus`"), "{err:?}");
        let err = with(&["chaos.3.every=1s"]).unwrap_err();
        assert!(err[0].contains("`chaos` has 1 entry"), "{err:?}");
        let err = with(&["chaos.x.every=1s"]).unwrap_err();
        assert!(err[0].contains("must be an index"), "{err:?}");
        let err = with(&["name.x=1"]).unwrap_err();
        assert!(
            err[0].contains("`name` is a string, not a table"),
            "{err:?}"
        );
    }

    #[test]
    fn problems_in_the_file_keep_their_place_next_to_overrides() {
        let overrides = Overrides {
            set: vec!["service.replicas=0".parse().unwrap()],
            ..Overrides::default()
        };
        let mut broken = source();
        broken.text = broken
            .text
            .replace("every = \"5s\"", "every = \"5 parsecs\"");
        let problems = build(&broken, &overrides).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{text:?}");
        assert!(
            text.iter()
                .any(|p| p.starts_with("--set service.replicas=0: ")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|p| p.starts_with("t.toml:10:9: ")),
            "{text:?}"
        );
    }

    #[test]
    fn shortcuts_are_named_as_typed() {
        let s = Setting::shortcut("rate", "load.rate", 0.0);
        let overrides = Overrides {
            set: vec![s],
            ..Overrides::default()
        };
        let err = build(&source(), &overrides).unwrap_err();
        assert!(
            err[0].to_string().starts_with("--rate 0: `load.rate` is 0"),
            "{}",
            err[0]
        );
    }
}
