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
//!    [`metrics`] records latency and outcomes. The engine records into them, so in
//!    the import order they come before it (the one exception;
//!    `tools/modgraph.py` has the order).
//! 6. **Verdict.** [`gate`] turns the evidence and the run's figures
//!    ([`gate::Figures`]) into a verdict and an exit code. Never imports [`report`].
//! 7. **Output.** [`report`] writes the summary and its exporters from the verdict;
//!    [`compare`] compares two summaries.
//! 8. **Commands.** [`cli`] reads the command line; [`commands`] runs the
//!    subcommands; [`run`] strings the layers together for `sessionstorm run`, with
//!    its [`reaper`] beside it for a harness that dies. This file is the module map
//!    and the macros every layer prints with.

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
pub mod commands;
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
pub mod store;
pub mod target;
pub mod tls;
pub mod validate;
