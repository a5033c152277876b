//! Secrets in a scenario's environment (`DB_PASSWORD`, `API_TOKEN`, …) are shown as
//! `***` wherever the harness prints or writes the scenario: the copy of the scenario
//! in the run folder, errors naming a `--set`, anything that lists the environment.
//! Containers still get the real values; only what people and files see is masked.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// What a secret looks like once masked.
pub const MASK: &str = "***";

/// Key suffixes (case-insensitive) whose values are secrets.
const SUFFIXES: &[&str] = &["PASSWORD", "TOKEN", "SECRET", "KEY"];

/// Whether an environment variable named `key` holds a secret: `*_PASSWORD`,
/// `*_TOKEN`, `*_SECRET`, `*_KEY`, or one of those words alone.
pub fn is_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    SUFFIXES
        .iter()
        .any(|s| upper == *s || upper.ends_with(&format!("_{s}")))
}

/// The environment with secret values replaced by [`MASK`].
pub fn mask_env(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| {
            let v = if is_secret(k) {
                MASK.to_string()
            } else {
                v.clone()
            };
            (k.clone(), v)
        })
        .collect()
}

/// The scenario text with the value of every secret-named key replaced by `"***"`,
/// everything else (comments, layout) as written. A text that does not parse is not
/// shown at all: it could hold a secret where the parser cannot find it.
pub fn mask_scenario(text: &str) -> String {
    let Ok(root) = DeTable::parse(text) else {
        return "# (the scenario is not shown: it does not parse, and may hold secrets)\n"
            .to_string();
    };
    let mut spans = Vec::new();
    secret_spans(root.get_ref(), &mut spans);
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    let mut out = text.to_string();
    for span in spans {
        if out.get(span.clone()).is_some() {
            out.replace_range(span, &format!("\"{MASK}\""));
        }
    }
    out
}

fn secret_spans(table: &DeTable<'_>, spans: &mut Vec<Range<usize>>) {
    for (key, value) in table.iter() {
        match value.get_ref() {
            DeValue::Table(inner) => secret_spans(inner, spans),
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        secret_spans(inner, spans);
                    }
                }
            }
            _ if is_secret(key.get_ref()) => spans.push(value.span()),
            _ => {}
        }
    }
}

/// `key=value` with the value masked when the last part of the key is a secret.
pub fn mask_setting(key: &str, value: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if is_secret(last.trim()) {
        format!("{key}={MASK}")
    } else {
        format!("{key}={value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised() {
        for key in [
            "DB_PASSWORD",
            "api_token",
            "AWS_SECRET",
            "SIGNING_KEY",
            "TOKEN",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in ["MODE", "KEYBOARD", "TOKENS", "PASSWORD_HINT_URL", "MONKEY"] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn env_values_are_masked() {
        let env = BTreeMap::from([
            ("MODE".to_string(), "redis".to_string()),
            ("DB_PASSWORD".to_string(), "hunter2".to_string()),
        ]);
        let masked = mask_env(&env);
        assert_eq!(masked["MODE"], "redis");
        assert_eq!(masked["DB_PASSWORD"], "***");
    }

    #[test]
    fn the_scenario_text_keeps_its_layout_and_loses_its_secrets() {
        let text = "# a comment\nname = \"x\"\n[service]\nenv = { MODE = \"redis\", DB_PASSWORD = \"hunter2\" }\n\n[service.more]\nAPI_TOKEN = 'abc'  # trailing\n[[chaos]]\nSOME_KEY = \"k\"\n";
        let masked = mask_scenario(text);
        assert_eq!(
            masked,
            "# a comment\nname = \"x\"\n[service]\nenv = { MODE = \"redis\", DB_PASSWORD = \"***\" }\n\n[service.more]\nAPI_TOKEN = \"***\"  # trailing\n[[chaos]]\nSOME_KEY = \"***\"\n"
        );
        assert!(!masked.contains("hunter2") && !masked.contains("abc"));
    }

    #[test]
    fn a_text_that_does_not_parse_is_not_shown() {
        let masked = mask_scenario("DB_PASSWORD = \"hunter2");
        assert!(!masked.contains("hunter2"), "{masked}");
    }

    #[test]
    fn settings_mask_secret_values() {
        assert_eq!(
            mask_setting("service.env.DB_PASSWORD", "x"),
            "service.env.DB_PASSWORD=***"
        );
        assert_eq!(mask_setting("load.rate", "3"), "load.rate=3");
    }
}
