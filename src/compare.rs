//! `sessionstorm compare BASELINE CURRENT`: is the current run worse than a
//! baseline run, beyond what each metric may drift?
//!
//! Both runs are read from their summary.json. The metrics compared are p50 and p99
//! of every operation the baseline measured, `error_rate`, `anomalies` and
//! `missed_starts`, plus any metric given a tolerance (on the command line or in
//! the current run's `[gates.tolerances]`). A metric the baseline has and the
//! current run lacks is a failure: a comparison must not pass by losing data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::gate::Measure;
use crate::plan::{Metric, Quantile, Tolerance};
use crate::report::Summary;

/// How the table is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    /// A GitHub-flavoured table, for `$GITHUB_STEP_SUMMARY` or a merge request note.
    Markdown,
}

/// Tolerances, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// For every `p99_ms.<op>` (and `p999_ms`, `max_ms`).
    pub p99: Tolerance,
    /// For every `p50_ms.<op>` (and `p90_ms`).
    pub p50: Tolerance,
    pub error_rate: Tolerance,
    /// For counts: anomalies, missed starts, unverified sessions.
    pub counts: Tolerance,
    /// Latency changes smaller than this many milliseconds never fail: below it,
    /// a relative tolerance would flag noise on fast operations.
    pub latency_floor_ms: f64,
    /// Per metric, overriding everything else.
    pub per_metric: BTreeMap<String, Tolerance>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            p99: Tolerance::Relative(0.10),
            p50: Tolerance::Relative(0.10),
            error_rate: Tolerance::Absolute(0.001),
            counts: Tolerance::Absolute(0.0),
            latency_floor_ms: 1.0,
            per_metric: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Regression,
    /// In the baseline, not in the current run.
    Missing,
    /// In the current run only: nothing to compare with.
    New,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub tolerance: Tolerance,
    pub status: Status,
}

impl Row {
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Regression | Status::Missing)
    }
}

/// Reads a run folder's (or a file's) summary, for `compare`.
pub fn read(path: &Path, which: &str) -> Result<Summary, String> {
    Summary::read(path).map_err(|e| format!("the {which} run: {e}"))
}

/// The tolerance of `metric`: per-metric option, then the current run's scenario,
/// then the option for its family.
fn tolerance(metric: Metric, name: &str, current: &Summary, options: &Options) -> Tolerance {
    if let Some(t) = options.per_metric.get(name) {
        return *t;
    }
    if let Some(t) = current.tolerances.get(name).and_then(|t| t.parse().ok()) {
        return t;
    }
    match metric {
        Metric::Latency {
            quantile: Quantile::P50 | Quantile::P90,
            ..
        } => options.p50,
        Metric::Latency { .. } => options.p99,
        Metric::ErrorRate => options.error_rate,
        Metric::Availability => Tolerance::Absolute(0.001),
        Metric::RecoveryMax | Metric::RecoveryTotal => Tolerance::Relative(0.25),
        Metric::Anomalies(_) | Metric::MissedStarts | Metric::Unverified => options.counts,
    }
}

/// The metrics to compare, in table order.
fn metrics(baseline: &Summary, current: &Summary, options: &Options) -> Vec<Metric> {
    let mut out = Vec::new();
    for quantile in [Quantile::P50, Quantile::P99] {
        for (op, o) in &baseline.operations {
            if o.latency_ms.count > 0 {
                out.push(Metric::Latency {
                    quantile,
                    op: *op,
                    uncorrected: false,
                });
            }
        }
    }
    out.extend([
        Metric::ErrorRate,
        Metric::Anomalies(None),
        Metric::MissedStarts,
    ]);
    let named = options.per_metric.keys().chain(current.tolerances.keys());
    for metric in named.filter_map(|n| n.parse::<Metric>().ok()) {
        if !out.contains(&metric) {
            out.push(metric);
        }
    }
    out
}

