//! What the load measured: latency histograms and outcome counts by operation, per
//! interval and for the whole run.
//!
//! Every load shard owns a [`Recorder`] and records into it without any lock. Once a
//! second it hands the recorder's content over ([`Recorder::take`]) to the
//! [`crate::load::collector`], which merges the shards' pieces of an interval, writes
//! the interval log and keeps only percentiles per interval, so memory does not grow
//! with the run's length. Errors are counted by kind in a small map, never listed.
//!
//! Latency is kept twice, like wrk2: *corrected* from the time the operation was
//! meant to start (so a stalled server shows up in full, coordinated omission
//! corrected) and *uncorrected* from the time it was actually sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::session::Op;

/// Why a request did not get a usable answer. Errors are availability, not loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
    /// A TLS handshake the client or the server refused (an unknown issuer, a
    /// plain HTTP port); the report's `error_messages` say why.
    Tls,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Reset,
        ErrorKind::Status5xx,
        ErrorKind::Status4xx,
        ErrorKind::BadBody,
        ErrorKind::Tls,
    ];

    pub fn from_status(status: http::StatusCode) -> ErrorKind {
        if status.is_server_error() {
            ErrorKind::Status5xx
        } else {
            ErrorKind::Status4xx
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Reset => "reset",
            ErrorKind::Status5xx => "status_5xx",
            ErrorKind::Status4xx => "status_4xx",
            ErrorKind::BadBody => "bad_body",
            ErrorKind::Tls => "tls",
        }
    }
}

/// How a logical operation (an append with its retries, say) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Error,
}

/// Highest latency a histogram holds, in microseconds; longer values are clamped.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits. `u32` counts keep it
/// under 100 KB while still counting four billion operations per interval.
pub type LatencyHistogram = Histogram<u32>;

pub fn new_histogram() -> LatencyHistogram {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// From a histogram in microseconds.
    pub fn of<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            mean: h.mean().round() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }

    pub fn empty() -> Self {
        Percentiles {
            count: 0,
            mean: 0.0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
        }
    }
}

/// Steps per halving of the distance to 100% in a [`spectrum`]: HdrHistogram's
/// own percentile-distribution output uses 5 as well.
const SPECTRUM_TICKS: u32 = 5;

/// The whole latency distribution as (percentile, ms) points, from 0% to 100%,
/// denser towards the tail (every halving of the distance to 100% gets
/// [`SPECTRUM_TICKS`] points), the way HdrHistogram prints a percentile
/// distribution. A few dozen points whatever the count, so summary.json stays small
/// and the report can draw the full curve from it.
pub fn spectrum<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<[f64; 2]> = h
        .iter_quantiles(SPECTRUM_TICKS)
        .map(|v| {
            let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            [v.quantile_iterated_to() * 100.0, ms]
        })
        .collect();
    // The iterator ends on 100% at the largest value's bucket; say the max exactly.
    if let Some(last) = points.last_mut() {
        *last = [100.0, h.max() as f64 / 1000.0];
    }
    points
}

/// Corrected and uncorrected latency of one operation kind and outcome.
#[derive(Debug, Clone)]
pub struct Latency {
    pub corrected: LatencyHistogram,
    pub uncorrected: LatencyHistogram,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
        }
    }
}

/// Counts and histograms of some span of the run: one interval of one shard, one
/// interval of the run, or the whole run.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub latency: BTreeMap<(Op, Outcome), Latency>,
    /// How long after its intended start each operation was sent: the harness's own
    /// lateness (the alarm's and the runtime's), plus the wait of missed starts. The
    /// difference between corrected and uncorrected latency, one operation at a time.
    pub start_lateness: LatencyHistogram,
    /// Failed requests by kind; an append retried three times can count three.
    pub errors: BTreeMap<(Op, ErrorKind), u64>,
    /// Operations the open model could not start on time.
    pub missed_starts: u64,
    /// Answers by `X-Served-By`, to show how the balancer spread the load.
    pub served_by: BTreeMap<String, u64>,
    /// Failed requests by the replica instance that answered them, or that the
    /// balancer had sent them to; a request that got no answer naming one (a
    /// refused connection, a timeout) is not here but in `errors_without_replica`.
    pub errors_by: BTreeMap<String, u64>,
    /// Failed requests no replica can be named for. With `errors_by` it adds up to
    /// `errors`, so a reader can tell where every failed request went.
    pub errors_without_replica: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: BTreeMap::new(),
            start_lateness: new_histogram(),
            errors: BTreeMap::new(),
            missed_starts: 0,
            served_by: BTreeMap::new(),
            errors_by: BTreeMap::new(),
            errors_without_replica: 0,
        }
    }
}

