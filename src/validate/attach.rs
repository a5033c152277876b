//! Attach mode: test a stack that is already running (a team's `docker compose up`)
//! instead of starting one.
//!
//! The user says where the stack answers (a URL) and which of its containers are the
//! replicas (labels, or a Compose project and service). The harness then creates no
//! container of the stack and removes none: faults hit only the containers the
//! selector matches, and the only objects it creates are its short-lived helpers
//! (blackhole), labelled with the run. This module turns the `[attach]` table and
//! the command line into an [`AttachPlan`]; [`crate::cluster::attached`] acts on the
//! containers.
//!
//! `[service]`, `[store]` and `[balancer]` describe containers the harness would
//! start. When attached, a key there would be silently meaningless, so it is an
//! error, except `service.health_path` and `service.ready_timeout`, which still say
//! how to tell that the stack serves again after a fault.
//!
//! `store` in `[attach]` names the stack's Redis where the harness reaches it: the
//! run then watches it, and the faults the table applies to a named store
//! ([`Support::StoreNamed`]) may act on it. What an attached stack cannot take is
//! refused here, from the fault table, before anything starts.

use std::ops::Range;

use crate::plan::attach::{AttachPlan, COMPOSE_PROJECT, COMPOSE_SERVICE};
use crate::plan::faults::{self, Support, PEER_NEEDS_THE_RUNS_STORE};
use crate::plan::{Plan, Target};
use crate::scenario::overrides::{self, Requested, Setting};
use crate::scenario::{Problem, Scenario, Source};

/// Keys of `[service]` that still mean something when attached.
const SERVICE_KEYS_KEPT: [&str; 2] = ["health_path", "ready_timeout"];
const URL_EXAMPLE: &str = "http://127.0.0.1:8080";
const STORE_EXAMPLE: &str = "redis://127.0.0.1:6379";
const SENTINEL_EXAMPLE: &str = "redis://127.0.0.1:26379";

