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

use crate::cluster::template::{Placeholder, Template};
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
    pub balancer: BalancerPlan,
    pub load: LoadPlan,
    /// Chaos skips a fault that would leave fewer healthy replicas than this.
    pub min_alive: usize,
    pub chaos: Vec<ChaosPlan>,
    /// Thresholds the run must meet, and tolerances for `compare`.
    pub gates: crate::gate::Gates,
    /// The scenario as written, kept for the report.
    pub source: Source,
    /// The command-line overrides applied to it, as typed (secrets masked).
    pub overrides: Vec<String>,
    /// Set when the run tests a stack that is already running: the harness starts
    /// none of it, and `service.replicas` is 0 until the matched containers are
    /// counted ([`crate::attach::fit`]).
    pub attach: Option<crate::attach::AttachPlan>,
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
    /// Arguments for the image's entry point; empty keeps the image's own.
    pub command: Vec<Template>,
    /// Replaces the image's entry point when not empty.
    pub entrypoint: Vec<Template>,
    /// Environment of every replica: what the harness sets, then the scenario's, which
    /// wins.
    pub env: BTreeMap<String, Template>,
}

#[derive(Debug, Clone)]
pub struct StorePlan {
    pub kind: StoreKind,
    pub image: String,
    /// Arguments for the image's entry point; for Redis, the harness's defaults when
    /// empty (plus the persistence flags in any case).
    pub command: Vec<Template>,
    pub entrypoint: Vec<Template>,
    pub env: BTreeMap<String, Template>,
    /// The port the store listens on inside its container.
    pub port: u16,
    pub persistence: Persistence,
}

impl StorePlan {
    /// One line for people: "sessionstorm/redis:latest (redis, port 6379, no persistence)".
    pub fn describe(&self) -> String {
        let persistence = match self.persistence {
            Persistence::None => "no persistence",
            Persistence::Aof => "AOF, fsync always, on a volume",
        };
        match self.kind {
            StoreKind::None => "none".to_string(),
            StoreKind::Redis => {
                format!("{} (redis, port {}, {persistence})", self.image, self.port)
            }
            StoreKind::Tcp => format!("{} (port {})", self.image, self.port),
        }
    }
}

/// What the store is, as far as the harness needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Ready when it answers PING; may have AOF persistence.
    Redis,
    /// Any other store: ready when its port accepts TCP connections.
    Tcp,
    /// No store container (a service with cookie-only sessions, say).
    None,
}

/// How the session store keeps its data across a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// In memory only: a restarted store is empty.
    None,
    /// Append-only file with `appendfsync always`, on a volume of the run.
    Aof,
}

#[derive(Debug, Clone, Default)]
pub struct BalancerPlan {
    pub kind: BalancerKind,
    /// HAProxy: pin each session to the replica that created it with a cookie.
    /// Direct: a session stays on its replica until a request to it fails.
    pub sticky: bool,
    /// HAProxy: the port on 127.0.0.1 it is published on, when the scenario fixes
    /// one (to open the service in a browser during the run); else a free one.
    pub port: Option<u16>,
}

impl BalancerPlan {
    /// One line for people: "haproxy (sticky cookie)".
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            BalancerKind::Haproxy => "haproxy",
            BalancerKind::Direct => "direct",
        };
        let sticky = match (self.sticky, self.kind) {
            (false, _) => "",
            (true, BalancerKind::Haproxy) => " (sticky cookie)",
            (true, BalancerKind::Direct) => " (sticky)",
        };
        format!("{kind}{sticky}")
    }
}

/// What spreads the load over the replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BalancerKind {
    /// An HAProxy container, the only published port.
    #[default]
    Haproxy,
    /// No balancer: every replica publishes its port on 127.0.0.1 and the load
    /// spreads requests over them itself, so failure windows show raw.
    Direct,
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
    /// Whom the load trusts on `https://` URLs (`[load.tls]`).
    pub tls: crate::tls::TlsPlan,
    /// `[flow]`: sessions run as these HTTP steps instead of the session contract;
    /// `appends_per_session` then counts rounds of `flow.steps`.
    pub flow: Option<std::sync::Arc<crate::flow::Flow>>,
}