/// Compares every metric.
pub fn compare(baseline: &Summary, current: &Summary, options: &Options) -> Vec<Row> {
    metrics(baseline, current, options)
        .into_iter()
        .map(|metric| {
            let name = metric.to_string();
            let tolerance = tolerance(metric, &name, current, options);
            let (b, c) = (metric.value(baseline), metric.value(current));
            let status = match (b, c) {
                (Some(b), Some(c)) => {
                    let worse_by = if metric.higher_is_better() {
                        b - c
                    } else {
                        c - b
                    };
                    let allowed = match tolerance {
                        Tolerance::Relative(r) => b.abs() * r,
                        Tolerance::Absolute(a) => a,
                    };
                    let floor = match metric {
                        Metric::Latency { .. } => options.latency_floor_ms,
                        _ => 0.0,
                    };
                    // A small epsilon keeps float noise (0.1 + 0.2) from failing a tie.
                    if worse_by > allowed.max(floor) + 1e-9 {
                        Status::Regression
                    } else {
                        Status::Pass
                    }
                }
                (Some(_), None) => Status::Missing,
                (None, _) => Status::New,
            };
            Row {
                metric: name,
                baseline: b,
                current: c,
                tolerance,
                status,
            }
        })
        .collect()
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v == v.trunc() && v.abs() < 1e12 => format!("{v:.0}"),
        Some(v) if v.abs() < 0.01 => format!("{v:.5}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn change(row: &Row) -> String {
    match (row.baseline, row.current) {
        (Some(b), Some(c)) if b != 0.0 => format!("{:+.1}%", (c - b) / b.abs() * 100.0),
        (Some(b), Some(c)) if c == b => "±0".into(),
        (Some(b), Some(c)) => format!("{:+}", number(Some(c - b))),
        _ => "-".into(),
    }
}

fn status(row: &Row) -> &'static str {
    match row.status {
        Status::Pass => "pass",
        Status::Regression => "FAIL",
        Status::Missing => "FAIL (missing)",
        Status::New => "new",
    }
}

