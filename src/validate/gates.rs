//! `[gates]`: thresholds and tolerances, each parsed where it is written.

use crate::plan::{Gates, Metric, Tolerance};
use crate::scenario::overrides::{locate, Setting};
use crate::scenario::Problem;
use crate::scenario::{RawGates, Source};

/// Reads `[gates]`; every bad entry is a problem at its place in the file, or
/// names the `--set` it came from.
pub(super) fn gates(
    raw: &RawGates,
    source: &Source,
    settings: &[Setting],
) -> Result<Gates, Vec<Problem>> {
    let problem = |span, message| locate(source, settings, span, message);
    let mut problems = Vec::new();
    let mut gates = Gates::default();
    for check in &raw.checks {
        let mut span = check.span();
        if span.end <= source.text.len() {
            // Point at the text inside the quotes.
            span.start += 1;
        }
        match check.get_ref().parse() {
            Ok(c) => gates.checks.push(c),
            Err(e) => problems.push(problem(span, format!("gates.checks: {e}"))),
        }
    }
    for (name, tolerance) in &raw.tolerances {
        let parsed = name
            .parse::<Metric>()
            .and_then(|_| tolerance.get_ref().parse::<Tolerance>());
        match parsed {
            Ok(t) => {
                gates.tolerances.insert(name.clone(), t);
            }
            Err(e) => problems.push(problem(
                tolerance.span(),
                format!("gates.tolerances.{name}: {e}"),
            )),
        }
    }
    if problems.is_empty() {
        Ok(gates)
    } else {
        Err(problems)
    }
}