impl LoadPlan {
    pub fn ops_per_session(&self) -> u64 {
        match &self.flow {
            Some(flow) => flow.ops_per_session(self.appends_per_session),
            None => 1 + 2 * u64::from(self.appends_per_session),
        }
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
    pub schedule: Schedule,
    /// Quiet time at the start of the run before the first fault (periodic, Poisson
    /// and rolling schedules).
    pub start_after: Duration,
    /// How long a temporary fault lasts before it is reverted.
    pub duration: Duration,
    /// `stop` and `restart`: time between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// What happens to the container after `kill` or `stop`.
    pub after_kill: AfterKill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL.
    Kill,
    /// SIGTERM, then SIGKILL after the grace period.
    Stop,
    /// Stop (with grace) and start the same container again.
    Restart,
    /// Freeze every process of the container for `duration`, then thaw it.
    Pause,
    /// Take the container off the run's network for `duration`, then reconnect it.
    Disconnect,
    /// Drop every packet to and from the container for `duration` (iptables in its
    /// network namespace), without taking it off the network.
    Blackhole,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Restart => "restart",
            Fault::Pause => "pause",
            Fault::Disconnect => "disconnect",
            Fault::Blackhole => "blackhole",
        }
    }

    /// Faults that last `duration` and are then reverted.
    pub fn is_temporary(self) -> bool {
        matches!(self, Fault::Pause | Fault::Disconnect | Fault::Blackhole)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One replica, drawn from the seeded RNG.
    RandomReplica,
    /// The replica in this slot.
    Replica(usize),
    /// This percentage of the replicas (rounded up, at least one), drawn at once.
    Share(u8),
    Store,
    Balancer,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::RandomReplica => f.write_str("random-replica"),
            Target::Replica(slot) => write!(f, "replica-{slot}"),
            Target::Share(pct) => write!(f, "{pct}%"),
            Target::Store => f.write_str("store"),
            Target::Balancer => f.write_str("balancer"),
        }
    }
}

/// When an entry's faults happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every so often, after `start_after`.
    Every(Duration),
    /// Exponential gaps with this mean (a Poisson process), drawn from the seed.
    Poisson(Duration),
    /// At these offsets from the start of the load.
    At(Vec<Duration>),
    /// Every replica once, slot by slot, this far apart.
    Rolling(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKill {
    /// A fresh container takes the slot (replicas); store and balancer are started again.
    Replace,
    /// The same container is started again.
    Restart,
    /// Nothing: the cluster shrinks.
    None,
}

/// Values given on the command line; they win over the scenario file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub seed: Option<u64>,
    pub duration: Option<Duration>,
    /// `--set key=value` and its shortcuts, applied to the scenario before validation.
    pub set: Vec<crate::overrides::Setting>,
    /// `--attach URL` with `--selector` or `--compose-project`.
    pub attach: crate::attach::Requested,
}

const FAULTS: &str = "\"kill\", \"stop\", \"restart\", \"pause\", \"disconnect\", \"blackhole\"";
const TARGETS: &str =
    "\"random-replica\", \"replica-<slot>\" (from 0), a share like \"25%\", \"store\", \"balancer\"";
const AFTER_KILL: &str = "\"replace\", \"restart\", \"none\"";
const PERSISTENCE: &str = "\"none\", \"aof\"";
const SCHEDULE_KEYS: &str =
    "`every = \"5s\"`, `mean_interval = \"3s\"`, `at = [\"10s\", \"25s\"]` or `schedule = \"rolling\"`";
const MODELS: &str = "\"open\", \"closed\"";
const THINK_DISTRIBUTIONS: &str = "\"fixed\", \"exponential\"";
const BALANCERS: &str = "\"haproxy\", \"direct\"";
const STORE_KINDS: &str = "\"redis\", \"tcp\", \"none\"";
/// More faults than this from one chaos entry is a mistake (`every = "1ms"`), and
/// drawing its timeline would take the machine's memory.
pub const MAX_FAULTS_PER_ENTRY: usize = 10_000;
/// The longest duration a scenario may give: far beyond any run, and small enough
/// that adding it to a clock cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
const DURATION_FORMAT: &str =
    "a number with a unit: ms, s, m or h, for example \"30s\" or \"1m 30s\"";

