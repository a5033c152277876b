//! `[service]`, `[store]` and `[balancer]`: what the harness starts, and the
//! templates (`{store}`, `{replica}`, ...) in their commands and environments.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::plan::template::{Placeholder, Template};
use crate::plan::topology::Topology;
use crate::plan::{BalancerKind, BalancerPlan, BuiltIn, Scheme, ServicePlan, StoreKind, StorePlan};
use crate::scenario;

const BALANCERS: &str = "\"haproxy\", \"direct\"";
const SCHEMES: &str = "\"http\", \"https\"";

impl Validator<'_> {
    /// Parses each element of a list of templates; `None` after recording a problem.
    pub(super) fn templates(
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

    pub(super) fn env(
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
        store: &StorePlan,
        attached: bool,
    ) -> Option<ServicePlan> {
        let has_store = store.kind != StoreKind::None;
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
                let url = match store.topology {
                    Topology::Cluster => "redis-cluster://{store_nodes}",
                    Topology::MemcachedPool { .. } => "memcached://{store_nodes}",
                    Topology::Single | Topology::Replicated { .. } => {
                        "redis://{store}:{store_port}"
                    }
                };
                let url = Template::parse(url, &Placeholder::ALL)
                    .expect("the default store URL is a valid template");
                env.insert("SESSION_STORE".into(), url);
            }
            env
        });
        self.demo_fits_the_store(raw, store);
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

    /// What the demo service refuses at its start with the store it is given, said
    /// here with its place instead: `WAIT` through its Redis Cluster client.
    fn demo_fits_the_store(&mut self, raw: &scenario::Service, store: &StorePlan) {
        let demo = raw
            .image
            .as_ref()
            .is_none_or(|i| BuiltIn::from_tag(i.get_ref()) == Some(BuiltIn::SessionApp));
        let wait = raw.env.get("SESSION_STORE_WAIT");
        if let Some(wait) = wait.filter(|_| demo && store.topology == Topology::Cluster) {
            self.problem(
                wait.span(),
                "`service.env.SESSION_STORE_WAIT`: the demo service's Redis Cluster client cannot `WAIT` (it must go to the primary that took the write, which the client does not say); remove it, or use `store.topology = \"replicated\"`",
            );
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
