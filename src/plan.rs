//! The validated, normalised run plan: what the engine runs.
//!
//! [`build`] is the one place where raw input (the TOML model of [`crate::scenario`]
//! and the command-line overrides) becomes typed values with defaults filled in. It
//! reports every problem it finds at once, each with its position and the accepted
//! values, so a user fixes a scenario in one round instead of one error per run.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use crate::images::BuiltIn;
use crate::scenario::{self, Problem, Source};

/// Everything a run needs to know, already checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    /// Seeds every random choice of the run (chaos targets), so a run can be replayed.
    pub seed: u64,
    /// How long load and chaos run.
    pub duration: Duration,
    pub service: ServicePlan,
    pub store: StorePlan,
    pub load: LoadPlan,
    pub chaos: Vec<ChaosPlan>,
    /// The scenario as written, kept for the report.
    pub source: Source,
}

#[derive(Debug, Clone)]
pub struct ServicePlan {
    pub image: String,
    pub replicas: usize,
    /// The port the service listens on inside its container.
    pub port: u16,
    /// Answers 200 when a replica can serve; used for readiness and by the balancer.
    pub health_path: String,
    /// How long a replica may take to become healthy before the run gives up.
    pub ready_timeout: Duration,
    /// Extra environment for every replica, on top of what the harness sets.
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct StorePlan {
    pub image: String,
}

/// The closed load model: a fixed number of virtual users, each driving one session
/// at a time.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub users: usize,
    /// Appends per session before the user starts a fresh session.
    pub appends_per_session: u32,
    pub request_timeout: Duration,
    /// How often an append whose outcome is unknown is sent again with the same op id.
    pub retries: u32,
}

/// One chaos entry: a fault applied to a target on a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChaosPlan {
    pub fault: Fault,
    pub target: Target,
    pub every: Duration,
    /// Quiet time at the start of the run before the first fault.
    pub start_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, then a fresh container takes the replica's place.
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One replica, drawn from the seeded RNG.
    RandomReplica,
}

/// Values given on the command line; they win over the scenario file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
}

const FAULTS: &str = "\"kill\"";
const TARGETS: &str = "\"random-replica\"";
const MODELS: &str = "\"closed\"";
const BALANCERS: &str = "\"haproxy\"";
const DURATION_FORMAT: &str =
    "a number with a unit: ms, s, m or h, for example \"30s\" or \"1m 30s\"";

/// Validates the scenario in `source` and applies the overrides.
pub fn build(source: &Source, overrides: &Overrides) -> Result<Plan, Vec<Problem>> {
    let raw = source.parse().map_err(|p| vec![p])?;
    let mut v = Validator {
        source,
        problems: Vec::new(),
    };

    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        v.problem(
            raw.name.span(),
            "`name` must be non-empty and use only letters, digits, '-', '_' or '.' (it becomes part of container and folder names)",
        );
    }
    let seed = match &raw.seed {
        Some(seed) => v.int_at_least(seed, "seed", 0).map(|s| s as u64),
        None => Some(rand::random()),
    };
    let duration = v.positive_duration(&raw.duration, "duration");

    let service = v.service(&raw.service);
    let store = StorePlan {
        image: raw
            .store
            .image
            .as_ref()
            .map_or(BuiltIn::Redis.tag().to_string(), |s| s.get_ref().clone()),
    };
    if let Some(kind) = &raw.balancer.kind {
        if kind.get_ref() != "haproxy" {
            v.problem(
                kind.span(),
                format!(
                    "unknown balancer kind {:?}; accepted values: {BALANCERS}",
                    kind.get_ref()
                ),
            );
        }
    }
    let load = v.load(&raw.load);
    let chaos: Vec<_> = raw.chaos.iter().map(|c| v.chaos(c)).collect();

    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    // Every `None` above pushed a problem, so all of these are present.
    let (Some(seed), Some(duration), Some(service), Some(load)) = (seed, duration, service, load)
    else {
        unreachable!("a missing value always records a problem");
    };
    Ok(Plan {
        name,
        description: raw.description.clone(),
        seed: overrides.seed.unwrap_or(seed),
        duration: overrides.duration.unwrap_or(duration),
        service,
        store,
        load,
        chaos: chaos.into_iter().flatten().collect(),
        source: source.clone(),
    })
}

