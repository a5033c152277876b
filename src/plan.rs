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
use crate::load::pacing::{RateProfile, Stage};
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

/// The session traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub model: Model,
    /// Appends per session; each is followed by a read, so a session is
    /// `1 + 2 × appends_per_session` operations.
    pub appends_per_session: u32,
    /// Measured from the start of the load; intervals inside it are left out of the
    /// run's statistics (never out of the checks: a loss in warm-up is a loss).
    pub warmup: Duration,
    /// Stop after this many operations, if the duration has not ended first.
    pub operations: Option<u64>,
    pub request_timeout: Duration,
    /// How often an append whose outcome is unknown is sent again with the same op id.
    pub retries: u32,
    /// Reuse connections (HTTP/1.1 keep-alive).
    pub keep_alive: bool,
    /// Idle connections kept in the pool.
    pub max_idle_connections: usize,
}

impl LoadPlan {
    pub fn ops_per_session(&self) -> u64 {
        1 + 2 * u64::from(self.appends_per_session)
    }
}

/// How operations arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// Operations arrive on a clock, whether or not earlier ones finished; new sessions
    /// arrive at `rate / ops_per_session`.
    Open {
        profile: RateProfile,
        /// Operations in flight at once; beyond it an operation is a missed start.
        max_in_flight: usize,
        /// About how long a session waits between two of its operations: the
        /// harness keeps `rate × session_interval` sessions live.
        session_interval: Duration,
    },
    /// A fixed number of virtual users, each with one operation in flight.
    Closed { users: usize, think: Think },
}

impl Model {
    /// One line for people: "open, 200 ops/s" or "closed, 16 users".
    pub fn describe(&self) -> String {
        match self {
            Model::Open { profile, .. } if profile.stages.is_empty() => {
                format!("open, {} ops/s", profile.start)
            }
            Model::Open { profile, .. } => format!(
                "open, {} → {} ops/s in {} stages",
                profile.start,
                profile.stages.last().map_or(profile.start, |s| s.to),
                profile.stages.len()
            ),
            Model::Closed { users, .. } => format!("closed, {users} users"),
        }
    }
}

