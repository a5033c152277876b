//! What the load measured: latency histograms and outcome counts by operation.
//!
//! Each virtual user owns a [`Metrics`] and records into it without any lock; the
//! run merges them once at the end. Errors are counted by kind in a fixed map, so
//! memory does not grow with the number of failures. [`Live`] is the only shared
//! state: a handful of relaxed atomic counters for the progress line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::session::Op;

/// Why a request did not get a usable answer. Errors are availability, not loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No connection could be made (refused, unreachable).
    Connect,
    /// No answer within the request timeout.
    Timeout,
    /// The connection broke while the request or answer was under way.
    Reset,
    /// The server answered 5xx.
    Status5xx,
    /// The server answered a 4xx the contract does not expect.
    Status4xx,
    /// A 2xx whose body is not the contract's JSON.
    BadBody,
}

impl ErrorKind {
    pub fn classify(err: &reqwest::Error) -> ErrorKind {
        if err.is_timeout() {
            ErrorKind::Timeout
        } else if err.is_connect() {
            ErrorKind::Connect
        } else if err.is_decode() {
            ErrorKind::BadBody
        } else {
            ErrorKind::Reset
        }
    }

    pub fn from_status(status: reqwest::StatusCode) -> ErrorKind {
        if status.is_server_error() {
            ErrorKind::Status5xx
        } else {
            ErrorKind::Status4xx
        }
    }
}

/// Latency and outcomes of one operation kind.
#[derive(Debug, Clone)]
pub struct OpStats {
    pub ok: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Latency in microseconds of each successful operation, retries included: the
    /// time a user waited.
    pub latency: Histogram<u64>,
}

/// Highest latency a histogram holds; longer values are clamped to it.
const MAX_LATENCY_US: u64 = 3_600_000_000;

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            ok: 0,
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
        }
    }
}

impl OpStats {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
    }
}

/// Everything one virtual user (or the sweep) measured.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub ops: BTreeMap<Op, OpStats>,
    /// Answers by `X-Served-By`, to show how the balancer spread the load.
    pub served_by: BTreeMap<String, u64>,
}

impl Metrics {
    pub fn ok(&mut self, op: Op, latency: Duration) {
        let stats = self.ops.entry(op).or_default();
        stats.ok += 1;
        stats
            .latency
            .saturating_record((latency.as_micros() as u64).clamp(1, MAX_LATENCY_US));
    }

    pub fn error(&mut self, op: Op, kind: ErrorKind) {
        *self
            .ops
            .entry(op)
            .or_default()
            .errors
            .entry(kind)
            .or_default() += 1;
    }

    pub fn served(&mut self, instance: Option<&str>) {
        if let Some(instance) = instance {
            match self.served_by.get_mut(instance) {
                Some(n) => *n += 1,
                None => {
                    self.served_by.insert(instance.to_string(), 1);
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Metrics) {
        for (op, stats) in &other.ops {
            self.ops.entry(*op).or_default().merge(stats);
        }
        for (instance, n) in &other.served_by {
            *self.served_by.entry(instance.clone()).or_default() += n;
        }
    }
}

/// When requests failed, in 10 ms buckets from the start of the load, shared by all
/// virtual users. Chaos reads it to measure each fault's error window from the
/// user's side. Failures are rare next to successes, so one atomic add per failure
/// costs nothing on the hot path, and the size depends only on the run's length
/// (4 bytes per 10 ms: 1.4 MB per hour).
#[derive(Debug)]
pub struct FailureTimeline {
    buckets: Vec<AtomicU32>,
}

impl FailureTimeline {
    pub const RESOLUTION: Duration = Duration::from_millis(10);

    /// A timeline covering `span`; later failures land in the last bucket.
    pub fn new(span: Duration) -> Self {
        let n = (span.as_millis() / Self::RESOLUTION.as_millis()) as usize + 1;
        FailureTimeline {
            buckets: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    fn bucket(&self, at: Duration) -> usize {
        ((at.as_millis() / Self::RESOLUTION.as_millis()) as usize).min(self.buckets.len() - 1)
    }

    pub fn record(&self, at: Duration) {
        self.buckets[self.bucket(at)].fetch_add(1, Ordering::Relaxed);
    }

    /// Failures in `[from, to)`, by bucket: `(bucket start, count)` for each bucket
    /// with at least one failure.
    pub fn failures_between(&self, from: Duration, to: Duration) -> Vec<(Duration, u32)> {
        let first = self.bucket(from);
        let last =
            ((to.as_millis() / Self::RESOLUTION.as_millis()) as usize).min(self.buckets.len());
        (first..last)
            .filter_map(|i| {
                let n = self.buckets[i].load(Ordering::Relaxed);
                (n > 0).then(|| (Self::RESOLUTION * i as u32, n))
            })
            .collect()
    }
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub anomalies: AtomicU64,
    pub sessions: AtomicU64,
    pub faults: AtomicU64,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Metrics::default();
        a.ok(Op::Append, Duration::from_millis(2));
        a.error(Op::Append, ErrorKind::Timeout);
        a.served(Some("r0"));
        let mut b = Metrics::default();
        b.ok(Op::Append, Duration::from_millis(40));
        b.error(Op::Append, ErrorKind::Timeout);
        b.error(Op::Read, ErrorKind::Status5xx);
        b.served(Some("r0"));
        b.served(Some("r1"));
        a.merge(&b);
        let append = &a.ops[&Op::Append];
        assert_eq!(append.ok, 2);
        assert_eq!(append.errors[&ErrorKind::Timeout], 2);
        assert_eq!(append.latency.len(), 2);
        assert!(append.latency.max() >= 39_000);
        assert_eq!(a.ops[&Op::Read].error_count(), 1);
        assert_eq!(a.served_by["r0"], 2);
        assert_eq!(a.served_by["r1"], 1);
    }

    #[test]
    fn failure_timeline_buckets_by_ten_milliseconds() {
        let t = FailureTimeline::new(Duration::from_secs(1));
        t.record(Duration::from_millis(105));
        t.record(Duration::from_millis(109));
        t.record(Duration::from_millis(250));
        t.record(Duration::from_secs(60)); // past the span: last bucket
        let ms = |n| Duration::from_millis(n);
        assert_eq!(t.failures_between(ms(0), ms(200)), [(ms(100), 2)]);
        assert_eq!(
            t.failures_between(ms(0), ms(1000)),
            [(ms(100), 2), (ms(250), 1)]
        );
        assert_eq!(
            t.failures_between(ms(0), ms(5000)).last(),
            Some(&(ms(1000), 1))
        );
    }

    #[test]
    fn sub_microsecond_latency_is_still_counted() {
        let mut m = Metrics::default();
        m.ok(Op::Read, Duration::from_nanos(10));
        assert_eq!(m.ops[&Op::Read].latency.len(), 1);
    }
}
