//! The verdict: did the run prove the claim, and which exit code says so.
//!
//! A run passes only when every session it created was checked and none broke the
//! contract. A session the sweep could not read is not a pass: the harness cannot
//! claim nothing was lost about a session it never saw again.
//!
//! On top of that, a scenario's `[gates]` hold thresholds on the run's metrics
//! (`p99_ms.append < 50`): each is a [`Check`], read once when the scenario is
//! validated (an unknown metric or operation is an error there, never a silent
//! pass), evaluated against the run's [`Figures`] at the end, and a missed one fails
//! the run like an anomaly does. [`Metric`] is also what `sessionstorm compare`
//! compares.
//!
//! The gate reads the run through [`Figures`], never through a report: the report is
//! built from the verdict, so it sits above this module (it implements [`Figures`]
//! for its summary).

use serde::{Deserialize, Serialize};

use crate::error::ExitCode;
use crate::metrics::Percentiles;
use crate::plan::{Check, Metric, Quantile};
use crate::session::{AnomalyKind, Op};

/// What the verdict rests on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence {
    pub anomalies: u64,
    pub unverified: u64,
    pub interrupted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `passed`, `failed` or `interrupted`; `running` in the summary written early,
    /// which a run that dies leaves behind.
    pub status: &'static str,
    /// Why it failed, one line each; empty when it passed.
    pub reasons: Vec<String>,
    pub exit_code: i32,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.status == "passed"
    }
}

pub fn judge(evidence: Evidence) -> Verdict {
    let mut reasons = Vec::new();
    if evidence.anomalies > 0 {
        reasons.push(format!(
            "{} session anomalies (sessions or acknowledged writes lost)",
            evidence.anomalies
        ));
    }
    if evidence.unverified > 0 {
        reasons.push(format!(
            "{} sessions could not be read back in the final sweep",
            evidence.unverified
        ));
    }
    let (status, code) = if evidence.interrupted {
        reasons.push("the run was interrupted".to_string());
        ("interrupted", ExitCode::Interrupted)
    } else if reasons.is_empty() {
        ("passed", ExitCode::Passed)
    } else {
        ("failed", ExitCode::VerdictFailed)
    };
    Verdict {
        status,
        reasons,
        exit_code: code.code(),
    }
}

/// The figures of a finished run that metrics are read from.
pub trait Figures {
    /// Latency percentiles of `op` in milliseconds, corrected for coordinated
    /// omission unless `uncorrected`; `None` when the operation never ran.
    fn latency_ms(&self, op: Op, uncorrected: bool) -> Option<&Percentiles>;
    /// Of every operation that ran: answers, failed requests (a retried append counts
    /// each attempt) and operations without an answer.
    fn counts(&self) -> Vec<Counts>;
    /// All anomalies, or those of one kind.
    fn anomalies(&self, kind: Option<AnomalyKind>) -> u64;
    fn missed_starts(&self) -> u64;
    /// Sessions the final sweep could not read.
    fn unverified(&self) -> u64;
    /// The longest time from a fault until users stopped seeing errors.
    fn worst_recovery_ms(&self) -> u64;
    /// That time summed over every fault that has one.
    fn total_recovery_ms(&self) -> u64;
}

/// The outcome counts of one operation, as [`Figures::counts`] gives them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub ok: u64,
    pub errors: u64,
    pub failed: u64,
}

/// Measuring a metric on a run. A trait rather than a method of [`Metric`] because
/// the metric is plan data, which knows nothing of a run's results.
pub trait Measure {
    /// Its value in `run`; `None` when the run has no such figure (an operation that
    /// never ran, a summary without recovery data).
    fn value(self, run: &impl Figures) -> Option<f64>;
}

impl Measure for Metric {
    fn value(self, run: &impl Figures) -> Option<f64> {
        let counts = run.counts();
        match self {
            Metric::Latency {
                quantile,
                op,
                uncorrected,
            } => {
                let p = run.latency_ms(op, uncorrected)?;
                (p.count > 0).then(|| quantile_of(quantile, p))
            }
            Metric::ErrorRate => {
                let errors: u64 = counts.iter().map(|o| o.errors).sum();
                let requests: u64 = counts.iter().map(|o| o.ok + o.errors).sum();
                Some(ratio(errors, requests))
            }
            Metric::Availability => {
                let failed: u64 = counts.iter().map(|o| o.failed).sum();
                let all: u64 = counts.iter().map(|o| o.ok + o.failed).sum();
                Some(1.0 - ratio(failed, all))
            }
            Metric::Anomalies(kind) => Some(run.anomalies(kind) as f64),
            Metric::MissedStarts => Some(run.missed_starts() as f64),
            Metric::Unverified => Some(run.unverified() as f64),
            Metric::RecoveryMax => Some(run.worst_recovery_ms() as f64),
            Metric::RecoveryTotal => Some(run.total_recovery_ms() as f64),
        }
    }
}

