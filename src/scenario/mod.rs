//! The scenario file as the user wrote it: a TOML model, and where each value sits.
//!
//! This module only reads. Turning what was read into something the engine can run
//! (defaults, ranges, units) is [`crate::validate`]'s job, so the engine never sees raw
//! TOML. Beside the file's model sit the raw `[flow]` table ([`flow`]) and the command
//! line's changes to a scenario ([`overrides`]): all of it input, none of it checked. Fields that validation may reject are kept [`Spanned`] so an error can name
//! the line and column of the offending value, not just the key.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub mod flow;
pub mod overrides;

/// A scenario file, read but not yet validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub seed: Option<Spanned<i64>>,
    pub duration: Spanned<String>,
    /// Required unless the run attaches to a running stack (`[attach]`).
    #[serde(default)]
    pub service: Service,
    #[serde(default)]
    pub store: Store,
    #[serde(default)]
    pub balancer: Balancer,
    pub load: Load,
    /// Chaos never takes the number of healthy replicas below this.
    pub min_alive: Option<Spanned<i64>>,
    #[serde(default)]
    pub chaos: Vec<Chaos>,
    /// `[gates]`: thresholds the run must meet, and tolerances for `compare`.
    #[serde(default)]
    pub gates: RawGates,
    /// `[flow]`: the session as HTTP steps, for services without the session contract.
    pub flow: Option<Spanned<flow::Flow>>,
    /// `[attach]`: test a stack that is already running instead of starting one.
    pub attach: Option<Attach>,
    /// `[cluster]`: which engine runs what the harness starts.
    #[serde(default)]
    pub cluster: Cluster,
    /// More environment names whose values are masked wherever the scenario is shown
    /// ([`crate::secrets`]), beyond those the rules recognise.
    pub secrets: Option<Vec<Spanned<String>>>,
}

/// `[cluster]`: the engine the harness starts the replicas on, and its settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `docker` (default: containers on one engine) or `swarm` (a Swarm service).
    pub engine: Option<Spanned<String>>,
    /// Swarm: how long the orchestrator waits before starting a failed task's
    /// replacement (its restart policy's delay).
    pub restart_delay: Option<Spanned<String>>,
}

/// `[attach]`: where the running stack answers and which of its containers are the
/// replicas faults may hit (see [`crate::validate::attach`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attach {
    pub url: Option<Spanned<String>>,
    /// Labels, `KEY=VALUE`, that every replica carries.
    pub selector: Option<Vec<Spanned<String>>>,
    /// A Compose project: its containers carry `com.docker.compose.project=NAME`.
    pub compose_project: Option<Spanned<String>>,
    /// The Compose service of the replicas, so the stack's store and proxy are never hit.
    pub service: Option<Spanned<String>>,
    /// The stack's Redis, `redis://host:port`, as the harness reaches it: watched
    /// during the run, and the one store `memory_pressure` may act on.
    pub store: Option<Spanned<String>>,
    /// A Sentinel watching that Redis, `redis://host:port`: its lines join the
    /// store's timeline (needs `store`).
    pub sentinel: Option<Spanned<String>>,
}

/// `[service]`: the replicas under test.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub image: Option<Spanned<String>>,
    /// Required unless the run attaches (then the matched containers are the replicas).
    pub replicas: Option<Spanned<i64>>,
    pub port: Option<Spanned<i64>>,
    /// `http` (default) or `https`: what the replicas speak on `port`.
    pub scheme: Option<Spanned<String>>,
    pub health_path: Option<Spanned<String>>,
    pub ready_timeout: Option<Spanned<String>>,
    /// Arguments for the image's entry point (Docker's CMD), placeholders allowed.
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    /// Replaces the image's entry point, placeholders allowed.
    pub entrypoint: Option<Spanned<Vec<Spanned<String>>>>,
    /// Values may hold placeholders such as `{store}`; spans locate a bad one.
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
}

/// `[store]`: the session store beside the replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// `redis`, `tcp` (any other store, ready when its port accepts connections) or
    /// `none` (no store container).
    pub kind: Option<Spanned<String>>,
    pub image: Option<Spanned<String>>,
    pub command: Option<Spanned<Vec<Spanned<String>>>>,
    pub entrypoint: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub env: BTreeMap<String, Spanned<String>>,
    /// The port the store listens on inside its container.
    pub port: Option<Spanned<i64>>,
    /// `none` (default) or `aof`: append-only file, fsync on every write, on a volume.
    pub persistence: Option<Spanned<String>>,
    /// Redis's `maxmemory-policy`: what it does when `maxmemory` is reached.
    pub eviction: Option<Spanned<String>>,
    /// `single` (default), `replicated`, `cluster` or `memcached-pool`.
    pub topology: Option<Spanned<String>>,
    /// `replicated`: how many replicas follow the primary.
    pub replicas: Option<Spanned<i64>>,
    /// `memcached-pool`: how many nodes.
    pub nodes: Option<Spanned<i64>>,
}

/// `[balancer]`: what spreads the load over the replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balancer {
    pub kind: Option<Spanned<String>>,
    /// Cookie-based stickiness (HAProxy `cookie SRV insert`).
    pub sticky: Option<bool>,
    /// The port on 127.0.0.1 HAProxy is published on; a free one when absent.
    pub port: Option<Spanned<i64>>,
}

