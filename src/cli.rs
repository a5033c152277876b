//! The command line, as clap reads it. Nothing here runs anything: [`crate::commands`]
//! turns these values into actions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::compare::{Format, Options};
use crate::plan::{Metric, Tolerance};
use crate::scenario::overrides::{Overrides, Requested, Setting};

/// Chaos and load testing for stateless clusters: can any replica die at any moment
/// without a single user losing their session?
#[derive(Debug, Parser)]
#[command(name = "sessionstorm", version, about, long_about = None, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print only the verdict and the report path (errors still go to stderr).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More logs on stderr: -v for the run's steps, -vv for debugging. The
    /// SESSIONSTORM_LOG variable (e.g. `sessionstorm=trace`) wins over both.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

const MAIN_EXAMPLES: &str = "\
Examples:
  sessionstorm validate scenarios/smoke.toml
  sessionstorm run scenarios/kill-storm.toml --seed 7 --duration 1m
  sessionstorm run scenarios/smoke.toml --set load.rate=300 --set service.env.MODE=memory
  sessionstorm cleanup --dry-run
  sessionstorm completions bash > ~/.local/share/bash-completion/completions/sessionstorm

Exit codes: 0 passed, 1 verdict failed, 2 invalid input, 3 infrastructure error,
130 interrupted.";

const RUN_EXAMPLES: &str = "\
Examples:
  sessionstorm run scenarios/smoke.toml
  sessionstorm run scenarios/kill-storm.toml --seed 7 --duration 2m --out /tmp/reports
  sessionstorm run scenarios/open-model.toml --set load.stages.0.to=800 --replicas 5
  sessionstorm run scenarios/smoke.toml --set service.env.MODE=memory --set chaos.0.every=2s
  sessionstorm run scenarios/smoke.toml --run-id ci-42 -q   # report in reports/ci-42/
  sessionstorm run scenarios/attach.toml --attach http://127.0.0.1:8080 --selector app.role=replica
  sessionstorm run scenarios/attach.toml --attach http://127.0.0.1:8080 --compose-project shop --service app
  sessionstorm run scenarios/attach.toml --attach https://127.0.0.1:8443 --tls-ca certs/ca.pem --selector app.role=replica