/// Validates the scenario in `source` and applies the overrides.
pub fn build(source: &Source, overrides: &Overrides) -> Result<Plan, Vec<Problem>> {
    let raw = crate::overrides::parse(source, &overrides.set).map_err(|p| vec![p])?;
    let mut v = Validator {
        source,
        set: &overrides.set,
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

    let (attach, attach_problems) =
        crate::attach::plan(source, &overrides.set, &overrides.attach, &raw);
    v.problems.extend(attach_problems);
    let attached = attach.is_some() || raw.attach.is_some() || overrides.attach.url.is_some();
    let store = v.store(&raw.store);
    let has_store = store.kind != StoreKind::None;
    let service = v.service(&raw.service, has_store, attached);
    let balancer = v.balancer(&raw.balancer);
    let mut load = v.load(&raw.load);
    let tls = crate::tls::validate(source, &overrides.set, raw.load.tls.as_ref())
        .map_err(|problems| v.problems.extend(problems))
        .unwrap_or_default();
    if let Some(load) = &mut load {
        load.tls = tls;
    }
    if let Some(raw_flow) = &raw.flow {
        let flow = crate::flow::validate(&mut v, raw_flow).map(std::sync::Arc::new);
        if let Some(load) = &mut load {
            load.flow = flow;
        }
    }
    // Attached, the replicas are counted at the start of the run, and checked then.
    let replicas = match &service {
        Some(s) if !attached => s.replicas,
        _ => 64,
    };
    let min_alive = match &raw.min_alive {
        Some(m) => v
            .int_in(m, "min_alive", 0, replicas as i64)
            .map(|m| m as usize),
        None => Some(1.min(replicas)),
    };
    let chaos: Vec<_> = raw.chaos.iter().map(|c| v.chaos(c, replicas)).collect();
    for (raw_entry, entry) in raw.chaos.iter().zip(&chaos) {
        let Some(entry) = entry else { continue };
        let span = || {
            raw_entry
                .target
                .as_ref()
                .map_or(raw_entry.fault.span(), |t| t.span())
        };
        if entry.target == Target::Balancer && balancer.kind == BalancerKind::Direct {
            v.problem(
                span(),
                "chaos target \"balancer\": with `balancer.kind = \"direct\"` there is no balancer; target replicas, or use kind \"haproxy\"",
            );
        }
        if entry.target == Target::Store && !has_store {
            v.problem(
                span(),
                "chaos target \"store\": with `store.kind = \"none\"` there is no store; target replicas, or configure a store",
            );
        }
    }
    if let Some(total) = overrides.duration.or(duration) {
        for (raw_entry, entry) in raw.chaos.iter().zip(&chaos) {
            let Some(entry) = entry else { continue };
            let window = total.saturating_sub(entry.start_after).as_secs_f64();
            let faults = match &entry.schedule {
                Schedule::Every(d) | Schedule::Poisson(d) => window / d.as_secs_f64().max(1e-9),
                Schedule::At(_) | Schedule::Rolling(_) => 0.0,
            };
            if faults > MAX_FAULTS_PER_ENTRY as f64 {
                v.problem(
                    raw_entry.fault.span(),
                    format!(
                        "this chaos entry would inject about {faults:.0} faults in {}; at most {MAX_FAULTS_PER_ENTRY} per entry: space them further apart",
                        humantime::format_duration(total)
                    ),
                );
            }
        }
    }
    let gates = crate::gate::Gates::validate(&raw.gates, source, &overrides.set)
        .map_err(|problems| v.problems.extend(problems))
        .unwrap_or_default();

    if !v.problems.is_empty() {
        return Err(v.problems);
    }
    // Every `None` above pushed a problem, so all of these are present.
    let (Some(seed), Some(duration), Some(service), Some(load), Some(min_alive)) =
        (seed, duration, service, load, min_alive)
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
        balancer,
        load,
        min_alive,
        chaos: chaos.into_iter().flatten().collect(),
        gates,
        source: source.clone(),
        overrides: overrides.set.iter().map(|s| s.origin.clone()).collect(),
        attach,
    })
}

/// Collects problems while reading values; each reader returns `None` after recording one.
pub(crate) struct Validator<'a> {
    source: &'a Source,
    /// Overrides whose values may be the ones found wrong.
    set: &'a [crate::overrides::Setting],
    problems: Vec<Problem>,
}

