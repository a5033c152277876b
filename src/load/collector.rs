//! Merges the shards' per-second recorders into one row per interval, hands each
//! completed interval to the caller's [`IntervalSink`]s, and keeps run totals.
//!
//! An interval is complete once every source has reported it or finished, so a row
//! never misses a late shard. Each interval goes to the sinks (in a run, the report's
//! streamed formats: `latency.csv` and the HdrHistogram log) and its row into a
//! bounded [`Series`]; the histograms are merged into the totals, so memory is
//! bounded whatever the run's length.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::series::Series;
pub use super::series::{IntervalOp, IntervalRow};
use crate::metrics::{Live, Recorder};

/// The length of an interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// What sources send.
#[derive(Debug)]
pub enum Message {
    /// What `source` recorded during interval `index` (counting from 0).
    Interval {
        source: usize,
        index: u64,
        /// Boxed: a recorder is large next to `Done`.
        recorder: Box<Recorder>,
    },
    /// `source` will send nothing more.
    Done { source: usize },
}

/// The collector's result.
#[derive(Debug, Default)]
pub struct Collected {
    /// Everything after the warm-up.
    pub totals: Recorder,
    /// The run over time, at most [`super::series::MAX_POINTS`] points.
    pub intervals: Vec<IntervalRow>,
    /// The sinks that stopped early, and why: `"latency.csv stopped early: …"`.
    pub stopped: Vec<String>,
}

/// Where every completed interval goes as the run goes, at full resolution. The
/// report's streamed formats implement it, so the load names no output format and
/// a new format needs no change here.
pub trait IntervalSink: Send {
    /// What a warning calls the sink when it stops ("latency.csv").
    fn name(&self) -> &'static str;

    /// Takes one completed interval: its row (`t` and `span_s` say which seconds)
    /// and the merged recorder the row was made from.
    fn interval(&mut self, row: &IntervalRow, recorder: &Recorder) -> std::io::Result<()>;
}

/// The sinks of a run, written in this order; a sink that fails is dropped (the
/// run goes on) and named in [`Collected::stopped`].
pub type Sinks = Vec<Box<dyn IntervalSink>>;

/// Receives from `sources` sources until each has said it is done.
pub async fn collect(
    mut inbox: mpsc::UnboundedReceiver<Message>,
    sources: usize,
    warmup: Duration,
    mut sinks: Sinks,
    live: Arc<Live>,
) -> Collected {
    let mut collected = Collected::default();
    let mut series = Series::default();
    let mut pending: BTreeMap<u64, Recorder> = BTreeMap::new();
    // The next interval each source will report; u64::MAX once it is done.
    let mut next = vec![0u64; sources];
    while let Some(message) = inbox.recv().await {
        match message {
            Message::Interval {
                source,
                index,
                recorder,
            } => {
                pending.entry(index).or_default().merge(&recorder);
                next[source] = index + 1;
            }
            Message::Done { source } => next[source] = u64::MAX,
        }
        let complete_below = next.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(entry) = pending.first_entry() {
            if *entry.key() >= complete_below {
                break;
            }
            let (index, recorder) = entry.remove_entry();
            let row = close_interval(&mut collected, index, &recorder, warmup, &mut sinks);
            publish(&live, &row, &recorder);
            series.push(row);
        }
        if complete_below == u64::MAX {
            break;
        }
    }
    // Sources that vanished without saying so: close what they left.
    for (index, recorder) in std::mem::take(&mut pending) {
        series.push(close_interval(
            &mut collected,
            index,
            &recorder,
            warmup,
            &mut sinks,
        ));
    }
    collected.intervals = series.into_rows();
    collected
}

/// Feeds the live display with the interval just closed.
fn publish(live: &Live, row: &IntervalRow, recorder: &Recorder) {
    let p99_ms = row
        .ops
        .values()
        .map(|op| op.corrected_ms.p99)
        .fold(0.0, f64::max);
    live.interval_p99_us
        .store((p99_ms * 1000.0) as u64, Ordering::Relaxed);
    live.serving
        .store(recorder.served_by.len() as u64, Ordering::Relaxed);
}

