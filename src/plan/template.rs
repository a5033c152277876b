//! Values with placeholders, such as `REDIS_URL = "redis://{store}:{store_port}"`.
//!
//! A user's service finds its store through an environment variable or a flag whose
//! value only the harness knows (the store's host name on the run's network, its
//! port, the replica's slot and instance name). Templates are parsed when the
//! scenario is validated, so an unknown placeholder is an error with its place in
//! the file before anything starts, and filled in when a container is created.

use std::fmt;

/// A placeholder the harness fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The store's host name on the run's network.
    Store,
    /// The port the store listens on.
    StorePort,
    /// Every data member of the store as `host:port`, joined by commas (a cluster's
    /// seed nodes, a memcached pool's servers); the single store's own address.
    StoreNodes,
    /// The replica's slot, `0 .. replicas`.
    Replica,
    /// The replica's instance name, `replica-<slot>.<generation>`.
    Instance,
}

impl Placeholder {
    /// Every placeholder, in the order error messages list them.
    pub const ALL: [Placeholder; 5] = [
        Placeholder::Store,
        Placeholder::StorePort,
        Placeholder::StoreNodes,
        Placeholder::Replica,
        Placeholder::Instance,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Store => "store",
            Placeholder::StorePort => "store_port",
            Placeholder::StoreNodes => "store_nodes",
            Placeholder::Replica => "replica",
            Placeholder::Instance => "instance",
        }
    }
}

/// The values placeholders stand for in one container.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub store: &'a str,
    pub store_port: u16,
    pub store_nodes: &'a str,
    /// `None` for containers that are not replicas (the store).
    pub replica: Option<(usize, &'a str)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Hole(Placeholder),
}

/// A parsed value: text and placeholders. `{{` and `}}` stand for literal braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// As written, for display and for the report.
    source: String,
}

impl Template {
    /// Parses `text`, accepting only the placeholders in `allowed`. The error says
    /// what is wrong and lists the accepted placeholders.
    pub fn parse(text: &str, allowed: &[Placeholder]) -> Result<Template, String> {
        let accepted = || {
            allowed
                .iter()
                .map(|p| format!("{{{}}}", p.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        let mut text_part = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            text_part.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{").or(tail.strip_prefix("}}")) {
                text_part.push_str(&tail[..1]);
                rest = after;
                continue;
            }
            if tail.starts_with('}') {
                // The value itself is not repeated: it may be a secret.
                return Err("a lone '}' in the value; write '}}' for a literal brace".into());
            }
            let Some(end) = tail.find('}') else {
                return Err(
                    "an unclosed '{' in the value; placeholders look like {store}, and '{{' is a literal brace"
                        .into(),
                );
            };
            let name = &tail[1..end];
            let Some(hole) = Placeholder::ALL.into_iter().find(|p| p.name() == name) else {
                return Err(format!(
                    "unknown placeholder {{{name}}}; accepted placeholders: {}",
                    accepted()
                ));
            };
            if !allowed.contains(&hole) {
                return Err(format!(
                    "placeholder {{{name}}} cannot be used here; accepted placeholders: {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        accepted()
                    }
                ));
            }
            if !text_part.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text_part)));
            }
            parts.push(Part::Hole(hole));
            rest = &tail[end + 1..];
        }
        text_part.push_str(rest);
        if !text_part.is_empty() {
            parts.push(Part::Text(text_part));
        }
        Ok(Template {
            parts,
            source: text.to_string(),
        })
    }

    /// The value with every placeholder filled in.
    ///
    /// # Panics
    /// When a replica placeholder is rendered without a replica: validation only
    /// allows those placeholders in replica settings.
    /// Whether the value holds `placeholder`.
    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.parts.contains(&Part::Hole(placeholder))
    }

    pub fn render(&self, values: &Values) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Hole(Placeholder::Store) => out.push_str(values.store),
                Part::Hole(Placeholder::StorePort) => out.push_str(&values.store_port.to_string()),
                Part::Hole(Placeholder::StoreNodes) => out.push_str(values.store_nodes),
                Part::Hole(hole @ (Placeholder::Replica | Placeholder::Instance)) => {
                    let (slot, instance) = values.replica.unwrap_or_else(|| {
                        panic!("{{{}}} is only accepted in replica settings", hole.name())
                    });
                    match hole {
                        Placeholder::Replica => out.push_str(&slot.to_string()),
                        _ => out.push_str(instance),
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICA: Values = Values {
        store: "store",
        store_port: 7000,
        store_nodes: "store:7000",
        replica: Some((2, "replica-2.1")),
    };

    #[test]
    fn placeholders_are_filled_in() {
        let t = Template::parse(
            "redis://{store}:{store_port}/{replica}?name={instance}",
            &Placeholder::ALL,
        )
        .unwrap();
        assert_eq!(t.render(&REPLICA), "redis://store:7000/2?name=replica-2.1");
        assert_eq!(
            t.to_string(),
            "redis://{store}:{store_port}/{replica}?name={instance}"
        );
    }

    #[test]
    fn doubled_braces_are_literal() {
        let t = Template::parse("{{\"a\": {store_port}}}", &Placeholder::ALL).unwrap();
        assert_eq!(t.render(&REPLICA), "{\"a\": 7000}");
    }

    #[test]
    fn mistakes_name_the_accepted_placeholders() {
        let err = Template::parse("redis://{stor}:6379", &Placeholder::ALL).unwrap_err();
        assert!(err.contains("unknown placeholder {stor}"), "{err}");
        assert!(
            err.contains("{store}, {store_port}, {store_nodes}, {replica}, {instance}"),
            "{err}"
        );
        let err = Template::parse("{store", &Placeholder::ALL).unwrap_err();
        assert!(err.contains("unclosed"), "{err}");
        let err = Template::parse("a}b", &Placeholder::ALL).unwrap_err();
        assert!(err.contains("lone"), "{err}");
        let store_only = [Placeholder::Store, Placeholder::StorePort];
        let err = Template::parse("--name {instance}", &store_only).unwrap_err();
        assert!(err.contains("cannot be used here"), "{err}");
        assert!(err.contains("{store}, {store_port}"), "{err}");
        let err = Template::parse("{store}", &[]).unwrap_err();
        assert!(err.contains("accepted placeholders: none"), "{err}");
    }
}