impl Recorder {
    /// Records a finished operation: `corrected` runs from its intended start,
    /// `uncorrected` from its actual send.
    pub fn op(&mut self, op: Op, outcome: Outcome, corrected: Duration, uncorrected: Duration) {
        let latency = self.latency.entry((op, outcome)).or_default();
        latency.corrected.saturating_record(micros(corrected));
        latency.uncorrected.saturating_record(micros(uncorrected));
        self.start_lateness
            .saturating_record(micros(corrected.saturating_sub(uncorrected)));
    }

    /// A failed request of `op`; `by` is the replica instance that answered it or,
    /// from the balancer, the slot it was sent to (`replica-2`). A slot is put down
    /// to the newest instance of it that answered this interval: the one that was
    /// there when the request failed, unless its replacement answered before.
    pub fn error(&mut self, op: Op, kind: ErrorKind, by: Option<&str>) {
        *self.errors.entry((op, kind)).or_default() += 1;
        match by {
            Some(by) => {
                let instance = self.newest_instance_of(by).unwrap_or(by).to_string();
                *self.errors_by.entry(instance).or_default() += 1;
            }
            None => self.errors_without_replica += 1,
        }
    }

    /// The newest instance (`replica-2.3`) of slot `slot` (`replica-2`) that answered.
    fn newest_instance_of(&self, slot: &str) -> Option<&str> {
        let generation = |instance: &str| {
            let rest = instance.strip_prefix(slot)?.strip_prefix('.')?;
            rest.parse::<u64>().ok()
        };
        self.served_by
            .range(format!("{slot}.")..)
            .take_while(|(instance, _)| instance.starts_with(slot))
            .filter_map(|(instance, _)| Some((generation(instance)?, instance.as_str())))
            .max()
            .map(|(_, instance)| instance)
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

    /// Operations of `op` that ended with `outcome`.
    pub fn count(&self, op: Op, outcome: Outcome) -> u64 {
        self.latency
            .get(&(op, outcome))
            .map_or(0, |l| l.corrected.len())
    }

    /// The latency of several operation kinds together, for one outcome.
    pub fn latency_of(&self, ops: &[Op], outcome: Outcome) -> Latency {
        let mut all = Latency::default();
        for op in ops {
            if let Some(l) = self.latency.get(&(*op, outcome)) {
                all.corrected
                    .add(&l.corrected)
                    .expect("histograms share their bounds");
                all.uncorrected
                    .add(&l.uncorrected)
                    .expect("histograms share their bounds");
            }
        }
        all
    }

    /// Failed requests of `op`, all kinds.
    pub fn errors_of(&self, op: Op) -> BTreeMap<ErrorKind, u64> {
        self.errors
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|((_, kind), n)| (*kind, *n))
            .collect()
    }

    /// The operations that appear in this recorder, in order.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .latency
            .keys()
            .map(|(op, _)| *op)
            .chain(self.errors.keys().map(|(op, _)| *op))
            .collect();
        ops.sort();
        ops.dedup();
        ops
    }

    pub fn merge(&mut self, other: &Recorder) {
        for (key, latency) in &other.latency {
            let mine = self.latency.entry(*key).or_default();
            mine.corrected
                .add(&latency.corrected)
                .expect("histograms share their bounds");
            mine.uncorrected
                .add(&latency.uncorrected)
                .expect("histograms share their bounds");
        }
        self.start_lateness
            .add(&other.start_lateness)
            .expect("histograms share their bounds");
        for (key, n) in &other.errors {
            *self.errors.entry(*key).or_default() += n;
        }
        self.missed_starts += other.missed_starts;
        for (instance, n) in &other.served_by {
            *self.served_by.entry(instance.clone()).or_default() += n;
        }
        for (instance, n) in &other.errors_by {
            *self.errors_by.entry(instance.clone()).or_default() += n;
        }
        self.errors_without_replica += other.errors_without_replica;
    }

    /// Hands over what was recorded and starts afresh, keeping the histograms'
    /// allocations so a shard does not allocate once a second.
    pub fn take(&mut self) -> Recorder {
        let taken = self.clone();
        for latency in self.latency.values_mut() {
            latency.corrected.reset();
            latency.uncorrected.reset();
        }
        self.start_lateness.reset();
        self.errors.clear();
        self.missed_starts = 0;
        self.served_by.clear();
        self.errors_by.clear();
        self.errors_without_replica = 0;
        taken
    }
}