/// Adds the interval to the totals and hands it to the sinks; returns its row.
fn close_interval(
    collected: &mut Collected,
    index: u64,
    recorder: &Recorder,
    warmup: Duration,
    sinks: &mut Sinks,
) -> IntervalRow {
    let warm = INTERVAL * (index as u32 + 1) <= warmup;
    if !warm {
        collected.totals.merge(recorder);
    }
    let row = IntervalRow {
        t: index,
        span_s: 1,
        warmup: warm,
        missed_starts: recorder.missed_starts,
        ops: recorder
            .ops()
            .into_iter()
            .map(|op| (op, IntervalOp::of(recorder, op)))
            .collect(),
    };
    sinks.retain_mut(|sink| match sink.interval(&row, recorder) {
        Ok(()) => true,
        Err(err) => {
            (collected.stopped).push(format!("{} stopped early: {err}", sink.name()));
            false
        }
    });
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Outcome;
    use crate::session::Op;

    fn recorder(ms: u64, missed: u64) -> Recorder {
        let mut r = Recorder::default();
        r.op(
            Op::Append,
            Outcome::Ok,
            Duration::from_millis(ms),
            Duration::from_millis(1),
        );
        r.missed_starts = missed;
        r
    }

    #[tokio::test]
    async fn intervals_close_when_every_source_reported_and_warmup_is_left_out() {
        let (tx, rx) = mpsc::unbounded_channel();
        let send = |source, index, r| {
            tx.send(Message::Interval {
                source,
                index,
                recorder: Box::new(r),
            })
            .unwrap()
        };
        send(0, 0, recorder(10, 1));
        send(1, 0, recorder(20, 0));
        send(0, 1, recorder(30, 0));
        send(1, 1, recorder(40, 2));
        send(0, 2, recorder(50, 0));
        tx.send(Message::Done { source: 0 }).unwrap();
        tx.send(Message::Done { source: 1 }).unwrap();
        let collected = collect(rx, 2, Duration::from_secs(1), Sinks::new(), Arc::default()).await;
        let rows = &collected.intervals;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.iter().map(|r| r.t).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(rows[0].warmup && !rows[1].warmup);
        assert_eq!(rows[0].ops[&Op::Append].ok, 2);
        assert_eq!(rows[1].missed_starts, 2);
        // Totals leave the warm-up interval out: 3 operations, 2 missed starts.
        assert_eq!(collected.totals.count(Op::Append, Outcome::Ok), 3);
        assert_eq!(collected.totals.missed_starts, 2);
        let p = &rows[1].ops[&Op::Append].corrected_ms;
        assert!(p.max >= 39.0 && p.max <= 41.0, "{p:?}");
    }

    /// One source's `seconds` intervals of 10 ms appends, and its end.
    fn one_source(seconds: u64) -> mpsc::UnboundedReceiver<Message> {
        let (tx, rx) = mpsc::unbounded_channel();
        for index in 0..seconds {
            let recorder = Box::new(recorder(10, 0));
            tx.send(Message::Interval {
                source: 0,
                index,
                recorder,
            })
            .unwrap();
        }
        tx.send(Message::Done { source: 0 }).unwrap();
        rx
    }

    /// Fails from its second interval on.
    struct Full(u64);

    impl IntervalSink for Full {
        fn name(&self) -> &'static str {
            "full.csv"
        }

        fn interval(&mut self, _: &IntervalRow, _: &Recorder) -> std::io::Result<()> {
            self.0 += 1;
            match self.0 {
                1 => Ok(()),
                _ => Err(std::io::Error::other("disk full")),
            }
        }
    }

    #[tokio::test]
    async fn a_sink_that_fails_is_dropped_and_named_and_the_others_go_on() {
        let rx = one_source(3);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sinks: Sinks = vec![Box::new(Full(0)), Box::new(Seen(Arc::clone(&seen)))];
        let collected = collect(rx, 1, Duration::ZERO, sinks, Arc::default()).await;
        assert_eq!(collected.stopped, ["full.csv stopped early: disk full"]);
        assert_eq!(
            seen.lock().unwrap().len(),
            3,
            "the other sink had every second"
        );
    }

    /// Notes which seconds it was handed.
    struct Seen(Arc<std::sync::Mutex<Vec<(u64, u64)>>>);

    impl IntervalSink for Seen {
        fn name(&self) -> &'static str {
            "seen"
        }

        fn interval(&mut self, row: &IntervalRow, _: &Recorder) -> std::io::Result<()> {
            self.0.lock().unwrap().push((row.t, row.span_s));
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_second_goes_to_the_sink_and_the_series_stays_bounded() {
        let seconds = 2000;
        let rx = one_source(seconds);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sinks: Sinks = vec![Box::new(Seen(Arc::clone(&seen)))];
        let collected = collect(rx, 1, Duration::ZERO, sinks, Arc::default()).await;
        let seen = seen.lock().unwrap();
        assert_eq!(*seen, (0..seconds).map(|t| (t, 1)).collect::<Vec<_>>());
        let rows = &collected.intervals;
        assert!(
            rows.len() <= crate::load::series::MAX_POINTS,
            "{}",
            rows.len()
        );
        assert_eq!(rows.iter().map(|r| r.span_s).sum::<u64>(), seconds);
        assert_eq!(collected.totals.count(Op::Append, Outcome::Ok), seconds);
    }
}