fn quantile_of(quantile: Quantile, p: &Percentiles) -> f64 {
    match quantile {
        Quantile::P50 => p.p50,
        Quantile::P90 => p.p90,
        Quantile::P99 => p.p99,
        Quantile::P999 => p.p999,
        Quantile::Max => p.max,
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A gate as evaluated, for summary.json, junit.xml and the terminal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// The gate, normalised (`p99_ms.append < 50`).
    pub expr: String,
    /// The metric's value; `null` when the run has no such figure, which fails.
    pub value: Option<f64>,
    pub passed: bool,
}

/// Evaluates every check against the run.
pub fn evaluate(checks: &[Check], run: &impl Figures) -> Vec<GateResult> {
    checks
        .iter()
        .map(|check| {
            let value = check.metric.value(run);
            GateResult {
                expr: check.to_string(),
                value,
                passed: value.is_some_and(|v| check.cmp.holds(v, check.threshold)),
            }
        })
        .collect()
}

/// Folds missed gates into the verdict: a run that passed on sessions fails on a
/// missed gate (exit 1); an interrupted run stays interrupted.
pub fn apply(verdict: &mut Verdict, gates: &[GateResult]) {
    for gate in gates.iter().filter(|g| !g.passed) {
        let value = gate
            .value
            .map_or_else(|| "no value".to_string(), |v| format!("{v}"));
        verdict
            .reasons
            .push(format!("gate {} missed: the run had {value}", gate.expr));
        if verdict.status == "passed" {
            verdict.status = "failed";
            verdict.exit_code = ExitCode::VerdictFailed.code();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Cmp, Tolerance};
    use crate::report::Summary;
    use crate::scenario::overrides::Overrides;
    use crate::scenario::Source;

    #[test]
    fn clean_run_passes() {
        let v = judge(Evidence::default());
        assert!(v.passed());
        assert_eq!(v.exit_code, 0);
        assert!(v.reasons.is_empty());
    }

    #[test]
    fn anomalies_or_unverified_sessions_fail() {
        let v = judge(Evidence {
            anomalies: 3,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("failed", 1));
        let v = judge(Evidence {
            unverified: 1,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("failed", 1));
        assert!(v.reasons[0].contains("could not be read back"));
    }

    #[test]
    fn interruption_wins_over_the_rest() {
        let v = judge(Evidence {
            anomalies: 1,
            interrupted: true,
            ..Default::default()
        });
        assert_eq!((v.status, v.exit_code), ("interrupted", 130));
        assert_eq!(v.reasons.len(), 2);
    }

    fn fixture() -> Summary {
        Summary::parse(include_str!("../tests/fixtures/summary.json")).unwrap()
    }

    fn check(text: &str) -> Check {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_operator_parses_and_compares() {
        // (gate, holds at 5)
        let cases = [
            ("anomalies < 6", true),
            ("anomalies < 5", false),
            ("anomalies <= 5", true),
            ("anomalies <= 4.9", false),
            ("anomalies > 4", true),
            ("anomalies > 5", false),
            ("anomalies >= 5", true),
            ("anomalies >= 5.1", false),
            ("anomalies == 5", true),
            ("anomalies == 0", false),
            ("anomalies != 0", true),
            ("anomalies != 5", false),
        ];
        for (text, holds) in cases {
            let c = check(text);
            assert_eq!(c.cmp.holds(5.0, c.threshold), holds, "{text}");
            assert_eq!(c.to_string().replace(' ', ""), text.replace(' ', ""));
        }
        assert_eq!(check("anomalies<=1").cmp, Cmp::Le, "no spaces needed");
    }

    #[test]
    fn metric_names_parse_and_print_back() {
        for name in [
            "p50_ms.create",
            "p90_ms.read",
            "p99_ms.append",
            "p999_ms.sweep",
            "max_ms.append",
            "uncorrected_p99_ms.append",
            "error_rate",
            "availability",
            "anomalies",
            "anomalies.lost_write",
            "missed_starts",
            "unverified",
            "recovery_ms.max",
            "recovery_ms.total",
        ] {
            let metric: Metric = name.parse().unwrap();
            assert_eq!(metric.to_string(), name);
        }
    }

    #[test]
    fn unknown_metrics_and_operations_are_rejected_with_what_is_accepted() {
        let err = "p99.append < 50".parse::<Check>().unwrap_err();
        assert!(err.contains("unknown metric \"p99.append\""), "{err}");
        assert!(
            err.contains("p99_ms.<op>") && err.contains("error_rate"),
            "{err}"
        );
        let err = "p99_ms.apend < 50".parse::<Check>().unwrap_err();
        assert!(err.contains("unknown operation \"apend\""), "{err}");
        assert!(err.contains("create, append, read, sweep"), "{err}");
        let err = "p99_ms < 50".parse::<Check>().unwrap_err();
        assert!(err.contains("needs an operation"), "{err}");
        let err = "anomalies.lost < 1".parse::<Check>().unwrap_err();
        assert!(err.contains("lost_write"), "{err}");
        let err = "recovery_ms.p99 < 1".parse::<Check>().unwrap_err();
        assert!(err.contains(".max or .total"), "{err}");
        let err = "error_rate ~ 1".parse::<Check>().unwrap_err();
        assert!(err.contains("no comparison"), "{err}");
        let err = "error_rate < lots".parse::<Check>().unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        let err = "< 3".parse::<Check>().unwrap_err();
        assert!(err.contains("no metric"), "{err}");
    }

    #[test]
    fn a_misspelled_gate_fails_validation_at_its_place_in_the_scenario() {
        let text = "name = \"t\"\nduration = \"5s\"\n[service]\nreplicas = 2\n[load]\nrate = 10\nappends_per_session = 1\n[gates]\nchecks = [\"anomalies == 0\", \"p99_ms.apend < 50\"]\ntolerances = { \"p99_ms.append\" = \"lots\" }\n";
        let source = Source {
            path: "t.toml".into(),
            text: text.into(),
        };
        let problems = crate::validate::build(&source, &Overrides::default()).unwrap_err();
        let all: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{all:#?}");
        assert!(
            all[0].starts_with("t.toml:9:30: gates.checks: unknown operation \"apend\""),
            "{all:#?}"
        );
        assert!(
            all[1].contains("gates.tolerances.p99_ms.append") && all[1].contains("not a tolerance"),
            "{all:#?}"
        );

        let good = text
            .replace("apend", "append")
            .replace("\"lots\"", "\"20%\"");
        let plan = crate::validate::build(
            &Source {
                path: "t.toml".into(),
                text: good,
            },
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(plan.gates.checks.len(), 2);
        assert_eq!(
            plan.gates.tolerances["p99_ms.append"],
            Tolerance::Relative(0.2)
        );
    }

    #[test]
    fn gates_are_evaluated_on_the_summary() {
        let summary = fixture();
        let results = evaluate(
            &[
                check("p99_ms.append < 50"),
                check("p99_ms.append < 20"),
                check("anomalies == 0"),
                check("anomalies.stale_read == 1"),
                check("error_rate < 0.01"),
                check("availability >= 0.99995"),
                check("missed_starts == 0"),
                check("recovery_ms.max < 2000"),
                check("recovery_ms.total == 40"),
                check("uncorrected_p99_ms.sweep > 0"),
            ],
            &summary,
        );
        let passed: Vec<(&str, bool)> = results
            .iter()
            .map(|r| (r.expr.as_str(), r.passed))
            .collect();
        assert_eq!(
            passed,
            [
                ("p99_ms.append < 50", true),
                ("p99_ms.append < 20", false),
                ("anomalies == 0", false),
                ("anomalies.stale_read == 1", true),
                ("error_rate < 0.01", true),
                ("availability >= 0.99995", false),
                ("missed_starts == 0", true),
                ("recovery_ms.max < 2000", true),
                ("recovery_ms.total == 40", true),
                ("uncorrected_p99_ms.sweep > 0", true),
            ]
        );
        assert_eq!(results[0].value, Some(29.519));
        // 7 failed requests out of 22120; 2 failed operations out of 22115.
        let rate = Metric::ErrorRate.value(&summary).unwrap();
        assert!((rate - 7.0 / 22120.0).abs() < 1e-12, "{rate}");
        let availability = Metric::Availability.value(&summary).unwrap();
        assert!(
            (availability - (1.0 - 2.0 / 22115.0)).abs() < 1e-12,
            "{availability}"
        );
    }

    #[test]
    fn a_gate_on_a_figure_the_run_lacks_fails() {
        let mut summary = fixture();
        summary.operations.remove(&Op::Read);
        let results = evaluate(&[check("p99_ms.read < 1000")], &summary);
        assert_eq!(results[0].value, None);
        assert!(!results[0].passed);
    }

    #[test]
    fn a_missed_gate_fails_a_passing_run_and_leaves_an_interrupted_one() {
        let missed = [GateResult {
            expr: "p99_ms.append < 1".into(),
            value: Some(3.5),
            passed: false,
        }];
        let mut v = judge(Evidence::default());
        apply(&mut v, &missed);
        assert_eq!((v.status, v.exit_code), ("failed", 1));
        assert_eq!(
            v.reasons,
            ["gate p99_ms.append < 1 missed: the run had 3.5"]
        );
        let mut v = judge(Evidence {
            interrupted: true,
            ..Default::default()
        });
        apply(&mut v, &missed);
        assert_eq!((v.status, v.exit_code), ("interrupted", 130));
        let mut v = judge(Evidence::default());
        apply(
            &mut v,
            &[GateResult {
                passed: true,
                ..missed[0].clone()
            }],
        );
        assert!(v.passed());
    }

    #[test]
    fn tolerances_parse() {
        assert_eq!("10%".parse(), Ok(Tolerance::Relative(0.1)));
        assert_eq!("0.001".parse(), Ok(Tolerance::Absolute(0.001)));
        assert!("-5%".parse::<Tolerance>().is_err());
        assert!("ten"
            .parse::<Tolerance>()
            .unwrap_err()
            .contains("percentage"));
    }
}
