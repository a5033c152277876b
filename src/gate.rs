//! The verdict: did the run prove the claim, and which exit code says so.
//!
//! A run passes only when every session it created was checked and none broke the
//! contract. A session the sweep could not read is not a pass: the harness cannot
//! claim nothing was lost about a session it never saw again.
//!
//! On top of that, a scenario's `[gates]` hold thresholds on the run's metrics
//! (`p99_ms.append < 50`): each is a [`Check`], read once when the scenario is
//! validated (an unknown metric or operation is an error there, never a silent
//! pass), evaluated against the [`Summary`] at the end, and a missed one fails the
//! run like an anomaly does. [`Metric`] is also what `sessionstorm compare` compares.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::ExitCode;
use crate::overrides::Setting;
use crate::report::Summary;
use crate::scenario::{Problem, Source};
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

/// A metric of a finished run, by the name gates and `compare` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// A latency percentile of one operation, in milliseconds: corrected for
    /// coordinated omission unless `uncorrected`.
    Latency {
        quantile: Quantile,
        op: Op,
        uncorrected: bool,
    },
    /// Failed requests / requests (a retried append counts each attempt).
    ErrorRate,
    /// 1 - operations without an answer / operations.
    Availability,
    /// All anomalies, or those of one kind.
    Anomalies(Option<AnomalyKind>),
    MissedStarts,
    /// Sessions the final sweep could not read.
    Unverified,
    /// The longest time from a fault until users stopped seeing errors.
    RecoveryMax,
    /// That time summed over every fault.
    RecoveryTotal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quantile {
    P50,
    P90,
    P99,
    P999,
    Max,
}

impl Quantile {
    const ALL: [(Quantile, &'static str); 5] = [
        (Quantile::P50, "p50"),
        (Quantile::P90, "p90"),
        (Quantile::P99, "p99"),
        (Quantile::P999, "p999"),
        (Quantile::Max, "max"),
    ];

    fn name(self) -> &'static str {
        Quantile::ALL
            .iter()
            .find(|(q, _)| *q == self)
            .map_or("?", |(_, n)| n)
    }

    fn of(self, p: &crate::metrics::Percentiles) -> f64 {
        match self {
            Quantile::P50 => p.p50,
            Quantile::P90 => p.p90,
            Quantile::P99 => p.p99,
            Quantile::P999 => p.p999,
            Quantile::Max => p.max,
        }
    }
}

/// What `Metric::from_str` accepts, for error messages.
pub const METRICS: &str = "p50_ms.<op>, p90_ms.<op>, p99_ms.<op>, p999_ms.<op>, max_ms.<op> (corrected; prefix `uncorrected_` for the uncorrected figure), error_rate, availability, anomalies, anomalies.<kind>, missed_starts, unverified, recovery_ms.max, recovery_ms.total";
/// The operations a latency metric may name.
pub const OPS: &str = "create, append, read, sweep";

impl Metric {
    /// Larger is better for this metric (only availability).
    pub fn higher_is_better(self) -> bool {
        self == Metric::Availability
    }

