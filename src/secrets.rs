//! Secrets in a scenario's environment (`DB_PASSWORD`, `API_TOKEN`, `SECRET_KEY_BASE`,
//! …) are shown as `***` wherever the harness prints or writes the scenario: the copy
//! of the scenario in the run folder (and so summary.json and report.html), errors
//! naming a `--set`. Containers still get the real values; only what people and files
//! see is masked. Names are recognised by the words in them, as broadly as a name can
//! be without masking ordinary settings, and a scenario lists any others in `secrets`.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// What a secret looks like once masked.
pub const MASK: &str = "***";

/// Words that make a name a secret's wherever they stand in it, case-blind:
/// `SECRET_KEY_BASE`, `DB_PASSWORD`, `GITHUB_TOKEN`, `AWS_CREDENTIALS`, `PRIVATE_PEM`.
const WORDS: &[&str] = &["SECRET", "PASSWORD", "TOKEN", "CREDENTIAL", "PRIVATE"];

/// A word that makes a name a secret's only as a whole part of it (`API_KEY`,
/// `SESSION_KEY`, `SECRET_KEY_BASE`), since as a bare substring it is in `MONKEY`
/// and `KEYBOARD_LAYOUT`.
const PART: &str = "KEY";

/// The scenario's top-level key that lists more names to mask, for secrets no rule
/// can recognise (`DATABASE_URL`, `SENTRY_DSN`).
pub const MORE_NAMES_KEY: &str = "secrets";

/// Which names hold secrets: those the rules recognise, and the scenario's own list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// More names, upper-cased, from the scenario's `secrets = [...]`.
    more: Vec<String>,
}

impl Secrets {
    /// The rules and `more` names (matched whole, case-blind).
    pub fn with_names<S: AsRef<str>>(more: &[S]) -> Self {
        let more = more
            .iter()
            .map(|n| n.as_ref().to_ascii_uppercase())
            .collect();
        Secrets { more }
    }

    /// The rules and the names a scenario's text lists in `secrets`, read from the
    /// text itself so that masking never waits on (or trusts) its validation.
    pub fn of_scenario(text: &str) -> Self {
        let Ok(root) = DeTable::parse(text) else {
            return Secrets::default();
        };
        let more: Vec<&str> = match root.get_ref().get(MORE_NAMES_KEY).map(|v| v.get_ref()) {
            Some(DeValue::Array(names)) => (names.iter())
                .filter_map(|n| n.get_ref().as_str())
                .collect(),
            _ => Vec::new(),
        };
        Secrets::with_names(&more)
    }

    /// Whether an environment variable named `key` holds a secret.
    pub fn is_secret(&self, key: &str) -> bool {
        let upper = key.to_ascii_uppercase();
        WORDS.iter().any(|w| upper.contains(w))
            || upper.split(['_', '-', '.']).any(|part| part == PART)
            || self.more.contains(&upper)
    }

    /// `key=value` with the value masked when the last part of the key is a secret.
    pub fn mask_setting(&self, key: &str, value: &str) -> String {
        let last = key.rsplit('.').next().unwrap_or(key);
        if self.is_secret(last.trim().trim_matches('"')) {
            format!("{key}={MASK}")
        } else {
            format!("{key}={value}")
        }
    }
}

/// Whether `key` holds a secret by the rules alone, for what is read before the
/// scenario (a `--set` typed on the command line).
pub fn is_secret(key: &str) -> bool {
    Secrets::default().is_secret(key)
}

/// `key=value` masked by the rules alone (see [`is_secret`]).
pub fn mask_setting(key: &str, value: &str) -> String {
    Secrets::default().mask_setting(key, value)
}

/// The scenario text with the value of every secret-named key replaced by `"***"`,
/// everything else (comments, layout) as written; the names it lists in `secrets`
/// count too. A text that does not parse is not shown at all: it could hold a
/// secret where the parser cannot find it.
pub fn mask_scenario(text: &str) -> String {
    let Ok(root) = DeTable::parse(text) else {
        return "# (the scenario is not shown: it does not parse, and may hold secrets)\n"
            .to_string();
    };
    let secrets = Secrets::of_scenario(text);
    let mut spans = Vec::new();
    secret_spans(&secrets, root.get_ref(), &mut spans);
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    let mut out = text.to_string();
    for span in spans {
        if out.get(span.clone()).is_some() {
            out.replace_range(span, &format!("\"{MASK}\""));
        }
    }
    out
}

