//! Faults on a seeded schedule, their reverts, and what users saw of each.

mod run;

pub use run::*;
