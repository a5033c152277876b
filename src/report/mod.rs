//! The run's report: one [`Summary`] value, written as `summary.json` and printed as
//! a verdict on the terminal, beside the files streamed while the run goes.
//!
//! One module per job: [`summary`] is the schema, [`aggregate`] makes its parts from
//! the evidence, [`assemble`] the whole summary from the plan and what the run
//! found, [`text`] the terminal's verdict block, and [`folder`] the run folder
//! ([`RunFolder`]) that owns every file, streamed ([`checkpoint`] rewrites
//! summary.json as the run goes) or written at the end. Every file written at the
//! end is a pure function of the summary, one module per format: [`csv`] (latency,
//! events, sessions, replicas), [`junit`] and [`html`] (with its [`charts`]); the
//! latency interval log is [`hlog`]. So what the terminal says and what CI reads
//! cannot disagree, and `sessionstorm report RUN_DIR` can rebuild the HTML from
//! summary.json alone.

pub mod aggregate;
pub mod assemble;
pub mod charts;
pub mod checkpoint;
pub mod csv;
pub mod folder;
pub mod hlog;
pub mod html;
pub mod junit;
pub mod summary;
pub mod text;

pub use aggregate::operations;
pub use folder::{FullLists, RunFolder, FILES};
pub use summary::*;
