//! `[gates]`: thresholds a run must meet (`p99_ms.append < 50`) and tolerances for
//! `sessionstorm compare`, with the names of the metrics both use.
//!
//! Parsing a gate or a metric name is plain text work and lives with the types, so
//! validation and `compare` read them the same way; measuring a metric on a finished
//! run is [`crate::gate`]'s.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::session::{AnomalyKind, Op};

/// `[gates]`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gates {
    pub checks: Vec<Check>,
    pub tolerances: BTreeMap<String, Tolerance>,
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
        spelling(&Quantile::ALL, self)
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
        spelling(&Cmp::ALL, self)
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

/// The name `value` goes by in `table` (its enum's spellings, in the order parsing
/// tries them).
fn spelling<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("?", |(_, name)| name)
}