impl Validator<'_> {
    pub(crate) fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let problem = crate::overrides::locate(self.source, self.set, span, message);
        self.problems.push(problem);
    }

    /// Problems recorded so far, to tell whether a part added any.
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub(crate) fn int_in(
        &mut self,
        value: &Spanned<i64>,
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
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
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    value.span(),
                    format!(
                        "`{key}` = {:?} is too long; durations are at most 30 days",
                        value.get_ref()
                    ),
                );
                None
            }
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

    fn service(
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
            command: command?,
            entrypoint: entrypoint?,
            env: env?,
        })
    }

    /// `[store]`. Without `kind`, the built-in Redis (or no `image`) is `redis` and
    /// any other image is `tcp`. A bad kind still yields a plan (Redis) so the other
    /// keys are checked too.
    fn store(&mut self, raw: &scenario::Store) -> StorePlan {
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
        StorePlan {
            kind,
            image,
            command: command.unwrap_or_default(),
            entrypoint: entrypoint.unwrap_or_default(),
            env: env.unwrap_or_default(),
            port: port.unwrap_or(6379),
            persistence,
        }
    }

    fn balancer(&mut self, raw: &scenario::Balancer) -> BalancerPlan {
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
            tls: crate::tls::TlsPlan::default(),
            flow: None,
        })
    }

    fn model(&mut self, raw: &scenario::Load) -> Option<Model> {
        // Without `model`, `users` alone says closed; anything else is open.
        let implied = if raw.users.is_some() && raw.rate.is_none() && raw.stages.is_none() {
            "closed"
        } else {
            "open"
        };
        let (name, span) = raw
            .model
            .as_ref()
            .map_or((implied, 0..0), |m| (m.get_ref().as_str(), m.span()));
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
            // 1e300 written out is three hundred digits.
            let r = if r.abs() > 1e9 {
                format!("{r:e}")
            } else {
                r.to_string()
            };
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

    fn chaos(&mut self, raw: &scenario::Chaos, replicas: usize) -> Option<ChaosPlan> {
        let fault = match raw.fault.get_ref().as_str() {
            "kill" => Some(Fault::Kill),
            "stop" => Some(Fault::Stop),
            "restart" => Some(Fault::Restart),
            "pause" => Some(Fault::Pause),
            "disconnect" => Some(Fault::Disconnect),
            "blackhole" => Some(Fault::Blackhole),
            other => {
                self.problem(
                    raw.fault.span(),
                    format!("unknown fault {other:?}; accepted values: {FAULTS}"),
                );
                None
            }
        };
        let target = match &raw.target {
            None => Some(Target::RandomReplica),
            Some(t) => self.target(t, replicas),
        };
        let schedule = self.schedule(raw);
        let start_after = match &raw.start_after {
            Some(s) => self.duration(s, "chaos.start_after"),
            None => Some(Duration::ZERO),
        };
        let temporary = fault.is_some_and(Fault::is_temporary);
        let duration = match &raw.duration {
            Some(d) if !temporary => {
                if fault.is_some() {
                    self.problem(
                        d.span(),
                        "`chaos.duration` applies only to temporary faults (\"pause\", \"disconnect\", \"blackhole\")",
                    );
                }
                None
            }
            d => self.optional_duration(d, "chaos.duration", Duration::from_secs(3)),
        };
        let grace = self.optional_duration(&raw.grace, "chaos.grace", Duration::from_secs(2));
        let after_kill = match &raw.after_kill {
            None => Some(AfterKill::Replace),
            Some(a) if !matches!(fault, Some(Fault::Kill | Fault::Stop) | None) => {
                self.problem(
                    a.span(),
                    "`chaos.after_kill` applies only to \"kill\" and \"stop\"",
                );
                None
            }
            Some(a) => {
                match a.get_ref().as_str() {
                    "replace" => Some(AfterKill::Replace),
                    "restart" => Some(AfterKill::Restart),
                    "none" => Some(AfterKill::None),
                    other => {
                        self.problem(
                        a.span(),
                        format!("unknown `chaos.after_kill` {other:?}; accepted values: {AFTER_KILL}"),
                    );
                        None
                    }
                }
            }
        };
        if let (Some(Schedule::Rolling(_)), Some(t)) = (&schedule, &target) {
            if *t != Target::RandomReplica {
                let span = raw.target.as_ref().map_or(0..0, |t| t.span());
                self.problem(
                    span,
                    "a rolling schedule goes through every replica itself; leave `target` out",
                );
                return None;
            }
        }
        Some(ChaosPlan {
            fault: fault?,
            target: target?,
            schedule: schedule?,
            start_after: start_after?,
            duration: duration?,
            grace: grace?,
            after_kill: after_kill?,
        })
    }

    fn target(&mut self, raw: &Spanned<String>, replicas: usize) -> Option<Target> {
        let text = raw.get_ref().as_str();
        let bad = |v: &mut Self, why: String| {
            v.problem(raw.span(), why);
            None
        };
        match text {
            "random-replica" => Some(Target::RandomReplica),
            "store" => Some(Target::Store),
            "balancer" => Some(Target::Balancer),
            _ => {
                if let Some(slot) = text.strip_prefix("replica-") {
                    match slot.parse::<usize>() {
                        Ok(slot) if slot < replicas => Some(Target::Replica(slot)),
                        _ => bad(
                            self,
                            format!(
                                "chaos target {text:?} names no replica; there are {replicas}: replica-0 to replica-{}",
                                replicas.saturating_sub(1)
                            ),
                        ),
                    }
                } else if let Some(pct) = text.strip_suffix('%') {
                    match pct.trim().parse::<u8>() {
                        Ok(p) if (1..=100).contains(&p) => Some(Target::Share(p)),
                        _ => bad(
                            self,
                            format!("chaos target {text:?}: a share is 1% to 100%"),
                        ),
                    }
                } else {
                    bad(
                        self,
                        format!("unknown chaos target {text:?}; accepted values: {TARGETS}"),
                    )
                }
            }
        }
    }

    fn schedule(&mut self, raw: &scenario::Chaos) -> Option<Schedule> {
        let rolling = match &raw.schedule {
            None => false,
            Some(s) if s.get_ref() == "rolling" => true,
            Some(s) => {
                self.problem(
                    s.span(),
                    format!(
                        "unknown `chaos.schedule` {:?}; accepted values: \"rolling\" (or use {SCHEDULE_KEYS})",
                        s.get_ref()
                    ),
                );
                return None;
            }
        };
        let given = [
            raw.every.is_some() && !rolling,
            raw.mean_interval.is_some(),
            raw.at.is_some(),
            rolling,
        ];
        let span = raw.fault.span();
        match given.iter().filter(|g| **g).count() {
            0 => {
                self.problem(
                    span,
                    format!("this chaos entry has no schedule; add one of {SCHEDULE_KEYS}"),
                );
                return None;
            }
            1 => {}
            _ => {
                self.problem(
                    span,
                    format!(
                        "this chaos entry has more than one schedule; keep one of {SCHEDULE_KEYS}"
                    ),
                );
                return None;
            }
        }
        if rolling {
            let spacing =
                self.optional_duration(&raw.every, "chaos.every", Duration::from_secs(5))?;
            return Some(Schedule::Rolling(spacing));
        }
        if let Some(every) = &raw.every {
            return self
                .positive_duration(every, "chaos.every")
                .map(Schedule::Every);
        }
        if let Some(mean) = &raw.mean_interval {
            return self
                .positive_duration(mean, "chaos.mean_interval")
                .map(Schedule::Poisson);
        }
        let at = raw.at.as_ref()?;
        if at.get_ref().is_empty() {
            self.problem(
                at.span(),
                "`chaos.at` is empty; list offsets like [\"10s\", \"25s\"]",
            );
            return None;
        }
        let offsets: Vec<Option<Duration>> = at
            .get_ref()
            .iter()
            .map(|o| self.duration(o, "chaos.at"))
            .collect();
        let mut offsets: Vec<Duration> = offsets.into_iter().collect::<Option<_>>()?;
        offsets.sort();
        Some(Schedule::At(offsets))
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
                schedule: Schedule::Every(Duration::from_secs(5)),
                start_after: Duration::ZERO,
                duration: Duration::from_secs(3),
                grace: Duration::from_secs(2),
                after_kill: AfterKill::Replace,
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
            ..Overrides::default()
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

    #[test]
    fn users_alone_imply_the_closed_model() {
        let implied = GOOD.replace("model = \"closed\"\n", "");
        assert!(matches!(
            plan_model(&implied),
            Model::Closed { users: 8, .. }
        ));
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

    fn chaos_problems(chaos: &str) -> Vec<String> {
        let text = GOOD.replace("[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n", chaos);
        plan(&text)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn new_chaos_keys_parse() {
        let text = GOOD.replace(
            "[[chaos]]\nfault = \"kill\"\nevery = \"5s\"\n",
            "min_alive = 2\n[[chaos]]\nfault = \"pause\"\ntarget = \"34%\"\nmean_interval = \"3s\"\nduration = \"1s\"\n\
             [[chaos]]\nfault = \"stop\"\ntarget = \"replica-2\"\nat = [\"9s\", \"2s\"]\ngrace = \"1s\"\nafter_kill = \"none\"\n\
             [[chaos]]\nfault = \"restart\"\nschedule = \"rolling\"\n",
        );
        // `min_alive` is a top-level key: put it before the first table.
        let text = format!("min_alive = 2\n{}", text.replace("min_alive = 2\n", ""));
        let plan = plan(&text).unwrap();
        assert_eq!(plan.min_alive, 2);
        assert_eq!(plan.chaos[0].target, Target::Share(34));
        assert_eq!(
            plan.chaos[0].schedule,
            Schedule::Poisson(Duration::from_secs(3))
        );
        assert_eq!(plan.chaos[0].duration, Duration::from_secs(1));
        assert_eq!(plan.chaos[1].target, Target::Replica(2));
        assert_eq!(
            plan.chaos[1].schedule,
            Schedule::At(vec![Duration::from_secs(2), Duration::from_secs(9)])
        );
        assert_eq!(plan.chaos[1].after_kill, AfterKill::None);
        assert_eq!(
            plan.chaos[2].schedule,
            Schedule::Rolling(Duration::from_secs(5))
        );
    }

    #[test]
    fn each_new_chaos_key_is_checked_with_its_place_and_accepted_values() {
        let cases = [
            (
                "[[chaos]]\nfault = \"kill\"\ntarget = \"replica-3\"\nevery = \"1s\"\n",
                "replica-0 to replica-2",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\ntarget = \"150%\"\nevery = \"1s\"\n",
                "1% to 100%",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\ntarget = \"db\"\nevery = \"1s\"\n",
                "\"store\", \"balancer\"",
            ),
            ("[[chaos]]\nfault = \"kill\"\n", "has no schedule"),
            (
                "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nat = [\"2s\"]\n",
                "more than one schedule",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\nschedule = \"sometimes\"\n",
                "\"rolling\"",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\nat = [\"2 fortnights\"]\n",
                "chaos.at",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nduration = \"2s\"\n",
                "only to temporary faults",
            ),
            (
                "[[chaos]]\nfault = \"pause\"\nevery = \"1s\"\nafter_kill = \"none\"\n",
                "only to \"kill\" and \"stop\"",
            ),
            (
                "[[chaos]]\nfault = \"kill\"\nevery = \"1s\"\nafter_kill = \"resurrect\"\n",
                "\"replace\", \"restart\", \"none\"",
            ),
            (
                "[[chaos]]\nfault = \"fire\"\nevery = \"1s\"\n",
                "\"blackhole\"",
            ),
            (
                "[[chaos]]\nfault = \"restart\"\nschedule = \"rolling\"\ntarget = \"store\"\n",
                "leave `target` out",
            ),
        ];
        for (chaos, expected) in cases {
            let problems = chaos_problems(chaos);
            assert_eq!(problems.len(), 1, "{chaos}: {problems:#?}");
            assert!(problems[0].starts_with("s.toml:1"), "{problems:#?}");
            assert!(problems[0].contains(expected), "{chaos}: {problems:#?}");
        }
    }

    #[test]
    fn min_alive_and_store_persistence_are_checked() {
        let problems = plan(&format!("min_alive = 4\n{GOOD}")).unwrap_err();
        assert!(
            problems[0].message.contains("between 0 and 3"),
            "{problems:?}"
        );
        let text = GOOD.replace("[load]", "[store]\npersistence = \"rdb\"\n[load]");
        let problems = plan(&text).unwrap_err();
        assert!(
            problems[0].message.contains("\"none\", \"aof\""),
            "{problems:?}"
        );
        let text = GOOD.replace(
            "[load]",
            "[store]\npersistence = \"aof\"\n[balancer]\nsticky = true\n[load]",
        );
        let plan = plan(&text).unwrap();
        assert_eq!(plan.store.persistence, Persistence::Aof);
        assert!(plan.balancer.sticky);
    }
    fn replica_values(port: u16) -> crate::cluster::template::Values<'static> {
        crate::cluster::template::Values {
            store: "store",
            store_port: port,
            replica: Some((1, "replica-1.0")),
        }
    }

    #[test]
    fn the_demo_finds_its_store_without_configuration() {
        let plan = plan(GOOD).unwrap();
        assert_eq!(plan.store.kind, StoreKind::Redis);
        assert_eq!(plan.store.port, 6379);
        assert_eq!(plan.balancer.kind, BalancerKind::Haproxy);
        let url = plan.service.env["SESSION_STORE"].render(&replica_values(6379));
        assert_eq!(url, "redis://store:6379");
        assert!(plan.service.command.is_empty() && plan.store.command.is_empty());
    }

    #[test]
    fn any_image_any_store_and_a_direct_balancer() {
        let text = GOOD.replace(
            "env = { MODE = \"redis\" }\n",
            "env = { MODE = \"redis\", SESSION_STORE = \"redis://{store}:{store_port}/{replica}\" }\n\
             command = [\"--name\", \"{instance}\"]\n\
             [store]\nimage = \"sessionstorm/memcached\"\nport = 11211\ncommand = [\"-p\", \"{store_port}\"]\n\
             [balancer]\nkind = \"direct\"\nsticky = true\n",
        );
        let given = plan(&text).unwrap();
        assert_eq!(
            given.store.kind,
            StoreKind::Tcp,
            "another image is a tcp store"
        );
        assert_eq!(given.store.port, 11211);
        let values = replica_values(11211);
        assert_eq!(
            given.service.env["SESSION_STORE"].render(&values),
            "redis://store:11211/1"
        );
        assert_eq!(given.service.command[1].render(&values), "replica-1.0");
        assert_eq!(given.store.command[1].render(&values), "11211");
        assert_eq!(given.balancer.kind, BalancerKind::Direct);
        assert_eq!(given.balancer.describe(), "direct (sticky)");
        assert_eq!(
            given.store.describe(),
            "sessionstorm/memcached (port 11211)"
        );

        let none = GOOD.replace("[load]", "[store]\nkind = \"none\"\n[load]");
        let without = plan(&none).unwrap();
        assert_eq!(without.store.kind, StoreKind::None);
        assert!(!without.service.env.contains_key("SESSION_STORE"));
    }

    #[test]
    fn a_fixed_balancer_port_is_for_haproxy_only() {
        let fixed = GOOD.replace("[load]", "[balancer]\nport = 18080\n[load]");
        assert_eq!(plan(&fixed).unwrap().balancer.port, Some(18080));
        let zero = GOOD.replace("[load]", "[balancer]\nport = 0\n[load]");
        assert!(plan(&zero).unwrap_err()[0]
            .message
            .contains("`balancer.port` is 0"));
        let direct = GOOD.replace(
            "[load]",
            "[balancer]\nkind = \"direct\"\nport = 18080\n[load]",
        );
        let problems = plan(&direct).unwrap_err();
        assert!(problems[0].message.contains("no balancer"), "{problems:?}");
    }

    #[test]
    fn template_and_store_mistakes_are_all_reported_with_their_place() {
        let text = GOOD.replace(
            "[load]",
            "[store]\nkind = \"tcp\"\npersistence = \"aof\"\ncommand = [\"--name\", \"{instance}\"]\n\
             env = { X = \"{nope}\" }\n[load]",
        );
        let problems = plan(&text).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{text:#?}");
        assert!(text.iter().all(|t| t.starts_with("s.toml:1")), "{text:#?}");
        let all = text.join("\n");
        assert!(all.contains("`store.command`: placeholder {instance} cannot be used here; accepted placeholders: {store}, {store_port} ({replica} and {instance} name a replica"), "{all}");
        assert!(
            all.contains("`store.env.X`: unknown placeholder {nope}"),
            "{all}"
        );
        assert!(
            all.contains("`store.persistence` is a Redis setting"),
            "{all}"
        );
        let store_chaos = GOOD
            .replace("[load]", "[store]\nkind = \"none\"\n[load]")
            .replace(
                "fault = \"kill\"\n",
                "fault = \"kill\"\ntarget = \"store\"\n",
            );
        let problems = plan(&store_chaos).unwrap_err();
        assert!(
            problems[0].message.contains("there is no store"),
            "{problems:?}"
        );
    }
}