/// Pause of a closed-model user between two operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Think {
    Fixed(Duration),
    /// Exponentially distributed with this mean, drawn from the seeded RNG.
    Exponential(Duration),
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
const MODELS: &str = "\"open\", \"closed\"";
const THINK_DISTRIBUTIONS: &str = "\"fixed\", \"exponential\"";
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
        let model = self.model(raw);
        let appends = self.int_in(
            &raw.appends_per_session,
            "load.appends_per_session",
            1,
            100_000,
        );
        let warmup = match &raw.warmup {
            Some(w) => self.duration(w, "load.warmup"),
            None => Some(Duration::ZERO),
        };
        let operations = match &raw.operations {
            Some(n) => self
                .int_in(n, "load.operations", 1, i64::MAX)
                .map(|n| Some(n as u64)),
            None => Some(None),
        };
        let request_timeout = self.optional_duration(
            &raw.request_timeout,
            "load.request_timeout",
            Duration::from_secs(2),
        );
        let retries = match &raw.retries {
            Some(r) => self.int_in(r, "load.retries", 0, 100),
            None => Some(3),
        };
        let max_idle = match &raw.max_idle_connections {
            Some(n) => self.int_in(n, "load.max_idle_connections", 0, 1_000_000),
            None => Some(1024),
        };
        Some(LoadPlan {
            model: model?,
            appends_per_session: appends? as u32,
            warmup: warmup?,
            operations: operations?,
            request_timeout: request_timeout?,
            retries: retries? as u32,
            keep_alive: raw.keep_alive.unwrap_or(true),
            max_idle_connections: max_idle? as usize,
        })
    }

    fn model(&mut self, raw: &scenario::Load) -> Option<Model> {
        let (name, span) = raw
            .model
            .as_ref()
            .map_or(("open", 0..0), |m| (m.get_ref().as_str(), m.span()));
        // Keys of the other model are mistakes, not things to ignore silently.
        let misplaced = |v: &mut Self, key: &str, span: Option<Range<usize>>, model: &str| {
            if let Some(span) = span {
                v.problem(
                    span,
                    format!("`load.{key}` belongs to the {model} model; set `load.model = \"{model}\"` or remove it"),
                );
            }
        };
        match name {
            "open" => {
                misplaced(
                    self,
                    "users",
                    raw.users.as_ref().map(Spanned::span),
                    "closed",
                );
                misplaced(
                    self,
                    "think_time",
                    raw.think_time.as_ref().map(Spanned::span),
                    "closed",
                );
                let profile = self.profile(raw);
                let session_interval = self.optional_duration(
                    &raw.session_interval,
                    "load.session_interval",
                    Duration::from_secs(1),
                );
                let max_in_flight = match &raw.max_in_flight {
                    Some(n) => self.int_in(n, "load.max_in_flight", 1, 1_000_000),
                    None => Some(10_000),
                };
                Some(Model::Open {
                    profile: profile?,
                    max_in_flight: max_in_flight? as usize,
                    session_interval: session_interval?,
                })
            }
            "closed" => {
                misplaced(self, "rate", raw.rate.as_ref().map(Spanned::span), "open");
                misplaced(
                    self,
                    "session_interval",
                    raw.session_interval.as_ref().map(Spanned::span),
                    "open",
                );
                misplaced(
                    self,
                    "stages",
                    raw.stages
                        .as_ref()
                        .and_then(|s| s.first())
                        .map(|s| s.to.span()),
                    "open",
                );
                let Some(users) = &raw.users else {
                    self.problem(
                        span,
                        "the closed model needs `load.users`, the number of virtual users",
                    );
                    return None;
                };
                let users = self.int_in(users, "load.users", 1, 100_000);
                let think = self.think(raw);
                Some(Model::Closed {
                    users: users? as usize,
                    think: think?,
                })
            }
            other => {
                self.problem(
                    span,
                    format!("unknown load model {other:?}; accepted values: {MODELS}"),
                );
                None
            }
        }
    }

    fn rate(&mut self, value: &Spanned<f64>, key: &str, allow_zero: bool) -> Option<f64> {
        let r = *value.get_ref();
        let ok = r.is_finite() && r <= 1e7 && if allow_zero { r >= 0.0 } else { r > 0.0 };
        if !ok {
            let least = if allow_zero { "0" } else { "more than 0" };
            self.problem(
                value.span(),
                format!(
                    "`{key}` is {r}; it must be {least} and at most 10000000 operations per second"
                ),
            );
            return None;
        }
        Some(r)
    }

    fn profile(&mut self, raw: &scenario::Load) -> Option<RateProfile> {
        match (&raw.rate, &raw.stages) {
            (Some(rate), None) => Some(RateProfile::constant(self.rate(
                rate,
                "load.rate",
                false,
            )?)),
            (rate, Some(stages)) if !stages.is_empty() => {
                let start = match (rate, &raw.start_rate) {
                    (Some(r), _) => self.rate(r, "load.rate", true),
                    (None, Some(r)) => self.rate(r, "load.start_rate", true),
                    (None, None) => Some(0.0),
                };
                let stages: Vec<Option<Stage>> = stages
                    .iter()
                    .map(|s| {
                        let to = self.rate(&s.to, "load.stages.to", true);
                        let over = self.positive_duration(&s.over, "load.stages.over");
                        Some(Stage {
                            to: to?,
                            over: over?,
                        })
                    })
                    .collect();
                Some(RateProfile {
                    start: start?,
                    stages: stages.into_iter().collect::<Option<_>>()?,
                })
            }
            _ => {
                let span = raw
                    .model
                    .as_ref()
                    .map_or(raw.appends_per_session.span(), Spanned::span);
                self.problem(
                    span,
                    "the open model needs `load.rate` (operations per second) or `load.stages` \
                     (for example stages = [{ to = 200, over = \"10s\" }])",
                );
                None
            }
        }
    }

    fn think(&mut self, raw: &scenario::Load) -> Option<Think> {
        let time = match &raw.think_time {
            Some(t) => self.duration(t, "load.think_time")?,
            None => Duration::ZERO,
        };
        match raw
            .think_distribution
            .as_ref()
            .map(|d| (d.get_ref().as_str(), d.span()))
        {
            None | Some(("fixed", _)) => Some(Think::Fixed(time)),
            Some(("exponential", _)) => Some(Think::Exponential(time)),
            Some((other, span)) => {
                self.problem(
                    span,
                    format!("unknown think distribution {other:?}; accepted values: {THINK_DISTRIBUTIONS}"),
                );
                None
            }
        }
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
model = "closed"
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
            plan.load.model,
            Model::Closed {
                users: 8,
                think: Think::Fixed(Duration::ZERO)
            }
        );
        assert_eq!(plan.load.ops_per_session(), 11);
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
    fn open_model_takes_a_rate_or_stages() {
        let open = GOOD.replace(
            "model = \"closed\"\nusers = 8",
            "rate = 250\nwarmup = \"2s\"",
        );
        let plan = plan(&open).unwrap();
        assert_eq!(
            plan.load.model,
            Model::Open {
                profile: RateProfile::constant(250.0),
                max_in_flight: 10_000,
                session_interval: Duration::from_secs(1),
            }
        );
        assert_eq!(plan.load.warmup, Duration::from_secs(2));
        let staged = GOOD.replace(
            "model = \"closed\"\nusers = 8",
            "model = \"open\"\nstages = [{ to = 100, over = \"10s\" }, { to = 50, over = \"5s\" }]",
        );
        let Model::Open { profile, .. } = plan_model(&staged) else {
            panic!("open model expected")
        };
        assert_eq!(profile.start, 0.0);
        assert_eq!(profile.stages.len(), 2);
        assert_eq!(profile.stages[1].to, 50.0);
    }

    fn plan_model(text: &str) -> Model {
        plan(text).unwrap().load.model
    }

    #[test]
    fn load_model_mistakes_are_named() {
        let cases = [
            (
                "model = \"closed\"\nusers = 8",
                "model = \"open\"",
                "needs `load.rate`",
            ),
            (
                "model = \"closed\"\nusers = 8",
                "model = \"open\"\nrate = 0",
                "`load.rate` is 0",
            ),
            (
                "model = \"closed\"\nusers = 8",
                "rate = 10\nusers = 8",
                "`load.users` belongs to the closed model",
            ),
            (
                "model = \"closed\"\nusers = 8",
                "model = \"closed\"",
                "needs `load.users`",
            ),
            (
                "model = \"closed\"\nusers = 8",
                "model = \"closed\"\nusers = 8\nrate = 5",
                "`load.rate` belongs to the open model",
            ),
            (
                "model = \"closed\"",
                "model = \"poisson\"",
                "accepted values: \"open\", \"closed\"",
            ),
            (
                "users = 8",
                "users = 8\nthink_time = \"1s\"\nthink_distribution = \"gauss\"",
                "\"fixed\", \"exponential\"",
            ),
        ];
        for (from, to, expected) in cases {
            let problems = plan(&GOOD.replace(from, to)).unwrap_err();
            assert!(
                problems.iter().any(|p| p.message.contains(expected)),
                "{to:?}: {problems:#?}"
            );
        }
    }

    #[test]
    fn zero_duration_is_rejected() {
        let problems = plan(&GOOD.replace("\"30s\"", "\"0s\"")).unwrap_err();
        assert!(problems[0].message.contains("longer than zero"));
    }
}
