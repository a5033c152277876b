//! The run over time, one row per interval, and the bounded series of it that
//! summary.json and the charts keep.
//!
//! A row per second is 2 KB or so in summary.json: 7 MB an hour, 170 MB a day. So
//! the full-resolution rows stream to `latency.csv` (and the histograms to
//! `latency.hlog`) as the run goes, and the summary keeps a [`Series`] of at most
//! [`MAX_POINTS`] points: once it is full, neighbouring points merge in pairs and
//! each new point spans twice the seconds. A merged point keeps what a chart must
//! not lose: counts are summed, each latency percentile is the worst second's (a
//! one-second spike stays as high as it was), and `ok_min` is the fewest
//! operations any one of its seconds completed (a dip stays as deep).
//!
//! The series is generic over its [`Point`]: the report's anomalies per second
//! (`report::AnomalySecond`) are bounded the same way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{ErrorKind, Outcome, Percentiles, Recorder};
use crate::session::Op;

/// The most points a [`Series`] keeps: a chart 1000 pixels wide draws no more, and
/// summary.json stays near 1 MB.
pub const MAX_POINTS: usize = 512;

/// One interval of the run (or, downsampled, several), as it goes into summary.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRow {
    /// Start of the interval, seconds from the start of the load.
    pub t: u64,
    /// Seconds it spans: 1, or more once the run is longer than [`MAX_POINTS`] s.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub span_s: u64,
    /// Inside the warm-up: shown, but left out of the run's statistics.
    pub warmup: bool,
    pub missed_starts: u64,
    pub ops: BTreeMap<Op, IntervalOp>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalOp {
    pub ok: u64,
    /// Operations that ended without an answer (after their retries).
    pub failed: u64,
    /// Failed requests by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    pub corrected_ms: Percentiles,
    pub uncorrected_ms: Percentiles,
    /// In a point of several seconds: the fewest operations completed in any one
    /// of them (absent for a single second, where it is `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok_min: Option<u64>,
}

impl IntervalOp {
    pub fn of(recorder: &Recorder, op: Op) -> Self {
        let ok = recorder.latency.get(&(op, Outcome::Ok));
        IntervalOp {
            ok: recorder.count(op, Outcome::Ok),
            failed: recorder.count(op, Outcome::Error),
            errors: recorder.errors_of(op),
            corrected_ms: ok.map_or_else(Percentiles::empty, |l| Percentiles::of(&l.corrected)),
            uncorrected_ms: ok.map_or_else(Percentiles::empty, |l| Percentiles::of(&l.uncorrected)),
            ok_min: None,
        }
    }

    /// The fewest completed in one second of it.
    fn fewest(&self) -> u64 {
        self.ok_min.unwrap_or(self.ok)
    }

    /// Adds the next seconds' figures.
    fn absorb(&mut self, later: &IntervalOp) {
        self.ok_min = Some(self.fewest().min(later.fewest()));
        self.ok += later.ok;
        self.failed += later.failed;
        for (kind, n) in &later.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        worst(&mut self.corrected_ms, &later.corrected_ms);
        worst(&mut self.uncorrected_ms, &later.uncorrected_ms);
    }

    /// An operation with no second of its own in a point: none completed.
    fn none() -> IntervalOp {
        IntervalOp {
            ok: 0,
            failed: 0,
            errors: BTreeMap::new(),
            corrected_ms: Percentiles::empty(),
            uncorrected_ms: Percentiles::empty(),
            ok_min: Some(0),
        }
    }
}

/// Two intervals' percentiles as one: the count and mean of both, each percentile
/// the higher of the two.
fn worst(into: &mut Percentiles, other: &Percentiles) {
    let count = into.count + other.count;
    if count > 0 {
        into.mean =
            (into.mean * into.count as f64 + other.mean * other.count as f64) / count as f64;
    }
    into.count = count;
    into.p50 = into.p50.max(other.p50);
    into.p90 = into.p90.max(other.p90);
    into.p99 = into.p99.max(other.p99);
    into.p999 = into.p999.max(other.p999);
    into.max = into.max.max(other.max);
}

/// A point of a [`Series`]: one second, or several merged into one.
pub trait Point {
    /// Its first second, from the start of the load.
    fn t(&self) -> u64;
    /// Adds the point that follows it (a later `t`): it now covers both.
    fn absorb(&mut self, later: &Self);
}

impl Point for IntervalRow {
    fn t(&self) -> u64 {
        self.t
    }

    fn absorb(&mut self, later: &IntervalRow) {
        for (op, figures) in self.ops.iter_mut() {
            if !later.ops.contains_key(op) {
                figures.absorb(&IntervalOp::none());
            }
        }
        for (op, figures) in &later.ops {
            self.ops
                .entry(*op)
                .or_insert_with(IntervalOp::none)
                .absorb(figures);
        }
        self.span_s += later.span_s;
        self.warmup &= later.warmup;
        self.missed_starts += later.missed_starts;
    }
}