/// Collects problems while reading values; each reader returns `None` after recording one.
struct Validator<'a> {
    source: &'a Source,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(self.source.problem(span, message));
    }

    fn int_in(&mut self, value: &Spanned<i64>, key: &str, min: i64, max: i64) -> Option<i64> {
        let n = *value.get_ref();
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.problem(
                value.span(),
                format!("`{key}` is {n}; it must be between {min} and {max}"),
            );
            None
        }
    }

    fn int_at_least(&mut self, value: &Spanned<i64>, key: &str, min: i64) -> Option<i64> {
        self.int_in(value, key, min, i64::MAX)
    }

    fn duration(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) => Some(d),
            Err(err) => {
                self.problem(
                    value.span(),
                    format!(
                        "`{key}` = {:?} is not a duration ({err}); write {DURATION_FORMAT}",
                        value.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn positive_duration(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        let d = self.duration(value, key)?;
        if d.is_zero() {
            self.problem(value.span(), format!("`{key}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    fn optional_duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Option<Duration> {
        value
            .as_ref()
            .map_or(Some(default), |v| self.positive_duration(v, key))
    }

    fn service(&mut self, raw: &scenario::Service) -> Option<ServicePlan> {
        let replicas = self.int_in(&raw.replicas, "service.replicas", 1, 64);
        let port = match &raw.port {
            Some(p) => self.int_in(p, "service.port", 1, 65535),
            None => Some(8080),
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
            health_path,
            ready_timeout: ready_timeout?,
            env: raw.env.clone(),
        })
    }

    fn load(&mut self, raw: &scenario::Load) -> Option<LoadPlan> {
        if let Some(model) = &raw.model {
            if model.get_ref() != "closed" {
                self.problem(
                    model.span(),
                    format!(
                        "unknown load model {:?}; accepted values: {MODELS}",
                        model.get_ref()
                    ),
                );
            }
        }
        let users = self.int_in(&raw.users, "load.users", 1, 100_000);
        let appends = self.int_in(
            &raw.appends_per_session,
            "load.appends_per_session",
            1,
            100_000,
        );
        let request_timeout = self.optional_duration(
            &raw.request_timeout,
            "load.request_timeout",
            Duration::from_secs(2),
        );
        let retries = match &raw.retries {
            Some(r) => self.int_in(r, "load.retries", 0, 100),
            None => Some(3),
        };
        Some(LoadPlan {
            users: users? as usize,
            appends_per_session: appends? as u32,
            request_timeout: request_timeout?,
            retries: retries? as u32,
        })
    }

    fn chaos(&mut self, raw: &scenario::Chaos) -> Option<ChaosPlan> {
        let fault = match raw.fault.get_ref().as_str() {
            "kill" => Some(Fault::Kill),
            other => {
                self.problem(
                    raw.fault.span(),
                    format!("unknown fault {other:?}; accepted values: {FAULTS}"),
                );
                None
            }
        };
        let target = match raw
            .target
            .as_ref()
            .map(|t| (t.get_ref().as_str(), t.span()))
        {
            None | Some(("random-replica", _)) => Some(Target::RandomReplica),
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown chaos target {other:?}; accepted values: {TARGETS}"),
                );
                None
            }
        };
        let every = self.positive_duration(&raw.every, "chaos.every");
        let start_after = match &raw.start_after {
            Some(s) => self.duration(s, "chaos.start_after"),
            None => Some(Duration::ZERO),
        };
        Some(ChaosPlan {
            fault: fault?,
            target: target?,
            every: every?,
            start_after: start_after?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const GOOD: &str = r#"
name = "smoke"
seed = 7
duration = "30s"

[service]
replicas = 3
env = { MODE = "redis" }

[load]
users = 8
appends_per_session = 5

[[chaos]]
fault = "kill"
every = "5s"
"#;

    fn plan(text: &str) -> Result<Plan, Vec<Problem>> {
        let source = Source {
            path: PathBuf::from("s.toml"),
            text: text.to_string(),
        };
        build(&source, &Overrides::default())
    }

    #[test]
    fn good_scenario_gets_defaults() {
        let plan = plan(GOOD).unwrap();
        assert_eq!(plan.seed, 7);
        assert_eq!(plan.duration, Duration::from_secs(30));
        assert_eq!(plan.service.replicas, 3);
        assert_eq!(plan.service.port, 8080);
        assert_eq!(plan.service.image, "sessionstorm/session-app:latest");
        assert_eq!(plan.store.image, "sessionstorm/redis:latest");
        assert_eq!(plan.load.retries, 3);
        assert_eq!(
            plan.chaos,
            vec![ChaosPlan {
                fault: Fault::Kill,
                target: Target::RandomReplica,
                every: Duration::from_secs(5),
                start_after: Duration::ZERO,
            }]
        );
    }

    #[test]
    fn overrides_win() {
        let source = Source {
            path: PathBuf::from("s.toml"),
            text: GOOD.to_string(),
        };
        let overrides = Overrides {
            seed: Some(99),
            duration: Some(Duration::from_secs(3)),
        };
        let plan = build(&source, &overrides).unwrap();
        assert_eq!((plan.seed, plan.duration), (99, Duration::from_secs(3)));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_place() {
        let bad = GOOD
            .replace("replicas = 3", "replicas = 0")
            .replace("users = 8", "users = -1")
            .replace("\"kill\"", "\"explode\"")
            .replace("\"30s\"", "\"5 parsecs\"");
        let problems = plan(&bad).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{text:#?}");
        assert!(
            text[0].starts_with("s.toml:4:12:") && text[0].contains("parsecs"),
            "{text:#?}"
        );
        assert!(
            text[1].contains("service.replicas") && text[1].contains("between 1 and 64"),
            "{text:#?}"
        );
        assert!(text[2].contains("load.users"), "{text:#?}");
        assert!(
            text[3].contains("explode") && text[3].contains("\"kill\""),
            "{text:#?}"
        );
    }

    #[test]
    fn zero_duration_is_rejected() {
        let problems = plan(&GOOD.replace("\"30s\"", "\"0s\"")).unwrap_err();
        assert!(problems[0].message.contains("longer than zero"));
    }
}