/// `[load]`: the session traffic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub model: Option<Spanned<String>>,
    pub rate: Option<Spanned<f64>>,
    pub start_rate: Option<Spanned<f64>>,
    pub stages: Option<Vec<Stage>>,
    pub max_in_flight: Option<Spanned<i64>>,
    pub session_interval: Option<Spanned<String>>,
    pub users: Option<Spanned<i64>>,
    pub think_time: Option<Spanned<String>>,
    pub think_distribution: Option<Spanned<String>>,
    pub appends_per_session: Spanned<i64>,
    pub warmup: Option<Spanned<String>>,
    pub operations: Option<Spanned<i64>>,
    pub request_timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub keep_alive: Option<bool>,
    pub max_idle_connections: Option<Spanned<i64>>,
    pub threads: Option<Spanned<i64>>,
    pub max_connections: Option<Spanned<i64>>,
    pub start_window: Option<Spanned<String>>,
    /// `[load.tls]`: whom to trust on `https://` URLs.
    pub tls: Option<RawTls>,
}

/// `[load.tls]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// A PEM file of CA certificates, relative to the scenario file.
    pub ca_file: Option<Spanned<String>>,
    pub insecure: Option<Spanned<bool>>,
}

/// One `[[load.stages]]` entry: ramp to `to` operations per second over `over`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub to: Spanned<f64>,
    pub over: Spanned<String>,
}

/// `[gates]` as written in a scenario.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGates {
    /// Thresholds the run must meet.
    #[serde(default)]
    pub checks: Vec<Spanned<String>>,
    /// Per-metric tolerances for `sessionstorm compare`, by metric name.
    #[serde(default)]
    pub tolerances: BTreeMap<String, Spanned<String>>,
}

/// One `[[chaos]]` entry: a fault, whom it hits, and when.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chaos {
    pub fault: Spanned<String>,
    pub target: Option<Spanned<String>>,
    /// Periodic schedule (or the spacing of a rolling one).
    pub every: Option<Spanned<String>>,
    /// Poisson schedule: random gaps with this mean.
    pub mean_interval: Option<Spanned<String>>,
    /// Fixed timeline: offsets from the start of the load.
    pub at: Option<Spanned<Vec<Spanned<String>>>>,
    /// `"rolling"`: every replica once, one by one.
    pub schedule: Option<Spanned<String>>,
    pub start_after: Option<Spanned<String>>,
    /// How long a temporary fault (pause, disconnect, blackhole) lasts.
    pub duration: Option<Spanned<String>>,
    /// `stop` and `restart`: time between SIGTERM and SIGKILL.
    pub grace: Option<Spanned<String>>,
    /// What happens to a killed or stopped container: `replace`, `restart` or `none`.
    pub after_kill: Option<Spanned<String>>,
    /// `cpu`: the share of one core left to the replica, e.g. `0.1`.
    pub cpus: Option<Spanned<f64>>,
    /// `loss`: the share of packets dropped, e.g. `"5%"`.
    pub loss: Option<Spanned<String>>,
    /// `bandwidth`: the rate the container may send at, e.g. `"1mbit"`.
    pub rate: Option<Spanned<String>>,
    /// `oom`: the memory limit, e.g. `"32MiB"`.
    pub memory: Option<Spanned<String>>,
    /// `slow_store`: how long the store's answers are held back, e.g. `"300ms"`.
    pub delay: Option<Spanned<String>>,
    /// `slow_store`: up to this much more, drawn at random per answer, e.g. `"50ms"`.
    pub jitter: Option<Spanned<String>>,
    /// `blackhole`, `loss`: only the victim's traffic with this peer, e.g. `"store"`.
    pub peer: Option<Spanned<String>>,
}

/// The text of a scenario and where it came from, kept for error positions and for the
/// report (which shows the scenario as run).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// A problem found in a scenario, with its place in the file. Line 0 means the
/// problem is not in the file: `path` then names its origin, a command-line override
/// such as `--set load.rate=0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.path.display(), self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl Source {
    /// Reads a scenario file. A file that cannot be read or is not UTF-8 text is a
    /// problem at line 1, column 1, so every input error has the same shape.
    pub fn read(path: &Path) -> Result<Source, Problem> {
        let at_start = |message: String| Problem {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message,
        };
        let bytes = std::fs::read(path)
            .map_err(|e| at_start(format!("cannot read the scenario file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            at_start("the scenario file is not UTF-8 text; scenarios are TOML files".into())
        })?;
        Ok(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses the TOML into the raw model; a syntax or type error names its position.
    pub fn parse(&self) -> Result<Scenario, Problem> {
        toml::from_str(&self.text).map_err(|err| {
            let span = err.span().unwrap_or(0..0);
            self.problem(span, err.message().trim_end().to_string())
        })
    }

    /// A problem located at `span` (byte offsets into the text).
    pub fn problem(&self, span: Range<usize>, message: impl Into<String>) -> Problem {
        let (line, column) = line_column(&self.text, span.start);
        Problem {
            path: self.path.clone(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source {
            path: PathBuf::from("x.toml"),
            text: text.to_string(),
        }
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("a\nbc", 3), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
    }

    #[test]
    fn unknown_key_is_located() {
        let text = "name = \"x\"\nduration = \"1s\"\nbogus = 1\n";
        let problem = source(text).parse().unwrap_err();
        assert_eq!(problem.line, 3, "{problem}");
        assert!(problem.message.contains("bogus"), "{problem}");
    }

    #[test]
    fn wrong_type_is_located() {
        let text = "name = \"x\"\nduration = \"1s\"\n[service]\nreplicas = \"three\"\n[load]\nrate = 1\nappends_per_session = 1\n";
        let problem = source(text).parse().unwrap_err();
        assert_eq!((problem.line, problem.column), (4, 12), "{problem}");
    }
}