/// At most [`MAX_POINTS`] points over the whole run, each spanning `width` seconds
/// (a power of two), the last one possibly still filling. Points may leave seconds
/// out (a second without anomalies has no point).
#[derive(Debug, Clone)]
pub struct Series<P = IntervalRow> {
    points: Vec<P>,
    width: u64,
}

impl<P> Default for Series<P> {
    fn default() -> Self {
        Series {
            points: Vec::new(),
            width: 1,
        }
    }
}

impl<P: Point> Series<P> {
    /// Adds the next point (points come in order of `t`).
    pub fn push(&mut self, row: P) {
        match self.points.last_mut() {
            Some(last) if last.t() / self.width == row.t() / self.width => last.absorb(&row),
            _ => self.points.push(row),
        }
        if self.points.len() > MAX_POINTS {
            self.width *= 2;
            let mut merged: Vec<P> = Vec::with_capacity(MAX_POINTS / 2 + 1);
            for point in self.points.drain(..) {
                match merged.last_mut() {
                    Some(last) if last.t() / self.width == point.t() / self.width => {
                        last.absorb(&point);
                    }
                    _ => merged.push(point),
                }
            }
            self.points = merged;
        }
    }

    pub fn into_rows(self) -> Vec<P> {
        self.points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second in which `ok` reads completed, the slowest taking `max_ms`.
    fn second(t: u64, ok: u64, max_ms: f64) -> IntervalRow {
        let latency = Percentiles {
            count: ok,
            mean: 1.0,
            p50: 1.0,
            p90: 1.0,
            p99: max_ms.min(2.0),
            p999: max_ms,
            max: max_ms,
        };
        let figures = IntervalOp {
            ok,
            failed: u64::from(ok == 0),
            errors: BTreeMap::from([(ErrorKind::Timeout, u64::from(ok == 0))]),
            corrected_ms: latency.clone(),
            uncorrected_ms: latency,
            ok_min: None,
        };
        IntervalRow {
            t,
            span_s: 1,
            warmup: t == 0,
            missed_starts: 1,
            ops: BTreeMap::from([(Op::Read, figures)]),
        }
    }

    #[test]
    fn a_short_run_keeps_every_second() {
        let mut series = Series::default();
        for t in 0..100 {
            series.push(second(t, 10, 1.0));
        }
        let rows = series.into_rows();
        assert_eq!(rows.len(), 100);
        assert!(rows
            .iter()
            .all(|r| r.span_s == 1 && r.ops[&Op::Read].ok_min.is_none()));
    }

    #[test]
    fn a_day_stays_bounded_and_keeps_its_spike_its_dip_and_its_totals() {
        let day = 86_400;
        let mut series = Series::default();
        for t in 0..day {
            let (ok, max_ms) = match t {
                50_000 => (10, 900.0),
                70_000 => (0, 0.0),
                _ => (10, 1.0),
            };
            series.push(second(t, ok, max_ms));
        }
        let rows = series.into_rows();
        assert!(
            rows.len() <= MAX_POINTS && rows.len() > MAX_POINTS / 4,
            "{}",
            rows.len()
        );
        // Contiguous, aligned points that cover the day.
        assert_eq!(rows[0].t, 0);
        for pair in rows.windows(2) {
            assert_eq!(pair[0].t + pair[0].span_s, pair[1].t);
        }
        let spans: u64 = rows.iter().map(|r| r.span_s).sum();
        assert_eq!(spans, day);
        // Nothing counted is lost.
        let ok: u64 = rows.iter().map(|r| r.ops[&Op::Read].ok).sum();
        let missed: u64 = rows.iter().map(|r| r.missed_starts).sum();
        let timeouts: u64 = (rows.iter())
            .map(|r| r.ops[&Op::Read].errors[&ErrorKind::Timeout])
            .sum();
        assert_eq!((ok, missed, timeouts), ((day - 1) * 10, day, 1));
        let at = |t: u64| {
            rows.iter()
                .find(|r| r.t <= t && t < r.t + r.span_s)
                .unwrap()
        };
        // The one slow second is the max of its point, and of no other.
        assert_eq!(at(50_000).ops[&Op::Read].corrected_ms.max, 900.0);
        assert_eq!(at(60_000).ops[&Op::Read].corrected_ms.max, 1.0);
        // The second with nothing done is the fewest of its point.
        assert_eq!(at(70_000).ops[&Op::Read].ok_min, Some(0));
        assert_eq!(at(60_000).ops[&Op::Read].ok_min, Some(10));
        // Only the first point is (partly) warm-up, and it is not marked as all warm.
        assert!(!rows[0].warmup);
    }

    #[test]
    fn an_operation_missing_from_a_second_counts_as_none_done_then() {
        let mut a = second(0, 10, 1.0);
        let mut b = second(1, 10, 1.0);
        b.ops.insert(Op::Append, b.ops[&Op::Read].clone());
        a.absorb(&b);
        assert_eq!(a.ops[&Op::Append].ok, 10);
        assert_eq!(a.ops[&Op::Append].ok_min, Some(0));
        assert_eq!(a.ops[&Op::Read].ok_min, Some(10));
        assert_eq!(a.span_s, 2);
    }
}