/// When requests failed, in 10 ms buckets from the start of the load, shared by all
/// load shards. Chaos reads it to measure each fault's error window from the
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
    pub missed_starts: AtomicU64,
    /// p99 (corrected, worst operation kind) of the last closed one-second interval,
    /// in microseconds; set by the load's collector.
    pub interval_p99_us: AtomicU64,
    /// Replicas that answered (distinct `X-Served-By`) in the last closed interval.
    pub serving: AtomicU64,
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
    fn the_spectrum_covers_the_whole_distribution_densest_at_the_tail() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        h.record(1_000_000).unwrap();
        let points = spectrum(&h);
        assert_eq!(points.first().unwrap()[0], 0.0);
        assert_eq!(*points.last().unwrap(), [100.0, Percentiles::of(&h).max]);
        assert!(points
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
        // Many more points past p90 than below it, and p99 close to 9.9 ms.
        let tail = points.iter().filter(|p| p[0] > 90.0).count();
        assert!(tail > points.len() / 2, "{points:?}");
        let p99 = points.iter().find(|p| p[0] >= 99.0).unwrap()[1];
        assert!((9.8..10.1).contains(&p99), "{p99}");
        assert!(points.len() < 200, "{}", points.len());
        assert!(spectrum(&new_histogram()).is_empty());
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut a = Recorder::default();
        a.op(Op::Append, Outcome::Ok, ms(2), ms(1));
        a.error(Op::Append, ErrorKind::Timeout, None);
        a.served(Some("r0"));
        let mut b = Recorder::default();
        b.op(Op::Append, Outcome::Ok, ms(40), ms(3));
        b.error(Op::Append, ErrorKind::Timeout, None);
        b.error(Op::Read, ErrorKind::Status5xx, Some("replica-1"));
        b.missed_starts = 2;
        b.served(Some("r0"));
        b.served(Some("r1"));
        a.merge(&b);
        assert_eq!(a.count(Op::Append, Outcome::Ok), 2);
        assert_eq!(a.errors_of(Op::Append)[&ErrorKind::Timeout], 2);
        let latency = &a.latency[&(Op::Append, Outcome::Ok)];
        assert!(latency.corrected.max() >= 39_000);
        assert!(latency.uncorrected.max() < 4_000);
        // Started 1 and 37 ms after they were due.
        assert_eq!(a.start_lateness.len(), 2);
        assert!(a.start_lateness.equivalent(a.start_lateness.max(), 37_000));
        assert_eq!(a.errors_of(Op::Read).values().sum::<u64>(), 1);
        assert_eq!(a.missed_starts, 2);
        assert_eq!(a.served_by["r0"], 2);
        assert_eq!(a.ops(), [Op::Append, Op::Read]);
    }

    #[test]
    fn an_error_is_put_down_to_the_instance_that_answered_or_the_newest_of_its_slot() {
        let mut r = Recorder::default();
        r.served(Some("replica-1.0"));
        r.served(Some("replica-1.2"));
        r.served(Some("replica-10.7"));
        r.error(Op::Read, ErrorKind::Status5xx, Some("replica-1.0"));
        r.error(Op::Read, ErrorKind::Status5xx, Some("replica-1"));
        r.error(Op::Read, ErrorKind::Status5xx, Some("replica-3"));
        r.error(Op::Read, ErrorKind::Connect, None);
        assert_eq!(r.errors_by["replica-1.0"], 1);
        assert_eq!(r.errors_by["replica-1.2"], 1);
        assert_eq!(r.errors_by["replica-3"], 1, "no instance of it answered");
        assert_eq!(r.errors_by.values().sum::<u64>(), 3);
        assert_eq!(r.errors_without_replica, 1, "the refused connection");
        let mut total = Recorder::default();
        total.merge(&r);
        total.merge(&r.take());
        assert_eq!(total.errors_by["replica-1.2"], 2);
        assert_eq!(total.errors_without_replica, 2);
        assert!(r.errors_by.is_empty() && r.errors_without_replica == 0);
    }

    #[test]
    fn take_hands_over_and_resets() {
        let mut r = Recorder::default();
        r.op(Op::Read, Outcome::Ok, ms(5), ms(5));
        r.error(Op::Read, ErrorKind::Reset, None);
        r.missed_starts = 1;
        let taken = r.take();
        assert_eq!(taken.count(Op::Read, Outcome::Ok), 1);
        assert_eq!(taken.missed_starts, 1);
        assert_eq!(r.count(Op::Read, Outcome::Ok), 0);
        assert!(r.errors.is_empty());
        assert_eq!(r.missed_starts, 0);
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99 - 990.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
        assert!((p.mean - 500.5).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn sub_microsecond_latency_is_still_counted() {
        let mut r = Recorder::default();
        r.op(
            Op::Read,
            Outcome::Ok,
            Duration::from_nanos(10),
            Duration::ZERO,
        );
        assert_eq!(r.count(Op::Read, Outcome::Ok), 1);
    }

    #[test]
    fn failure_timeline_buckets_by_ten_milliseconds() {
        let t = FailureTimeline::new(Duration::from_secs(1));
        t.record(ms(105));
        t.record(ms(109));
        t.record(ms(250));
        t.record(Duration::from_secs(60)); // past the span: last bucket
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
}