--set takes any scenario key as a dotted path (list entries by index from 0); the
value is read as TOML (300, true, [\"10s\", \"20s\"]) or else as a string (2s, memory).
Overrides are checked like the file: a bad one is named in the error.

While it runs: a live display on a terminal; one plain line per interval otherwise
(NO_COLOR is honoured). Ctrl-C once: stop load and chaos, revert faults, check,
tear down and write the report marked interrupted (exit 130). Twice: tear down now.";

const VALIDATE_EXAMPLES: &str = "\
Examples:
  sessionstorm validate scenarios/smoke.toml
  sessionstorm validate scenarios/smoke.toml --set load.rate=0   # see the override's error

Every problem is listed at once as file:line:column: message, with the accepted
values; the exit code is 2 when there is any.";

const PLAN_EXAMPLES: &str = "\
Examples:
  sessionstorm plan scenarios/kill-storm.toml
  sessionstorm plan scenarios/kill-storm.toml --seed 7 --duration 2m --set chaos.0.every=3s

Takes the same overrides as `run`; nothing is started.";

const CLEANUP_EXAMPLES: &str = "\
Examples:
  sessionstorm cleanup --dry-run
  sessionstorm cleanup --run smoke-20260101-120000-ab12";

const IMAGES_EXAMPLES: &str = "\
Examples:
  sessionstorm images build
  sessionstorm images build --force
  sessionstorm images list";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  sessionstorm completions bash > ~/.local/share/bash-completion/completions/sessionstorm
  sessionstorm completions zsh > ~/.zfunc/_sessionstorm
  sessionstorm completions fish > ~/.config/fish/completions/sessionstorm.fish";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the cluster of a scenario, drive session load while faults hit it, check
    /// every session and report. Exit 0 passed, 1 sessions lost, 2 bad input,
    /// 3 infrastructure error, 130 interrupted.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Check a scenario file and print every problem in it, without starting anything.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(ScenarioArgs),
    /// Print the resolved plan of a scenario and its fault timeline, drawn from the
    /// seed, without starting anything: a run with the same seed and overrides
    /// follows it.
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(ScenarioArgs),
    /// Build or list the images the harness makes from host binaries.
    #[command(subcommand, after_help = IMAGES_EXAMPLES)]
    Images(ImagesCommand),
    /// Rebuild report.html of a run folder from its summary.json, e.g. of a folder
    /// downloaded from CI.
    Report {
        /// The run folder (reports/<run id>).
        run_dir: PathBuf,
    },
    /// Compare a run with a baseline run, metric by metric; exit 1 on a regression
    /// beyond the tolerances, 2 when a run folder cannot be read.
    Compare(CompareArgs),
    /// Remove containers, networks and volumes left behind by runs, their reapers
    /// included (only those labelled `sessionstorm.run`; nothing else is touched).
    #[command(after_help = CLEANUP_EXAMPLES)]
    Cleanup {
        /// Only this run's objects.
        #[arg(long)]
        run: Option<String>,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The run's reaper, started by `run` in its own container: cleans up after a
    /// harness that died (see the README, "When the harness is killed").
    #[command(hide = true)]
    Reaper {
        /// The run to watch.
        #[arg(long, value_parser = parse_run_id)]
        run: String,
    },
    /// The swarm engine's agent, run by a one-shot Swarm job on a task's node: one
    /// action on one container there, through that node's engine.
    #[command(hide = true)]
    Agent {
        action: crate::cluster::swarm::agent::AgentAction,
        /// The container's id on this node.
        container: String,
        /// `stop`: milliseconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 0)]
        grace_ms: u64,
    },
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub input: ScenarioArgs,
    /// Folder for run reports; each run writes into its own sub-folder.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Name the run (and its report folder and container labels) instead of
    /// `<scenario>-<time>-<random>`; lets a CI job know where the report will be.
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
}

/// A scenario file and the overrides applied to it before validation: `run`,
/// `validate` and `plan` take the same ones, so what `plan` prints is what `run`
/// with the same flags does.
#[derive(Debug, Args)]
pub struct ScenarioArgs {
    /// The scenario file (TOML), e.g. scenarios/smoke.toml.
    pub scenario: PathBuf,
    /// Seed for every random choice; overrides the scenario's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long load and chaos run, e.g. 30s or 2m; overrides the scenario's `duration`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Operations per second of an open-model scenario (its start rate when it has
    /// stages); same as --set load.rate=RATE.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Number of replicas; same as --set service.replicas=N.
    #[arg(long)]
    pub replicas: Option<u32>,
    /// The engine the cluster runs on: docker (default) or swarm (a Swarm service on
    /// this node, which must be a swarm manager); same as --set cluster.engine=ENGINE.
    #[arg(long, value_name = "ENGINE")]
    pub engine: Option<String>,
    /// Override any scenario key before validation, as a dotted path: load.rate=300,
    /// service.env.MODE=memory, chaos.0.every=2s. Repeatable; applied in order,
    /// after --rate, --replicas, --engine, --tls-ca and --tls-insecure.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<Setting>,
    #[command(flatten)]
    pub attach: AttachArgs,
}

/// `run --attach`: test a stack that is already running; see [`crate::validate::attach`].
#[derive(Debug, Args)]
#[command(next_help_heading = "Attach to a running stack")]
pub struct AttachArgs {
    /// Start no containers: drive the load at this URL of a running stack (its
    /// proxy) and fault only the containers the selector matches. Wins over
    /// `[attach] url`.
    #[arg(long = "attach", value_name = "URL")]
    pub url: Option<String>,
    /// The replicas are the containers carrying this label (repeatable: all of
    /// them). Wins over `[attach]`.
    #[arg(long, value_name = "KEY=VALUE", conflicts_with = "compose_project")]
    pub selector: Vec<String>,
    /// The replicas are containers of this Compose project (label
    /// com.docker.compose.project); name their service with --service.
    #[arg(long, value_name = "NAME")]
    pub compose_project: Option<String>,
    /// Only containers of this Compose service (label com.docker.compose.service),
    /// so the stack's store and proxy are never hit.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Trust only the CA certificates of this PEM file on https:// URLs (relative
    /// to where the command runs); same as --set load.tls.ca_file=FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "tls_insecure")]
    pub tls_ca: Option<PathBuf>,
    /// Accept any server certificate on https:// URLs: for self-signed test
    /// stacks only; same as --set load.tls.insecure=true.
    #[arg(long)]
    pub tls_insecure: bool,
}

impl AttachArgs {
    /// `--tls-ca` and `--tls-insecure` as settings of `[load.tls]`, so they are
    /// checked like the file's keys and named in their errors.
    fn tls_settings(&self) -> Vec<Setting> {
        let mut set = Vec::new();
        if let Some(file) = &self.tls_ca {
            let shown = file.display().to_string();
            set.push(Setting {
                path: vec!["load".into(), "tls".into(), "ca_file".into()],
                // A TOML string, so any path reads as one.
                value: toml::Value::String(shown.clone()).to_string(),
                origin: format!("--tls-ca {shown}"),
            });
        }
        if self.tls_insecure {
            set.push(Setting {
                path: vec!["load".into(), "tls".into(), "insecure".into()],
                value: "true".into(),
                origin: "--tls-insecure".into(),
            });
        }
        set
    }

    pub fn requested(&self) -> Requested {
        Requested {
            url: self.url.clone(),
            selector: self.selector.clone(),
            compose_project: self.compose_project.clone(),
            service: self.service.clone(),
        }
    }
}

impl ScenarioArgs {
    /// The overrides of this command line, shortcuts before `--set`.
    pub fn overrides(&self) -> Overrides {
        let mut set = Vec::new();
        if let Some(rate) = self.rate {
            set.push(Setting::shortcut("rate", "load.rate", rate));
        }
        if let Some(replicas) = self.replicas {
            set.push(Setting::shortcut("replicas", "service.replicas", replicas));
        }
        if let Some(engine) = &self.engine {
            set.push(Setting::shortcut("engine", "cluster.engine", engine));
        }
        set.extend(self.attach.tls_settings());
        set.extend(self.set.iter().cloned());
        Overrides {
            seed: self.seed,
            duration: self.duration,
            set,
            attach: self.attach.requested(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build sessionstorm/session-app, sessionstorm/counter-app, sessionstorm/actix-app,
    /// sessionstorm/redis and sessionstorm/haproxy (skipped when their content is unchanged).
    Build {
        /// Rebuild even when the content is unchanged.
        #[arg(long)]
        force: bool,
    },
    /// List the sessionstorm/* images present.
    List,
}

/// Reads a `--duration` value: a positive humantime duration of at most 30 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d > crate::plan::MAX_DURATION => Err("durations are at most 30 days".into()),
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("the duration must be longer than zero".into()),
        Err(err) => Err(format!(
            "{err}; write a number with a unit: ms, s, m or h, e.g. 30s"
        )),
    }
}

fn parse_run_id(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(text.to_string())
    } else {
        Err("use 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit".into())
    }
}

/// `sessionstorm compare`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The baseline run: its folder (reports/<run id>) or its summary.json.
    pub baseline: std::path::PathBuf,
    /// The run to judge against it.
    pub current: std::path::PathBuf,
    /// How much p99 (and p99.9, max) latency may grow: a percentage of the baseline
    /// ("10%") or milliseconds ("5").
    #[arg(long, default_value = "10%")]
    pub max_p99_regression: Tolerance,
    /// How much p50 (and p90) latency may grow.
    #[arg(long, default_value = "10%")]
    pub max_p50_regression: Tolerance,
    /// How much the error rate (failed requests / requests) may grow, e.g. 0.001.
    #[arg(long, default_value = "0.001")]
    pub max_error_rate_increase: Tolerance,
    /// Latency changes below this many milliseconds never count as a regression.
    #[arg(long, default_value_t = 1.0)]
    pub latency_floor_ms: f64,
    /// A tolerance for one metric, e.g. `--tolerance p99_ms.append=20%` or
    /// `--tolerance recovery_ms.max=500`; repeatable; wins over the scenario's
    /// `[gates.tolerances]` and the options above.
    #[arg(long = "tolerance", value_parser = parse_metric_tolerance)]
    pub tolerances: Vec<(String, Tolerance)>,
    /// `text` for a terminal, `markdown` for `$GITHUB_STEP_SUMMARY`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_metric_tolerance(text: &str) -> Result<(String, Tolerance), String> {
    let (metric, tolerance) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: write METRIC=TOLERANCE, e.g. p99_ms.append=20%"))?;
    let metric = metric.trim();
    metric.parse::<Metric>()?;
    Ok((metric.to_string(), tolerance.parse()?))
}

impl CompareArgs {
    /// The tolerances given, as `compare` takes them.
    pub fn options(&self) -> Options {
        Options {
            p99: self.max_p99_regression,
            p50: self.max_p50_regression,
            error_rate: self.max_error_rate_increase,
            counts: Tolerance::Absolute(0.0),
            latency_floor_ms: self.latency_floor_ms,
            per_metric: self.tolerances.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn duration_override_parses_and_rejects_nonsense() {
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("unit"));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("99999999999999h").is_err());
    }

    #[test]
    fn run_id_must_be_usable_as_a_container_name() {
        assert_eq!(parse_run_id("ci-42.a_b"), Ok("ci-42.a_b".to_string()));
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metric_tolerance_option_parses() {
        assert_eq!(
            parse_metric_tolerance("p99_ms.append=20%"),
            Ok(("p99_ms.append".to_string(), Tolerance::Relative(0.2)))
        );
        assert!(parse_metric_tolerance("p99_ms.apend=20%")
            .unwrap_err()
            .contains("unknown operation"));
        assert!(parse_metric_tolerance("p99_ms.append")
            .unwrap_err()
            .contains("METRIC=TOLERANCE"));
    }
}