/// Reads attach mode from the command line and the scenario: `None` when neither asks
/// for it. Every problem found is returned, located like the rest of the scenario's.
pub fn plan(
    source: &Source,
    settings: &[Setting],
    requested: &Requested,
    raw: &Scenario,
) -> (Option<AttachPlan>, Vec<Problem>) {
    let file = raw.attach.as_ref();
    if file.is_none() && !requested.any() {
        return (None, Vec::new());
    }
    let mut problems = Vec::new();
    let at =
        |span: Range<usize>, message: String| overrides::locate(source, settings, span, message);
    let flag = |name: &str, value: &str, message: String| Problem {
        path: format!("--{name} {value}").into(),
        line: 0,
        column: 0,
        message,
    };
    let unplaced = |message: String| Problem {
        path: source.path.clone(),
        line: 0,
        column: 0,
        message,
    };

    let url = match (&requested.url, file.and_then(|f| f.url.as_ref())) {
        (Some(url), _) => check_url(url).map_err(|m| flag("attach", url, m)),
        (None, Some(url)) => check_url(url.get_ref()).map_err(|m| at(url.span(), m)),
        (None, None) => Err(unplaced(format!(
            "attach mode needs the URL the stack answers at: `--attach {URL_EXAMPLE}` or `url` in `[attach]`"
        ))),
    };

    let mut labels = Vec::new();
    // The selection is one thing: a selector or project given on the command line
    // replaces the file's, `service` included.
    let from_cli = requested.compose_project.is_some() || !requested.selector.is_empty();
    if let Some(project) = &requested.compose_project {
        match check_compose_project(project) {
            Ok(()) => labels.push((COMPOSE_PROJECT.to_string(), project.clone())),
            Err(m) => problems.push(flag("compose-project", project, m)),
        }
    } else if !requested.selector.is_empty() {
        for text in &requested.selector {
            match parse_label(text) {
                Ok(label) => labels.push(label),
                Err(m) => problems.push(flag("selector", text, m)),
            }
        }
    } else {
        let selector = file.and_then(|f| f.selector.as_ref());
        let project = file.and_then(|f| f.compose_project.as_ref());
        match (selector, project) {
            (Some(_), Some(project)) => problems.push(at(
                project.span(),
                "`attach.selector` and `attach.compose_project` both choose the replicas; keep one"
                    .into(),
            )),
            (Some(list), None) if list.is_empty() => problems.push(unplaced(
                "`attach.selector` is empty; give at least one label, e.g. [\"app.role=replica\"]"
                    .into(),
            )),
            (Some(list), None) => {
                for text in list {
                    match parse_label(text.get_ref()) {
                        Ok(label) => labels.push(label),
                        Err(m) => problems.push(at(text.span(), m)),
                    }
                }
            }
            (None, Some(project)) => match check_compose_project(project.get_ref()) {
                Ok(()) => labels.push((COMPOSE_PROJECT.to_string(), project.get_ref().clone())),
                Err(m) => problems.push(at(project.span(), m)),
            },
            (None, None) => problems.push(unplaced(
                "attach mode needs to know which containers are the replicas: \
                 `--selector KEY=VALUE` (repeatable) or `--compose-project NAME`, \
                 or `selector` / `compose_project` in `[attach]`"
                    .into(),
            )),
        }
    }
    let file_service = file.and_then(|f| f.service.as_ref()).filter(|_| !from_cli);
    let service = match (&requested.service, file_service) {
        (Some(name), _) => check_service(name)
            .map(|()| Some(name.clone()))
            .map_err(|m| flag("service", name, m)),
        (None, Some(name)) => check_service(name.get_ref())
            .map(|()| Some(name.get_ref().clone()))
            .map_err(|m| at(name.span(), m)),
        (None, None) => Ok(None),
    };
    match service {
        Ok(Some(name)) => labels.push((COMPOSE_SERVICE.to_string(), name)),
        Ok(None) => {}
        Err(problem) => problems.push(problem),
    }

    let swarm = raw.cluster.engine.as_ref();
    let swarm = swarm.is_some_and(|e| e.get_ref() == "swarm");
    let mut redis_url = |key: &str, value: Option<&toml::Spanned<String>>, example: &str| {
        let value = value?;
        match check_redis_url(key, value.get_ref(), example) {
            Err(m) => problems.push(at(value.span(), m)),
            Ok(_) if swarm => problems.push(at(
                value.span(),
                format!("`attach.{key}` is not used on the swarm engine yet: attach to the stack with engine \"docker\" to watch its store"),
            )),
            Ok(address) => return Some(address),
        }
        None
    };
    let store = redis_url("store", file.and_then(|f| f.store.as_ref()), STORE_EXAMPLE);
    let sentinel_named = file.and_then(|f| f.sentinel.as_ref());
    let sentinel = redis_url("sentinel", sentinel_named, SENTINEL_EXAMPLE);
    let store_named = file.and_then(|f| f.store.as_ref()).is_some();
    // A Sentinel's lines are told on the store's timeline: without a store there is none.
    if let (Some(named), false) = (sentinel_named, store_named) {
        problems.push(at(
            named.span(),
            format!(
                "`attach.sentinel` needs `attach.store`: its lines join the store's timeline; \
                 name the Redis it watches too, e.g. store = \"{STORE_EXAMPLE}\""
            ),
        ));
    }

    problems.extend(keys_of_started_containers(source, settings));
    for chaos in &raw.chaos {
        let name = chaos.fault.get_ref();
        let support = faults::lookup(name).map(|entry| entry.attached);
        match support {
            Some(Support::No(why)) => problems.push(at(
                chaos.fault.span(),
                format!("fault {name:?} cannot run on an attached stack ({why})"),
            )),
            Some(Support::StoreNamed) if !store_named => problems.push(at(
                chaos.fault.span(),
                format!(
                    "fault {name:?} acts on the stack's store, which the harness reaches only where `[attach]` names it: \
                     set `store = \"redis://HOST:PORT\"` there, e.g. store = \"{STORE_EXAMPLE}\""
                ),
            )),
            _ => {}
        }
        if let Some(peer) = &chaos.peer {
            problems.push(at(
                peer.span(),
                format!(
                    "`chaos.peer` is not available in attach mode: {PEER_NEEDS_THE_RUNS_STORE}"
                ),
            ));
        }
        let Some(target) = &chaos.target else {
            continue;
        };
        let on_store = support == Some(Support::StoreNamed);
        match target.get_ref().as_str() {
            "store" if on_store => {}
            "store" | "balancer" => problems.push(at(
                target.span(),
                format!(
                    "chaos target {:?}: in attach mode faults hit only the containers the selector matches \
                     (and {} the `[attach] store`); accepted targets: \"random-replica\", \"replica-<slot>\", a share like \"25%\"",
                    target.get_ref(),
                    faults::names_and(|e| e.attached == Support::StoreNamed)
                ),
            )),
            _ => {}
        }
    }
    match url {
        Ok(url) if problems.is_empty() => (
            Some(AttachPlan {
                url,
                labels,
                store,
                sentinel,
            }),
            problems,
        ),
        Ok(_) => (None, problems),
        Err(problem) => {
            problems.insert(0, problem);
            (None, problems)
        }
    }
}

