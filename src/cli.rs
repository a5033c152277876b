//! The command line, as clap reads it. Nothing here runs anything: [`crate::run`]
//! turns these values into actions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Chaos and load testing for stateless clusters: can any replica die at any moment
/// without a single user losing their session?
#[derive(Debug, Parser)]
#[command(name = "sessionstorm", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the cluster of a scenario, drive session load while faults hit it, check
    /// every session and report. Exit 0 passed, 1 sessions lost, 2 bad input,
    /// 3 infrastructure error, 130 interrupted.
    Run(RunArgs),
    /// Check a scenario file and print every problem in it, without starting anything.
    Validate {
        /// The scenario file (TOML).
        scenario: PathBuf,
    },
    /// Print the resolved plan of a scenario and its fault timeline, drawn from the
    /// seed, without starting anything: a run with the same seed follows it.
    Plan {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seed for every random choice; overrides the scenario's `seed`.
        #[arg(long)]
        seed: Option<u64>,
        /// How long load and chaos run; overrides the scenario's `duration`.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
    },
    /// Build or list the images the harness makes from host binaries.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Rebuild report.html of a run folder from its summary.json, e.g. of a folder
    /// downloaded from CI.
    Report {
        /// The run folder (reports/<run id>).
        run_dir: PathBuf,
    },
    /// Compare a run with a baseline run, metric by metric; exit 1 on a regression
    /// beyond the tolerances, 2 when a run folder cannot be read.
    Compare(crate::compare::CompareArgs),
    /// Remove containers and networks left behind by runs (only those labelled
    /// `sessionstorm.run`; nothing else is touched).
    Cleanup {
        /// Only this run's objects.
        #[arg(long)]
        run: Option<String>,
        /// Show what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML), e.g. scenarios/smoke.toml.
    pub scenario: PathBuf,
    /// Seed for every random choice; overrides the scenario's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How long load and chaos run, e.g. 30s or 2m; overrides the scenario's `duration`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Folder for run reports; each run writes into its own sub-folder.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Name the run (and its report folder and container labels) instead of
    /// `<scenario>-<time>-<random>`; lets a CI job know where the report will be.
    #[arg(long, value_parser = parse_run_id)]
    pub run_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build sessionstorm/session-app, sessionstorm/redis and sessionstorm/haproxy
    /// (skipped when their content is unchanged).
    Build {
        /// Rebuild even when the content is unchanged.
        #[arg(long)]
        force: bool,
    },
    /// List the sessionstorm/* images present.
    List,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
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
    }

    #[test]
    fn run_id_must_be_usable_as_a_container_name() {
        assert_eq!(parse_run_id("ci-42.a_b"), Ok("ci-42.a_b".to_string()));
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(parse_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
