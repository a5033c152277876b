//! The subcommands' bodies: each reads what it needs (a scenario, a run folder, the
//! Docker engine), calls the layers that do the work and says how it ended as an
//! exit code. `sessionstorm run` itself is [`crate::run`]; `main` only parses the
//! command line and wires the signals.

use crate::cli::{Cli, Command, CompareArgs, ImagesCommand, RunArgs};
use crate::cluster::engine::Engine;
use crate::error::{Error, ExitCode, Result};
use crate::plan::Plan;
use crate::report::RunFolder;
use crate::run::Shutdown;
use crate::scenario::overrides::Overrides;
use crate::scenario::Source;
use crate::{chaos, cluster, compare, images, progress, reaper, validate};

/// Runs one command and says which exit code it ends with.
pub async fn run(cli: Cli, shutdown: Shutdown) -> Result<ExitCode> {
    progress::set_quiet(cli.quiet);
    match cli.command {
        Command::Run(args) => run_scenario(args, &shutdown).await,
        Command::Validate(input) => {
            let plan = load_plan(&input.scenario, &input.overrides())?;
            let replicas = match &plan.attach {
                Some(attach) => format!("attach to {}", attach.url),
                None => format!("{} replicas", plan.service.replicas),
            };
            say!(
                "{}: valid scenario {:?} ({replicas}, {} load, {} chaos entries)",
                input.scenario.display(),
                plan.name,
                plan.load.model.describe(),
                plan.chaos.len()
            );
            Ok(ExitCode::Passed)
        }
        Command::Plan(input) => {
            let plan = load_plan(&input.scenario, &input.overrides())?;
            say!("{}", describe_plan(&plan).trim_end());
            Ok(ExitCode::Passed)
        }
        Command::Images(ImagesCommand::Build { force }) => {
            let engine = Engine::connect().await.map_err(Error::infra)?;
            for built in images::build(&engine, &images::BuiltIn::ALL, force).await? {
                say!(
                    "{:<36} {:?} ({:.1} MB, content {})",
                    built.image.tag(),
                    built.outcome,
                    built.bytes as f64 / 1e6,
                    &built.content_hash[..12.min(built.content_hash.len())]
                );
            }
            Ok(ExitCode::Passed)
        }
        Command::Images(ImagesCommand::List) => {
            let engine = Engine::connect().await.map_err(Error::infra)?;
            for image in images::list(&engine).await? {
                let created = chrono::DateTime::from_timestamp(image.created, 0).map_or_else(
                    || "?".to_string(),
                    |t| t.format("%Y-%m-%d %H:%M").to_string(),
                );
                let hash = image.content_hash.as_deref().unwrap_or("-");
                say!(
                    "{:<36} {:>7.1} MB  {created}  content {}",
                    image.tag,
                    image.size as f64 / 1e6,
                    &hash[..12.min(hash.len())]
                );
            }
            Ok(ExitCode::Passed)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "sessionstorm",
                &mut script,
            );
            use std::io::Write as _;
            let _ = std::io::stdout().lock().write_all(&script);
            Ok(ExitCode::Passed)
        }
        Command::Report { run_dir } => {
            let (path, summary) = RunFolder::at(&run_dir).rebuild()?;
            say!(
                "wrote {} (verdict {})",
                path.display(),
                summary.verdict.status
            );
            Ok(ExitCode::Passed)
        }
        Command::Reaper { run } => reaper::watch::run(&run).await,
        Command::Agent {
            action,
            container,
            grace_ms,
        } => {
            let grace = std::time::Duration::from_millis(grace_ms);
            cluster::swarm::agent::run(action, &container, grace)
                .await
                .map_err(Error::infra)?;
            Ok(ExitCode::Passed)
        }
        Command::Compare(args) => compare_runs(&args),
        Command::Cleanup { run, dry_run } => {
            let engine = Engine::connect().await.map_err(Error::infra)?;
            let label = match &run {
                Some(id) => format!("{}={id}", cluster::RUN_LABEL),
                None => cluster::RUN_LABEL.to_string(),
            };
            let removed = engine
                .remove_labelled(&label, dry_run)
                .await
                .map_err(Error::infra)?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for name in removed.names() {
                say!("{verb} {name}");
            }
            say!("{verb} {} labelled {label}", removed.describe());
            Ok(ExitCode::Passed)
        }
    }
}

/// The plan as `sessionstorm plan` prints it, with what its faults need from the
/// engine's kernel and its fault timeline (drawn when an attached run starts, once
/// it has counted the containers it matched).
pub fn describe_plan(plan: &Plan) -> String {
    let timeline = match plan.attach {
        Some(_) => Vec::new(),
        None => chaos::schedule(plan),
    };
    plan.render(cluster::kernel::needs(plan), &timeline)
}

/// `sessionstorm compare`: prints the table; exit 1 on a regression, 2 when a
/// summary cannot be read.
fn compare_runs(args: &CompareArgs) -> Result<ExitCode> {
    let baseline = compare::read(&args.baseline, "baseline").map_err(Error::Invalid)?;
    let current = compare::read(&args.current, "current").map_err(Error::Invalid)?;
    let rows = compare::compare(&baseline, &current, &args.options());
    say!(
        "{}",
        compare::render(&rows, &baseline, &current, args.format).trim_end()
    );
    Ok(if rows.iter().any(compare::Row::failed) {
        ExitCode::VerdictFailed
    } else {
        ExitCode::Passed
    })
}

async fn run_scenario(args: RunArgs, shutdown: &Shutdown) -> Result<ExitCode> {
    let plan = load_plan(&args.input.scenario, &args.input.overrides())?;
    crate::run::execute(&plan, &args.out, args.run_id, shutdown).await
}

/// Reads and validates a scenario; all its problems become one invalid-input error.
fn load_plan(path: &std::path::Path, overrides: &Overrides) -> Result<Plan> {
    let source = Source::read(path).map_err(|p| Error::Invalid(p.to_string()))?;
    tracing::debug!(path = %path.display(), settings = overrides.set.len(), "validating the scenario");
    validate::build(&source, overrides).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Error::Invalid(format!(
            "{} problem{} in the scenario:\n{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            lines.join("\n")
        ))
    })
}