/// Every key of `[service]`, `[store]` and `[balancer]` that describes a container the
/// harness would start, as a problem: attached, it would mean nothing.
fn keys_of_started_containers(source: &Source, settings: &[Setting]) -> Vec<Problem> {
    // The scenario parsed already, so the document does too.
    let Ok(root) = overrides::document(source, settings) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for table in ["service", "store", "balancer"] {
        let Some(toml::de::DeValue::Table(keys)) = root.get_ref().get(table).map(|v| v.get_ref())
        else {
            continue;
        };
        for (key, _) in keys.iter() {
            let name = key.get_ref().as_ref();
            if table == "service" && SERVICE_KEYS_KEPT.contains(&name) {
                continue;
            }
            let why = match (table, name) {
                ("service", "replicas") => {
                    "the replicas are the containers the selector matches, however many".to_string()
                }
                ("service", _) => "the harness starts no replicas: they are already running; \
                                   `[service]` takes only `health_path` and `ready_timeout` there"
                    .into(),
                (_, _) => format!("the harness starts no {table}: the stack has its own"),
            };
            problems.push(overrides::locate(
                source,
                settings,
                key.span(),
                format!(
                    "`{table}.{name}` is not used in attach mode ({why}); remove it, or run without attaching"
                ),
            ));
        }
    }
    problems
}

fn check_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|e| format!("{text:?} is not a URL ({e}); write e.g. {URL_EXAMPLE}"))?;
    // HTTP/1.1, plain or over TLS (crate::load::http); `[load.tls]` says whom to trust.
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{text:?} is not an http:// or https:// URL with a host; write e.g. {URL_EXAMPLE} \
             or https://shop.local:8443"
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// `[attach] store` or `sentinel` (`key`): a `redis://HOST:PORT` URL and nothing
/// more (the harness sends no `AUTH` and picks no database: `INFO`, `CONFIG` and a
/// Sentinel's channels are the server's), as the `host:port` the harness connects to.
fn check_redis_url(key: &str, text: &str, example: &str) -> Result<String, String> {
    let wrong = |why: String| {
        format!("`attach.{key}` {text:?}: {why}; write a redis:// URL with a host and a port, e.g. {example}")
    };
    let url = url::Url::parse(text).map_err(|e| wrong(format!("not a URL ({e})")))?;
    if url.scheme() != "redis" {
        return Err(wrong(format!(
            "the scheme is {:?}, and the harness speaks plain Redis only",
            url.scheme()
        )));
    }
    let (Some(host), Some(port)) = (url.host_str().filter(|h| !h.is_empty()), url.port()) else {
        return Err(wrong("it needs both a host and a port".into()));
    };
    if port == 0 {
        return Err(wrong("port 0 is no port to connect to".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(wrong(
            "the harness sends no password (AUTH), so a store that needs one cannot be watched"
                .into(),
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(wrong(
            "it takes no database, path or options: the harness's questions are the server's"
                .into(),
        ));
    }
    Ok(format!("{host}:{port}"))
}

/// A selector label, `KEY=VALUE`, as Docker's label filter takes it.
fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!(
            "selector {text:?} has no '='; write KEY=VALUE, e.g. app.role=replica"
        ));
    };
    let key_ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if !key_ok || value.is_empty() || value.chars().any(char::is_whitespace) {
        return Err(format!(
            "selector {text:?}: write KEY=VALUE with a label key of letters, digits, '.', '_', '-' or '/' \
             and a value without spaces, e.g. app.role=replica"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Compose project names: lower-case letters, digits, '-' and '_', starting with a
/// letter or digit (both Compose v1 and v2 normalise to this).
fn check_compose_project(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "compose project {name:?}: project names use lower-case letters, digits, '-' and '_' \
             (`docker-compose ps` / `docker compose ls` show it)"
        ))
    }
}

fn check_service(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "compose service {name:?}: service names use letters, digits, '.', '_' and '-'"
        ))
    }
}