/// The table, as text or markdown, with a closing line that says the outcome.
pub fn render(rows: &[Row], baseline: &Summary, current: &Summary, format: Format) -> String {
    let failed = rows.iter().filter(|r| r.failed()).count();
    let outcome = if failed == 0 {
        "no regression".to_string()
    } else {
        format!(
            "{failed} metric{} regressed",
            if failed == 1 { "" } else { "s" }
        )
    };
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.metric.clone(),
                number(r.baseline),
                number(r.current),
                change(r),
                format!("+{}", r.tolerance),
                status(r).to_string(),
            ]
        })
        .collect();
    let header = [
        "metric",
        "baseline",
        "current",
        "change",
        "tolerance",
        "result",
    ];
    let mut out = String::new();
    match format {
        Format::Markdown => {
            let _ = writeln!(
                out,
                "### sessionstorm compare: {}\n\nbaseline `{}` · current `{}` (scenario {})\n",
                if failed == 0 {
                    "✅ no regression"
                } else {
                    "❌ regression"
                },
                baseline.run_id,
                current.run_id,
                current.scenario
            );
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
            for c in &cells {
                let _ = writeln!(out, "| {} |", c.join(" | "));
            }
            let _ = writeln!(out, "\n{outcome}");
        }
        Format::Text => {
            let _ = writeln!(
                out,
                "baseline {} · current {} (scenario {})",
                baseline.run_id, current.run_id, current.scenario
            );
            let widths: Vec<usize> = (0..6)
                .map(|i| {
                    cells
                        .iter()
                        .map(|c| c[i].chars().count())
                        .chain([header[i].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |row: [&str; 6]| {
                let mut l = format!("{:<w$}", row[0], w = widths[0]);
                for i in 1..5 {
                    let _ = write!(l, "  {:>w$}", row[i], w = widths[i]);
                }
                let _ = write!(l, "  {}", row[5]);
                l
            };
            let _ = writeln!(out, "{}", line(header));
            for c in &cells {
                let _ = writeln!(
                    out,
                    "{}",
                    line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]].map(String::as_str))
                );
            }
            let _ = writeln!(out, "{outcome}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Op;

    fn fixture() -> Summary {
        Summary::parse(include_str!("../tests/fixtures/summary.json")).unwrap()
    }

    fn row<'a>(rows: &'a [Row], metric: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.metric == metric)
            .unwrap_or_else(|| panic!("{metric} not compared"))
    }

    #[test]
    fn a_run_against_itself_passes_every_default_metric() {
        let s = fixture();
        let rows = compare(&s, &s, &Options::default());
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        for name in [
            "p50_ms.append",
            "p99_ms.read",
            "p99_ms.sweep",
            "error_rate",
            "anomalies",
            "missed_starts",
        ] {
            assert!(names.contains(&name), "{names:?}");
        }
        // The scenario's tolerance names p99_ms.append: 20%, not the default 10%.
        assert_eq!(
            row(&rows, "p99_ms.append").tolerance,
            Tolerance::Relative(0.2)
        );
        assert!(rows.iter().all(|r| r.status == Status::Pass), "{rows:#?}");
    }

    #[test]
    fn an_improvement_passes_and_a_regression_fails() {
        let baseline = fixture();
        let mut faster = fixture();
        let mut slower = fixture();
        faster.operations.get_mut(&Op::Read).unwrap().latency_ms.p99 /= 2.0;
        slower.operations.get_mut(&Op::Read).unwrap().latency_ms.p99 *= 1.5;
        let rows = compare(&baseline, &faster, &Options::default());
        assert_eq!(row(&rows, "p99_ms.read").status, Status::Pass);
        let rows = compare(&baseline, &slower, &Options::default());
        assert_eq!(row(&rows, "p99_ms.read").status, Status::Regression);
        assert_eq!(rows.iter().filter(|r| r.failed()).count(), 1, "{rows:#?}");
        // A looser tolerance lets it through.
        let options = Options {
            per_metric: BTreeMap::from([("p99_ms.read".to_string(), Tolerance::Relative(0.6))]),
            ..Options::default()
        };
        let rows = compare(&baseline, &slower, &options);
        assert_eq!(row(&rows, "p99_ms.read").status, Status::Pass);
    }

    #[test]
    fn counts_and_rates_regress_on_any_growth_beyond_their_tolerance() {
        let baseline = fixture();
        let mut worse = fixture();
        worse.anomalies.total += 1;
        worse.load.missed_starts = 3;
        worse.operations.get_mut(&Op::Append).unwrap().errors += 100;
        let rows = compare(&baseline, &worse, &Options::default());
        for metric in ["anomalies", "missed_starts", "error_rate"] {
            assert_eq!(row(&rows, metric).status, Status::Regression, "{metric}");
        }
    }

    #[test]
    fn latency_changes_under_the_floor_are_noise() {
        let baseline = fixture();
        let mut slower = fixture();
        // p50 of create is 7.19 ms: +0.9 ms is 12% but under the 1 ms floor.
        slower
            .operations
            .get_mut(&Op::Create)
            .unwrap()
            .latency_ms
            .p50 += 0.9;
        let rows = compare(&baseline, &slower, &Options::default());
        assert_eq!(row(&rows, "p50_ms.create").status, Status::Pass);
        let rows = compare(
            &baseline,
            &slower,
            &Options {
                latency_floor_ms: 0.0,
                ..Options::default()
            },
        );
        assert_eq!(row(&rows, "p50_ms.create").status, Status::Regression);
    }

    #[test]
    fn a_metric_missing_from_the_current_run_fails_and_a_new_one_does_not() {
        let mut baseline = fixture();
        let mut current = fixture();
        current.operations.remove(&Op::Read);
        let rows = compare(&baseline, &current, &Options::default());
        assert_eq!(row(&rows, "p99_ms.read").status, Status::Missing);
        assert!(row(&rows, "p99_ms.read").failed());
        baseline.operations.remove(&Op::Sweep);
        let options = Options {
            per_metric: BTreeMap::from([("p99_ms.sweep".to_string(), Tolerance::Relative(0.1))]),
            ..Options::default()
        };
        let rows = compare(&baseline, &fixture(), &options);
        assert_eq!(row(&rows, "p99_ms.sweep").status, Status::New);
        assert!(!row(&rows, "p99_ms.sweep").failed());
    }

    #[test]
    fn markdown_and_text_tables_say_what_failed() {
        let baseline = fixture();
        let mut slower = fixture();
        slower.run_id = "slow".into();
        slower
            .operations
            .get_mut(&Op::Append)
            .unwrap()
            .latency_ms
            .p99 = 60.0;
        let rows = compare(&baseline, &slower, &Options::default());
        let md = render(&rows, &baseline, &slower, Format::Markdown);
        assert!(md.contains("❌ regression"), "{md}");
        assert!(
            md.contains("| p99_ms.append | 29.52 | 60 | +103.3% | +20% | FAIL |"),
            "{md}"
        );
        assert!(md.contains("|---|---:|"), "{md}");
        let text = render(&rows, &baseline, &slower, Format::Text);
        assert!(
            text.lines()
                .any(|l| l.starts_with("p99_ms.append") && l.ends_with("FAIL")),
            "{text}"
        );
        assert!(text.trim_end().ends_with("1 metric regressed"), "{text}");
    }
}