    /// Its value in `summary`; `None` when the run has no such figure (an operation
    /// that never ran, a summary without recovery data).
    pub fn value(self, summary: &Summary) -> Option<f64> {
        let ops = summary.operations.values();
        match self {
            Metric::Latency {
                quantile,
                op,
                uncorrected,
            } => {
                let o = summary.operations.get(&op)?;
                let p = if uncorrected {
                    &o.latency_uncorrected_ms
                } else {
                    &o.latency_ms
                };
                (p.count > 0).then(|| quantile.of(p))
            }
            Metric::ErrorRate => {
                let errors: u64 = ops.clone().map(|o| o.errors).sum();
                let requests: u64 = ops.map(|o| o.ok + o.errors).sum();
                Some(ratio(errors, requests))
            }
            Metric::Availability => {
                let failed: u64 = ops.clone().map(|o| o.failed).sum();
                let all: u64 = ops.map(|o| o.ok + o.failed).sum();
                Some(1.0 - ratio(failed, all))
            }
            Metric::Anomalies(None) => Some(summary.anomalies.total as f64),
            Metric::Anomalies(Some(kind)) => Some(
                summary
                    .anomalies
                    .by_kind
                    .get(&kind)
                    .copied()
                    .unwrap_or_default() as f64,
            ),
            Metric::MissedStarts => Some(summary.load.missed_starts as f64),
            Metric::Unverified => Some(summary.sessions.unverified as f64),
            Metric::RecoveryMax => Some(summary.faults.recovery_ms as f64),
            Metric::RecoveryTotal => Some(
                summary
                    .faults
                    .events
                    .iter()
                    .filter_map(|e| e.recovery.as_ref())
                    .map(|r| r.recovery_ms as f64)
                    .sum(),
            ),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Latency {
                quantile,
                op,
                uncorrected,
            } => {
                let prefix = if *uncorrected { "uncorrected_" } else { "" };
                write!(f, "{prefix}{}_ms.{}", quantile.name(), op.name())
            }
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Availability => f.write_str("availability"),
            Metric::Anomalies(None) => f.write_str("anomalies"),
            Metric::Anomalies(Some(kind)) => write!(f, "anomalies.{kind}"),
            Metric::MissedStarts => f.write_str("missed_starts"),
            Metric::Unverified => f.write_str("unverified"),
            Metric::RecoveryMax => f.write_str("recovery_ms.max"),
            Metric::RecoveryTotal => f.write_str("recovery_ms.total"),
        }
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(text: &str) -> Result<Metric, String> {
        let unknown = || format!("unknown metric {text:?}; accepted metrics: {METRICS}");
        let (base, field) = match text.split_once('.') {
            Some((b, f)) => (b, Some(f)),
            None => (text, None),
        };
        let simple = match (base, field) {
            ("error_rate", None) => Some(Metric::ErrorRate),
            ("availability", None) => Some(Metric::Availability),
            ("anomalies", None) => Some(Metric::Anomalies(None)),
            ("missed_starts", None) => Some(Metric::MissedStarts),
            ("unverified", None) => Some(Metric::Unverified),
            ("recovery_ms", Some("max")) => Some(Metric::RecoveryMax),
            ("recovery_ms", Some("total")) => Some(Metric::RecoveryTotal),
            ("recovery_ms", _) => {
                return Err(format!(
                    "unknown metric {text:?}; recovery_ms takes .max or .total"
                ))
            }
            ("anomalies", Some(kind)) => {
                let kind = AnomalyKind::ALL
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .ok_or_else(|| {
                        let kinds: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.name()).collect();
                        format!(
                            "unknown anomaly kind {kind:?} in {text:?}; accepted kinds: {}",
                            kinds.join(", ")
                        )
                    })?;
                Some(Metric::Anomalies(Some(kind)))
            }
            _ => None,
        };
        if let Some(metric) = simple {
            return Ok(metric);
        }
        let (uncorrected, base) = match base.strip_prefix("uncorrected_") {
            Some(rest) => (true, rest),
            None => (false, base),
        };
        let quantile = base
            .strip_suffix("_ms")
            .and_then(|q| Quantile::ALL.iter().find(|(_, n)| *n == q))
            .map(|(q, _)| *q)
            .ok_or_else(unknown)?;
        let Some(op) = field else {
            return Err(format!(
                "{text:?} needs an operation: {text}.<op> with <op> one of {OPS}"
            ));
        };
        let op = Op::ALL
            .into_iter()
            .find(|o| o.name() == op)
            .ok_or_else(|| {
                format!("unknown operation {op:?} in {text:?}; accepted operations: {OPS}")
            })?;
        Ok(Metric::Latency {
            quantile,
            op,
            uncorrected,
        })
    }
}