/// The plan for the containers found: as many replicas as matched. Chaos settings that
/// need more replicas than that are bad input, said the way the scenario says them.
pub fn fit(plan: &Plan, matched: usize) -> Result<Plan, String> {
    let mut problems = Vec::new();
    if plan.min_alive > matched {
        problems.push(format!(
            "`min_alive` is {}, but the selector matches {matched} containers; lower it or match more",
            plan.min_alive
        ));
    }
    for (i, chaos) in plan.chaos.iter().enumerate() {
        if let Target::Replica(slot) = chaos.target {
            if slot >= matched {
                problems.push(format!(
                    "chaos entry #{i} targets replica-{slot}, but the selector matches {matched} containers: replica-0 to replica-{} (sorted by name)",
                    matched.saturating_sub(1)
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let mut fitted = plan.clone();
    fitted.service.replicas = matched;
    Ok(fitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::overrides::Overrides;
    use crate::validate::build;

    const ATTACHED: &str = "name = \"a\"\nduration = \"10s\"\n[attach]\nurl = \"http://127.0.0.1:8080\"\ncompose_project = \"shop\"\nservice = \"app\"\n[load]\nusers = 2\nappends_per_session = 1\n[[chaos]]\nfault = \"kill\"\ntarget = \"replica-2\"\nevery = \"2s\"\n";

    fn plan_of(text: &str, requested: Requested) -> Result<Plan, Vec<String>> {
        let source = Source {
            path: "a.toml".into(),
            text: text.to_string(),
        };
        let overrides = Overrides {
            attach: requested,
            ..Overrides::default()
        };
        build(&source, &overrides).map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn the_file_alone_attaches_to_a_compose_service() {
        let plan = plan_of(ATTACHED, Requested::default()).unwrap();
        let attach = plan.attach.unwrap();
        assert_eq!(attach.url, "http://127.0.0.1:8080");
        assert_eq!(
            attach.selector(),
            "com.docker.compose.project=shop, com.docker.compose.service=app"
        );
        assert_eq!(plan.service.replicas, 0, "counted when the run starts");
    }

    #[test]
    fn the_command_line_wins_and_replaces_the_whole_selection() {
        let requested = Requested {
            url: Some("http://127.0.0.1:9000/".into()),
            selector: vec!["app.role=replica".into(), "tier=web".into()],
            ..Requested::default()
        };
        let attach = plan_of(ATTACHED, requested).unwrap().attach.unwrap();
        assert_eq!(attach.url, "http://127.0.0.1:9000");
        assert_eq!(attach.selector(), "app.role=replica, tier=web");
    }

    #[test]
    fn a_scenario_without_attach_still_needs_replicas() {
        let text = ATTACHED.replace("[attach]\nurl = \"http://127.0.0.1:8080\"\ncompose_project = \"shop\"\nservice = \"app\"\n", "");
        let problems = plan_of(&text, Requested::default()).unwrap_err();
        assert!(
            problems[0].contains("`service.replicas` is missing"),
            "{problems:?}"
        );
    }

    #[test]
    fn fit_counts_the_matched_containers_and_checks_chaos_against_them() {
        let plan = plan_of(ATTACHED, Requested::default()).unwrap();
        assert_eq!(fit(&plan, 3).unwrap().service.replicas, 3);
        let err = fit(&plan, 2).unwrap_err();
        assert!(
            err.contains("targets replica-2, but the selector matches 2 containers"),
            "{err}"
        );
        let mut strict = plan.clone();
        strict.min_alive = 3;
        assert!(fit(&strict, 3).is_ok());
        assert!(fit(&strict, 2).unwrap_err().contains("`min_alive` is 3"));
    }

    #[test]
    fn labels_are_key_equals_value() {
        assert_eq!(
            parse_label("app.role=replica"),
            Ok(("app.role".into(), "replica".into()))
        );
        for bad in ["app.role", "=x", "a=", "a b=c", "a=b c"] {
            assert!(parse_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_http_or_https_with_a_host() {
        assert_eq!(
            check_url("http://127.0.0.1:8080/"),
            Ok("http://127.0.0.1:8080".into())
        );
        assert_eq!(
            check_url("https://shop.local:8443/"),
            Ok("https://shop.local:8443".into())
        );
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "https://",
            "nonsense",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let ftp = check_url("ftp://x").unwrap_err();
        assert!(ftp.contains("not an http:// or https:// URL"), "{ftp}");
    }

    fn check_store(text: &str) -> Result<String, String> {
        check_redis_url("store", text, STORE_EXAMPLE)
    }

    #[test]
    fn the_store_is_a_redis_url_with_a_host_and_a_port_only() {
        assert_eq!(
            check_store("redis://127.0.0.1:6379"),
            Ok("127.0.0.1:6379".into())
        );
        assert_eq!(
            check_store("redis://cache.local:7000/"),
            Ok("cache.local:7000".into())
        );
        assert_eq!(check_store("redis://[::1]:6379"), Ok("[::1]:6379".into()));
        for (bad, why) in [
            ("127.0.0.1:6379", "not a URL"),
            ("cache:6379", "the scheme is \"cache\""),
            ("rediss://127.0.0.1:6379", "the scheme is \"rediss\""),
            ("redis://127.0.0.1", "both a host and a port"),
            ("redis://:6379", "not a URL"),
            ("redis://127.0.0.1:0", "port 0"),
            ("redis://:secret@127.0.0.1:6379", "no password (AUTH)"),
            ("redis://127.0.0.1:6379/2", "no database"),
            ("nonsense", "not a URL"),
        ] {
            let err = check_store(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("e.g. redis://127.0.0.1:6379"), "{err}");
        }
    }

    const PRESSURE: &str =
        "[[chaos]]\nfault = \"memory_pressure\"\nmemory = \"2MiB\"\nat = [\"3s\"]\n";

    #[test]
    fn memory_pressure_runs_on_the_store_attach_names_and_only_there() {
        let named = ATTACHED.replace(
            "service = \"app\"\n",
            "service = \"app\"\nstore = \"redis://127.0.0.1:6379\"\n",
        );
        for target in ["", "target = \"store\"\n"] {
            let plan = plan_of(&format!("{named}{PRESSURE}{target}"), Requested::default())
                .unwrap_or_else(|p| panic!("{p:?}"));
            assert_eq!(
                plan.attach.unwrap().store.as_deref(),
                Some("127.0.0.1:6379")
            );
            assert_eq!(plan.chaos[1].target, Target::Store);
        }
        let problems = plan_of(&format!("{ATTACHED}{PRESSURE}"), Requested::default()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("a.toml:15:9: fault \"memory_pressure\" acts on the stack's store")
                && problems[0].contains("set `store = \"redis://HOST:PORT\"` there"),
            "{problems:?}"
        );
        // Naming the store makes it no target for the faults that act on containers.
        let kill_store = named.replace("target = \"replica-2\"", "target = \"store\"");
        let problems = plan_of(&kill_store, Requested::default()).unwrap_err();
        assert!(
            problems[0].contains("chaos target \"store\": in attach mode faults hit only the containers the selector matches (and \"memory_pressure\" the `[attach] store`)"),
            "{problems:?}"
        );
    }

    #[test]
    fn what_an_attached_stack_cannot_take_is_refused_before_the_run() {
        let latency =
            ATTACHED.replace("fault = \"kill\"", "fault = \"latency\"\ndelay = \"100ms\"");
        let problems = plan_of(&latency, Requested::default()).unwrap_err();
        assert!(
            problems[0].starts_with("a.toml:11:9: fault \"latency\" cannot run on an attached stack (the delaying proxy"),
            "{problems:?}"
        );
        let swarm = ATTACHED.replace(
            "service = \"app\"\n",
            "service = \"app\"\nstore = \"redis://127.0.0.1:6379\"\n[cluster]\nengine = \"swarm\"\n",
        );
        let problems = plan_of(&swarm, Requested::default()).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p
                    .contains("a.toml:7:9: `attach.store` is not used on the swarm engine yet")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_sentinel_is_a_redis_url_next_to_the_store_and_not_on_swarm() {
        let both = ATTACHED.replace(
            "service = \"app\"\n",
            "service = \"app\"\nstore = \"redis://127.0.0.1:6379\"\nsentinel = \"redis://127.0.0.1:26379\"\n",
        );
        let attach = plan_of(&both, Requested::default())
            .unwrap()
            .attach
            .unwrap();
        assert_eq!(attach.store.as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(attach.sentinel.as_deref(), Some("127.0.0.1:26379"));

        let bad = both.replace("redis://127.0.0.1:26379", "127.0.0.1:26379");
        let problems = plan_of(&bad, Requested::default()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("a.toml:8:12: `attach.sentinel` \"127.0.0.1:26379\": not a URL")
                && problems[0].contains("e.g. redis://127.0.0.1:26379"),
            "{problems:?}"
        );

        let alone = ATTACHED.replace(
            "service = \"app\"\n",
            "service = \"app\"\nsentinel = \"redis://127.0.0.1:26379\"\n",
        );
        let problems = plan_of(&alone, Requested::default()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("a.toml:7:12: `attach.sentinel` needs `attach.store`")
                && problems[0].contains("store = \"redis://127.0.0.1:6379\""),
            "{problems:?}"
        );

        let swarm = both.replace("[load]", "[cluster]\nengine = \"swarm\"\n[load]");
        let problems = plan_of(&swarm, Requested::default()).unwrap_err();
        assert!(
            problems.iter().any(|p| p
                .starts_with("a.toml:8:12: `attach.sentinel` is not used on the swarm engine yet")),
            "{problems:?}"
        );
    }

    #[test]
    fn compose_projects_are_lower_case() {
        assert!(check_compose_project("shop_1-a").is_ok());
        assert!(check_compose_project("Shop").is_err());
        assert!(check_compose_project("").is_err());
    }
}
