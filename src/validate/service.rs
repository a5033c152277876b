//! `[service]`, `[store]` and `[balancer]`: what the harness starts, and the
//! templates (`{store}`, `{replica}`, ...) in their commands and environments.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::plan::template::{Placeholder, Template};
use crate::plan::{
    BalancerKind, BalancerPlan, BuiltIn, Persistence, Scheme, ServicePlan, StoreKind, StorePlan,
};
use crate::scenario;

const PERSISTENCE: &str = "\"none\", \"aof\"";
/// Redis's `maxmemory-policy` values.
const EVICTION: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];
const BALANCERS: &str = "\"haproxy\", \"direct\"";
const STORE_KINDS: &str = "\"redis\", \"tcp\", \"none\"";
const SCHEMES: &str = "\"http\", \"https\"";

impl Validator<'_> {
    /// Parses each element of a list of templates; `None` after recording a problem.
    fn templates(
        &mut self,
        raw: &Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
        allowed: &[Placeholder],
    ) -> Option<Vec<Template>> {
        let Some(list) = raw else {
            return Some(Vec::new());
        };
        let parsed: Vec<Option<Template>> = list
            .get_ref()
            .iter()
            .map(|item| self.template(item, key, allowed))
            .collect();
        parsed.into_iter().collect()
    }

    fn template(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        allowed: &[Placeholder],
    ) -> Option<Template> {
        match Template::parse(raw.get_ref(), allowed) {
            Ok(template) => Some(template),
            Err(why) => {
                // Placeholders are refused only for these reasons: say which.
                let reason = match key.split('.').next() {
                    _ if !why.contains("cannot be used here") => "",
                    Some("store") => {
                        " ({replica} and {instance} name a replica; the store is not one)"
                    }
                    _ => " (there is no store: `store.kind = \"none\"`)",
                };
                self.problem(raw.span(), format!("`{key}`: {why}{reason}"));
                None
            }
        }
    }

    fn env(
        &mut self,
        raw: &BTreeMap<String, Spanned<String>>,
        table: &str,
        allowed: &[Placeholder],
    ) -> Option<BTreeMap<String, Template>> {
        let parsed: Vec<Option<(String, Template)>> = raw
            .iter()
            .map(|(key, value)| {
                let template = self.template(value, &format!("{table}.{key}"), allowed)?;
                Some((key.clone(), template))
            })
            .collect();
        parsed.into_iter().collect()
    }

    pub(super) fn service(
        &mut self,
        raw: &scenario::Service,
        has_store: bool,
        attached: bool,
    ) -> Option<ServicePlan> {
        // Without a store, the store's placeholders would point at nothing.
        let allowed: &[Placeholder] = if has_store {
            &Placeholder::ALL
        } else {
            &[Placeholder::Replica, Placeholder::Instance]
        };
        let command = self.templates(&raw.command, "service.command", allowed);
        let entrypoint = self.templates(&raw.entrypoint, "service.entrypoint", allowed);
        let env = self.env(&raw.env, "service.env", allowed).map(|mut env| {
            if has_store && !env.contains_key("SESSION_STORE") {
                // The demo service's way to its store, so it needs no configuration.
                let url = Template::parse("redis://{store}:{store_port}", &Placeholder::ALL)
                    .expect("the default store URL is a valid template");
                env.insert("SESSION_STORE".into(), url);
            }
            env
        });
        let replicas = match &raw.replicas {
            _ if attached => Some(0),
            Some(replicas) => self.int_in(replicas, "service.replicas", 1, 64),
            None => {
                self.problem(
                    0..0,
                    "`service.replicas` is missing: how many replicas to start (1 to 64); \
                     or test a running stack with `--attach URL` (see `[attach]`)",
                );
                None
            }
        };
        let port = match &raw.port {
            Some(p) => self.int_in(p, "service.port", 1, 65535),
            None => Some(8080),
        };
        let scheme = match raw
            .scheme
            .as_ref()
            .map(|s| (s.get_ref().as_str(), s.span()))
        {
            None | Some(("http", _)) => Scheme::Http,
            Some(("https", _)) => Scheme::Https,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown service scheme {other:?}; accepted values: {SCHEMES}"),
                );
                Scheme::Http
            }
        };
        let health_path = raw
            .health_path
            .as_ref()
            .map_or_else(|| "/healthz".to_string(), |p| p.get_ref().clone());
        if !health_path.starts_with('/') {
            let span = raw.health_path.as_ref().map_or(0..0, |p| p.span());
            self.problem(
                span,
                "`service.health_path` must start with '/', for example \"/healthz\"",
            );
        }
        let ready_timeout = self.optional_duration(
            &raw.ready_timeout,
            "service.ready_timeout",
            Duration::from_secs(30),
        );
        Some(ServicePlan {
            image: raw
                .image
                .as_ref()
                .map_or(BuiltIn::SessionApp.tag().to_string(), |s| {
                    s.get_ref().clone()
                }),
            replicas: replicas? as usize,
            port: port? as u16,
            scheme,
            health_path,
            ready_timeout: ready_timeout?,
            command: command?,
            entrypoint: entrypoint?,
            env: env?,
        })
    }

    /// `[store]`. Without `kind`, the built-in Redis (or no `image`) is `redis` and
    /// any other image is `tcp`. A bad kind still yields a plan (Redis) so the other
    /// keys are checked too.
    pub(super) fn store(&mut self, raw: &scenario::Store) -> StorePlan {
        let image = raw
            .image
            .as_ref()
            .map_or(BuiltIn::Redis.tag().to_string(), |s| s.get_ref().clone());
        let kind = match raw.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None if BuiltIn::from_tag(&image) == Some(BuiltIn::Redis) => StoreKind::Redis,
            None => StoreKind::Tcp,
            Some(("redis", _)) => StoreKind::Redis,
            Some(("tcp", _)) => StoreKind::Tcp,
            Some(("none", _)) => StoreKind::None,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown store kind {other:?}; accepted values: {STORE_KINDS}"),
                );
                StoreKind::Redis
            }
        };
        if kind == StoreKind::None {
            // Everything else in `[store]` would configure a store that does not exist.
            let given = [
                ("image", raw.image.as_ref().map(Spanned::span)),
                ("command", raw.command.as_ref().map(Spanned::span)),
                ("entrypoint", raw.entrypoint.as_ref().map(Spanned::span)),
                ("port", raw.port.as_ref().map(Spanned::span)),
                ("persistence", raw.persistence.as_ref().map(Spanned::span)),
                ("env", raw.env.values().next().map(Spanned::span)),
            ];
            for (key, span) in given {
                if let Some(span) = span {
                    self.problem(
                        span,
                        format!("`store.{key}` configures a store, but `store.kind = \"none\"`: remove one of them"),
                    );
                }
            }
        }
        let allowed = [Placeholder::Store, Placeholder::StorePort];
        let command = self.templates(&raw.command, "store.command", &allowed);
        let entrypoint = self.templates(&raw.entrypoint, "store.entrypoint", &allowed);
        let env = self.env(&raw.env, "store.env", &allowed);
        let port = match &raw.port {
            Some(p) => self.int_in(p, "store.port", 1, 65535).map(|p| p as u16),
            None => Some(6379),
        };
        let persistence = match raw.persistence.as_ref() {
            None => Persistence::None,
            Some(p) if kind != StoreKind::Redis && kind != StoreKind::None => {
                self.problem(
                    p.span(),
                    format!(
                        "`store.persistence` is a Redis setting (append-only file), but this store's kind is \"tcp\" (image {image:?}); remove it, or set `store.kind = \"redis\"` if the image is a Redis"
                    ),
                );
                Persistence::None
            }
            Some(p) => {
                match p.get_ref().as_str() {
                    "none" => Persistence::None,
                    "aof" => Persistence::Aof,
                    other => {
                        self.problem(
                        p.span(),
                        format!("unknown store persistence {other:?}; accepted values: {PERSISTENCE}"),
                    );
                        Persistence::None
                    }
                }
            }
        };
        let eviction = raw.eviction.as_ref().and_then(|e| {
            let policy = e.get_ref().as_str();
            if kind != StoreKind::Redis {
                self.problem(
                    e.span(),
                    "`store.eviction` is a Redis setting (maxmemory-policy), but this store is not a Redis; remove it, or set `store.kind = \"redis\"` if the image is one",
                );
                return None;
            }
            if !EVICTION.contains(&policy) {
                let accepted: Vec<String> = EVICTION.iter().map(|p| format!("{p:?}")).collect();
                self.problem(
                    e.span(),
                    format!("unknown store eviction {policy:?}; accepted values: {}", accepted.join(", ")),
                );
                return None;
            }
            Some(policy.to_string())
        });
        StorePlan {
            kind,
            image,
            command: command.unwrap_or_default(),
            entrypoint: entrypoint.unwrap_or_default(),
            env: env.unwrap_or_default(),
            port: port.unwrap_or(6379),
            persistence,
            eviction,
        }
    }

    pub(super) fn balancer(&mut self, raw: &scenario::Balancer) -> BalancerPlan {
        let kind = match raw.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("haproxy", _)) => BalancerKind::Haproxy,
            Some(("direct", _)) => BalancerKind::Direct,
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown balancer kind {other:?}; accepted values: {BALANCERS}"),
                );
                BalancerKind::Haproxy
            }
        };
        let port = raw.port.as_ref().and_then(|p| {
            if kind == BalancerKind::Direct {
                self.problem(
                    p.span(),
                    "`balancer.port` is HAProxy's published port; with kind = \"direct\" \
                     there is no balancer (each replica is published on a free port)",
                );
                return None;
            }
            self.int_in(p, "balancer.port", 1, 65535).map(|p| p as u16)
        });
        BalancerPlan {
            kind,
            sticky: raw.sticky.unwrap_or(false),
            port,
        }
    }
}
