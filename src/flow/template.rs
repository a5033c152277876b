//! Templates in flow steps: literal text with `{{name}}` holes, parsed once when the
//! scenario is validated so an unknown name is an error with a position, never a
//! request sent with a hole in it.

use std::fmt;

/// What a hole stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The value a write makes durable: `"<seq>.<k>"`, attributable like the
    /// contract's items. Only known in a step that writes.
    Item,
    /// A fresh random UUID (v4 layout), drawn from the run's seed.
    Uuid,
    /// The virtual user (closed model), or the session number (open model).
    Vu,
    /// The session's number on the client side (`session.n`).
    SessionN,
    /// A value captured from an earlier answer, by its slot in [`super::Flow::captures`].
    Capture(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Hole(Var),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template does not parse, in words for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The values holes are filled with when a step runs.
pub struct Values<'a> {
    pub item: Option<&'a str>,
    pub vu: u64,
    pub session_n: u64,
    pub captures: &'a [Option<String>],
    /// Draws a UUID for each `{{uuid}}`.
    pub uuid: &'a mut dyn FnMut() -> String,
}

impl Template {
    /// Parses `text`; `capture` maps a name to its slot when that capture is made
    /// before the template is used.
    pub fn parse(
        text: &str,
        capture: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                TemplateError(format!(
                    "`{{{{` without a closing `}}}}` in {text:?}; write a variable as `{{{{name}}}}`"
                ))
            })?;
            let name = after[..close].trim();
            let var = match name {
                "item" => Var::Item,
                "uuid" => Var::Uuid,
                "vu" => Var::Vu,
                "session.n" => Var::SessionN,
                other => capture(other).map(Var::Capture).ok_or_else(|| {
                    TemplateError(format!(
                        "unknown template variable `{{{{{other}}}}}`; known: item (in a step that writes), uuid, vu, session.n, and the values captured by earlier steps"
                    ))
                })?,
            };
            parts.push(Part::Hole(var));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// A template without holes.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: vec![Part::Text(text.to_string())],
        }
    }

    /// The variables it uses, in order.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// The literal text before the first hole.
    pub fn prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Text(t)) => t,
            _ => "",
        }
    }

    /// Fills the holes. A capture never made (the answer lacked it) renders empty; the
    /// validator has made sure every capture used is made by an earlier step.
    pub fn render(&self, values: &mut Values<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Hole(Var::Item) => out.push_str(values.item.unwrap_or_default()),
                Part::Hole(Var::Uuid) => out.push_str(&(values.uuid)()),
                Part::Hole(Var::Vu) => out.push_str(&values.vu.to_string()),
                Part::Hole(Var::SessionN) => out.push_str(&values.session_n.to_string()),
                Part::Hole(Var::Capture(slot)) => {
                    if let Some(Some(v)) = values.captures.get(*slot) {
                        out.push_str(v);
                    }
                }
            }
        }
        out
    }
}

/// How an item appears in an answer: text around `{{item}}`, e.g. `"sku-{{item}}"` or
/// `"<li>{{item}}</li>"`. Writes declare it (`write.value`), `read.contains` too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemPattern {
    pub before: String,
    pub after: String,
}

impl ItemPattern {
    /// The template must hold `{{item}}` once and no other variable: anything else
    /// would make the value unattributable.
    pub fn from_template(t: &Template) -> Result<ItemPattern, TemplateError> {
        let [before, after] = match t.parts.as_slice() {
            [Part::Hole(Var::Item)] => ["", ""],
            [Part::Text(b), Part::Hole(Var::Item)] => [b.as_str(), ""],
            [Part::Hole(Var::Item), Part::Text(a)] => ["", a.as_str()],
            [Part::Text(b), Part::Hole(Var::Item), Part::Text(a)] => [b.as_str(), a.as_str()],
            _ => {
                return Err(TemplateError(
                    "must contain `{{item}}` exactly once and no other variable, e.g. \"{{item}}\" or \"sku-{{item}}\", so each value can be traced back to the write that made it".into(),
                ))
            }
        };
        Ok(ItemPattern {
            before: before.to_string(),
            after: after.to_string(),
        })
    }

    pub fn render(&self, item: &str) -> String {
        format!("{}{item}{}", self.before, self.after)
    }

    /// The item inside `text`, if `text` has the pattern's shape.
    pub fn strip<'t>(&self, text: &'t str) -> Option<&'t str> {
        text.strip_prefix(self.before.as_str())?
            .strip_suffix(self.after.as_str())
    }
}

/// Whether `pointer` is a JSON pointer (RFC 6901): empty, or `/`-separated tokens in
/// which `~` is only ever followed by `0` or `1`.
pub fn valid_pointer(pointer: &str) -> bool {
    if pointer.is_empty() {
        return true;
    }
    pointer.starts_with('/')
        && pointer
            .split('~')
            .skip(1)
            .all(|s| s.starts_with('0') || s.starts_with('1'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(name: &str) -> Option<usize> {
        (name == "cart").then_some(0)
    }

    fn render(t: &Template, item: Option<&str>) -> String {
        let mut n = 0;
        let mut uuid = || {
            n += 1;
            format!("u{n}")
        };
        t.render(&mut Values {
            item,
            vu: 3,
            session_n: 12,
            captures: &[Some("c-9".into())],
            uuid: &mut uuid,
        })
    }

    #[test]
    fn fills_every_kind_of_hole() {
        let t = Template::parse(
            "/u/{{vu}}/s/{{ session.n }}/{{cart}}/{{item}}/{{uuid}}{{uuid}}",
            &captures,
        )
        .unwrap();
        assert_eq!(render(&t, Some("12.4")), "/u/3/s/12/c-9/12.4/u1u2");
        assert_eq!(
            t.vars().collect::<Vec<_>>(),
            [
                Var::Vu,
                Var::SessionN,
                Var::Capture(0),
                Var::Item,
                Var::Uuid,
                Var::Uuid
            ]
        );
    }

    #[test]
    fn text_without_holes_is_kept_as_is() {
        let t = Template::parse("plain } { text", &captures).unwrap();
        assert_eq!(render(&t, None), "plain } { text");
        assert_eq!(t, Template::literal("plain } { text"));
    }

    #[test]
    fn unknown_and_unclosed_holes_are_errors() {
        let err = Template::parse("/x/{{carts}}", &captures).unwrap_err();
        assert!(
            err.0.contains("unknown template variable `{{carts}}`"),
            "{err}"
        );
        assert!(err.0.contains("uuid, vu, session.n"), "{err}");
        let err = Template::parse("/x/{{item", &captures).unwrap_err();
        assert!(err.0.contains("without a closing"), "{err}");
    }

    #[test]
    fn item_patterns_render_and_strip() {
        let t = Template::parse("<li>{{item}}</li>", &captures).unwrap();
        let p = ItemPattern::from_template(&t).unwrap();
        assert_eq!(p.render("7.1"), "<li>7.1</li>");
        assert_eq!(p.strip("<li>7.1</li>"), Some("7.1"));
        assert_eq!(p.strip("<p>7.1</p>"), None);
        for bad in ["{{item}}{{item}}", "x", "{{item}}-{{vu}}", "{{uuid}}"] {
            let t = Template::parse(bad, &captures).unwrap();
            assert!(ItemPattern::from_template(&t).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_pointers() {
        for ok in ["", "/items", "/a/0/b", "/a~1b", "/m~0n"] {
            assert!(valid_pointer(ok), "{ok}");
        }
        for bad in ["items", "/a~2", "/a~", "#/items"] {
            assert!(!valid_pointer(bad), "{bad}");
        }
    }
}