/// A comparison operator of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Cmp {
    /// Longest first, so `<=` is not read as `<`.
    const ALL: [(Cmp, &'static str); 6] = [
        (Cmp::Le, "<="),
        (Cmp::Ge, ">="),
        (Cmp::Eq, "=="),
        (Cmp::Ne, "!="),
        (Cmp::Lt, "<"),
        (Cmp::Gt, ">"),
    ];

    fn symbol(self) -> &'static str {
        Cmp::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("?", |(_, s)| s)
    }

    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Cmp::Lt => value < threshold,
            Cmp::Le => value <= threshold,
            Cmp::Gt => value > threshold,
            Cmp::Ge => value >= threshold,
            Cmp::Eq => value == threshold,
            Cmp::Ne => value != threshold,
        }
    }
}

/// One gate: `<metric> <op> <number>`, e.g. `p99_ms.append < 50`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub metric: Metric,
    pub cmp: Cmp,
    pub threshold: f64,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.metric,
            self.cmp.symbol(),
            self.threshold
        )
    }
}

impl FromStr for Check {
    type Err = String;

    fn from_str(text: &str) -> Result<Check, String> {
        let shape = "write a gate as `<metric> <operator> <number>`, e.g. \"p99_ms.append < 50\", with an operator among < <= > >= == !=";
        let (at, cmp, symbol) = Cmp::ALL
            .iter()
            .filter_map(|(cmp, symbol)| text.find(symbol).map(|at| (at, *cmp, *symbol)))
            .min_by_key(|(at, _, symbol)| (*at, std::cmp::Reverse(symbol.len())))
            .ok_or_else(|| format!("{text:?} has no comparison; {shape}"))?;
        let metric = text[..at].trim();
        let number = text[at + symbol.len()..].trim();
        if metric.is_empty() {
            return Err(format!("{text:?} has no metric; {shape}"));
        }
        let metric: Metric = metric.parse()?;
        let threshold = number
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| format!("{number:?} in {text:?} is not a number; {shape}"))?;
        Ok(Check {
            metric,
            cmp,
            threshold,
        })
    }
}

/// How much worse a metric may get against a baseline before `compare` fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// A fraction of the baseline: `10%` is 0.10.
    Relative(f64),
    /// An amount in the metric's unit.
    Absolute(f64),
}

impl FromStr for Tolerance {
    type Err = String;

    fn from_str(text: &str) -> Result<Tolerance, String> {
        let bad = || {
            format!("{text:?} is not a tolerance; write a percentage of the baseline (\"10%\") or an amount in the metric's unit (\"0.001\", \"5\")")
        };
        let number = |t: &str| {
            t.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(bad)
        };
        match text.trim().strip_suffix('%') {
            Some(pct) => Ok(Tolerance::Relative(number(pct)? / 100.0)),
            None => Ok(Tolerance::Absolute(number(text)?)),
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tolerance::Relative(r) => write!(f, "{}%", r * 100.0),
            Tolerance::Absolute(a) => write!(f, "{a}"),
        }
    }
}

/// `[gates]` as written in a scenario.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGates {
    /// Thresholds the run must meet.
    #[serde(default)]
    pub checks: Vec<Spanned<String>>,
    /// Per-metric tolerances for `sessionstorm compare`, by metric name.
    #[serde(default)]
    pub tolerances: BTreeMap<String, Spanned<String>>,
}

/// `[gates]`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    pub checks: Vec<Check>,
    pub tolerances: BTreeMap<String, Tolerance>,
}

impl Gates {
    /// Reads `[gates]`; every bad entry is a problem at its place in the file, or
    /// names the `--set` it came from.
    pub fn validate(
        raw: &RawGates,
        source: &Source,
        settings: &[Setting],
    ) -> Result<Gates, Vec<Problem>> {
        let problem = |span, message| crate::overrides::locate(source, settings, span, message);
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
pub fn evaluate(checks: &[Check], summary: &Summary) -> Vec<GateResult> {
    checks
        .iter()
        .map(|check| {
            let value = check.metric.value(summary);
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
        let problems = crate::plan::build(&source, &crate::plan::Overrides::default()).unwrap_err();
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
        let plan = crate::plan::build(
            &Source {
                path: "t.toml".into(),
                text: good,
            },
            &crate::plan::Overrides::default(),
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
