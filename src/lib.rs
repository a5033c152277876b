//! sessionstorm: a chaos and load-testing harness for stateless clusters.
//!
//! It answers one question with evidence: can any replica die at any moment without a
//! single user losing their session? Data flows one way, and so do imports: each
//! layer uses only the layers listed before it, never one after (no import circles
//! between files; `ARCHITECTURE.md` has the code map).
//!
//! 1. **Input.** [`scenario`] is the scenario file as written (TOML model, spans for
//!    error positions, the raw `[flow]` table, `--set` overrides). Imports no other
//!    layer.
//! 2. **Plan.** [`plan`] is the validated run plan: plain data, one file per part of a
//!    run (service, load, chaos, gates, attach, TLS, templates, built-in images). Never
//!    imports validation, the engine, gates or reports; it may name the scenario text
//!    it keeps, the [`flow`] steps and the [`session`] vocabulary (operations,
//!    anomaly kinds).
//! 3. **Validation.** [`validate`] turns scenario + command line into a [`plan::Plan`]
//!    with every problem at file:line:column. Imports input and plan only, so
//!    checking a scenario never needs Docker.
//! 4. **Engine.** [`images`] builds images from host binaries; [`cluster`] starts
//!    replicas, store and balancer (or attaches to a running stack); [`load`] drives
//!    session traffic; [`chaos`] draws a seeded fault timeline and applies it. They
//!    read the plan, never the raw scenario or validation. What both the cluster and
//!    the load need sits below them, so neither imports the other: [`target`]
//!    (where requests go) and [`tls`] (whom the HTTP clients trust).
//! 5. **Evidence.** [`session`] checks every answer against what was acknowledged;
//!    [`metrics`] records latency and outcomes.
//! 6. **Verdict.** [`gate`] turns the evidence and the run's figures
//!    ([`gate::Figures`]) into a verdict and an exit code. Never imports [`report`].
//! 7. **Output.** [`report`] writes the summary and its exporters from the verdict;
//!    [`compare`] compares two summaries.
//! 8. **Commands.** [`cli`] reads the command line; [`run`] strings the layers together
//!    for `sessionstorm run`, with its [`reaper`] beside it for a harness that dies;
//!    this file dispatches the subcommands.

/// Prints a line on stdout, ignoring a closed or full stdout: the report on disk and
/// the exit code matter more than the terminal, and a panic on a broken pipe (say,
/// `sessionstorm run … | head`) would skip the teardown. Silent with `-q`; drawn
/// above the live display when one is up (see [`progress`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::progress::emit(&format!($($arg)*));
    }};
}

/// Like [`say!`], but printed even with `-q`: the verdict and the report path.
#[macro_export]
macro_rules! say_always {
    ($($arg:tt)*) => {{
        $crate::progress::emit_always(&format!($($arg)*));
    }};
}

pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod compact;
pub mod compare;
pub mod error;
pub mod flow;
#[doc(hidden)]
pub mod fuzz_inputs;
pub mod gate;
pub mod images;
pub mod load;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod reaper;
pub mod report;
pub mod run;
pub mod scenario;
pub mod secrets;
pub mod session;
pub mod target;
pub mod tls;
pub mod validate;

use tokio_util::sync::CancellationToken;

use cli::{Cli, Command, ImagesCommand, RunArgs};
use cluster::engine::Engine;
use error::{Error, ExitCode, Result};
use scenario::overrides::Overrides;
use scenario::Source;

/// The two ways a user stops a run, fed by signals in `main` and by tests directly.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// First interrupt: stop load and chaos, then check, tear down and report.
    pub graceful: CancellationToken,
    /// Second interrupt: tear down now and exit.
    pub abort: CancellationToken,
}

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
            say!("{}", render_plan(&plan).trim_end());
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
        Command::Report { run_dir } => report::rebuild(&run_dir),
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
        Command::Compare(args) => compare::run(&args),
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

/// The resolved plan and its fault timeline, as `sessionstorm plan` prints them.
pub fn render_plan(plan: &plan::Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "scenario {} · seed {}", plan.name, plan.seed);
    if let Some(attach) = &plan.attach {
        let _ = writeln!(
            out,
            "attach   to {} · replicas: the containers labelled {}",
            attach.url,
            attach.selector()
        );
    } else {
        let _ = writeln!(
            out,
            "cluster  {} replicas of {} ({}) · store {} · balancer {}",
            plan.service.replicas,
            plan.service.image,
            plan.service.scheme.as_str(),
            plan.store.describe(),
            plan.balancer.describe()
        );
        if plan.cluster.engine != plan::EngineKind::Docker {
            let _ = writeln!(out, "engine   {}", plan.cluster.describe());
        }
    }
    let per_session = match &plan.load.flow {
        Some(flow) => format!(
            "a flow of {} start steps then {} rounds of {} steps per session",
            flow.start.len(),
            plan.load.appends_per_session,
            flow.steps.len()
        ),
        None => format!("{} appends per session", plan.load.appends_per_session),
    };
    let _ = writeln!(
        out,
        "load     {}, {per_session}, for {}",
        plan.load.model.describe(),
        humantime::format_duration(plan.duration)
    );
    let _ = writeln!(out, "chaos    min_alive {}", plan.min_alive);
    for (i, entry) in plan.chaos.iter().enumerate() {
        let when = match &entry.schedule {
            plan::Schedule::Every(d) => format!("every {}", humantime::format_duration(*d)),
            plan::Schedule::Poisson(d) => {
                format!("random, mean interval {}", humantime::format_duration(*d))
            }
            plan::Schedule::At(list) => {
                let at: Vec<String> = list
                    .iter()
                    .map(|d| humantime::format_duration(*d).to_string())
                    .collect();
                format!("at {}", at.join(", "))
            }
            plan::Schedule::Rolling(d) => {
                format!(
                    "rolling, one replica every {}",
                    humantime::format_duration(*d)
                )
            }
        };
        let _ = writeln!(
            out,
            "  #{i} {} {} {when}, after {}",
            entry.fault.name(),
            entry.target,
            humantime::format_duration(entry.start_after)
        );
    }
    let needs = cluster::kernel::needs(plan);
    if !needs.is_empty() {
        // Checked on the engine when the run starts (exit 3 when missing).
        let _ = writeln!(
            out,
            "needs from the engine's kernel (checked before the run starts):"
        );
        for need in needs {
            let _ = writeln!(out, "  - {}", need.describe());
        }
    }
    if plan.attach.is_some() {
        // Victims are drawn among the matched containers, counted when the run starts.
        let _ = writeln!(
            out,
            "timeline drawn when the run has counted the matched containers (same seed, same timeline)"
        );
        return out;
    }
    let timeline = chaos::schedule(plan);
    let _ = writeln!(
        out,
        "timeline ({} faults, offsets from the start of the load)",
        timeline.len()
    );
    for fault in &timeline {
        let _ = writeln!(out, "  {fault}");
    }
    out
}

async fn run_scenario(args: RunArgs, shutdown: &Shutdown) -> Result<ExitCode> {
    let plan = load_plan(&args.input.scenario, &args.input.overrides())?;
    run::execute(&plan, &args.out, args.run_id, shutdown).await
}

/// Reads and validates a scenario; all its problems become one invalid-input error.
fn load_plan(path: &std::path::Path, overrides: &Overrides) -> Result<plan::Plan> {
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