fn secret_spans(secrets: &Secrets, table: &DeTable<'_>, spans: &mut Vec<Range<usize>>) {
    for (key, value) in table.iter() {
        match value.get_ref() {
            DeValue::Table(inner) => secret_spans(secrets, inner, spans),
            DeValue::Array(items) => {
                for item in items.iter() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        secret_spans(secrets, inner, spans);
                    }
                }
            }
            _ if secrets.is_secret(key.get_ref()) => spans.push(value.span()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_secret_names_of_web_frameworks_are_recognised() {
        let rails = ["SECRET_KEY_BASE", "RAILS_MASTER_KEY", "DATABASE_PASSWORD"];
        let django = ["SECRET_KEY", "DJANGO_SECRET_KEY", "EMAIL_HOST_PASSWORD"];
        let flask = ["FLASK_SECRET_KEY", "secret_key"];
        let actix = ["SESSION_KEY", "COOKIE_KEY"];
        let others = [
            "DB_PASSWORD",
            "api_token",
            "AWS_SECRET",
            "SIGNING_KEY",
            "TOKEN",
            "API_KEY",
            "X-Api-Key",
            "GITHUB_TOKENS",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "PRIVATE_PEM",
            "PASSWORD_HINT_URL",
        ];
        for key in rails
            .iter()
            .chain(&django)
            .chain(&flask)
            .chain(&actix)
            .chain(&others)
        {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "MODE",
            "KEYBOARD",
            "MONKEY",
            "KEEP_ALIVE",
            "SESSION_STORE",
            "INSTANCE_ID",
            "RAILS_ENV",
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }

    #[test]
    fn a_scenario_lists_more_names_to_mask() {
        let secrets = Secrets::with_names(&["database_url"]);
        assert!(secrets.is_secret("DATABASE_URL"));
        assert!(!secrets.is_secret("DATABASE_URL_RO"), "names match whole");
        let text = "secrets = [\"DATABASE_URL\"]\n[service]\nenv = { DATABASE_URL = \"postgres://u:hunter2@db/x\", MODE = \"redis\" }\n";
        assert_eq!(Secrets::of_scenario(text), secrets);
        let masked = mask_scenario(text);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(
            masked.contains("secrets = [\"DATABASE_URL\"]"),
            "the list itself is shown: {masked}"
        );
        assert!(masked.contains("MODE = \"redis\""), "{masked}");
    }

    #[test]
    fn the_scenario_text_keeps_its_layout_and_loses_its_secrets() {
        let text = "# a comment\nname = \"x\"\n[service]\nenv = { MODE = \"redis\", DB_PASSWORD = \"hunter2\", SECRET_KEY_BASE = \"rails\" }\n\n[service.more]\nAPI_TOKEN = 'abc'  # trailing\n[[chaos]]\nSOME_KEY = \"k\"\n";
        let masked = mask_scenario(text);
        assert_eq!(
            masked,
            "# a comment\nname = \"x\"\n[service]\nenv = { MODE = \"redis\", DB_PASSWORD = \"***\", SECRET_KEY_BASE = \"***\" }\n\n[service.more]\nAPI_TOKEN = \"***\"  # trailing\n[[chaos]]\nSOME_KEY = \"***\"\n"
        );
        assert!(
            !masked.contains("hunter2") && !masked.contains("abc") && !masked.contains("rails")
        );
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
        assert_eq!(
            mask_setting("service.env.SECRET_KEY_BASE", "x"),
            "service.env.SECRET_KEY_BASE=***"
        );
        assert_eq!(mask_setting("load.rate", "3"), "load.rate=3");
        let more = Secrets::with_names(&["DATABASE_URL"]);
        assert_eq!(
            more.mask_setting("service.env.DATABASE_URL", "postgres://x"),
            "service.env.DATABASE_URL=***"
        );
    }
}
